"""Actions: search and review events, judge or reprocess uploads, retry jobs, try rules, snooze.

Every action names its hub (config_entry_id), since several can be set up. Bad input is a
translated ServiceValidationError naming what is wrong; a database that cannot answer is a
translated HomeAssistantError. The library's errors become these in one decorator
(helpers.ai_security_exception_handler), not in each handler, so no action can forget one. Dead
jobs are never dropped silently: list_dead_jobs shows them with the reason each one failed,
requeue_dead_letters gives them another chance.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_get_config_entry, async_register_admin_service
from homeassistant.util import dt as dt_util
import probatio

from .audit import audited
from .const import DOMAIN
from .core import operations
from .core.events import EventQuery
from .core.models import Camera, RiskLevel, SecurityEvent
from .core.rules import DEFAULT_COOLDOWN_MINUTES, AlertRule
from .core.uploads import shown
from .helpers import ai_security_exception_handler
from .media_source import async_event_media_urls

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

SERVICE_LIST_DEAD_JOBS: Final = "list_dead_jobs"
SERVICE_REQUEUE_DEAD_LETTERS: Final = "requeue_dead_letters"
SERVICE_SEARCH_EVENTS: Final = "search_events"
SERVICE_REVIEW_EVENT: Final = "review_event"
SERVICE_REPROCESS_FILE: Final = "reprocess_file"
SERVICE_PROCESS_OLD_UPLOADS: Final = "process_old_uploads"
SERVICE_ANALYZE_NOW: Final = "analyze_now"
SERVICE_TEST_ALERT_RULE: Final = "test_alert_rule"
SERVICE_GET_AUDIT_LOG: Final = "get_audit_log"
SERVICE_SNOOZE_CAMERA: Final = "snooze_camera"

ATTR_JOB_IDS: Final = "job_ids"
ATTR_TEXT: Final = "text"
ATTR_CAMERAS: Final = "cameras"
ATTR_CAMERA: Final = "camera"
ATTR_MIN_LEVEL: Final = "min_level"
ATTR_START: Final = "start"
ATTR_END: Final = "end"
ATTR_REVIEWED: Final = "reviewed"
ATTR_DISMISSED: Final = "dismissed"
ATTR_PAGE: Final = "page"
ATTR_PAGE_SIZE: Final = "page_size"
ATTR_EVENT_ID: Final = "event_id"
ATTR_NOTE: Final = "note"
ATTR_PATH: Final = "path"
ATTR_OBJECT_TYPES: Final = "object_types"
ATTR_ZONES: Final = "zones"
ATTR_ACTIVE_FROM: Final = "active_from"
ATTR_ACTIVE_TO: Final = "active_to"
ATTR_WEEKDAYS: Final = "weekdays"
ATTR_COOLDOWN: Final = "cooldown"
ATTR_ACTION: Final = "action"
ATTR_KEEP: Final = "keep"
ATTR_SINCE: Final = "since"
ATTR_DURATION: Final = "duration"

MAX_SNOOZE_MINUTES: Final = 7 * 24 * 60
"""The longest snooze (a week); for longer, the Alerts switch is turned off until turned on."""

ENTRY_SCHEMA = probatio.Schema({probatio.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
AUDIT_LOG_SCHEMA = ENTRY_SCHEMA.extend(
    {
        # Ranges are checked by the library, so they come back as readable messages.
        probatio.Optional(ATTR_PAGE, default=1): probatio.Coerce(int),
        probatio.Optional(ATTR_PAGE_SIZE, default=50): probatio.Coerce(int),
        probatio.Optional(ATTR_ACTION): cv.string,
        probatio.Optional(ATTR_SINCE): cv.datetime,
    }
)
REQUEUE_SCHEMA = ENTRY_SCHEMA.extend(
    {probatio.Optional(ATTR_JOB_IDS): probatio.All(cv.ensure_list, [cv.positive_int])}
)
# Lengths, page numbers and date order are checked by EventQuery, not here: its errors name
# the problem in words (translated), where a schema error only says "invalid value".
SEARCH_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Optional(ATTR_TEXT, default=""): cv.string,
        probatio.Optional(ATTR_CAMERAS, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_MIN_LEVEL): probatio.Coerce(RiskLevel),
        probatio.Optional(ATTR_START): cv.datetime,
        probatio.Optional(ATTR_END): cv.datetime,
        probatio.Optional(ATTR_REVIEWED): cv.boolean,
        probatio.Optional(ATTR_DISMISSED): cv.boolean,
        probatio.Optional(ATTR_PAGE, default=1): probatio.Coerce(int),
        probatio.Optional(ATTR_PAGE_SIZE, default=50): probatio.Coerce(int),
    }
)
REVIEW_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Required(ATTR_EVENT_ID): cv.string,
        probatio.Optional(ATTR_REVIEWED, default=True): cv.boolean,
        probatio.Optional(ATTR_DISMISSED, default=False): cv.boolean,
        probatio.Optional(ATTR_NOTE): cv.string,
        probatio.Optional(ATTR_KEEP): cv.boolean,
    }
)
REPROCESS_SCHEMA = ENTRY_SCHEMA.extend({probatio.Required(ATTR_PATH): cv.string})
PROCESS_OLD_SCHEMA = ENTRY_SCHEMA.extend(
    {probatio.Optional(ATTR_CAMERA): cv.string, probatio.Optional(ATTR_SINCE): cv.datetime}
)
ANALYZE_NOW_SCHEMA = ENTRY_SCHEMA.extend({probatio.Required(ATTR_CAMERA): cv.string})
# The duration's range is checked by the handler, whose error says what is allowed.
SNOOZE_SCHEMA = ANALYZE_NOW_SCHEMA.extend(
    {probatio.Required(ATTR_DURATION): probatio.Coerce(float)}
)
# The cooldown's range and the time range's order are checked by AlertRule and EventQuery,
# whose errors say what is wrong.
TEST_ALERT_RULE_SCHEMA = ENTRY_SCHEMA.extend(
    {
        probatio.Required(ATTR_START): cv.datetime,
        probatio.Optional(ATTR_END): cv.datetime,
        probatio.Optional(ATTR_MIN_LEVEL, default=RiskLevel.LOW): probatio.Coerce(RiskLevel),
        probatio.Optional(ATTR_OBJECT_TYPES, default=list): probatio.All(
            cv.ensure_list, [cv.string]
        ),
        probatio.Optional(ATTR_CAMERAS, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_ZONES, default=list): probatio.All(cv.ensure_list, [cv.string]),
        probatio.Optional(ATTR_ACTIVE_FROM): cv.time,
        probatio.Optional(ATTR_ACTIVE_TO): cv.time,
        probatio.Optional(ATTR_WEEKDAYS, default=list): cv.weekdays,
        probatio.Optional(ATTR_COOLDOWN, default=DEFAULT_COOLDOWN_MINUTES): probatio.Coerce(float),
    }
)


def _entry(call: ServiceCall) -> AiSecurityConfigEntry:
    entry: AiSecurityConfigEntry = async_get_config_entry(
        call.hass, DOMAIN, call.data[ATTR_CONFIG_ENTRY_ID]
    )
    return entry


def _camera_id(entry: AiSecurityConfigEntry, camera_id: str) -> str:
    """Return camera_id if the hub knows the camera; raise the translated error otherwise."""
    if camera_id not in entry.runtime_data.pipeline.cameras:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_camera",
            translation_placeholders={"camera": camera_id},
        )
    return camera_id


def _utc(moment: datetime | None) -> datetime | None:
    """Return moment in UTC; a time without a zone is Home Assistant's local time."""
    return None if moment is None else dt_util.as_utc(moment)


