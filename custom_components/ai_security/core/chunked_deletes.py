"""Retention's chunks: each finds the next few old rows and deletes them, in one transaction.

Every function here runs on the database thread, called by retention.py once per chunk, and
spares what must stay: events flagged keep, detections a remaining event was judged from, and
whatever queued or running jobs and open batches will still read (pending_work). Kept apart
from the run that paces them, because these are the statements whose cost (rows per chunk,
index use, what the garbage collector sees) decides how long the database thread is held.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Delete,
    and_,
    delete,
    exists,
    false,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from .job_types import JobKind, JobState
from .payloads import AnalyzePayload, DetectPayload, PayloadError
from .storage import BatchRow, DetectionRow, EventDetectionRow, EventRow, JobRow, MediaRow

_PENDING_JOBS: Final = (JobState.QUEUED.value, JobState.RUNNING.value)

_LINKED = exists().where(EventDetectionRow.detection_id == DetectionRow.detection_id)
"""A remaining event was judged from the detection (its links are deleted with it)."""
_USED = exists().where(DetectionRow.media_id == MediaRow.media_id)
"""A remaining detection was found in the upload."""


@dataclass(frozen=True, slots=True)
class PendingWork:
    """What queued and running jobs and open batches still need."""

    detection_ids: frozenset[int]
    batch_keys: frozenset[str]
    media_ids: frozenset[int]


def pending_work(session: Session) -> PendingWork:
    """Collect the detections, batches and uploads that queued and running jobs will read.

    A queue stalled for longer than the retention (the detector or LLM down for weeks) must not
    lose its input. The lists are as short as the queue: batch keys go into the detections'
    query, detection and media ids are filtered out of each chunk in Python.
    """
    detection_ids: set[int] = set()
    batch_keys: set[str] = set(session.scalars(select(BatchRow.batch_key)))
    media_ids: set[int] = set()
    for kind, payload in session.execute(
        select(JobRow.kind, JobRow.payload).where(JobRow.state.in_(_PENDING_JOBS))
    ):
        if not isinstance(payload, dict):
            continue
        try:
            if kind == JobKind.ANALYZE.value:
                judged = AnalyzePayload.from_json(payload)
                if judged.batch_key is not None:
                    batch_keys.add(judged.batch_key)
                detection_ids.update(judged.detection_ids)
            elif kind == JobKind.DETECT.value:
                media_ids.add(DetectPayload.from_json(payload).media_id)
        except PayloadError:
            continue  # unreadable: the job goes dead when it runs, reading nothing
    return PendingWork(frozenset(detection_ids), frozenset(batch_keys), frozenset(media_ids))


def _after[T](
    at: InstrumentedAttribute[datetime], key: InstrumentedAttribute[T], last: tuple[datetime, T]
) -> ColumnElement[bool]:
    """Return rows after last in (at, key) order, in a form both databases use the index for.

    Keyset paging: rows a chunk kept (a kept event, a detection a job needs) are passed once,
    not scanned again by every later chunk. The row-value form (at, key) > (...) would not use
    PostgreSQL's single-column indexes.
    """
    return and_(at >= last[0], or_(at > last[0], key > last[1]))


def _deleted(session: Session, statement: Delete) -> int:
    """Run a DELETE and return the rows it removed."""
    result = cast("CursorResult[Any]", session.execute(statement))
    return result.rowcount


def events_chunk(
    session: Session, *, cutoff: datetime, chunk: int, after: tuple[datetime, str] | None
) -> list[tuple[str, str, datetime]]:
    """Delete the next chunk of old events and their links; return (camera, event, start)."""
    query = (
        select(EventRow.camera_id, EventRow.event_id, EventRow.started_at)
        .where(EventRow.started_at < cutoff, EventRow.keep.is_(false()))
        .order_by(EventRow.started_at, EventRow.event_id)
        .limit(chunk)
        # PostgreSQL: an event being flagged keep this moment waits for the next run.
        .with_for_update(skip_locked=True)
    )
    if after is not None:
        query = query.where(_after(EventRow.started_at, EventRow.event_id, after))
    found = [(camera, event_id, at) for camera, event_id, at in session.execute(query)]
    ids = [event_id for _camera, event_id, _at in found]
    if ids:
        # Links first, as they reference the events. The full-text index follows by trigger
        # on SQLite and by the generated column on PostgreSQL.
        session.execute(delete(EventDetectionRow).where(EventDetectionRow.event_id.in_(ids)))
        session.execute(delete(EventRow).where(EventRow.event_id.in_(ids)))
    return found


def detections_chunk(
    session: Session,
    *,
    cutoff: datetime,
    chunk: int,
    after: tuple[datetime, int] | None,
    pending: PendingWork,
) -> tuple[int, int, tuple[datetime, int] | None]:
    """Delete the next chunk of old, unlinked detections; return found, deleted, last seen.

    Only ids come back to Python (ints, which the garbage collector does not track): rows
    alive across its young collections would be promoted and bring on full collections, which
    stop every thread, the loop's included, for as long as the heap is large.
    """
    query = (
        select(DetectionRow.detection_id)
        .where(DetectionRow.detected_at < cutoff, ~_LINKED)
        .order_by(DetectionRow.detected_at, DetectionRow.detection_id)
        .limit(chunk)
    )
    if pending.batch_keys:
        query = query.where(
            or_(
                DetectionRow.batch_key.is_(None),
                DetectionRow.batch_key.not_in(sorted(pending.batch_keys)),
            )
        )
    if after is not None:
        query = query.where(_after(DetectionRow.detected_at, DetectionRow.detection_id, after))
    found = list(session.scalars(query))
    if not found:
        return 0, 0, after
    last_at = session.execute(
        select(DetectionRow.detected_at).where(DetectionRow.detection_id == found[-1])
    ).scalar_one()
    ids = [i for i in found if i not in pending.detection_ids] if pending.detection_ids else found
    deleted = (
        _deleted(session, delete(DetectionRow).where(DetectionRow.detection_id.in_(ids)))
        if ids
        else 0
    )
    return len(found), deleted, (last_at, found[-1])


def media_chunk(
    session: Session, *, cutoff: datetime, chunk: int, after: tuple[datetime, int] | None
) -> list[tuple[int, str, datetime]]:
    """Return the next chunk of old uploads' rows that no detection references."""
    query = (
        select(MediaRow.media_id, MediaRow.path, MediaRow.received_at)
        .where(MediaRow.received_at < cutoff, ~_USED)
        .order_by(MediaRow.received_at, MediaRow.media_id)
        .limit(chunk)
    )
    if after is not None:
        query = query.where(_after(MediaRow.received_at, MediaRow.media_id, after))
    return [(media_id, path, at) for media_id, path, at in session.execute(query)]


def delete_media_rows(session: Session, *, ids: list[int]) -> int:
    """Delete uploads' rows, checking again that no detection references them.

    A reprocessed upload may have gained a detection while its file was looked at.
    """
    return _deleted(session, delete(MediaRow).where(MediaRow.media_id.in_(ids), ~_USED))


def simple_chunk(
    session: Session,
    *,
    condition: ColumnElement[bool],
    key: InstrumentedAttribute[int],
    chunk: int,
) -> tuple[int, int]:
    """Delete the next chunk of rows matching condition; return found and deleted."""
    ids = list(session.scalars(select(key).where(condition).limit(chunk)))
    if not ids:
        return 0, 0
    # The condition again: a dead job retried since it was found is queued now.
    return len(ids), _deleted(session, delete(key.class_).where(key.in_(ids), condition))
