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

from sqlalchemy import bindparam, delete, insert, select, update
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


def _open_batch(row: Any) -> OpenBatch:
    """Return the batch of a BatchRow, or of a result row carrying the same columns."""
    return OpenBatch(
        camera_id=row.camera_id,
        batch_key=row.batch_key,
        opened_at=row.opened_at,
        last_detection_at=row.last_detection_at,
        detection_count=row.detection_count,
    )


_GROW_BATCH = (
    update(BatchRow)
    .where(BatchRow.camera_id == bindparam("grow_camera"))
    .values(
        last_detection_at=bindparam("grow_at"),
        detection_count=BatchRow.detection_count + bindparam("grow_by"),
    )
    .returning(
        BatchRow.camera_id,
        BatchRow.batch_key,
        BatchRow.opened_at,
        BatchRow.last_detection_at,
        BatchRow.detection_count,
    )
)
_OPEN_BATCH = insert(BatchRow)
_SELECT_BATCH = select(
    BatchRow.camera_id,
    BatchRow.batch_key,
    BatchRow.opened_at,
    BatchRow.last_detection_at,
    BatchRow.detection_count,
).where(BatchRow.camera_id == bindparam("batch_camera"))
_DELETE_BATCH = delete(BatchRow).where(BatchRow.batch_key == bindparam("batch_key"))


def add_to_batch(session: Session, camera_id: str, count: int, now: datetime) -> OpenBatch:
    """Count count new detections into camera_id's batch (opening one if none is).

    Runs in the caller's transaction (for every detected upload, hence prebuilt statements);
    the caller stores the detections with the returned batch_key.
    """
    connection = session.connection()
    row = connection.execute(
        _GROW_BATCH, {"grow_camera": camera_id, "grow_at": now, "grow_by": count}
    ).first()
    if row is not None:
        return _open_batch(row)
    batch = OpenBatch(
        camera_id=camera_id,
        batch_key=uuid.uuid4().hex,
        opened_at=now,
        last_detection_at=now,
        detection_count=count,
    )
    connection.execute(
        _OPEN_BATCH,
        {
            "camera_id": camera_id,
            "batch_key": batch.batch_key,
            "opened_at": now,
            "last_detection_at": now,
            "detection_count": count,
        },
    )
    return batch


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
        self._armed: dict[str, datetime] = {}
        """The deadline each camera's timer was set for. Detections only push a batch's deadline
        later, so a timer is left alone until it fires and then re-armed if the batch grew:
        re-arming on every detection would leave a cancelled handle per detection alive until
        its far-off time, long enough for the garbage collector's slow oldest generation."""
        self._closing: dict[str, asyncio.Task[None]] = {}
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
        deadline = self.deadline(batch)
        armed = self._armed.get(batch.camera_id)
        if batch.camera_id not in self._timers or armed is None or deadline < armed:
            self._arm(loop, batch.camera_id, deadline)
        if not was_open and self._on_change is not None:
            self._on_change(batch.camera_id, True)

    def _arm(self, loop: asyncio.AbstractEventLoop, camera_id: str, deadline: datetime) -> None:
        """Set camera_id's timer for deadline, replacing any."""
        if (timer := self._timers.pop(camera_id, None)) is not None:
            timer.cancel()
        delay = max(0.0, (deadline - self._clock()).total_seconds())
        self._timers[camera_id] = loop.call_later(delay, self._due, camera_id)
        self._armed[camera_id] = deadline

    def _due(self, camera_id: str) -> None:
        self._timers.pop(camera_id, None)
        self._armed.pop(camera_id, None)
        batch = self._open.get(camera_id)
        if batch is not None and camera_id not in self._closing:
            deadline = self.deadline(batch)
            if deadline > self._clock():
                # The batch grew since the timer was set: wait for its new deadline.
                self._arm(asyncio.get_running_loop(), camera_id, deadline)
                return
        if camera_id in self._closing:
            return  # a close of this camera's batch is under way; it re-arms the timer if needed
        task = asyncio.get_running_loop().create_task(
            self._close(camera_id), name=f"ai_security close batch {camera_id}"
        )
        self._closing[camera_id] = task
        task.add_done_callback(lambda _task: self._closing.pop(camera_id, None))

    async def close_now(self, camera_id: str) -> bool:
        """Close camera_id's open batch at once, whatever its deadline; return whether one was.

        For the analyze_now action: a user who saw enough does not wait for the window.
        """
        if camera_id not in self._open:
            return False
        if (closing := self._closing.get(camera_id)) is not None:
            await asyncio.gather(closing, return_exceptions=True)
            return True
        task = asyncio.get_running_loop().create_task(
            self._close(camera_id, force=True), name=f"ai_security close batch {camera_id}"
        )
        self._closing[camera_id] = task
        task.add_done_callback(lambda _task: self._closing.pop(camera_id, None))
        await task
        return camera_id not in self._open

    async def _close(self, camera_id: str, *, force: bool = False) -> None:
        """Turn the batch into an analyze job, unless detections arrived after the timer was set.

        force closes it even before its deadline.
        """
        now = self._clock()

        def close(session: Session) -> tuple[str, OpenBatch | None]:
            connection = session.connection()
            row = connection.execute(_SELECT_BATCH, {"batch_camera": camera_id}).first()
            if row is None:
                return "gone", None
            batch = _open_batch(row)
            if not force and self.deadline(batch) > now:
                return "open", batch  # it grew meanwhile: not due yet
            # Deleting by key is what makes the close happen once: whoever deletes the row
            # queues the analysis.
            if connection.execute(_DELETE_BATCH, {"batch_key": batch.batch_key}).rowcount != 1:
                return "gone", None
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
            return "closed", batch

        try:
            outcome, batch = await self._db.run(close)
        except Exception:
            _LOGGER.exception("Closing the batch of %s failed; trying again in 5 s", camera_id)
            self._timers[camera_id] = asyncio.get_running_loop().call_later(5, self._due, camera_id)
            return
        if outcome == "open" and batch is not None:
            self.track(batch)
            return
        if outcome == "gone" or batch is None:
            # Closed already (a stale timer): the camera has no open batch unless a newer one was
            # tracked meanwhile, whose own timer is then set.
            closed = camera_id not in self._timers and camera_id in self._open
            if closed:
                del self._open[camera_id]
                if self._on_change is not None:
                    self._on_change(camera_id, False)
            return
        self._queue.notify(JobKind.ANALYZE)
        tracked = self._open.get(camera_id)
        if tracked is not None and tracked.batch_key == batch.batch_key:
            del self._open[camera_id]
            if (timer := self._timers.pop(camera_id, None)) is not None:
                timer.cancel()
            self._armed.pop(camera_id, None)
            if self._on_change is not None:
                self._on_change(camera_id, False)

    async def stop(self) -> None:
        """Cancel the timers (batches stay stored and resume at the next start)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._armed.clear()
        if self._closing:
            await asyncio.gather(*self._closing.values(), return_exceptions=True)
        self._open.clear()
