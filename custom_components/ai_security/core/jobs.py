"""The job workers: each runs the jobs of one kind as they come due, at most so many at a time.

A worker claims due jobs from the durable queue (job_queue.py), runs each with its stage's handler
as an asyncio task, and records the outcome: the result is committed with the job's completion,
a failure becomes a retry or a dead job, and an outcome the database cannot take yet is written
again until it can. The queue is the database's side of jobs and the workers the event loop's;
what a job is lives in job_types.py. The names stages use with a worker (the job's kinds, states
and results, the queue and add_job) are imported here too, so a stage imports its job tools from
one place.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
from datetime import datetime
import logging
from typing import Any, Final, cast

from .job_queue import JobQueue, add_job
from .job_types import Job, JobKind, JobResult, JobState, PermanentJobError, describe
from .storage import is_transient, utcnow

__all__ = [
    "PREFETCH",
    "STORE_RETRY_FIRST",
    "STORE_RETRY_MAX",
    "Job",
    "JobHandler",
    "JobKind",
    "JobQueue",
    "JobResult",
    "JobState",
    "JobWorker",
    "PermanentJobError",
    "TaskFactory",
    "add_job",
    "describe",
]
"""Job, JobKind, JobResult, JobState, PermanentJobError and describe are job_types.py's, JobQueue
and add_job job_queue.py's; named here too because the stages use them with the workers."""

_LOGGER = logging.getLogger(__name__)


STORE_RETRY_FIRST: Final = 0.5
"""Seconds before a job's outcome the database could not take is written again (doubling)."""
STORE_RETRY_MAX: Final = 30.0

PREFETCH: Final = 4
"""A worker claims up to this many jobs per slot at a time."""

type JobHandler = Callable[[Job], Awaitable[JobResult | None]]
"""Does a job's work and returns its result. Raise PermanentJobError when retrying cannot help,
any other exception to retry later."""

type TaskFactory = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]


def _default_task_factory(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro, name=name)


