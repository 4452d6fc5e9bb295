"""Config, reconfigure and options flows: every setting of the integration is made in the UI."""

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
import os
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
from homeassistant.requirements import RequirementsNotFound, async_process_requirements
from homeassistant.util import dt as dt_util
import probatio

from .audit import async_record_change
from .const import (
    CONF_CAMERA_ROOT,
    CONF_DATABASE_URL,
    CONF_DETECTOR_URLS,
    CONF_HISTORY_BEFORE,
    CONF_LLM_API,
    CONF_LLM_URL,
    DEFAULT_DETECTOR_URL,
    DEFAULT_LLM_URL,
    DEFAULT_NAME,
    DOMAIN,
    LOGGER,
    POSTGRESQL_REQUIREMENT,
)
from .core import settings as opt
from .core.database_url import InvalidDatabaseUrlError, describe_database_url
from .core.health import (
    InvalidUrlError,
    ServiceUnavailableError,
    normalize_url,
    probe_detector,
    redact_url,
)
from .core.llm_providers import probe_llm
from .core.settings import COMMON_OBJECT_TYPES, LIMITS, LlmApi, PipelineOptions
from .core.storage import Database, DatabaseError
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

    try:
        data[CONF_DETECTOR_URLS] = _detector_urls(user_input[CONF_DETECTOR_URLS])
    except InvalidUrlError:
        errors[CONF_DETECTOR_URLS] = "invalid_url"
    # No LLM server (the field left empty) is a choice: events are scored by the heuristic.
    llm_url = str(user_input.get(CONF_LLM_URL) or "").strip()
    try:
        data[CONF_LLM_URL] = normalize_url(llm_url) if llm_url else ""
    except InvalidUrlError:
        errors[CONF_LLM_URL] = "invalid_url"

    session = async_get_clientsession(hass)
    probes: list[tuple[str, Coroutine[Any, Any, object]]] = [
        (CONF_DETECTOR_URLS, probe_detector(session, url))
        for url in data.get(CONF_DETECTOR_URLS, [])
    ]
    if data.get(CONF_LLM_URL):
        probes.append(
            (CONF_LLM_URL, probe_llm(session, data[CONF_LLM_URL], LlmApi(data[CONF_LLM_API])))
        )
    results = await asyncio.gather(*(probe for _key, probe in probes), return_exceptions=True)
    for (key, _probe), result in zip(probes, results, strict=True):
        if isinstance(result, ServiceUnavailableError):
            LOGGER.debug("%s probe failed: %s", key, result)
            errors[key] = "cannot_connect"
        elif isinstance(result, BaseException):
            raise result
    return data, errors


def _detector_urls(value: str | list[str]) -> list[str]:
    """Return the detector URLs, normalized, without repeats; raise InvalidUrlError if one is bad.

    The form gives a list (one field per server); a single text is accepted too, split on commas
    and blanks, so an address pasted as "http://a:8090, http://b:8090" works.
    """
    texts = [value] if isinstance(value, str) else list(value)
    urls: list[str] = []
    for text in texts:
        for part in text.replace(",", " ").split():
            url = normalize_url(part)
            if url not in urls:
                urls.append(url)
    if not urls:
        raise InvalidUrlError("no detector URL")
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
                CONF_LLM_URL, description={"suggested_value": DEFAULT_LLM_URL}
            ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
            probatio.Required(CONF_LLM_API, default=LlmApi.LLAMA_CPP.value): SelectSelector(
                SelectSelectorConfig(
                    options=[api.value for api in LlmApi],
                    mode=SelectSelectorMode.LIST,
                    translation_key=CONF_LLM_API,
                )
            ),
        }
    )


