"""Per-camera incidents: one visit of a camera is one security event, judged as it goes.

A camera's incident opens with its first detection (the pipeline gives it an instant verdict),
is judged again with everything seen at most every `window` seconds while detections keep
coming, and closes `idle` seconds after its last detection, or `cap` after it opened (the next
detection then opens a new one). Closing queues the final judgement. Open incidents live in the
database (their batch row) and change in the same transaction that stores the detections, so a
restart resumes each with its original deadlines: one incident, never two, never none.

A batch row without an event (left open by schema version 3) closes as batches did: one
event, judged once, at the end of its window or after its idle time.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
import logging
from typing import Any
import uuid

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from .jobs import JobKind, JobQueue, add_job
from .payloads import AnalyzePayload
from .storage import BatchRow, Database, EventRow, utcnow

_LOGGER = logging.getLogger(__name__)

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


def _open_batch(row: Any) -> OpenBatch:
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
        return BatchChange(batch=_open_batch(row), opened=False)
    closed: OpenBatch | None = None
    old = connection.execute(_SELECT_BATCH, {"batch_camera": camera_id}).first()
    if old is not None:
        closed = _open_batch(old)
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
    add_job(
        session,
        JobKind.ANALYZE,
        AnalyzePayload(
            camera_id=batch.camera_id,
            started_at=batch.opened_at,
            ended_at=batch.last_detection_at,
            batch_key=batch.batch_key,
            event_id=batch.event_id,
            final=True,
            judged=batch.detection_count,
        ).to_json(),
        now,
    )
    return True


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
        """Judge or close the camera's incident, unless detections arrived after the timer was set.

        force closes it even before its deadline. A window that ended while the incident goes on
        queues a judgement of everything seen so far and starts the next window.
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
            if force or self.ends(batch) <= now:
                return ("closed", batch) if finish(session, batch, now) else ("gone", None)
            connection.execute(
                _NEXT_WINDOW,
                {
                    "window_key": batch.batch_key,
                    "window_at": now,
                    "window_count": batch.detection_count,
                },
            )
            add_job(
                session,
                JobKind.ANALYZE,
                AnalyzePayload(
                    camera_id=camera_id,
                    started_at=batch.opened_at,
                    ended_at=batch.last_detection_at,
                    batch_key=batch.batch_key,
                    event_id=batch.event_id,
                    final=False,
                    judged=batch.detection_count,
                ).to_json(),
                now,
            )
            return "judged", replace(
                batch, window_opened_at=now, judged_count=batch.detection_count
            )

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
