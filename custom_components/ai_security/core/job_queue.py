"""The durable job queue: work survives restarts, failures retry with backoff, nothing is dropped.

Jobs live in the database. A job is queued, running, done or dead. Running jobs found at start
belong to a run that ended mid-way and are queued again. A failed job is retried with exponential
backoff and jitter until its attempts are spent; then it is dead: kept with its last error,
visible, and re-queueable by the user, never silently dropped.

This module is every statement on the jobs table, each run on the database thread; it is kept
apart from the workers (jobs.py), which decide on the event loop when to claim and what to record.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
import logging
import random
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from .job_types import Job, JobKind, JobState, describe
from .resilience import RetryPolicy
from .storage import Database, JobRow, utcnow

_LOGGER = logging.getLogger(__name__)


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
