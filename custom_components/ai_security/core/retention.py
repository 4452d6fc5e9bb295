"""Retention: delete what is older than the kept days, in short chunks, sparing kept events."""

import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import Enum, auto
from functools import partial
import logging
import os
import stat
import time
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

from .derived import DerivedMedia
from .errors import AiSecurityError
from .jobs import JobKind, JobState
from .payloads import AnalyzePayload, DetectPayload, PayloadError
from .storage import (
    AuditRow,
    BatchRow,
    BlockingRunner,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    JobRow,
    MediaRow,
)

_LOGGER = logging.getLogger(__name__)

MIN_DAYS: Final = 1
MAX_DAYS: Final = 36_500
"""A hundred years: "keep everything" without a special case."""
DEFAULT_DAYS: Final = 30
DEFAULT_CHUNK: Final = 500
"""Rows a transaction deletes: about a millisecond of the database thread on SQLite.

Small on purpose: with 2,000 a chunk, the objects one chunk keeps alive outlast the collector's
young generations, and a run over a million detections brought on three full collections of the
heap (about 100 ms each, every thread stopped, Home Assistant's loop included). With 500 it
brings on none, for a run about 20 % longer (scripts/bench_retention --chunk)."""
MAX_CHUNK: Final = 10_000
"""Ids a chunk passes as bound parameters; SQLite allows 32,766 a statement."""
EVENT_WEIGHT: Final = 10
"""Rows an event's deletion touches, roughly: itself, its links and its full-text entry."""
_FINISHED_JOBS: Final = (JobState.DONE.value, JobState.DEAD.value)
_PENDING_JOBS: Final = (JobState.QUEUED.value, JobState.RUNNING.value)
_MAX_EXAMPLES: Final = 3
"""Paths named in the warning about uploads left alone; the rest are only counted."""

_LINKED = exists().where(EventDetectionRow.detection_id == DetectionRow.detection_id)
"""A remaining event was judged from the detection (its links are deleted with it)."""
_USED = exists().where(DetectionRow.media_id == MediaRow.media_id)
"""A remaining detection was found in the upload."""


class RetentionError(AiSecurityError, ValueError):
    """Retention asked for with settings it refuses (the options flow checks them first)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetentionStats:
    """What one retention run deleted and freed, for the log and the diagnostic sensor."""

    events: int = 0
    detections: int = 0
    media: int = 0
    jobs: int = 0
    audit: int = 0
    files: int = 0
    """Derived-media event folders and uploads removed."""
    bytes_freed: int = 0
    seconds: float = 0.0
    started_at: datetime
    finished_at: datetime

    @property
    def rows(self) -> int:
        """Return the rows deleted in all tables (the links of events to detections aside)."""
        return self.events + self.detections + self.media + self.jobs + self.audit

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as JSON-ready values (times in ISO 8601), for attributes."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat()
        data["seconds"] = round(self.seconds, 3)
        data["rows"] = self.rows
        return data


def validate_days(days: int) -> int:
    """Return days when retention may use it, else raise RetentionError.

    0 would delete everything, including what the pipeline is working on this minute; keeping
    nothing but today is 1 day.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_DAYS <= days <= MAX_DAYS:
        raise RetentionError(
            "retention_days_out_of_range",
            f"retention must keep from {MIN_DAYS} to {MAX_DAYS} days, not {days!r}",
            days=str(days),
            min=str(MIN_DAYS),
            max=str(MAX_DAYS),
        )
    return days


