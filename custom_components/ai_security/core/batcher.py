"""Per-camera incidents: one visit of a camera is one security event, judged as it goes.

A camera's incident opens with its first detection (the pipeline gives it an instant verdict),
is judged again with everything seen at most every `window` seconds while detections keep
coming, and closes `idle` seconds after its last detection, or `cap` after it opened (the next
detection then opens a new one). Closing queues the final judgement. This module keeps a timer
per open incident and decides when each is due; the incident's row, and the transactions that
open, grow, judge and close it, are incident_rows'.

A batch row without an event (left open by schema version 3) closes as batches did: one
event, judged once, at the end of its window or after its idle time.
"""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
import logging

from sqlalchemy.orm import Session

from .incident_rows import (
    DEFAULT_CAP,
    OpenBatch,
    finish,
    next_window,
    open_batch,
    open_batches,
)
from .jobs import JobKind, JobQueue
from .storage import Database, utcnow

_LOGGER = logging.getLogger(__name__)


class Batcher:
    """Keeps a timer per open incident; judges and closes incidents into analyze jobs when due."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        *,
        window: float,
        idle: float,
        cap: float = DEFAULT_CAP.total_seconds(),
        clock: Callable[[], datetime] = utcnow,
        on_change: Callable[[str, bool], None] | None = None,
    ) -> None:
        """Judge incidents every window s; close them idle s after their last detection or at cap s.

        The cap counts from the incident's opening.
        """
        self._db = db
        self._queue = queue
        self.window = timedelta(seconds=window)
        self.idle = timedelta(seconds=idle)
        self.cap = timedelta(seconds=cap)
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

    def is_open(self, camera_id: str) -> bool:
        """Return whether camera_id has an open batch (its next detection joins it)."""
        return camera_id in self._open

    def ends(self, batch: OpenBatch) -> datetime:
        """Return when batch's incident closes: idle too long, or at its cap.

        A version-3 batch (no event) closes at the end of its window, as it did then.
        """
        if batch.event_id is None:
            return min(batch.opened_at + self.window, batch.last_detection_at + self.idle)
        return min(batch.opened_at + self.cap, batch.last_detection_at + self.idle)

    def deadline(self, batch: OpenBatch) -> datetime:
        """Return when batch is next due: it closes, or its window ends with detections unjudged."""
        ends = self.ends(batch)
        if batch.event_id is None or batch.detection_count <= batch.judged_count:
            return ends
        return min(ends, (batch.window_opened_at or batch.opened_at) + self.window)

    async def resume(self) -> int:
        """Schedule the batches a previous run left open, with their original deadlines."""
        batches = await self._db.run(open_batches)
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
        """Judge or close the camera's incident, unless detections arrived after the timer was set.

        force closes it even before its deadline. A window that ended while the incident goes on
        queues a judgement of everything seen so far and starts the next window.
        """
        now = self._clock()

        def close(session: Session) -> tuple[str, OpenBatch | None]:
            batch = open_batch(session, camera_id)
            if batch is None:
                return "gone", None
            if not force and self.deadline(batch) > now:
                return "open", batch  # it grew meanwhile: not due yet
            if force or self.ends(batch) <= now:
                return ("closed", batch) if finish(session, batch, now) else ("gone", None)
            return "judged", next_window(session, batch, now)

        try:
            outcome, batch = await self._db.run(close)
        except Exception:
            _LOGGER.exception("Closing the incident of %s failed; trying again in 5 s", camera_id)
            self._timers[camera_id] = asyncio.get_running_loop().call_later(5, self._due, camera_id)
            return
        if outcome == "judged" and batch is not None:
            self._queue.notify(JobKind.ANALYZE)
            self.track(batch)
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
