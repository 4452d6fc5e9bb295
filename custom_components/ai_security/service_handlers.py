"""What each action does: search and review events, judge or reprocess uploads, jobs, rules, snooze.

Every action names its hub (config_entry_id), since several can be set up. Bad input is a
translated ServiceValidationError naming what is wrong; a database that cannot answer is a
translated HomeAssistantError. The library's errors become these in one decorator
(helpers.ai_security_exception_handler), not in each handler, so no action can forget one. Dead
jobs are never dropped silently: list_dead_jobs shows them with the reason each one failed,
requeue_dead_letters gives them another chance.
"""

from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import ServiceCall, ServiceResponse
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.helpers.service import async_get_config_entry
from homeassistant.util import dt as dt_util

from .bus_events import verdict_data
from .const import DOMAIN
from .core import operations
from .core.calibration import reset_learning
from .core.events import EventQuery
from .core.learned_spots import forget_spots
from .core.models import Camera, SecurityEvent
from .core.rules import AlertRule
from .core.uploads import shown
from .event_files import async_event_media_urls
from .helpers import ai_security_exception_handler
from .service_schemas import (
    ATTR_ACTION,
    ATTR_ACTIVE_FROM,
    ATTR_ACTIVE_TO,
    ATTR_CAMERA,
    ATTR_CAMERAS,
    ATTR_COOLDOWN,
    ATTR_DISMISSED,
    ATTR_DURATION,
    ATTR_END,
    ATTR_EVENT_ID,
    ATTR_FORGET,
    ATTR_JOB_IDS,
    ATTR_KEEP,
    ATTR_MIN_LEVEL,
    ATTR_MISSED,
    ATTR_NOTE,
    ATTR_OBJECT_TYPES,
    ATTR_PAGE,
    ATTR_PAGE_SIZE,
    ATTR_PATH,
    ATTR_REVIEWED,
    ATTR_SINCE,
    ATTR_START,
    ATTR_TEXT,
    ATTR_WEEKDAYS,
    ATTR_ZONES,
    MAX_SNOOZE_MINUTES,
)

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry


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
        "missed": event.missed,
        "review_note": event.review_note,
        "keep": event.keep,
        "zones": list(event.zones),
        **verdict_data(event),
        "sent_to_llm": _sent(event),
        **media,
    }


def _sent(event: SecurityEvent) -> dict[str, Any] | None:
    """Return the record of what the LLM was shown for the verdict (None for the heuristic's).

    frames are the uploads shown (media id, and seconds into a clip: "12", "15@3.2"),
    prompt_hash the SHA-256 of the text and pictures sent, server who answered.
    """
    details = event.details
    if details is None:
        return None
    return {
        "frames": list(details.frames),
        "prompt_hash": details.prompt_hash,
        "server": details.server,
    }


@ai_security_exception_handler(failure="database_failed")
async def handle_search_events(call: ServiceCall) -> ServiceResponse:
    """Return a page of the stored events matching the query, with their signed media URLs."""
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
    db = entry.runtime_data.pipeline.db
    page = await operations.search_events(db, query)
    urls = await async_event_media_urls(call.hass, entry.entry_id, page.events)
    # What the learned spots kept out of the events, in the same cameras and period: every
    # suppression can be checked (a real person at the statue's place would show here).
    hidden, latest = await operations.search_suppressed(db, query)
    return {
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
        "events": [_event_data(event, cameras, urls) for event in page.events],
        "suppressed": {"total": hidden, "latest": [item.as_dict() for item in latest]},
    }


@ai_security_exception_handler(failure="database_write_failed")
async def handle_review_event(call: ServiceCall) -> ServiceResponse:
    """Mark an event reviewed or dismissed (with a note, kept or not); return it as it is now."""
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
        missed=call.data[ATTR_MISSED],
    )
    if event is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="event_not_found",
            translation_placeholders={"event_id": event_id},
        )
    # A false alarm at the same place again may make a learned spot (or undo one).
    await entry.runtime_data.pipeline.relearn_spots(event.camera_id)
    return _event_data(event, entry.runtime_data.pipeline.cameras)


