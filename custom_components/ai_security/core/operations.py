"""What the Home Assistant layer asks of a hub's database, as awaitable calls giving plain data.

Each operation runs its query on the database's thread (Database.run) and returns dataclasses,
never ORM rows or a session: the layer above stays free of SQLAlchemy, and a query's shape (its
page arithmetic, its transaction) is decided here, beside the schema it reads. Refusals are
AiSecurityError subclasses (EventQueryError, RuleError), raised before the database is touched
where the input alone shows them; anything else an operation raises is the database failing.

Grouped by who asks: actions (search, review, rule replay, audit log), the media browser (counts,
days, a day's page, one event), the audit trail's writers, and setup and maintenance (the
activity the sensors start from, the baseline's clean-up).
"""

from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from . import audit, baseline, events, stats
from .audit import AuditPage, AuditRecord
from .events import EventPage, EventQuery
from .learned_spots import Suppressed, suppressed_detections
from .models import SecurityEvent
from .rules import AlertRule, RuleReplay, RuleResult
from .stats import CameraActivity
from .storage import Database

# --- actions ---------------------------------------------------------------------------------


async def search_events(db: Database, query: EventQuery) -> EventPage:
    """Return the page of events query asks for, newest first, with the total that match."""
    return await db.run(lambda session: events.search_events(session, query))


async def search_suppressed(db: Database, query: EventQuery) -> tuple[int, list[Suppressed]]:
    """Return the detections taken for learned spots in query's cameras and period.

    How many in all, and the latest ones (up to the query's page size): what the learned spots
    kept from opening incidents, for the user to check. The query's other filters (text, level,
    review) are about events and do not apply.
    """
    return await db.run(
        lambda session: suppressed_detections(
            session,
            camera_ids=query.camera_ids,
            start=query.start,
            end=query.end,
            limit=query.page_size,
        )
    )


async def review_event(
    db: Database,
    event_id: str,
    *,
    reviewed: bool,
    dismissed: bool,
    note: str | None,
    now: datetime,
    keep: bool | None,
    missed: bool = False,
) -> SecurityEvent | None:
    """Store a person's review of an event; return it as stored, None when there is no such event.

    Raises EventQueryError for a note too long (see events.review_event for what each field does).
    """
    return await db.run(
        lambda session: events.review_event(
            session,
            event_id,
            reviewed=reviewed,
            dismissed=dismissed,
            note=note,
            now=now,
            keep=keep,
            missed=missed,
        )
    )


async def replay_rule(
    db: Database, rule: AlertRule, tz: tzinfo, start: datetime, end: datetime
) -> RuleResult:
    """Return what rule would have sent over the stored events of [start, end).

    The events are read a page per database call, so a long range never holds the database for
    long. Raises EventQueryError for a range that cannot be searched, before reading anything.
    """
    replay = RuleReplay(rule, tz, start, end)
    while await db.run(replay.read_page):
        pass
    return replay.result()


async def audit_log(
    db: Database, *, page: int, page_size: int, action: str | None, since: datetime | None
) -> AuditPage:
    """Return a page of the audit trail, newest first; EventQueryError for a bad page or time."""
    return await db.run(
        lambda session: audit.audit_log(
            session, page=page, page_size=page_size, action=action, since=since
        )
    )


# --- the media browser -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class DayPage:
    """One page of a camera's events of a day, newest first, and whether a further page exists."""

    events: list[SecurityEvent]
    more: bool


async def get_event(db: Database, event_id: str) -> SecurityEvent | None:
    """Return the stored event with its detection ids, or None when there is none."""
    return await db.run(lambda session: events.get_event(session, event_id))


async def camera_event_counts(db: Database) -> dict[str, int]:
    """Return how many events each camera has (cameras without events are left out)."""
    return await db.run(events.camera_event_counts)


async def event_days(db: Database, camera_id: str, tz: tzinfo) -> list[date]:
    """Return the dates, in tz, on which a camera has events, newest first."""
    return await db.run(lambda session: events.event_days(session, camera_id, tz))


async def day_page(
    db: Database,
    camera_id: str,
    day_start_utc: datetime,
    day_end_utc: datetime,
    *,
    page: int,
    page_size: int,
) -> DayPage:
    """Return page (from 1) of a camera's events that started in [day_start_utc, day_end_utc).

    One event more than the page holds is read, so whether a further page exists is known
    without counting the day's events.
    """
    offset = (page - 1) * page_size
    found = await db.run(
        lambda session: events.events_for_camera_day(
            session, camera_id, day_start_utc, day_end_utc, offset=offset, limit=page_size + 1
        )
    )
    return DayPage(events=found[:page_size], more=len(found) > page_size)


# --- the audit trail's writers ---------------------------------------------------------------


async def record_audit(db: Database, item: AuditRecord) -> int:
    """Store one record of the audit trail (redacted on the way in); return its id."""
    return await db.run(lambda session: audit.record(session, item))


# --- setup and maintenance -------------------------------------------------------------------


async def camera_activity(
    db: Database, since: datetime, until: datetime
) -> dict[str, CameraActivity]:
    """Return every camera's latest event, last detections and counts from since until until."""
    return await db.run(lambda session: stats.camera_activity(session, since, until))


async def prune_baseline(db: Database, now: datetime) -> int:
    """Delete the usual-activity rows not observed for a long time; return how many."""
    return await db.run(lambda session: baseline.prune_baseline(session, now))