class AiSecurityConfigFlow(ConfigFlow, domain=DOMAIN):
    """Set up one AI Security hub per camera root folder."""

    VERSION = 1
    MINOR_VERSION = 2

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Offer camera zones as subentries of the hub."""
        return {SUBENTRY_ZONE: ZoneSubentryFlow}

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


class _FlowCheckedNumberSelector(NumberSelector):
    """A number field whose min and max guide the UI, while the flow step checks the range.

    NumberSelector itself rejects an out-of-range value with an untranslated schema error; checking
    in the step instead puts a translated message on the field, as for every other error.
    """

    @override
    def __call__(self, data: Any) -> float:
        """Only coerce to a number; PipelineOptions.problems() checks the range."""
        value: float = probatio.Coerce(float)(data)
        return value


def _number(key: str, unit: str | None = None, *, slider: bool = False) -> NumberSelector:
    """Return the field for the numeric option key, bounded by its limits."""
    limit = LIMITS[key]
    config = NumberSelectorConfig(
        min=limit.minimum,
        max=limit.maximum,
        step=limit.step,
        mode=NumberSelectorMode.SLIDER if slider else NumberSelectorMode.BOX,
    )
    if unit is not None:
        config["unit_of_measurement"] = unit
    return _FlowCheckedNumberSelector(config)


def _options_schema() -> probatio.Schema:
    """Return the options form; defaults come from PipelineOptions via suggested values."""
    return probatio.Schema(
        {
            probatio.Required(opt.CONFIDENCE_THRESHOLD): _number(
                opt.CONFIDENCE_THRESHOLD, slider=True
            ),
            probatio.Required(opt.BATCH_WINDOW): _number(opt.BATCH_WINDOW, "s"),
            probatio.Required(opt.BATCH_IDLE_TIMEOUT): _number(opt.BATCH_IDLE_TIMEOUT, "s"),
            probatio.Required(opt.INCIDENT_MAX_MINUTES): _number(opt.INCIDENT_MAX_MINUTES, "min"),
            probatio.Required(opt.FAST_PATH_CONFIDENCE): _number(
                opt.FAST_PATH_CONFIDENCE, slider=True
            ),
            probatio.Required(opt.FAST_PATH_OBJECTS): SelectSelector(
                SelectSelectorConfig(
                    options=list(COMMON_OBJECT_TYPES),
                    multiple=True,
                    custom_value=True,
                    mode=SelectSelectorMode.DROPDOWN,
                    translation_key="object_type",
                )
            ),
            probatio.Required(opt.DEBOUNCE): _number(opt.DEBOUNCE, "s"),
            probatio.Required(opt.POLLING_OBSERVER): BooleanSelector(),
            probatio.Required(opt.RETENTION_DAYS): _number(opt.RETENTION_DAYS, "d"),
            probatio.Required(opt.RETENTION_TIME): TimeSelector(),
            probatio.Required(opt.DELETE_UPLOADS): BooleanSelector(),
            probatio.Required(opt.THRESHOLD_MEDIUM): _number(opt.THRESHOLD_MEDIUM),
            probatio.Required(opt.THRESHOLD_HIGH): _number(opt.THRESHOLD_HIGH),
            probatio.Required(opt.THRESHOLD_CRITICAL): _number(opt.THRESHOLD_CRITICAL),
            probatio.Required(opt.DETECTOR_CONCURRENCY): _number(opt.DETECTOR_CONCURRENCY),
            probatio.Required(opt.LLM_CONCURRENCY): _number(opt.LLM_CONCURRENCY),
            probatio.Required(opt.RESCORE_MINUTES): _number(opt.RESCORE_MINUTES, "min"),
            probatio.Required(opt.HEALTH_INTERVAL): _number(opt.HEALTH_INTERVAL, "s"),
            probatio.Required(opt.DETECTION_EVENTS): BooleanSelector(),
            probatio.Optional(CONF_DATABASE_URL): TextSelector(
                TextSelectorConfig(type=TextSelectorType.PASSWORD, autocomplete="off")
            ),
        }
    )


async def _check_database(hass: HomeAssistant, url: str) -> str | None:
    """Return an error key when url is not a usable PostgreSQL database, None when it is.

    The PostgreSQL driver is installed only now, for the users who choose PostgreSQL.
    """
    try:
        dialect = describe_database_url(url).dialect
    except InvalidDatabaseUrlError:
        return "invalid_database_url"
    if dialect != "postgresql":
        return "invalid_database_url"
    try:
        await async_process_requirements(hass, DOMAIN, [POSTGRESQL_REQUIREMENT])
        database = Database(url, run_blocking=hass.async_add_executor_job)
        await database.start()
        await database.close()
    except (RequirementsNotFound, DatabaseError) as err:
        LOGGER.warning("Cannot use the database %s: %s", redact_url(url), err)
        return "cannot_connect_database"
    return None


class AiSecurityOptionsFlow(OptionsFlowWithReload):
    """Tune detection, batching, the watcher, retention and severity; the entry reloads on save."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the options, reject out-of-range or inconsistent values with a reason per field."""
        errors: dict[str, str] = {}
        if user_input is not None:
            options = PipelineOptions.from_mapping(user_input)
            errors = options.problems()
            database_url = str(user_input.get(CONF_DATABASE_URL) or "").strip()
            if database_url and (problem := await _check_database(self.hass, database_url)):
                errors[CONF_DATABASE_URL] = problem
            if not errors:
                saved = {**options.as_mapping(), CONF_DATABASE_URL: database_url}
                if database_url != str(self.config_entry.options.get(CONF_DATABASE_URL) or ""):
                    # A new, empty database knows no upload: those in the folder are history.
                    self.hass.config_entries.async_update_entry(
                        self.config_entry,
                        data={
                            **self.config_entry.data,
                            CONF_HISTORY_BEFORE: dt_util.utcnow().isoformat(),
                        },
                    )
                await async_record_change(
                    self.hass,
                    self.config_entry,
                    action="options_changed",
                    before=self.config_entry.options,
                    after=saved,
                )
                return self.async_create_entry(data=saved)
        current = user_input or {
            **PipelineOptions.from_mapping(dict(self.config_entry.options)).as_mapping(),
            CONF_DATABASE_URL: self.config_entry.options.get(CONF_DATABASE_URL, ""),
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(_options_schema(), current),
            errors=errors,
        )
