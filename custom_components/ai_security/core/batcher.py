"""Per-camera batches: detections close in time are judged together, as one security event.

A camera's batch opens with its first detection and closes `window` seconds later, or earlier
after `idle` seconds without a new one. Closing queues an analyze job. Open batches live in the
database and their rows change in the same transaction that stores the detections, so a restart
resumes each batch with its original deadlines: one event, never two, never none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
import logging
from typing import Any
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from .jobs import JobKind, JobQueue, add_job
from .storage import BatchRow, Database, utcnow

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenBatch:
    """A camera's batch that is still collecting detections."""

    camera_id: str
    batch_key: str
    opened_at: datetime
    last_detection_at: datetime
    detection_count: int


def _open_batch(row: BatchRow) -> OpenBatch:
    return OpenBatch(
        camera_id=row.camera_id,
        batch_key=row.batch_key,
        opened_at=row.opened_at,
        last_detection_at=row.last_detection_at,
        detection_count=row.detection_count,
    )


def add_to_batch(session: Session, camera_id: str, count: int, now: datetime) -> OpenBatch:
    """Count count new detections into camera_id's batch (opening one if none is).

    Runs in the caller's transaction; the caller stores the detections with the returned
    batch_key.
    """
    row = session.get(BatchRow, camera_id)
    if row is None:
        row = BatchRow(
            camera_id=camera_id,
            batch_key=uuid.uuid4().hex,
            opened_at=now,
            last_detection_at=now,
            detection_count=count,
        )
        session.add(row)
    else:
        row.last_detection_at = now
        row.detection_count += count
    return _open_batch(row)


def analyze_payload(
    camera_id: str,
    started_at: datetime,
    ended_at: datetime,
    *,
    batch_key: str | None = None,
    detection_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """Return the payload of an analyze job: a closed batch, or a fast-path detection list."""
    payload: dict[str, Any] = {
        "camera_id": camera_id,
        "started_at": started_at.isoformat(),
        "ended_at": ended_at.isoformat(),
        "fast_path": batch_key is None,
    }
    if batch_key is not None:
        payload["batch_key"] = batch_key
    else:
        payload["detection_ids"] = list(detection_ids)
    return payload


class Batcher:
    """Keeps a timer per open batch and closes batches into analyze jobs when they are due."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        *,
        window: float,
        idle: float,
        clock: Callable[[], datetime] = utcnow,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        """Close batches window s after they opened or idle s after their last detection."""
        self._db = db
        self._queue = queue
        self.window = timedelta(seconds=window)
        self.idle = timedelta(seconds=idle)
        self._clock = clock
        self._on_change = on_change
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._open: dict[str, OpenBatch] = {}

    @property
    def open_cameras(self) -> frozenset[str]:
        """Return the cameras with an open batch."""
        return frozenset(self._open)

    def deadline(self, batch: OpenBatch) -> datetime:
        """Return when batch closes: at the end of its window, or when it has been idle too long."""
        return min(batch.opened_at + self.window, batch.last_detection_at + self.idle)

    async def resume(self) -> int:
        """Schedule the batches a previous run left open, with their original deadlines."""
        batches = await self._db.run(
            lambda s: [_open_batch(row) for row in s.scalars(select(BatchRow)).all()]
        )
        for batch in batches:
            self.track(batch)
        if batches:
            _LOGGER.info("Resuming %s open batch(es)", len(batches))
        return len(batches)

    def track(self, batch: OpenBatch) -> None:
        """(Re)schedule the timer of batch, after its row was committed."""
        loop = asyncio.get_running_loop()
        was_open = batch.camera_id in self._open
        self._open[batch.camera_id] = batch
        if (timer := self._timers.pop(batch.camera_id, None)) is not None:
            timer.cancel()
        delay = max(0.0, (self.deadline(batch) - self._clock()).total_seconds())
        self._timers[batch.camera_id] = loop.call_later(delay, self._due, batch.camera_id)
        if not was_open and self._on_change is not None:
            self._on_change(batch.camera_id, True)

    def _due(self, camera_id: str) -> None:
        self._timers.pop(camera_id, None)
        task = asyncio.get_running_loop().create_task(
            self._close(camera_id), name=f"ai_security close batch {camera_id}"
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, camera_id: str) -> None:
        """Turn the batch into an analyze job, unless detections arrived after the timer was set."""
        now = self._clock()

        def close(session: Session) -> OpenBatch | None:
            row = session.get(BatchRow, camera_id)
            if row is None:
                return None
            batch = _open_batch(row)
            if self.deadline(batch) > now:
                return batch  # it grew meanwhile: not due yet
            add_job(
                session,
                JobKind.ANALYZE,
                analyze_payload(
                    camera_id,
                    batch.opened_at,
                    batch.last_detection_at,
                    batch_key=batch.batch_key,
                ),
                now,
            )
            session.delete(row)
            return None

        try:
            still_open = await self._db.run(close)
        except Exception:
            _LOGGER.exception("Closing the batch of %s failed; trying again in 5 s", camera_id)
            self._timers[camera_id] = asyncio.get_running_loop().call_later(5, self._due, camera_id)
            return
        if still_open is not None:
            self.track(still_open)
            return
        self._open.pop(camera_id, None)
        self._queue.notify(JobKind.ANALYZE)
        if self._on_change is not None:
            self._on_change(camera_id, False)

    async def stop(self) -> None:
        """Cancel the timers (batches stay stored and resume at the next start)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        self._open.clear()
