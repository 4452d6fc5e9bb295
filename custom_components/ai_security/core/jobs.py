"""The durable job queue: work survives restarts, failures retry with backoff, nothing is dropped.

Jobs live in the database. A job is queued, running, done or dead. Running jobs found at start
belong to a run that ended mid-way and are queued again. A failed job is retried with exponential
backoff and jitter until its attempts are spent; then it is dead: kept with its last error,
visible, and re-queueable by the user, never silently dropped.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
import logging
import os
import random
from typing import Any, Final, cast

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from .resilience import RetryPolicy
from .storage import Database, JobRow, is_transient, utcnow
from .uploads import shown

_LOGGER = logging.getLogger(__name__)


class JobKind(StrEnum):
    """What a job does."""

    DETECT = "detect"
    ANALYZE = "analyze"
    RESCORE = "rescore"
    """Judge again, with the LLM, an event the heuristic scored while the LLM was unreachable."""


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class PermanentJobError(Exception):
    """Retrying cannot help (a corrupt clip, ffmpeg missing): the job goes dead at once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """A job as a worker sees it."""

    job_id: int
    kind: JobKind
    payload: dict[str, Any]
    state: JobState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def describe(job: Job) -> str:
    """Return how log lines name a job: its kind, id and the upload it is about, if any.

    "detect job 12 (Front/2024-06-01_03-14.jpg)": whoever reads the log can find the file.
    """
    path = job.payload.get("path")
    if isinstance(path, str) and path:
        folder, name = os.path.split(path)
        return (
            f"{job.kind} job {job.job_id} ({shown(os.path.join(os.path.basename(folder), name))})"
        )
    return f"{job.kind} job {job.job_id}"


