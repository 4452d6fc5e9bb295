"""A camera's open incident as stored: its batch row, and the transactions that change it.

Open incidents live in the database (their batch row) and change in the same transaction that
stores the detections, so a restart resumes each with its original deadlines: one incident,
never two, never none. Whoever deletes a row closes its incident and queues its final judgement,
so a close happens once however many timers race for it. It is separate from batcher.py, which
keeps a timer per incident and decides when each is due, because these run inside the callers'
transactions (for every detected upload, hence prebuilt statements) and know nothing of time
passing.
"""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
import uuid

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from .jobs import JobKind, add_job
from .payloads import AnalyzePayload
from .storage import BatchRow, EventRow

DEFAULT_CAP = timedelta(minutes=10)


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenBatch:
    """A camera's open incident (its batch row): what decides when it is judged and closed."""

    camera_id: str
    batch_key: str
    opened_at: datetime
    last_detection_at: datetime
    detection_count: int
    event_id: str | None = None
    """The incident's event; None for a batch left by schema version 3."""
    window_opened_at: datetime | None = None
    """When the current judging window began (the incident's opening, or its last judgement)."""
    judged_count: int = 0
    """Detections the last queued judgement covers: the window only matters when more came."""
    fast_judged: bool = False
    """Whether the LLM was asked at once about a fast-path object of this incident."""


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchChange:
    """What counting new detections into a camera's incident did."""

    batch: OpenBatch
    opened: bool
    """Whether the detections opened a new incident (batch.event_id is its event's id)."""
    closed: OpenBatch | None = None
    """The camera's previous incident, closed because it reached the cap (its final judgement
    is queued in the same transaction)."""


_COLUMNS = (
    BatchRow.camera_id,
    BatchRow.batch_key,
    BatchRow.opened_at,
    BatchRow.last_detection_at,
    BatchRow.detection_count,
    BatchRow.event_id,
    BatchRow.window_opened_at,
    BatchRow.judged_count,
    BatchRow.fast_judged,
)


def open_batch_of(row: Any) -> OpenBatch:
    """Return the batch of a BatchRow, or of a result row carrying the same columns."""
    return OpenBatch(
        camera_id=row.camera_id,
        batch_key=row.batch_key,
        opened_at=row.opened_at,
        last_detection_at=row.last_detection_at,
        detection_count=row.detection_count,
        event_id=row.event_id,
        window_opened_at=row.window_opened_at,
        judged_count=row.judged_count or 0,
        fast_judged=bool(row.fast_judged),
    )


_GROW_BATCH = (
    update(BatchRow)
    .where(
        BatchRow.camera_id == bindparam("grow_camera"),
        BatchRow.opened_at > bindparam("grow_after"),
        BatchRow.last_detection_at > bindparam("grow_since"),
    )
    .values(
        last_detection_at=bindparam("grow_at"),
        detection_count=BatchRow.detection_count + bindparam("grow_by"),
    )
    .returning(*_COLUMNS)
)
_OPEN_BATCH = insert(BatchRow)
_SELECT_BATCH = select(*_COLUMNS).where(BatchRow.camera_id == bindparam("batch_camera"))
_DELETE_BATCH = delete(BatchRow).where(BatchRow.batch_key == bindparam("batch_key"))
_CLAIM_FAST = (
    update(BatchRow)
    .where(BatchRow.batch_key == bindparam("fast_key"), BatchRow.fast_judged.is_(False))
    .values(fast_judged=True, judged_count=bindparam("fast_count"))
)
_END_EVENT = (
    update(EventRow).where(EventRow.event_id == bindparam("end_event")).values(ongoing=False)
)
_NEXT_WINDOW = (
    update(BatchRow)
    .where(BatchRow.batch_key == bindparam("window_key"))
    .values(window_opened_at=bindparam("window_at"), judged_count=bindparam("window_count"))
)


