"""Stored security events for people: reading one, reviewing, deleting, and browsing by day.

The media browser's queries (a camera's days, a day's events, the cameras' counts) and a
person's review and deletion of one event live here. Searching is event_search.py's and turning
rows into events event_rows.py's; the names callers use with these (the query, its page and
error, search_events, the row conversions) are imported here too, so callers keep one import.
"""

from datetime import date, datetime, tzinfo
from typing import Final

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .event_rows import detection_from_row, event_from_row
from .event_search import (
    MAX_PAGE_SIZE,
    EventPage,
    EventQuery,
    EventQueryError,
    count_events,
    levels_at_least,
    search_events,
)
from .models import SecurityEvent
from .schema import EventDetectionRow, EventRow

__all__ = [
    "MAX_NOTE_LENGTH",
    "MAX_PAGE_SIZE",
    "EventPage",
    "EventQuery",
    "EventQueryError",
    "camera_event_counts",
    "count_events",
    "delete_event",
    "detection_from_row",
    "event_days",
    "event_from_row",
    "events_for_camera_day",
    "get_event",
    "levels_at_least",
    "review_event",
    "search_events",
]
"""The query, its page and error, count_events, levels_at_least and search_events are
event_search.py's, the row conversions event_rows.py's; named here too for their callers."""

MAX_NOTE_LENGTH: Final = 1000


def get_event(session: Session, event_id: str) -> SecurityEvent | None:
    """Return the stored event with its detection ids, or None when there is none."""
    row = session.get(EventRow, event_id)
    if row is None:
        return None
    ids = session.scalars(
        select(EventDetectionRow.detection_id)
        .where(EventDetectionRow.event_id == event_id)
        .order_by(EventDetectionRow.detection_id)
    )
    return event_from_row(row, tuple(ids))


def review_event(
    session: Session,
    event_id: str,
    *,
    reviewed: bool = True,
    dismissed: bool = False,
    note: str | None = None,
    now: datetime,
    keep: bool | None = None,
    missed: bool = False,
) -> SecurityEvent | None:
    """Record a person's review of an event; return it as stored, or None when it does not exist.

    A review says the verdict looks right, or was a false alarm (dismissed), or was too low
    (missed); the last two cannot both be said. note None keeps the note the event has; an
    empty (or blank) note removes it. reviewed_at is now when reviewed, and cleared when a
    review is taken back (with its outcome). keep (None: unchanged) flags the event to survive
    the daily clean-up.
    """
    if dismissed and missed:
        raise EventQueryError("review_conflict", "an event cannot be both a false alarm and missed")
    if note is not None and len(note) > MAX_NOTE_LENGTH:
        raise EventQueryError(
            "review_note_too_long",
            f"the note has {len(note)} characters; at most {MAX_NOTE_LENGTH}",
            length=str(len(note)),
            max=str(MAX_NOTE_LENGTH),
        )
    row = session.get(EventRow, event_id)
    if row is None:
        return None
    row.reviewed = reviewed
    row.dismissed = dismissed and reviewed
    row.missed = missed and reviewed
    row.reviewed_at = now if reviewed else None
    if note is not None:
        row.review_note = note.strip() or None
    if keep is not None:
        row.keep = keep
    session.flush()
    return get_event(session, event_id)


def delete_event(session: Session, event_id: str) -> bool:
    """Delete an event and its links to detections; return whether it existed.

    The detections and uploads stay: they belong to the uploads, not to the verdict. The
    full-text index follows by itself (a trigger on SQLite, a generated column on PostgreSQL).
    """
    session.execute(delete(EventDetectionRow).where(EventDetectionRow.event_id == event_id))
    deleted = session.scalar(
        delete(EventRow).where(EventRow.event_id == event_id).returning(EventRow.event_id)
    )
    return deleted is not None


def events_for_camera_day(
    session: Session,
    camera_id: str,
    day_start_utc: datetime,
    day_end_utc: datetime,
    *,
    offset: int = 0,
    limit: int = 50,
) -> list[SecurityEvent]:
    """Return a camera's events that started in [day_start_utc, day_end_utc), newest first.

    The bounds come from the caller, which knows the user's time zone and the day's length.
    """
    if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"offset {offset} and limit {limit}: need offset >= 0, 1 <= limit <= 500")
    rows = session.scalars(
        select(EventRow)
        .where(
            EventRow.camera_id == camera_id,
            EventRow.started_at >= day_start_utc,
            EventRow.started_at < day_end_utc,
        )
        .order_by(EventRow.started_at.desc(), EventRow.event_id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [event_from_row(row) for row in rows]


def event_days(session: Session, camera_id: str, tz: tzinfo) -> list[date]:
    """Return the dates, in tz, on which a camera has events, newest first.

    Computed here from the start times alone (read from the camera's index), because neither
    database can be trusted with the user's time zone: SQLite has no zone database, and
    PostgreSQL's may differ from the one Home Assistant uses.
    """
    started = session.scalars(
        select(EventRow.started_at)
        .where(EventRow.camera_id == camera_id)
        .order_by(EventRow.started_at.desc())
    )
    days = {moment.astimezone(tz).date() for moment in started}
    return sorted(days, reverse=True)


def camera_event_counts(session: Session) -> dict[str, int]:
    """Return how many events each camera has (cameras without events are left out)."""
    rows = session.execute(
        select(EventRow.camera_id, func.count()).group_by(EventRow.camera_id)
    ).tuples()
    return {camera_id: int(count) for camera_id, count in rows}