async def run_retention(
    db: Database,
    *,
    now: datetime,
    days: int,
    media: DerivedMedia | None,
    delete_uploads: bool = False,
    camera_root: str | None = None,
    run_blocking: BlockingRunner = asyncio.to_thread,
    chunk: int = DEFAULT_CHUNK,
    pause: float = 0.0,
) -> RetentionStats:
    """Delete events, detections, uploads' rows, finished jobs and audit rows older than days.

    Events flagged keep survive with their detections and uploads, as does anything a queued or
    running job or an open batch still needs; queued and running jobs are never touched. Each
    chunk of at most chunk rows is its own transaction on the database thread, so the
    pipeline's writes slip in between chunks (pause seconds apart) and the loop only awaits;
    file work goes to run_blocking. Derived-media folders go after their events' rows: a crash
    in between leaves a folder behind, never an event pointing at deleted pictures.

    An upload's row goes only once the upload is gone (removed first, or already missing): the
    row is what keeps the start-up scan from taking a file still on disk for a new upload, so
    without delete_uploads the rows of uploads still on disk stay. With it, old uploads are
    removed from camera_root, never through a symbolic link (a link in the root is removed
    itself, not its target) and never when the file was written after the cutoff (a camera that
    reuses a file name). Raises RetentionError for days outside 1..36,500; database errors
    propagate, and what earlier chunks deleted stays deleted (the next run goes on).
    """
    validate_days(days)
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if not 1 <= chunk <= MAX_CHUNK:
        raise ValueError(f"chunk must be from 1 to {MAX_CHUNK}, not {chunk}")
    if delete_uploads and not camera_root:
        raise ValueError("deleting uploads needs the camera root")
    began = time.monotonic()
    run = _Run(
        db=db,
        cutoff=now - timedelta(days=days),
        chunk=chunk,
        pause=pause,
        run_blocking=run_blocking,
        pending=await db.run(_pending_work),
    )
    await run.events(media)
    await run.detections()
    await run.media(camera_root if delete_uploads else None)
    run.deleted_jobs = await run.simple(
        and_(JobRow.state.in_(_FINISHED_JOBS), JobRow.updated_at < run.cutoff), JobRow.job_id
    )
    run.deleted_audit = await run.simple(AuditRow.at < run.cutoff, AuditRow.audit_id)
    seconds = time.monotonic() - began
    stats = RetentionStats(
        events=run.deleted_events,
        detections=run.deleted_detections,
        media=run.deleted_media,
        jobs=run.deleted_jobs,
        audit=run.deleted_audit,
        files=run.files,
        bytes_freed=run.bytes_freed,
        seconds=seconds,
        started_at=now,
        finished_at=now + timedelta(seconds=seconds),
    )
    run.log(days, stats)
    return stats


@dataclass(frozen=True, slots=True)
class _Pending:
    """What queued and running jobs and open batches still need."""

    detection_ids: frozenset[int]
    batch_keys: frozenset[str]
    media_ids: frozenset[int]


def _pending_work(session: Session) -> _Pending:
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
    return _Pending(frozenset(detection_ids), frozenset(batch_keys), frozenset(media_ids))


