"""Config and reconfigure flows: the hub's camera folder and model servers, checked before saving.

Every setting of the integration is made in the UI; the tuning is the options flow's
(options_flow.py), camera zones are subentries (zone_flow.py).
"""

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
import os
from typing import Any, override

from homeassistant.components.ai_task import DOMAIN as AI_TASK_DOMAIN, AITaskEntityFeature
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
)
from homeassistant.const import ATTR_SUPPORTED_FEATURES, CONF_NAME, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    EntityWithDeviceFilterSelectorConfig,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.util import dt as dt_util
import probatio

from .audit import async_record_change
from .const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_HISTORY_BEFORE,
    CONF_LLM_API,
    CONF_LLM_ENTITY,
    CONF_LLM_URLS,
    DEFAULT_DETECTOR_URL,
    DEFAULT_LLM_URL,
    DEFAULT_NAME,
    DOMAIN,
    LOGGER,
)
from .core.health import InvalidUrlError, ServiceUnavailableError, normalize_url, probe_detector
from .core.llm_providers import probe_llm
from .core.settings import LlmApi
from .notes_flow import SUBENTRY_NOTES, CameraNotesSubentryFlow
from .options_flow import AiSecurityOptionsFlow
from .zone_flow import SUBENTRY_ZONE, ZoneSubentryFlow


@dataclass(frozen=True, kw_only=True, slots=True)
class _FolderCheck:
    """What the executor found out about the camera root folder."""

    path: str
    is_dir: bool
    allowed: bool


def _check_folder(hass: HomeAssistant, text: str) -> _FolderCheck:
    """Resolve the camera root (relative paths are under the config folder) and check it.

    Runs in the executor: it touches the file system.
    """
    path = os.path.realpath(hass.config.path(os.path.expanduser(text.strip())))
    return _FolderCheck(
        path=path, is_dir=os.path.isdir(path), allowed=hass.config.is_allowed_path(path)
    )


def _overlaps(path: str, other: str) -> bool:
    """Return whether one folder lies inside the other (the same folder is not an overlap)."""
    if not other or path == other:
        return False
    return os.path.commonpath([path, other]) in (path, other)


async def _validate_connection(
    hass: HomeAssistant, user_input: Mapping[str, Any], editing: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """Check the folder and both servers; return the data to store and the errors per field.

    All fields are checked in one pass so the user sees every problem at once.
    """
    errors: dict[str, str] = {}
    data: dict[str, Any] = {CONF_LLM_API: LlmApi(user_input[CONF_LLM_API]).value}

    folder = await hass.async_add_executor_job(_check_folder, hass, user_input[CONF_CAMERA_ROOT])
    data[CONF_CAMERA_ROOT] = folder.path
    if not folder.is_dir:
        errors[CONF_CAMERA_ROOT] = "not_a_directory"
    elif not folder.allowed:
        errors[CONF_CAMERA_ROOT] = "path_not_allowed"
    elif any(
        _overlaps(folder.path, str(other.data.get(CONF_CAMERA_ROOT, "")))
        for other in hass.config_entries.async_entries(DOMAIN)
        if other.entry_id != editing
    ):
        # Two hubs watching the same uploads would detect, judge and notify each one twice.
        errors[CONF_CAMERA_ROOT] = "overlapping_root"

    # The detectors need one server at least; no LLM server (the field left empty) is a choice:
    # events are then scored by the heuristic.
    for key, allow_empty in ((CONF_DETECTOR_URLS, False), (CONF_LLM_URLS, True)):
        try:
            data[key] = _server_urls(user_input.get(key) or [], allow_empty=allow_empty)
        except InvalidUrlError:
            errors[key] = "invalid_url"

    if entity_id := str(user_input.get(CONF_LLM_ENTITY) or "").strip():
        data[CONF_LLM_ENTITY] = entity_id
        if not _judges(hass, entity_id):
            errors[CONF_LLM_ENTITY] = "ai_task_unusable"

    session = async_get_clientsession(hass)
    llm_api = LlmApi(data[CONF_LLM_API])
    probes: list[tuple[str, Coroutine[Any, Any, object]]] = [
        (CONF_DETECTOR_URLS, probe_detector(session, url))
        for url in data.get(CONF_DETECTOR_URLS, [])
    ]
    probes.extend(
        (CONF_LLM_URLS, probe_llm(session, url, llm_api)) for url in data.get(CONF_LLM_URLS, [])
    )
    results = await asyncio.gather(*(probe for _key, probe in probes), return_exceptions=True)
    for (key, _probe), result in zip(probes, results, strict=True):
        if isinstance(result, ServiceUnavailableError):
            LOGGER.debug("%s probe failed: %s", key, result)
            errors[key] = "cannot_connect"
        elif isinstance(result, BaseException):
            raise result
    return data, errors


def _judges(hass: HomeAssistant, entity_id: str) -> bool:
    """Return whether an AI Task entity is there and can generate data (judge an event)."""
    state = hass.states.get(entity_id)
    if state is None or state.domain != AI_TASK_DOMAIN or state.state == STATE_UNAVAILABLE:
        return False
    features = int(state.attributes.get(ATTR_SUPPORTED_FEATURES) or 0)
    return bool(features & AITaskEntityFeature.GENERATE_DATA)


def _server_urls(value: str | list[str], *, allow_empty: bool) -> list[str]:
    """Return a pool's URLs, normalized, without repeats; raise InvalidUrlError if one is bad.

    The form gives a list (one field per server); a single text is accepted too, split on commas
    and blanks, so an address pasted as "http://a:8090, http://b:8090" works. The detectors need
    one URL at least; the LLM servers may be none (allow_empty): the heuristic then judges.
    """
    texts = [value] if isinstance(value, str) else list(value)
    urls: list[str] = []
    for text in texts:
        for part in text.replace(",", " ").split():
            url = normalize_url(part)
            if url not in urls:
                urls.append(url)
    if not urls and not allow_empty:
        raise InvalidUrlError("no server URL")
    return urls


def _connection_schema() -> probatio.Schema:
    """Return the form of the user and reconfigure steps."""
    return probatio.Schema(
        {
            probatio.Required(CONF_NAME, default=DEFAULT_NAME): TextSelector(),
            probatio.Required(CONF_CAMERA_ROOT): TextSelector(
                TextSelectorConfig(autocomplete="off")
            ),
            probatio.Required(CONF_DETECTOR_URLS, default=[DEFAULT_DETECTOR_URL]): TextSelector(
                TextSelectorConfig(type=TextSelectorType.URL, multiple=True)
            ),
            probatio.Optional(
                CONF_LLM_URLS, description={"suggested_value": [DEFAULT_LLM_URL]}
            ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL, multiple=True)),
            probatio.Required(CONF_LLM_API, default=LlmApi.LLAMA_CPP.value): SelectSelector(
                SelectSelectorConfig(
                    options=[api.value for api in LlmApi],
                    mode=SelectSelectorMode.LIST,
                    translation_key=CONF_LLM_API,
                )
            ),
            probatio.Optional(CONF_LLM_ENTITY): EntitySelector(
                EntitySelectorConfig(
                    filter=EntityWithDeviceFilterSelectorConfig(
                        domain=AI_TASK_DOMAIN,
                        supported_features=[f"{AI_TASK_DOMAIN}.AITaskEntityFeature.GENERATE_DATA"],
                    )
                )
            ),
        }
    )


class AiSecurityConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one AI Security hub per camera root folder."""

    VERSION = 1
    MINOR_VERSION = 3

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Offer camera zones and cameras' notes as subentries of the hub."""
        return {SUBENTRY_ZONE: ZoneSubentryFlow, SUBENTRY_NOTES: CameraNotesSubentryFlow}

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> AiSecurityOptionsFlow:
        """Return the options flow."""
        return AiSecurityOptionsFlow()

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the camera root and the model servers, and check them before saving."""
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data, errors = await _validate_connection(self.hass, user_input)
            except Exception:  # noqa: BLE001
                LOGGER.exception("Unexpected error while checking the AI Security settings")
                errors = {"base": "unknown"}
            else:
                if not errors:
                    await self.async_set_unique_id(data[CONF_CAMERA_ROOT])
                    self._abort_if_unique_id_configured()
                    return self.async_create_entry(
                        title=user_input[CONF_NAME].strip() or DEFAULT_NAME, data=data
                    )
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_connection_schema(), user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the camera root or the servers of an existing hub."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data, errors = await _validate_connection(self.hass, user_input, entry.entry_id)
            except Exception:  # noqa: BLE001
                LOGGER.exception("Unexpected error while checking the AI Security settings")
                errors = {"base": "unknown"}
            else:
                if not errors:
                    # Another folder's snapshots so far are its history, not new arrivals.
                    history = entry.data.get(CONF_HISTORY_BEFORE)
                    if data[CONF_CAMERA_ROOT] != entry.data[CONF_CAMERA_ROOT]:
                        history = dt_util.utcnow().isoformat()
                    if history:
                        data[CONF_HISTORY_BEFORE] = history
                    await self.async_set_unique_id(data[CONF_CAMERA_ROOT])
                    if data[CONF_CAMERA_ROOT] != entry.unique_id:
                        self._abort_if_unique_id_configured()
                    await async_record_change(
                        self.hass, entry, action="reconfigured", before=entry.data, after=data
                    )
                    return self.async_update_reload_and_abort(
                        entry,
                        unique_id=data[CONF_CAMERA_ROOT],
                        title=user_input[CONF_NAME].strip() or entry.title,
                        data=data,
                    )
        suggested = user_input or {CONF_NAME: entry.title, **entry.data}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(_connection_schema(), suggested),
            errors=errors,
        )