class JobWorker:
    """Runs the jobs of one kind, at most `concurrency` at a time, as they become due."""

    def __init__(
        self,
        queue: JobQueue,
        kind: JobKind,
        handler: JobHandler,
        *,
        concurrency: int,
        create_task: TaskFactory = _default_task_factory,
        clock: Callable[[], datetime] = utcnow,
        idle_poll: float = 60.0,
        available: Callable[[], bool] | None = None,
        is_outage: Callable[[BaseException], bool] | None = None,
        outage_poll: float = 1.0,
    ) -> None:
        """Work kind's jobs from queue with handler; create_task lets the host track the task.

        available() says whether the service the jobs need can take a request now; while it
        cannot, jobs stay queued (checked every outage_poll seconds). is_outage(error) says whether
        a failure was the service being down, which does not spend the job's attempts.
        """
        self._queue = queue
        self.kind = kind
        self._handler = handler
        self.concurrency = concurrency
        self._create_task = create_task
        self._clock = clock
        self._idle_poll = idle_poll
        self._available = available
        self._is_outage = is_outage
        self._outage_poll = outage_poll
        self._wake = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], Job] = {}
        self._ready: deque[Job] = deque()
        """Jobs claimed ahead (marked running) for slots that will free up soon."""
        self._recording: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._backlog = True
        """Whether queued jobs may be waiting in the database. While none are, new jobs are
        handed over directly (hand()) and an idle worker does not ask the database for work."""
        self._notices = 0
        """Counts notify() calls, so a claim that raced one does not clear _backlog."""
        self._reserved = 0
        """Places promised by try_reserve() to jobs being stored, not yet handed over."""
        self._stopping = asyncio.Event()
        """Set by stop(): outcomes waiting for the database give up, to be redone next start."""
        queue.subscribe(kind, self._on_queued)

    def _on_queued(self) -> None:
        """Jobs were queued in the database: claim them."""
        self._notices += 1
        self._backlog = True
        self._wake.set()

    def try_reserve(self) -> bool:
        """Reserve room for a new job that the caller will hand over once it is stored.

        Only while the worker runs, its service is available, a slot is free and no older job
        waits in the database (a handed job must not overtake them). The job is then stored as
        running (add_job(running=True)) and passed to hand(), which saves claiming it: one
        statement and one transaction per job. The caller must then call hand() or unreserve(),
        once.
        """
        if self._runner is None or self._backlog:
            return False
        if self._available is not None and not self._available():
            return False
        # Only for a slot that is free now: when all are busy the job waits in the database,
        # where any worker after a restart finds it, rather than in this worker's memory.
        if len(self._inflight) + len(self._ready) + self._reserved >= self.concurrency:
            return False
        self._reserved += 1
        return True

    def unreserve(self) -> None:
        """Give back a reservation whose job was not stored."""
        self._reserved -= 1

    def hand(self, job: Job) -> None:
        """Take a job stored as running for a reservation (see try_reserve)."""
        self._reserved -= 1
        if self._runner is None:
            # Stopped meanwhile: the job stays marked running, and the next start queues it
            # again (JobQueue.recover), as it does for any job a shutdown interrupted.
            return
        self._ready.append(job)
        self._wake.set()

    @property
    def busy(self) -> int:
        """Return how many jobs are being worked on now."""
        return len(self._inflight)

    def start(self) -> None:
        """Start working (the loop task is created through the host's task factory)."""
        if self._runner is None:
            self._stopping.clear()
            self._runner = self._create_task(self._run(), f"ai_security {self.kind} worker")

    async def stop(self) -> None:
        """Stop at once: cancel jobs in progress and put them back, unchanged, for the next start.

        A job whose work is finished and whose outcome is being written is let finish, so its work
        is neither lost nor done twice.
        """
        runner, self._runner = self._runner, None
        self._stopping.set()
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        interrupted = dict(self._inflight)
        for task in interrupted:
            if task not in self._recording:
                task.cancel()
        await asyncio.gather(*interrupted, return_exceptions=True)
        # Only rows still marked running change: a job that finished meanwhile stays finished.
        await self._queue.release([*interrupted.values(), *self._ready])
        self._inflight.clear()
        self._ready.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            if self._available is not None and not self._available():
                await self._sleep(self._outage_poll)
                continue
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                await self._sleep(self._idle_poll)  # woken when a job finishes
                continue
            exhausted = False
            if not self._ready:
                if not self._backlog:
                    # Nothing queued: new jobs arrive through hand() or wake us through notify.
                    await self._sleep_until_due()
                    continue
                # Several at a time, so a busy queue costs one claim per few jobs, not each.
                wanted = self.concurrency * PREFETCH
                notices = self._notices
                try:
                    claimed = await self._queue.claim(self.kind, wanted)
                except Exception:
                    _LOGGER.exception("Cannot read the %s job queue; trying again soon", self.kind)
                    await asyncio.sleep(5)
                    continue
                self._ready.extend(claimed)
                exhausted = len(claimed) < wanted
                if exhausted and notices == self._notices:
                    self._backlog = False
            while free > 0 and self._ready:
                job = self._ready.popleft()
                task = asyncio.get_running_loop().create_task(
                    self._work(job), name=f"ai_security {self.kind} job {job.job_id}"
                )
                self._inflight[task] = job
                free -= 1
            if exhausted and not self._ready and free > 0:
                await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        """Wait for new work, a free slot, or the next retry coming due.

        Waking by the clock (a retry came due, or the idle poll) means the database may hold
        due jobs, so the next round claims.
        """
        timeout = self._idle_poll
        if len(self._inflight) < self.concurrency and self._queue.may_have_delayed(self.kind):
            due = await self._queue.next_due(self.kind)
            if due is not None:
                timeout = min(timeout, max(0.0, (due - self._clock()).total_seconds()))
        if not await self._sleep(timeout):
            self._backlog = True

    async def _sleep(self, seconds: float) -> bool:
        """Wait up to seconds, or until woken; return whether woken."""
        if seconds <= 0:
            return False
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _work(self, job: Job) -> None:
        task = cast("asyncio.Task[None]", asyncio.current_task())
        try:
            try:
                result = await self._handler(job)
            except asyncio.CancelledError:
                raise
            except PermanentJobError as err:
                self._recording.add(task)
                await self._finish_failed(job, str(err), permanent=True)
            except Exception as err:  # noqa: BLE001 - any failure is the job's, retried by policy
                self._recording.add(task)
                outage = self._is_outage is not None and self._is_outage(err)
                await self._finish_failed(job, str(err) or type(err).__name__, count=not outage)
            else:
                self._recording.add(task)
                await self._complete(job, result or JobResult())
        finally:
            self._recording.discard(task)
            self._inflight.pop(task, None)
            self._wake.set()

    async def _complete(self, job: Job, result: JobResult) -> None:
        try:
            stored = await self._until_stored(job, lambda: self._queue.complete(job, result.store))
        except Exception as err:  # noqa: BLE001 - the job is retried, its work redone
            _LOGGER.warning("Could not store the result of %s: %s", describe(job), err)
            await self._finish_failed(job, f"storing the result failed: {err}")
            return
        if result.after is not None:
            try:
                result.after(stored)
            except Exception:
                _LOGGER.exception("Announcing the result of %s failed", describe(job))

    async def _finish_failed(
        self, job: Job, error: str, *, permanent: bool = False, count: bool = True
    ) -> None:
        try:
            await self._until_stored(
                job, lambda: self._queue.fail(job, error, permanent=permanent, count=count)
            )
        except Exception:
            _LOGGER.exception("Could not record the failure of %s", describe(job))

    async def _until_stored[T](self, job: Job, write: Callable[[], Awaitable[T]]) -> T:
        """Run a write of the job's outcome, retrying while the database is busy or gone.

        A job's finished work is not thrown away because SQLite was locked or PostgreSQL
        restarting for a minute: the write is tried again with backoff until it succeeds. When
        the worker stops meanwhile, the error is raised; the job is still marked running in the
        database, so the next start queues it again.
        """
        delay = STORE_RETRY_FIRST
        warned = False
        while True:
            try:
                return await write()
            except Exception as err:
                if self._runner is None or not is_transient(err):
                    raise
                if not warned:
                    warned = True
                    _LOGGER.warning(
                        "The database is busy or unreachable (%s); the outcome of %s is stored "
                        "as soon as it answers",
                        err,
                        describe(job),
                    )
            with contextlib.suppress(TimeoutError):  # stop() ends the wait early
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, STORE_RETRY_MAX)
