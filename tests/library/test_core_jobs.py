"""core.jobs on SQLite and PostgreSQL: the durable queue, retries, dead letters, the workers."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from custom_components.ai_security.core.jobs import (
    Job,
    JobKind,
    JobQueue,
    JobResult,
    JobState,
    JobWorker,
    PermanentJobError,
    add_job,
)
from custom_components.ai_security.core.resilience import RetryPolicy
from custom_components.ai_security.core.storage import CameraRow, Database


class Clock:
    """A settable clock, so backoff is checked without waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def test_claim_complete_and_counts(db: Database) -> None:
    """Due jobs are claimed oldest first, once; counts follow every state change."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    first = await queue.enqueue(JobKind.DETECT, {"path": "a.jpg"})
    clock.advance(1)
    second = await queue.enqueue(JobKind.DETECT, {"path": "b.jpg"})
    await queue.enqueue(JobKind.ANALYZE, {"batch": 1})

    claimed = await queue.claim(JobKind.DETECT, 10)
    assert [job.job_id for job in claimed] == [first, second]
    assert claimed[0].payload == {"path": "a.jpg"}
    assert all(job.state is JobState.RUNNING for job in claimed)
    assert await queue.claim(JobKind.DETECT, 10) == []

    await queue.complete(claimed[0])
    assert await queue.counts() == {
        (JobKind.DETECT, JobState.DONE): 1,
        (JobKind.DETECT, JobState.RUNNING): 1,
        (JobKind.ANALYZE, JobState.QUEUED): 1,
    }


async def test_backoff_then_dead_letter_then_requeue(db: Database) -> None:
    """A failing job waits longer each time, is buried after its attempts, and can come back."""
    clock = Clock()
    queue = JobQueue(
        db, RetryPolicy(max_attempts=3, base=1, maximum=300), clock=clock, rng=lambda: 1.0
    )
    job_id = await queue.enqueue(JobKind.DETECT, {"path": "a.jpg"})

    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert await queue.fail(job, "HTTP 500") is JobState.QUEUED
    assert await queue.claim(JobKind.DETECT, 1) == []  # not due yet: backoff of 1 s
    assert await queue.next_due(JobKind.DETECT) == clock.now + timedelta(seconds=1)
    clock.advance(1)
    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert (job.attempts, job.last_error) == (1, "HTTP 500")
    assert await queue.fail(job, "HTTP 502") is JobState.QUEUED
    clock.advance(1.9)
    assert await queue.claim(JobKind.DETECT, 1) == []  # second backoff is 2 s
    clock.advance(0.1)
    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert await queue.fail(job, "timed out") is JobState.DEAD

    clock.advance(3600)
    assert await queue.claim(JobKind.DETECT, 1) == []
    (dead,) = await queue.dead_jobs()
    assert (dead.job_id, dead.attempts, dead.last_error) == (job_id, 3, "timed out")

    assert await queue.requeue_dead([job_id]) == 1
    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert (job.job_id, job.attempts) == (job_id, 0)


async def test_permanent_failure_goes_dead_at_once(db: Database) -> None:
    """When retrying cannot help, the first failure buries the job with its reason."""
    queue = JobQueue(db, clock=Clock())
    await queue.enqueue(JobKind.DETECT, {"path": "clip.mp4"})
    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert await queue.fail(job, "corrupt clip", permanent=True) is JobState.DEAD
    assert (await queue.dead_jobs())[0].last_error == "corrupt clip"


async def test_recover_running_jobs_after_restart(db: Database) -> None:
    """Jobs left running by a crash are queued again at the next start, attempts untouched."""
    queue = JobQueue(db, clock=Clock())
    await queue.enqueue(JobKind.ANALYZE, {"batch": 7})
    (job,) = await queue.claim(JobKind.ANALYZE, 1)
    restarted = JobQueue(db, clock=Clock())
    assert await restarted.recover() == 1
    (again,) = await restarted.claim(JobKind.ANALYZE, 1)
    assert (again.job_id, again.attempts) == (job.job_id, 0)


async def test_purge_done(db: Database) -> None:
    """Finished jobs are removed once old; queued and dead ones never are."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    for _ in range(3):
        await queue.enqueue(JobKind.DETECT, {})
    done, dead, _queued = await queue.claim(JobKind.DETECT, 3)
    await queue.complete(done)
    await queue.fail(dead, "bad", permanent=True)
    await queue.release([_queued])
    clock.advance(86400 * 2)
    assert await queue.purge_done(timedelta(days=1)) == 1
    counts = await queue.counts()
    assert counts == {(JobKind.DETECT, JobState.DEAD): 1, (JobKind.DETECT, JobState.QUEUED): 1}