def add_to_batch(
    session: Session,
    camera_id: str,
    count: int,
    now: datetime,
    *,
    cap: timedelta = DEFAULT_CAP,
    idle: timedelta | None = None,
    fast: bool = False,
) -> BatchChange:
    """Count count new detections into camera_id's incident, opening one if none is open.

    An incident that has lasted cap, or been idle for idle (its timer may not have fired yet:
    Home Assistant was down), is closed here (its final judgement queued) and a new one opened.
    fast marks a new incident as judged at once (the caller queues that judgement).
    Runs in the caller's transaction (for every detected upload, hence prebuilt statements);
    the caller stores the detections with the returned batch_key, and creates the event of a
    new incident with batch.event_id.
    """
    connection = session.connection()
    row = connection.execute(
        _GROW_BATCH,
        {
            "grow_camera": camera_id,
            "grow_at": now,
            "grow_by": count,
            "grow_after": now - cap,
            "grow_since": now - idle if idle is not None else datetime.min.replace(tzinfo=UTC),
        },
    ).first()
    if row is not None:
        return BatchChange(batch=open_batch_of(row), opened=False)
    closed: OpenBatch | None = None
    old = connection.execute(_SELECT_BATCH, {"batch_camera": camera_id}).first()
    if old is not None:
        closed = open_batch_of(old)
        finish(session, closed, now)
    batch = OpenBatch(
        camera_id=camera_id,
        batch_key=uuid.uuid4().hex,
        opened_at=now,
        last_detection_at=now,
        detection_count=count,
        event_id=uuid.uuid4().hex,
        window_opened_at=now,
        judged_count=count,
        fast_judged=fast,
    )
    connection.execute(
        _OPEN_BATCH,
        {
            "camera_id": camera_id,
            "batch_key": batch.batch_key,
            "opened_at": now,
            "last_detection_at": now,
            "detection_count": count,
            "event_id": batch.event_id,
            "window_opened_at": now,
            "judged_count": count,
            "fast_judged": fast,
        },
    )
    return BatchChange(batch=batch, opened=True, closed=closed)


def claim_fast(session: Session, batch: OpenBatch) -> bool:
    """Mark batch's incident as judged at once; return False when it already was (or is gone).

    Whoever marks it queues the judgement: two uploads with a person arriving together ask the
    LLM once.
    """
    result = session.connection().execute(
        _CLAIM_FAST, {"fast_key": batch.batch_key, "fast_count": batch.detection_count}
    )
    return bool(result.rowcount == 1)


def finish(session: Session, batch: OpenBatch, now: datetime) -> bool:
    """Close batch's incident in the caller's transaction and queue its final judgement.

    Deleting by key is what makes the close happen once: whoever deletes the row queues the
    judgement. Return whether this call closed it.
    """
    connection = session.connection()
    if connection.execute(_DELETE_BATCH, {"batch_key": batch.batch_key}).rowcount != 1:
        return False
    if batch.event_id is not None:
        # Ended now, whatever becomes of its final judgement (an LLM answering nonsense for an
        # hour must not leave the incident going on in searches, the card, or after a restart).
        connection.execute(_END_EVENT, {"end_event": batch.event_id})
    _queue_judgement(session, batch, now, final=True)
    return True


def open_batches(session: Session) -> list[OpenBatch]:
    """Return every open incident, as a previous run left them (to resume their timers)."""
    return [open_batch_of(row) for row in session.scalars(select(BatchRow)).all()]


def open_batch(session: Session, camera_id: str) -> OpenBatch | None:
    """Return camera_id's open incident as stored now, or None when it has none."""
    row = session.connection().execute(_SELECT_BATCH, {"batch_camera": camera_id}).first()
    return None if row is None else open_batch_of(row)


def next_window(session: Session, batch: OpenBatch, now: datetime) -> OpenBatch:
    """Queue a judgement of everything batch's incident has seen and start its next window.

    In the caller's transaction; the incident goes on. Return the batch as it is stored now.
    """
    session.connection().execute(
        _NEXT_WINDOW,
        {
            "window_key": batch.batch_key,
            "window_at": now,
            "window_count": batch.detection_count,
        },
    )
    _queue_judgement(session, batch, now, final=False)
    return replace(batch, window_opened_at=now, judged_count=batch.detection_count)


def _queue_judgement(session: Session, batch: OpenBatch, now: datetime, *, final: bool) -> None:
    """Queue an analyze job judging everything batch's incident has seen (final: it closed)."""
    payload = AnalyzePayload(
        camera_id=batch.camera_id,
        started_at=batch.opened_at,
        ended_at=batch.last_detection_at,
        batch_key=batch.batch_key,
        event_id=batch.event_id,
        final=final,
        judged=batch.detection_count,
    )
    add_job(session, JobKind.ANALYZE, payload.to_json(), now)