@ai_security_exception_handler(failure="database_write_failed")
async def handle_reprocess_file(call: ServiceCall) -> ServiceResponse:
    """Queue an upload to be detected again; return its job."""
    entry = _entry(call)
    job_id = await entry.runtime_data.pipeline.reprocess(call.data[ATTR_PATH])
    return {"job_id": job_id}


@ai_security_exception_handler(failure="database_failed")
async def handle_process_old_uploads(call: ServiceCall) -> ServiceResponse:
    """Take in, on purpose, the uploads that were in the folder before the hub was set up."""
    entry = _entry(call)
    camera: str | None = call.data.get(ATTR_CAMERA)
    camera_id = None if camera is None else _camera_id(entry, camera)
    count = await entry.runtime_data.pipeline.process_old_uploads(
        camera_id=camera_id, since=_utc(call.data.get(ATTR_SINCE))
    )
    return {"queued": count}


@ai_security_exception_handler(failure="database_write_failed")
async def handle_analyze_now(call: ServiceCall) -> None:
    """Close a camera's open batch now, so its incident is judged without waiting."""
    entry = _entry(call)
    camera_id = _camera_id(entry, call.data[ATTR_CAMERA])
    closed = await entry.runtime_data.pipeline.analyze_now(camera_id)
    if not closed:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="no_open_batch",
            translation_placeholders={"camera": camera_id},
        )


@ai_security_exception_handler(failure="database_write_failed")
async def handle_reset_learning(call: ServiceCall) -> ServiceResponse:
    """Forget what a camera learned from the reviews so far: its verdicts are no longer moved.

    The reviews stay with their events; new reviews teach it again from now on.
    """
    entry = _entry(call)
    camera_id = _camera_id(entry, call.data[ATTR_CAMERA])
    now = dt_util.utcnow()
    pipeline = entry.runtime_data.pipeline
    await pipeline.db.run(lambda session: reset_learning(session, camera_id, now))
    await pipeline.relearn_spots(camera_id)
    return {"camera": camera_id, "learning_since": now.isoformat()}


@ai_security_exception_handler(failure="database_failed")
async def handle_learned_spots(call: ServiceCall) -> ServiceResponse:
    """List the learned spots (one camera's, or every camera's): where false alarms keep landing.

    With forget, the listed cameras' spots are forgotten first (the reviews stay): detections
    there are judged again until new false alarms teach new spots; the answer lists none then.
    """
    entry = _entry(call)
    pipeline = entry.runtime_data.pipeline
    camera: str | None = call.data.get(ATTR_CAMERA)
    cameras = [_camera_id(entry, camera)] if camera is not None else list(pipeline.cameras)
    if call.data[ATTR_FORGET]:
        if call.context.user_id is not None:
            user = await call.hass.auth.async_get_user(call.context.user_id)
            if user is None or not user.is_admin:
                raise Unauthorized(context=call.context)
        now = dt_util.utcnow()
        for camera_id in cameras:
            await pipeline.db.run(partial(forget_spots, camera_id=camera_id, now=now))
            await pipeline.relearn_spots(camera_id)
    return {
        "spots": [
            spot.as_dict() for camera_id in cameras for spot in pipeline.learned_spots(camera_id)
        ]
    }


async def handle_snooze_camera(call: ServiceCall) -> ServiceResponse:
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
async def handle_test_alert_rule(call: ServiceCall) -> ServiceResponse:
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
async def handle_list_dead_jobs(call: ServiceCall) -> ServiceResponse:
    """Return the jobs that failed for good, each with the reason of its last failure."""
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
async def handle_requeue_dead_letters(call: ServiceCall) -> ServiceResponse:
    """Give dead jobs (all, or those named) another chance; return how many."""
    entry = _entry(call)
    job_ids: list[int] | None = call.data.get(ATTR_JOB_IDS)
    count = await entry.runtime_data.pipeline.queue.requeue_dead(job_ids)
    return {"requeued": count}


@ai_security_exception_handler(failure="database_failed")
async def handle_get_audit_log(call: ServiceCall) -> ServiceResponse:
    """Return a page of the audit trail, newest first, of one action or since a time if asked."""
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