def _job(row: JobRow) -> Job:
    return Job(
        job_id=row.job_id,
        kind=JobKind(row.kind),
        payload=dict(row.payload),
        state=JobState(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
    )


# The statements every job runs, built once: building a statement costs more CPU than SQLite
# takes to run it, and the database thread bounds how fast the pipeline goes. They run on the
# session's connection, which skips the ORM's per-statement work too.
_INSERT_JOB = insert(JobRow).returning(JobRow.job_id)
_CLAIM = (
    update(JobRow)
    .where(
        JobRow.job_id.in_(
            select(JobRow.job_id)
            .where(
                JobRow.state == JobState.QUEUED.value,
                JobRow.kind == bindparam("claim_kind"),
                JobRow.next_attempt_at <= bindparam("claim_now"),
            )
            .order_by(JobRow.next_attempt_at, JobRow.job_id)
            .limit(bindparam("claim_limit"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(state=JobState.RUNNING.value, updated_at=bindparam("claim_now"))
    .returning(
        JobRow.job_id,
        JobRow.kind,
        JobRow.payload,
        JobRow.attempts,
        JobRow.next_attempt_at,
        JobRow.last_error,
    )
)
_COMPLETE = (
    update(JobRow)
    .where(JobRow.job_id == bindparam("done_id"))
    .values(state=JobState.DONE.value, updated_at=bindparam("done_at"), last_error=None)
)
_FAIL = (
    update(JobRow)
    .where(JobRow.job_id == bindparam("failed_id"))
    .values(
        state=bindparam("failed_state"),
        attempts=bindparam("failed_attempts"),
        last_error=bindparam("failed_error"),
        next_attempt_at=bindparam("failed_next"),
        updated_at=bindparam("failed_at"),
    )
)


def add_job(
    session: Session,
    kind: JobKind,
    payload: dict[str, Any],
    now: datetime,
    *,
    running: bool = False,
) -> int:
    """Queue a job inside the caller's transaction, so it commits together with what caused it.

    running=True stores it as already claimed, for a job handed straight to a worker that
    reserved room for it (JobWorker.try_reserve); a restart queues it again like any running job.
    Returns the job's id.
    """
    job_id: int = (
        session.connection()
        .execute(
            _INSERT_JOB,
            {
                "kind": kind.value,
                "payload": payload,
                "state": (JobState.RUNNING if running else JobState.QUEUED).value,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        .scalar_one()
    )
    return job_id


class JobQueue:
    """Queue operations, each one transaction on the database thread."""

    def __init__(
        self,
        db: Database,
        policy: RetryPolicy | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Use db for storage and policy for retries; clock and rng are injectable for tests."""
        self._db = db
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng
        self._listeners: dict[JobKind, list[Callable[[], None]]] = {kind: [] for kind in JobKind}
        # Whether queued jobs of a kind may be waiting for a later time (a retry's backoff). Until
        # the first look, that is unknown; afterwards only fail() can make it true again.
        self._maybe_delayed: dict[JobKind, bool] = dict.fromkeys(JobKind, True)

    def may_have_delayed(self, kind: JobKind) -> bool:
        """Return whether a job of kind may be queued for a later time (worth asking next_due)."""
        return self._maybe_delayed[kind]

    def subscribe(self, kind: JobKind, wake: Callable[[], None]) -> None:
        """Call wake whenever a job of kind may have become due (queued or re-queued)."""
        self._listeners[kind].append(wake)

    def notify(self, kind: JobKind) -> None:
        """Tell kind's workers that work arrived (after jobs were added in another transaction)."""
        for wake in self._listeners[kind]:
            wake()

    async def enqueue(self, kind: JobKind, payload: dict[str, Any]) -> int:
        """Queue a job now and wake its workers; return its id."""
        now = self._clock()

        def _add(session: Session) -> int:
            return add_job(session, kind, payload, now)

        job_id = await self._db.run(_add)
        self.notify(kind)
        return job_id

    async def claim(self, kind: JobKind, limit: int) -> list[Job]:
        """Mark up to limit due jobs of kind running and return them, oldest due first."""
        now = self._clock()

        def _claim(session: Session) -> list[Job]:
            # One statement marks them running and returns them.
            rows = (
                session.connection()
                .execute(_CLAIM, {"claim_kind": kind.value, "claim_now": now, "claim_limit": limit})
                .all()
            )
            jobs = [
                Job(
                    job_id=row.job_id,
                    kind=JobKind(row.kind),
                    payload=dict(row.payload),
                    state=JobState.RUNNING,
                    attempts=row.attempts,
                    next_attempt_at=row.next_attempt_at,
                    last_error=row.last_error,
                )
                for row in rows
            ]
            jobs.sort(key=lambda job: (job.next_attempt_at, job.job_id))
            return jobs

        return await self._db.run(_claim)

    async def complete(self, job: Job, store: Callable[[Session], Any] | None = None) -> Any:
        """Mark job done; store(session), when given, commits in the same transaction.

        Returns what store returned, so the caller can act on it once it is committed.
        """
        now = self._clock()

        def _complete(session: Session) -> Any:
            stored = store(session) if store is not None else None
            session.connection().execute(_COMPLETE, {"done_id": job.job_id, "done_at": now})
            return stored

        return await self._db.run(_complete)

    async def fail(
        self, job: Job, error: str, *, permanent: bool = False, count: bool = True
    ) -> JobState:
        """Record a failed attempt: queue a retry after the backoff, or bury the job when spent.

        count=False is for failures that were the service's, not the job's (the service was down):
        the job is retried after the first backoff step without spending one of its attempts.
        """
        now = self._clock()
        attempts = job.attempts + 1 if count else job.attempts
        dead = permanent or (count and self.policy.exhausted(attempts))
        delay = 0.0 if dead else self.policy.delay(max(attempts, 1), self._rng)
        state = JobState.DEAD if dead else JobState.QUEUED

        def _fail(session: Session) -> None:
            session.connection().execute(
                _FAIL,
                {
                    "failed_id": job.job_id,
                    "failed_state": state.value,
                    "failed_attempts": attempts,
                    "failed_error": error[:2000],
                    "failed_next": now + timedelta(seconds=delay),
                    "failed_at": now,
                },
            )

        await self._db.run(_fail)
        if not dead:
            self._maybe_delayed[job.kind] = True
        if dead:
            _LOGGER.warning("Gave up on %s after %s attempt(s): %s", describe(job), attempts, error)
        else:
            _LOGGER.debug(
                "%s failed (attempt %s), retrying in %.1f s: %s",
                describe(job),
                attempts,
                delay,
                error,
            )
        return state

    async def release(self, jobs: list[Job]) -> None:
        """Put running jobs back unchanged (their worker stopped before finishing them)."""
        if not jobs:
            return
        ids = [job.job_id for job in jobs]

        def _release(session: Session) -> None:
            session.execute(
                update(JobRow)
                .where(JobRow.job_id.in_(ids), JobRow.state == JobState.RUNNING.value)
                .values(state=JobState.QUEUED.value)
            )

        await self._db.run(_release)

    async def recover(self) -> int:
        """Queue again the jobs a previous run left running; return how many."""

        def _recover(session: Session) -> int:
            result = session.execute(
                update(JobRow)
                .where(JobRow.state == JobState.RUNNING.value)
                .values(state=JobState.QUEUED.value)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        count = await self._db.run(_recover)
        if count:
            _LOGGER.info("Resuming %s job(s) interrupted by the last shutdown", count)
        return count

    async def requeue_dead(self, job_ids: list[int] | None = None) -> int:
        """Give dead jobs (all, or those listed) a fresh set of attempts; return how many."""
        now = self._clock()

        def _requeue(session: Session) -> list[str]:
            query = select(JobRow).where(JobRow.state == JobState.DEAD.value)
            if job_ids is not None:
                query = query.where(JobRow.job_id.in_(job_ids))
            rows = session.scalars(query).all()
            for row in rows:
                row.state = JobState.QUEUED.value
                row.attempts = 0
                row.next_attempt_at = now
                row.updated_at = now
            return [row.kind for row in rows]

        kinds = await self._db.run(_requeue)
        for kind in set(kinds):
            self.notify(JobKind(kind))
        return len(kinds)

    async def dead_jobs(self, limit: int = 100) -> list[Job]:
        """Return the most recent dead jobs, for diagnostics and the user."""

        def _dead(session: Session) -> list[Job]:
            rows = session.scalars(
                select(JobRow)
                .where(JobRow.state == JobState.DEAD.value)
                .order_by(JobRow.updated_at.desc())
                .limit(limit)
            ).all()
            return [_job(row) for row in rows]

        return await self._db.run(_dead)

    async def counts(self) -> dict[tuple[JobKind, JobState], int]:
        """Return the number of jobs per kind and state."""

        def _counts(session: Session) -> dict[tuple[JobKind, JobState], int]:
            rows = session.execute(
                select(JobRow.kind, JobRow.state, func.count()).group_by(JobRow.kind, JobRow.state)
            ).all()
            return {(JobKind(kind), JobState(state)): int(n) for kind, state, n in rows}

        return await self._db.run(_counts)

    async def next_due(self, kind: JobKind) -> datetime | None:
        """Return when the next queued job of kind becomes due, or None when none is queued."""

        def _next(session: Session) -> datetime | None:
            return session.scalar(
                select(func.min(JobRow.next_attempt_at)).where(
                    JobRow.state == JobState.QUEUED.value, JobRow.kind == kind.value
                )
            )

        self._maybe_delayed[kind] = False
        due = await self._db.run(_next)
        if due is not None:
            self._maybe_delayed[kind] = True
        # func.min bypasses the column type, so SQLite hands back a naive (UTC) value.
        if due is not None and due.tzinfo is None:
            due = due.replace(tzinfo=self._clock().tzinfo)
        return due

    async def purge_done(self, older_than: timedelta) -> int:
        """Delete done jobs finished longer ago than older_than; return how many."""
        cutoff = self._clock() - older_than

        def _purge(session: Session) -> int:
            result = session.execute(
                delete(JobRow).where(
                    JobRow.state == JobState.DONE.value, JobRow.updated_at < cutoff
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

        return await self._db.run(_purge)


@dataclass(frozen=True, kw_only=True, slots=True)
class JobResult:
    """What a finished job leaves: writes that commit with its completion, and what follows them.

    store(session) runs in the transaction that marks the job done, so a job's results are
    stored exactly once or not at all; after(stored) then runs on the loop with store's return
    value, to announce what was committed (never before it is).
    """

    store: Callable[[Session], Any] | None = None
    after: Callable[[Any], None] | None = None


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