async def test_worker_bounded_concurrency_and_retries(db: Database) -> None:
    """A worker never runs more than its limit at once and retries failures until they succeed."""
    queue = JobQueue(db, RetryPolicy(max_attempts=5, base=0.01, maximum=0.02))
    running = 0
    peak = 0
    failures: dict[int, int] = {}
    finished: list[int] = []
    all_done = asyncio.Event()

    async def handler(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.01)
            if job.payload["n"] % 3 == 0 and failures.get(job.job_id, 0) < 2:
                failures[job.job_id] = failures.get(job.job_id, 0) + 1
                raise ConnectionError("detector down")
            finished.append(job.payload["n"])
            if len(finished) == 12:
                all_done.set()
        finally:
            running -= 1

    worker = JobWorker(queue, JobKind.DETECT, handler, concurrency=2)
    worker.start()
    for n in range(12):
        await queue.enqueue(JobKind.DETECT, {"n": n})
    async with asyncio.timeout(20):
        await all_done.wait()
    await worker.stop()
    assert sorted(finished) == list(range(12))
    assert peak == 2
    assert sum(failures.values()) == 8  # jobs 0, 3, 6, 9 failed twice each
    counts = await queue.counts()
    assert counts == {(JobKind.DETECT, JobState.DONE): 12}


async def test_worker_result_commits_with_completion(db: Database) -> None:
    """What a handler stores commits with its job's completion; after() then sees what it stored."""
    queue = JobQueue(db)
    announced: list[str] = []
    committed_when_announced: list[bool] = []

    async def handler(job: Job) -> JobResult:
        def store(session: Session) -> str:
            session.add(
                CameraRow(
                    camera_id=job.payload["id"],
                    folder=job.payload["id"],
                    name="x",
                    created_at=datetime.now(UTC),
                )
            )
            return job.payload["id"]

        def after(stored: str) -> None:
            announced.append(stored)

        return JobResult(store=store, after=after)

    worker = JobWorker(queue, JobKind.DETECT, handler, concurrency=1)
    worker.start()
    await queue.enqueue(JobKind.DETECT, {"id": "yard"})
    async with asyncio.timeout(10):
        while not announced:
            await asyncio.sleep(0.01)
    committed_when_announced.append(await db.run(lambda s: s.get(CameraRow, "yard") is not None))
    await worker.stop()
    assert announced == ["yard"]
    assert committed_when_announced == [True]
    assert await queue.counts() == {(JobKind.DETECT, JobState.DONE): 1}


async def test_failed_store_retries_the_job(db: Database) -> None:
    """When storing a result fails, nothing of it is kept and the job is retried."""
    queue = JobQueue(db, RetryPolicy(max_attempts=2, base=0.01, maximum=0.01))
    calls: list[int] = []

    async def handler(job: Job) -> JobResult:
        calls.append(job.attempts)

        def store(session: Session) -> None:
            session.add(
                CameraRow(
                    camera_id="dup", folder=f"f{len(calls)}", name="x", created_at=datetime.now(UTC)
                )
            )
            if len(calls) == 1:
                raise RuntimeError("disk full")

        return JobResult(store=store)

    worker = JobWorker(queue, JobKind.DETECT, handler, concurrency=1)
    worker.start()
    await queue.enqueue(JobKind.DETECT, {})
    async with asyncio.timeout(10):
        while await queue.counts() != {(JobKind.DETECT, JobState.DONE): 1}:
            await asyncio.sleep(0.01)
    await worker.stop()
    assert calls == [0, 1]
    assert await db.run(lambda s: s.get(CameraRow, "dup").folder) == "f2"


async def test_worker_permanent_error_and_stop_releases(db: Database) -> None:
    """A permanent error buries its job; stopping mid-job puts the job back, untouched."""
    queue = JobQueue(db)
    started = asyncio.Event()

    async def handler(job: Job) -> None:
        if job.payload.get("corrupt"):
            raise PermanentJobError("corrupt or truncated clip")
        started.set()
        await asyncio.sleep(3600)

    worker = JobWorker(queue, JobKind.DETECT, handler, concurrency=2)
    worker.start()
    await queue.enqueue(JobKind.DETECT, {"corrupt": True})
    slow = await queue.enqueue(JobKind.DETECT, {"slow": True})
    async with asyncio.timeout(10):
        await started.wait()
        while not await queue.dead_jobs():
            await asyncio.sleep(0.01)
    await worker.stop()
    counts = await queue.counts()
    assert counts == {(JobKind.DETECT, JobState.DEAD): 1, (JobKind.DETECT, JobState.QUEUED): 1}
    (job,) = await queue.claim(JobKind.DETECT, 1)
    assert (job.job_id, job.attempts) == (slow, 0)