def _event_data(
    event: SecurityEvent,
    cameras: Mapping[str, Camera],
    urls: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> dict[str, Any]:
    """Return an event as an action's response: plain JSON, times in ISO 8601 UTC.

    Summary, reasoning and note are the stored text, as they are: a client shows them as text.
    With urls (search results), image_url and clip_url are the event's signed media URLs, for a
    dashboard to show without a token of its own; they expire like the media browser's.
    """
    camera = cameras.get(event.camera_id)
    media: dict[str, Any] = {}
    if urls is not None:
        image_url, clip_url = urls.get(event.event_id, (None, None))
        media = {"image_url": image_url, "clip_url": clip_url}
    return {
        "event_id": event.event_id,
        "camera_id": event.camera_id,
        "camera_name": camera.name if camera is not None else event.camera_id,
        "started_at": dt_util.as_utc(event.started_at).isoformat(),
        "ended_at": dt_util.as_utc(event.ended_at).isoformat(),
        "risk_score": event.risk_score,
        "risk_level": event.risk_level.value,
        "summary": event.summary,
        "reasoning": event.reasoning,
        "object_types": list(event.object_types),
        "detection_count": event.detection_count,
        "is_fast_path": event.is_fast_path,
        "source": event.source.value,
        "reviewed": event.reviewed,
        "dismissed": event.dismissed,
        "review_note": event.review_note,
        "keep": event.keep,
        "zones": list(event.zones),
        **media,
    }


@ai_security_exception_handler(failure="database_failed")
async def _search_events(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    cameras = entry.runtime_data.pipeline.cameras
    camera_ids = tuple(
        dict.fromkeys(_camera_id(entry, camera) for camera in call.data[ATTR_CAMERAS])
    )
    query = EventQuery(
        text=call.data[ATTR_TEXT],
        camera_ids=camera_ids,
        min_level=call.data.get(ATTR_MIN_LEVEL),
        start=_utc(call.data.get(ATTR_START)),
        end=_utc(call.data.get(ATTR_END)),
        reviewed=call.data.get(ATTR_REVIEWED),
        dismissed=call.data.get(ATTR_DISMISSED),
        page=call.data[ATTR_PAGE],
        page_size=call.data[ATTR_PAGE_SIZE],
    )
    page = await operations.search_events(entry.runtime_data.pipeline.db, query)
    urls = await async_event_media_urls(call.hass, entry.entry_id, page.events)
    return {
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
        "events": [_event_data(event, cameras, urls) for event in page.events],
    }


@ai_security_exception_handler(failure="database_write_failed")
async def _review_event(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    event_id: str = call.data[ATTR_EVENT_ID]
    event = await operations.review_event(
        entry.runtime_data.pipeline.db,
        event_id,
        reviewed=call.data[ATTR_REVIEWED],
        dismissed=call.data[ATTR_DISMISSED],
        note=call.data.get(ATTR_NOTE),
        now=dt_util.utcnow(),
        keep=call.data.get(ATTR_KEEP),
    )
    if event is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="event_not_found",
            translation_placeholders={"event_id": event_id},
        )
    return _event_data(event, entry.runtime_data.pipeline.cameras)


@ai_security_exception_handler(failure="database_write_failed")
async def _reprocess_file(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    job_id = await entry.runtime_data.pipeline.reprocess(call.data[ATTR_PATH])
    return {"job_id": job_id}


@ai_security_exception_handler(failure="database_failed")
async def _process_old_uploads(call: ServiceCall) -> ServiceResponse:
    """Take in, on purpose, the uploads that were in the folder before the hub was set up."""
    entry = _entry(call)
    camera: str | None = call.data.get(ATTR_CAMERA)
    camera_id = None if camera is None else _camera_id(entry, camera)
    count = await entry.runtime_data.pipeline.process_old_uploads(
        camera_id=camera_id, since=_utc(call.data.get(ATTR_SINCE))
    )
    return {"queued": count}


@ai_security_exception_handler(failure="database_write_failed")
async def _analyze_now(call: ServiceCall) -> None:
    entry = _entry(call)
    camera_id = _camera_id(entry, call.data[ATTR_CAMERA])
    closed = await entry.runtime_data.pipeline.analyze_now(camera_id)
    if not closed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_open_batch",
            translation_placeholders={"camera": camera_id},
        )


async def _snooze_camera(call: ServiceCall) -> ServiceResponse:
    """Turn a camera's Alerts switch off for some minutes; it turns back on by itself.

    Its events are still detected, stored and shown meanwhile; only what notifies holds back.
    """
    entry = _entry(call)
    camera_id = _camera_id(entry, call.data[ATTR_CAMERA])
    minutes: float = call.data[ATTR_DURATION]
    if not 1 <= minutes <= MAX_SNOOZE_MINUTES:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_snooze_duration",
            translation_placeholders={"minimum": "1", "maximum": str(MAX_SNOOZE_MINUTES)},
        )
    until = entry.runtime_data.hub.controls.snooze(camera_id, minutes)
    return {"camera": camera_id, "snoozed_until": until.isoformat()}


@ai_security_exception_handler(failure="database_failed")
async def _test_alert_rule(call: ServiceCall) -> ServiceResponse:
    """Replay an alert rule over the stored events of a time range (local time unless zoned).

    The events that would have been sent come oldest first, with the cooldown applied per
    camera, and the counts of events matched, suppressed by the cooldown and looked at.
    """
    entry = _entry(call)
    camera_ids = tuple(
        dict.fromkeys(_camera_id(entry, camera) for camera in call.data[ATTR_CAMERAS])
    )
    start = dt_util.as_utc(call.data[ATTR_START])
    end = dt_util.as_utc(call.data.get(ATTR_END) or dt_util.utcnow())
    rule = AlertRule(
        min_level=call.data[ATTR_MIN_LEVEL],
        object_types=tuple(call.data[ATTR_OBJECT_TYPES]),
        camera_ids=camera_ids,
        zones=tuple(call.data[ATTR_ZONES]),
        active_from=call.data.get(ATTR_ACTIVE_FROM),
        active_to=call.data.get(ATTR_ACTIVE_TO),
        weekdays=tuple(call.data[ATTR_WEEKDAYS]),
        cooldown_minutes=call.data[ATTR_COOLDOWN],
    )
    result = await operations.replay_rule(
        entry.runtime_data.pipeline.db, rule, dt_util.get_default_time_zone(), start, end
    )
    return {
        "fired": [
            {
                "event_id": event.event_id,
                "camera_id": event.camera_id,
                "started_at": dt_util.as_utc(event.started_at).isoformat(),
                "risk_level": event.risk_level.value,
                "summary": event.summary,
            }
            for event in result.fired
        ],
        "suppressed_by_cooldown": result.suppressed_by_cooldown,
        "matched": result.matched,
        "evaluated": result.evaluated,
    }


@ai_security_exception_handler(failure="queue_unavailable")
async def _list_dead_jobs(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    jobs = await entry.runtime_data.pipeline.queue.dead_jobs(limit=500)
    return {
        "jobs": [
            {
                "job_id": job.job_id,
                "kind": job.kind.value,
                "attempts": job.attempts,
                "last_error": job.last_error,
                "payload": _shown_payload(job.payload),
                "updated_at": job.next_attempt_at.isoformat(),
            }
            for job in jobs
        ]
    }


def _shown_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return a job's payload with its file name made JSON-safe (it may not be UTF-8)."""
    return {
        key: shown(value) if key == "path" and isinstance(value, str) else value
        for key, value in payload.items()
    }


@ai_security_exception_handler(failure="queue_unavailable")
async def _requeue_dead_letters(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    job_ids: list[int] | None = call.data.get(ATTR_JOB_IDS)
    count = await entry.runtime_data.pipeline.queue.requeue_dead(job_ids)
    return {"requeued": count}


@ai_security_exception_handler(failure="database_failed")
async def _get_audit_log(call: ServiceCall) -> ServiceResponse:
    entry = _entry(call)
    found = await operations.audit_log(
        entry.runtime_data.pipeline.db,
        page=call.data[ATTR_PAGE],
        page_size=call.data[ATTR_PAGE_SIZE],
        action=call.data.get(ATTR_ACTION),
        since=_utc(call.data.get(ATTR_SINCE)),
    )
    return {
        "total": found.total,
        "page": found.page,
        "page_size": found.page_size,
        "records": [item.as_dict() for item in found.records],
    }


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions (once, for every entry).

    Actions that change something are audited; those that only read (search_events,
    test_alert_rule, list_dead_jobs, get_audit_log) are not: a dashboard reads every minute,
    and the trail is for who changed what, not for who looked.
    """
    hass.services.async_register(
        DOMAIN,
        SERVICE_SEARCH_EVENTS,
        _search_events,
        schema=SEARCH_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_REVIEW_EVENT,
        audited(SERVICE_REVIEW_EVENT, _review_event),
        schema=REVIEW_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_ANALYZE_NOW,
        audited(SERVICE_ANALYZE_NOW, _analyze_now),
        schema=ANALYZE_NOW_SCHEMA,
    )
    # Not for administrators only: like turning the camera's Alerts switch off, which any
    # user may do.
    hass.services.async_register(
        DOMAIN,
        SERVICE_SNOOZE_CAMERA,
        audited(SERVICE_SNOOZE_CAMERA, _snooze_camera),
        schema=SNOOZE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_TEST_ALERT_RULE,
        _test_alert_rule,
        schema=TEST_ALERT_RULE_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REPROCESS_FILE,
        audited(SERVICE_REPROCESS_FILE, _reprocess_file),
        schema=REPROCESS_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_PROCESS_OLD_UPLOADS,
        audited(SERVICE_PROCESS_OLD_UPLOADS, _process_old_uploads),
        schema=PROCESS_OLD_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_LIST_DEAD_JOBS,
        _list_dead_jobs,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_GET_AUDIT_LOG,
        _get_audit_log,
        schema=AUDIT_LOG_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REQUEUE_DEAD_LETTERS,
        audited(SERVICE_REQUEUE_DEAD_LETTERS, _requeue_dead_letters),
        schema=REQUEUE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
