"""Retention: delete what is older than the kept days, in short chunks, sparing kept events.

This module decides what a run deletes and in which order, paces the chunks and adds up what
went. Each chunk's statements are chunked_deletes.py's (they run on the database thread), the
removal of old uploads and event folders retention_files.py's (it runs in the executor).
"""

import asyncio
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
import logging
import time
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, and_
from sqlalchemy.orm import InstrumentedAttribute

from .chunked_deletes import (
    PendingWork,
    delete_media_rows,
    detections_chunk,
    events_chunk,
    media_chunk,
    pending_work,
    simple_chunk,
)
from .derived import DerivedMedia
from .errors import AiSecurityError
from .job_types import JobState
from .retention_files import Settled, delete_event_folders, settle_uploads
from .storage import AuditRow, BlockingRunner, Database, JobRow

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
_MAX_EXAMPLES: Final = 3
"""Paths named in the warning about uploads left alone; the rest are only counted."""


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
        pending=await db.run(pending_work),
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


@dataclass(kw_only=True, slots=True)
class _Run:
    """One retention run: its settings and running totals."""

    db: Database
    cutoff: datetime
    chunk: int
    pause: float
    run_blocking: BlockingRunner
    pending: PendingWork
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
                partial(events_chunk, cutoff=self.cutoff, chunk=chunk, after=after)
            )
            self.deleted_events += len(found)
            if found and media is not None:
                folders, freed, left = cast(
                    "tuple[int, int, list[str]]",
                    await self.run_blocking(delete_event_folders, media, found),
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
                    detections_chunk,
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

        With camera_root the uploads are removed first (see settle_uploads); without it only
        the rows of uploads already gone from the disk go.
        """
        after: tuple[datetime, int] | None = None
        cutoff_ts = self.cutoff.timestamp()
        while True:
            rows = await self.db.run(
                partial(media_chunk, cutoff=self.cutoff, chunk=self.chunk, after=after)
            )
            candidates = [
                (media_id, path)
                for media_id, path, _at in rows
                if media_id not in self.pending.media_ids
            ]
            if candidates:
                settled = cast(
                    "Settled",
                    await self.run_blocking(settle_uploads, candidates, camera_root, cutoff_ts),
                )
                self.files += settled.removed
                self.bytes_freed += settled.freed
                self.left_alone += settled.left_alone
                if settled.gone:
                    self.deleted_media += await self.db.run(
                        partial(delete_media_rows, ids=settled.gone)
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
                partial(simple_chunk, condition=condition, key=key, chunk=self.chunk)
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