@dataclass(kw_only=True, slots=True)
class _Run:
    """One retention run: its settings and running totals."""

    db: Database
    cutoff: datetime
    chunk: int
    pause: float
    run_blocking: BlockingRunner
    pending: _Pending
    deleted_events: int = 0
    deleted_detections: int = 0
    deleted_media: int = 0
    deleted_jobs: int = 0
    deleted_audit: int = 0
    files: int = 0
    bytes_freed: int = 0
    left_alone: list[str] = field(default_factory=list)
    """Old uploads and media folders that stay: unsafe to delete, or the removal failed."""

    async def _breathe(self) -> None:
        """Give the loop and the pipeline's queued writes a turn between chunks."""
        await asyncio.sleep(self.pause)

    async def events(self, media: DerivedMedia | None) -> None:
        """Delete old events not flagged keep, with their links, then their media folders.

        An event takes its links (about ten) and its full-text entry with it, so a chunk holds
        a tenth as many events as other chunks hold rows, to last as short.
        """
        after: tuple[datetime, str] | None = None
        chunk = max(1, self.chunk // EVENT_WEIGHT)
        while True:
            found = await self.db.run(
                partial(_events_chunk, cutoff=self.cutoff, chunk=chunk, after=after)
            )
            self.deleted_events += len(found)
            if found and media is not None:
                folders, freed, left = cast(
                    "tuple[int, int, list[str]]",
                    await self.run_blocking(_delete_folders, media, found),
                )
                self.files += folders
                self.bytes_freed += freed
                self.left_alone += left
            if len(found) < chunk:
                return
            _camera, event_id, started_at = found[-1]
            after = (started_at, event_id)
            await self._breathe()

    async def detections(self) -> None:
        """Delete old detections that no remaining event links and no pending job needs."""
        after: tuple[datetime, int] | None = None
        while True:
            selected, deleted, after = await self.db.run(
                partial(
                    _detections_chunk,
                    cutoff=self.cutoff,
                    chunk=self.chunk,
                    after=after,
                    pending=self.pending,
                )
            )
            self.deleted_detections += deleted
            if selected < self.chunk:
                return
            await self._breathe()

    async def media(self, camera_root: str | None) -> None:
        """Delete old uploads' rows that no detection references, once their upload is gone.

        With camera_root the uploads are removed first (see _settle_uploads); without it only
        the rows of uploads already gone from the disk go.
        """
        after: tuple[datetime, int] | None = None
        cutoff_ts = self.cutoff.timestamp()
        while True:
            rows = await self.db.run(
                partial(_media_chunk, cutoff=self.cutoff, chunk=self.chunk, after=after)
            )
            candidates = [
                (media_id, path)
                for media_id, path, _at in rows
                if media_id not in self.pending.media_ids
            ]
            if candidates:
                settled = cast(
                    "_Settled",
                    await self.run_blocking(_settle_uploads, candidates, camera_root, cutoff_ts),
                )
                self.files += settled.removed
                self.bytes_freed += settled.freed
                self.left_alone += settled.left_alone
                if settled.gone:
                    self.deleted_media += await self.db.run(
                        partial(_delete_media_rows, ids=settled.gone)
                    )
            if len(rows) < self.chunk:
                return
            media_id, _path, received_at = rows[-1]
            after = (received_at, media_id)
            await self._breathe()

    async def simple(self, condition: ColumnElement[bool], key: InstrumentedAttribute[int]) -> int:
        """Delete rows matching condition a chunk at a time; return how many.

        Every row found is deleted, so each chunk finds the next ones without paging.
        """
        total = 0
        while True:
            found, deleted = await self.db.run(
                partial(_simple_chunk, condition=condition, key=key, chunk=self.chunk)
            )
            total += deleted
            if found < self.chunk:
                return total
            await self._breathe()

    def log(self, days: int, stats: RetentionStats) -> None:
        """Log the run's summary, and once the uploads it left alone."""
        if self.left_alone:
            _LOGGER.warning(
                "Retention left %s old upload(s) or media folder(s) in place that it could not "
                "safely delete (a symbolic link on the way, not a regular file, no permission), "
                "such as %s",
                len(self.left_alone),
                ", ".join(self.left_alone[:_MAX_EXAMPLES]),
            )
        _LOGGER.info(
            "Retention (%s days, before %s) deleted %s events, %s detections, %s uploads' rows, "
            "%s jobs and %s audit rows, removed %s folders and files (%.1f MB) in %.1f s",
            days,
            self.cutoff.isoformat(timespec="seconds"),
            stats.events,
            stats.detections,
            stats.media,
            stats.jobs,
            stats.audit,
            stats.files,
            stats.bytes_freed / 1_000_000,
            stats.seconds,
        )


# --- one chunk each, on the database thread ----------------------------------------------------


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


def _events_chunk(
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


def _detections_chunk(
    session: Session,
    *,
    cutoff: datetime,
    chunk: int,
    after: tuple[datetime, int] | None,
    pending: _Pending,
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


def _media_chunk(
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


def _delete_media_rows(session: Session, *, ids: list[int]) -> int:
    """Delete uploads' rows, checking again that no detection references them.

    A reprocessed upload may have gained a detection while its file was looked at.
    """
    return _deleted(session, delete(MediaRow).where(MediaRow.media_id.in_(ids), ~_USED))


def _simple_chunk(
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


# --- files, in the executor -------------------------------------------------------------------


def _delete_folders(
    media: DerivedMedia, events: Sequence[tuple[str, str, datetime]]
) -> tuple[int, int, list[str]]:
    """Remove the events' derived-media folders; blocking.

    Returns how many went, the bytes freed and the folders left. A folder that cannot be
    removed (reached through a symbolic link, a permission) is left: its rows are gone already,
    and one bad folder must not stop the others.
    """
    removed = freed = 0
    left: list[str] = []
    for camera_id, event_id, started_at in events:
        try:
            folder = media.event_dir(camera_id, event_id, started_at)
        except ValueError:  # an id no folder could have been made for
            continue
        try:
            size = _tree_bytes(folder)
            if media.delete_event(camera_id, event_id, started_at):
                removed += 1
                freed += size
        except (OSError, ValueError) as err:
            _LOGGER.debug("Retention could not remove %s: %s", folder, err)
            left.append(str(folder))
    return removed, freed, left


def _tree_bytes(folder: os.PathLike[str]) -> int:
    """Return the bytes of the regular files under folder that only it holds.

    Links are not followed (rmtree removes a link, not what it points to) and files with other
    hard links free nothing.
    """
    if os.path.islink(folder) or not os.path.isdir(folder):
        return 0
    total = 0
    for parent, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(parent, name))
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    total += info.st_size
    return total


@dataclass(frozen=True, slots=True)
class _Settled:
    """What _settle_uploads did with a chunk of uploads."""

    gone: list[int]
    """Media ids whose rows may go: the upload was removed, is missing, or is none of ours."""
    removed: int
    freed: int
    left_alone: list[str]
    """Old uploads under the root that stay: a link on the way, not a file, no permission."""


class _Outcome(Enum):
    """What _remove_upload found."""

    REMOVED = auto()
    ABSENT = auto()
    """Missing, outside the root, or rewritten after the cutoff: nothing of ours to remove."""
    UNSAFE = auto()
    """Reachable only through a symbolic link, or not a regular file or link."""


def _settle_uploads(
    rows: Sequence[tuple[int, str]], camera_root: str | None, cutoff_ts: float
) -> _Settled:
    """Remove the uploads (with camera_root) or only look whether they are gone; blocking.

    A row may go when its upload is gone or removed now; when it lies outside the root or behind
    a symbolic link (the start-up scan never looks there, so it is not taken in again); or when
    the file was rewritten after the cutoff (the newer upload has its own row). A removal that
    fails (permission, busy) keeps the row, and the next run tries again.
    """
    gone: list[int] = []
    removed = freed = 0
    left_alone: list[str] = []
    for media_id, path in rows:
        try:
            if camera_root is None:
                if not os.path.lexists(path):
                    gone.append(media_id)
                continue
            outcome, size = _remove_upload(camera_root, path, cutoff_ts)
        except ValueError:  # a NUL byte: no file could ever have that path
            gone.append(media_id)
            continue
        except OSError as err:
            _LOGGER.debug("Retention could not remove upload %s: %s", path, err)
            left_alone.append(path)
            continue
        gone.append(media_id)
        if outcome is _Outcome.REMOVED:
            removed += 1
            freed += size
        elif outcome is _Outcome.UNSAFE:
            left_alone.append(path)
    return _Settled(gone=gone, removed=removed, freed=freed, left_alone=left_alone)


class _UnsafePathError(Exception):
    """A symbolic link, or a file, where a folder of the path should be."""


def _remove_upload(camera_root: str, path: str, cutoff_ts: float) -> tuple[_Outcome, int]:
    """Remove one upload under camera_root without following any symbolic link; blocking.

    Returns the outcome and the bytes freed (none for a link, or a file with other hard links).
    Each folder below the root is opened with O_NOFOLLOW relative to its parent, so no link, nor
    one swapped in meanwhile, can lead the removal elsewhere; only the root itself is resolved,
    as the user may have configured a link to it. Raises OSError when the removal fails.
    """
    root = os.path.abspath(camera_root)
    relative = os.path.relpath(os.path.abspath(os.path.join(root, path)), root)
    parts = relative.split(os.sep)
    if relative == os.curdir or parts[0] == os.pardir:
        return _Outcome.ABSENT, 0
    try:
        folder = _descend(os.open(root, os.O_RDONLY | os.O_DIRECTORY), parts[:-1])
    except FileNotFoundError:
        return _Outcome.ABSENT, 0
    except _UnsafePathError:
        return _Outcome.UNSAFE, 0
    try:
        info = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
        outcome = _judge(info, cutoff_ts)
        if outcome is _Outcome.REMOVED:
            os.unlink(parts[-1], dir_fd=folder)
    except FileNotFoundError:
        return _Outcome.ABSENT, 0
    finally:
        os.close(folder)
    alone = stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    return outcome, info.st_size if outcome is _Outcome.REMOVED and alone else 0


def _judge(info: os.stat_result, cutoff_ts: float) -> _Outcome:
    """Return whether an upload's directory entry may be removed (REMOVED) or why not.

    The newer of its modification and change times counts: a client can set the first (FTP's
    MFMT) but not the second, so a file rewritten after the cutoff is never taken for old.
    """
    if max(info.st_mtime, info.st_ctime) >= cutoff_ts:
        return _Outcome.ABSENT
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        return _Outcome.UNSAFE
    return _Outcome.REMOVED


def _descend(folder: int, names: Sequence[str]) -> int:
    """Open the folders names below the open folder, never through a link; return the last.

    Takes over folder: it is closed, or returned for no names, or closed on error. Raises
    FileNotFoundError for a missing folder, _UnsafePathError for a link or file in the way.
    """
    for name in names:
        try:
            below = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            os.close(folder)
            raise
        except OSError as err:  # ELOOP (a link) or ENOTDIR (a file)
            os.close(folder)
            raise _UnsafePathError(name) from err
        os.close(folder)
        folder = below
    return folder
