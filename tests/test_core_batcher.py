"""core.batcher on SQLite and PostgreSQL: windows, idle timeouts, exactly-once closing, resuming."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from custom_components.ai_security.core.batcher import Batcher, add_to_batch
from custom_components.ai_security.core.jobs import JobKind, JobQueue
from custom_components.ai_security.core.storage import Database


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


async def analyze_jobs(queue: JobQueue) -> list[dict[str, object]]:
    jobs = await queue.claim(JobKind.ANALYZE, 100)
    await queue.release(jobs)
    return [job.payload for job in jobs]


async def test_deadline_is_window_or_idle(db: Database) -> None:
    """A batch closes at the end of its window, or earlier when idle for the idle timeout."""
    clock = Clock()
    batcher = Batcher(db, JobQueue(db), window=90, idle=30, clock=clock)
    t0 = clock.now
    batch = await db.run(lambda s: add_to_batch(s, "cam", 1, t0))
    assert batcher.deadline(batch) == t0 + timedelta(seconds=30)
    later = t0 + timedelta(seconds=70)
    batch = await db.run(lambda s: add_to_batch(s, "cam", 2, later))
    assert batch.opened_at == t0
    assert batch.detection_count == 3
    assert batcher.deadline(batch) == t0 + timedelta(seconds=90)


async def test_a_batch_closes_once_even_when_asked_twice(db: Database) -> None:
    """Two closes racing for one batch (a stale timer and a fresh one) queue one analysis."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    changes: list[tuple[str, bool]] = []
    batcher = Batcher(
        db,
        queue,
        window=10,
        idle=5,
        clock=clock,
        on_change=lambda camera, is_open: changes.append((camera, is_open)),
    )
    t0 = clock.now
    batch = await db.run(lambda s: add_to_batch(s, "cam", 1, t0))
    batcher.track(batch)
    clock.now = t0 + timedelta(seconds=11)
    await asyncio.gather(batcher._close("cam"), batcher._close("cam"), batcher._close("cam"))
    payloads = await analyze_jobs(queue)
    assert len(payloads) == 1
    assert payloads[0]["batch_key"] == batch.batch_key
    assert changes == [("cam", True), ("cam", False)]
    assert batcher.open_cameras == frozenset()
    await batcher.stop()


async def test_a_batch_that_grew_is_not_closed_early(db: Database) -> None:
    """A timer set before new detections arrived finds the batch not yet due and waits."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    batcher = Batcher(db, queue, window=60, idle=5, clock=clock)
    t0 = clock.now
    batcher.track(await db.run(lambda s: add_to_batch(s, "cam", 1, t0)))
    grown = t0 + timedelta(seconds=4)
    await db.run(lambda s: add_to_batch(s, "cam", 1, grown))
    clock.now = t0 + timedelta(seconds=6)  # the first timer's idle deadline has passed
    await batcher._close("cam")
    assert await analyze_jobs(queue) == []
    assert batcher.open_cameras == frozenset({"cam"})
    clock.now = grown + timedelta(seconds=5)
    await batcher._close("cam")
    assert len(await analyze_jobs(queue)) == 1
    await batcher.stop()


async def test_resume_after_restart_keeps_deadlines(db: Database) -> None:
    """Batches left open by a stop close on their original deadline after the next start."""
    now = datetime.now(UTC)
    # "back" opened long ago and is overdue; "front" is due 0.3 s (its idle time) from now.
    await db.run(lambda s: add_to_batch(s, "back", 1, now - timedelta(seconds=100)))
    await db.run(lambda s: add_to_batch(s, "front", 1, now))
    queue = JobQueue(db)
    batcher = Batcher(db, queue, window=0.5, idle=0.3)
    assert await batcher.resume() == 2
    assert batcher.open_cameras == frozenset({"front", "back"})

    async def closed_both() -> bool:
        return len(await analyze_jobs(queue)) == 2

    async with asyncio.timeout(5):
        while not await closed_both():
            await asyncio.sleep(0.05)
    assert batcher.open_cameras == frozenset()
    payloads = await analyze_jobs(queue)
    assert {payload["camera_id"] for payload in payloads} == {"front", "back"}
    await batcher.stop()


async def test_a_growing_batch_closes_idle_after_its_last_detection(db: Database) -> None:
    """Detections that keep coming push the close back; it happens idle seconds after the last.

    The timer set at the first detection is kept, not replaced per detection (replaced ones
    would linger, cancelled, until their time); when it fires early it waits again.
    """
    queue = JobQueue(db)
    batcher = Batcher(db, queue, window=30, idle=0.4)
    loop = asyncio.get_running_loop()
    timers = set()
    last = 0.0
    for _ in range(6):
        now = datetime.now(UTC)
        batcher.track(await db.run(lambda s, now=now: add_to_batch(s, "cam", 1, now)))
        last = loop.time()
        timers.add(id(batcher._timers["cam"]))
        await asyncio.sleep(0.1)
    assert len(timers) <= 2  # the first one, and the one it set when it fired early
    async with asyncio.timeout(5):
        while not await analyze_jobs(queue):
            await asyncio.sleep(0.02)
    closed = loop.time()
    assert closed - last >= 0.35
    (payload,) = await analyze_jobs(queue)
    assert payload["camera_id"] == "cam"
    assert batcher.open_cameras == frozenset()
    await batcher.stop()