async def test_worker_wakes_for_a_retry_coming_due(db: Database) -> None:
    """A worker with nothing to do sleeps until the next retry is due, not until polled."""
    queue = JobQueue(db, RetryPolicy(base=0.2, maximum=0.2), rng=lambda: 1.0)
    seen: list[float] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def handler(job: Job) -> None:
        seen.append(loop.time())
        if len(seen) == 1:
            raise TimeoutError
        done.set()

    worker = JobWorker(queue, JobKind.ANALYZE, handler, concurrency=1, idle_poll=3600)
    worker.start()
    await queue.enqueue(JobKind.ANALYZE, {})
    async with asyncio.timeout(10):
        await done.wait()
    await worker.stop()
    assert 0.15 <= seen[1] - seen[0] < 2.0
    assert (await queue.counts()) == {(JobKind.ANALYZE, JobState.DONE): 1}


class CountingQueue(JobQueue):
    """A queue that records what its claims returned."""

    claimed: list[list[int]]

    async def claim(self, kind: JobKind, limit: int) -> list[Job]:
        jobs = await super().claim(kind, limit)
        self.claimed.append([job.job_id for job in jobs])
        return jobs


async def _store_running(db: Database, payload: dict[str, int]) -> Job:
    now = datetime.now(UTC)
    job_id = await db.run(lambda s: add_job(s, JobKind.DETECT, payload, now, running=True))
    return Job(
        job_id=job_id,
        kind=JobKind.DETECT,
        payload=payload,
        state=JobState.RUNNING,
        attempts=0,
        next_attempt_at=now,
        last_error=None,
    )


async def _reserve(worker: JobWorker) -> None:
    async with asyncio.timeout(10):
        while not worker.try_reserve():
            await asyncio.sleep(0.01)


async def test_handed_jobs_skip_the_claim_and_never_overtake_queued_ones(db: Database) -> None:
    """A job handed to a worker with a free slot runs without being claimed from the database.

    While its slot is busy there is no room; a job queued meanwhile is claimed as usual, and no
    job is handed over until that backlog is worked off.
    """
    queue = CountingQueue(db)
    queue.claimed = []
    gates: dict[int, asyncio.Event] = {1: asyncio.Event(), 2: asyncio.Event(), 3: asyncio.Event()}
    ran: list[int] = []
    up = True

    async def handler(job: Job) -> None:
        ran.append(job.payload["n"])
        await gates[job.payload["n"]].wait()

    worker = JobWorker(queue, JobKind.DETECT, handler, concurrency=1, available=lambda: up)
    worker.start()
    await _reserve(worker)  # after the first claim found the database empty
    first = await _store_running(db, {"n": 1})
    worker.hand(first)
    async with asyncio.timeout(10):
        while ran != [1]:
            await asyncio.sleep(0.01)
    assert not worker.try_reserve()  # the only slot is busy
    queued = await queue.enqueue(JobKind.DETECT, {"n": 2})
    assert not worker.try_reserve()  # a queued job waits: a handed one must not overtake it
    gates[1].set()
    gates[2].set()
    async with asyncio.timeout(10):
        while ran != [1, 2]:
            await asyncio.sleep(0.01)
    await _reserve(worker)  # backlog worked off: handing over again
    worker.unreserve()
    up = False
    assert not worker.try_reserve()  # the service is down: jobs are queued for later
    up = True
    await _reserve(worker)
    third = await _store_running(db, {"n": 3})
    worker.hand(third)
    gates[3].set()
    async with asyncio.timeout(10):
        while await queue.counts() != {(JobKind.DETECT, JobState.DONE): 3}:
            await asyncio.sleep(0.01)
    await worker.stop()
    claimed = [job_id for batch in queue.claimed for job_id in batch]
    assert claimed == [queued]
    assert ran == [1, 2, 3]


async def test_job_handed_to_a_stopped_worker_resumes_at_the_next_start(db: Database) -> None:
    """A worker stopped while a handed job was stored leaves it running; recover() queues it."""
    queue = JobQueue(db)
    worker = JobWorker(queue, JobKind.DETECT, lambda _job: asyncio.sleep(0), concurrency=1)
    worker.start()
    await _reserve(worker)
    job = await _store_running(db, {"n": 1})
    await worker.stop()
    worker.hand(job)
    assert await queue.counts() == {(JobKind.DETECT, JobState.RUNNING): 1}
    assert await queue.recover() == 1
    (claimed,) = await queue.claim(JobKind.DETECT, 5)
    assert claimed.job_id == job.job_id
