"""The digest action: a period's incidents in a few sentences, with links to them, returned.

`ai_security.digest` writes what happened over a period (the last 24 hours unless told), at the
cameras asked (all of every loaded hub, or one hub's), and returns it for an automation to send:
the bundled "digest when you come home" blueprint calls it when the household is back, and each
morning if asked. The hub's LLM writes it when one is set and answers; otherwise, or when asked
not to, a template says the same facts (core/digest.py). The notable incidents come with their
media-source id and a link to their day in the media browser.
"""

from datetime import datetime, timedelta
import logging
from typing import Any, Final
from urllib.parse import quote

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_get_config_entry
from homeassistant.util import dt as dt_util
import probatio

from . import assist_data
from .assist_data import CameraRef
from .const import DOMAIN
from .coordinator import AiSecurityConfigEntry
from .core import digest
from .core.llm_errors import AnalyzerError
from .core.periods import PERIODS, period_bounds
from .helpers import ai_security_exception_handler

_LOGGER = logging.getLogger(__name__)

SERVICE_DIGEST: Final = "digest"
DEFAULT_PERIOD: Final = "last_24_hours"
MEDIA_ROOT: Final = "media-source://" + DOMAIN

DIGEST_SCHEMA: Final = probatio.Schema(
    {
        probatio.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
        probatio.Optional("cameras"): probatio.All(
            cv.ensure_list, [probatio.All(cv.string, probatio.Length(min=1, max=100))]
        ),
        probatio.Optional("period"): probatio.In(PERIODS),
        probatio.Optional("start"): cv.datetime,
        probatio.Optional("end"): cv.datetime,
        probatio.Optional("use_llm", default=True): cv.boolean,
    }
)


def browser_link(media_id: str) -> str:
    """Return the frontend's path that opens media_id in the media browser."""
    return "/media-browser/browser/" + quote(f"app,{media_id}", safe="")


def _entries(hass: HomeAssistant, entry_id: str | None) -> list[AiSecurityConfigEntry]:
    """Return the hub asked for (Home Assistant's own errors when unknown or not loaded)."""
    if entry_id is None:
        return list(hass.config_entries.async_loaded_entries(DOMAIN))
    entry: AiSecurityConfigEntry = async_get_config_entry(hass, DOMAIN, entry_id)
    return [entry]


def _cameras(
    hass: HomeAssistant, entries: list[AiSecurityConfigEntry], spoken: list[str] | None
) -> list[CameraRef]:
    ids = {entry.entry_id for entry in entries}
    if not spoken:
        return [ref for ref in assist_data.cameras(hass) if ref.entry.entry_id in ids]
    found: dict[tuple[str, str], CameraRef] = {}
    for name in spoken:
        matched = [
            ref for ref in assist_data.match_cameras(hass, name) if ref.entry.entry_id in ids
        ]
        if not matched:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_camera",
                translation_placeholders={"camera": name},
            )
        for ref in matched:
            found[(ref.entry.entry_id, ref.camera_id)] = ref
    return list(found.values())


def _period(data: dict[str, Any]) -> tuple[datetime, datetime]:
    now = dt_util.utcnow()
    if "start" not in data and "end" not in data:
        return period_bounds(data.get("period", DEFAULT_PERIOD), now, assist_data.local_tz())
    end = dt_util.as_utc(data["end"]) if "end" in data else now
    start = dt_util.as_utc(data["start"]) if "start" in data else end - timedelta(days=1)
    if start > end:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_date_range",
            translation_placeholders={"start": start.isoformat(), "end": end.isoformat()},
        )
    return start, end


def _heading(start: datetime, end: datetime) -> str:
    first, last = dt_util.as_local(start), dt_util.as_local(end)
    return f"From {first:%a %d %b %H:%M} to {last:%a %d %b %H:%M}"


@ai_security_exception_handler(failure="database_failed")
async def handle_digest(call: ServiceCall) -> ServiceResponse:
    """Return the digest of the period asked, with the notable incidents and their links."""
    hass = call.hass
    entries = _entries(hass, call.data.get(ATTR_CONFIG_ENTRY_ID))
    refs = _cameras(hass, entries, call.data.get("cameras"))
    start, end = _period(dict(call.data))
    heading = _heading(start, end)
    summary: dict[str, Any] = (
        await assist_data.summary(hass, refs, start, end, notable=5, links=True)
        if refs
        else {
            "from": start.isoformat(),
            "until": end.isoformat(),
            "incidents": 0,
            "by_camera": {},
            "notable": [],
        }
    )
    for item in summary["notable"]:
        # The incident's day in the media browser: its clip or picture among that day's.
        item["link"] = browser_link(item["media_id"].rsplit("/", 1)[0])
    text, written_by = digest.template(summary, heading), "template"
    analyzers = [
        entry.runtime_data.pipeline.analyzer
        for entry in entries
        if entry.runtime_data.pipeline.analyzer is not None
    ]
    if call.data["use_llm"] and analyzers and summary["incidents"]:
        try:
            answer = await analyzers[0].write(
                digest.SYSTEM, digest.facts(summary, heading), digest.SCHEMA, digest.MAX_TOKENS
            )
        except AnalyzerError as err:
            _LOGGER.info("The LLM could not write the digest (%s); the template did", err)
        else:
            if (written := digest.parse(answer)) is not None:
                text, written_by = written, "llm"
            else:
                _LOGGER.info("The LLM's digest was unusable; the template wrote it")
    alerts = sum(
        count
        for by_level in summary["by_camera"].values()
        for level, count in by_level.items()
        if level in ("high", "critical")
    )
    return {
        "text": text,
        "written_by": written_by,
        "from": summary["from"],
        "until": summary["until"],
        "incidents": summary["incidents"],
        "alerts": alerts,
        "notable": summary["notable"],
        "link": browser_link(MEDIA_ROOT),
    }


def async_register_digest(hass: HomeAssistant) -> None:
    """Register the digest action (read-only: not audited)."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_DIGEST,
        handle_digest,
        schema=DIGEST_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
