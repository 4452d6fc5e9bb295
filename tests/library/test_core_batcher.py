"""core.batcher on SQLite and PostgreSQL: incident windows, idle times, caps, closing, resuming."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from custom_components.ai_security.core.batcher import Batcher
from custom_components.ai_security.core.incident_rows import add_to_batch, claim_fast
from custom_components.ai_security.core.jobs import JobKind, JobQueue
from custom_components.ai_security.core.storage import BatchRow, Database


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


async def test_deadline_is_idle_cap_or_window(db: Database) -> None:
    """An incident closes when idle or at its cap; first its window ends if anything is unjudged."""
    clock = Clock()
    batcher = Batcher(db, JobQueue(db), window=90, idle=30, cap=600, clock=clock)
    t0 = clock.now
    change = await db.run(lambda s: add_to_batch(s, "cam", 1, t0))
    assert change.opened
    assert change.batch.event_id is not None
    # Everything seen is judged (the instant verdict): only idleness or the cap close it.
    assert batcher.deadline(change.batch) == t0 + timedelta(seconds=30)
    later = t0 + timedelta(seconds=70)
    grown = await db.run(lambda s: add_to_batch(s, "cam", 2, later))
    assert not grown.opened
    batch = grown.batch
    assert (batch.opened_at, batch.detection_count, batch.event_id) == (
        t0,
        3,
        change.batch.event_id,
    )
    assert batcher.deadline(batch) == t0 + timedelta(seconds=90)  # the window, unjudged
    assert batcher.ends(batch) == later + timedelta(seconds=30)
    at_cap = t0 + timedelta(seconds=590)
    batch = (await db.run(lambda s: add_to_batch(s, "cam", 1, at_cap))).batch
    assert batcher.ends(batch) == t0 + timedelta(seconds=600)


async def test_the_cap_closes_an_incident_and_opens_the_next(db: Database) -> None:
    """Someone who never leaves makes a new incident each cap; the last is judged a final time."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    t0 = clock.now
    first = await db.run(lambda s: add_to_batch(s, "cam", 1, t0, cap=timedelta(minutes=10)))
    at = t0 + timedelta(minutes=10, seconds=1)
    second = await db.run(lambda s: add_to_batch(s, "cam", 1, at, cap=timedelta(minutes=10)))
    clock.now = at
    assert second.opened
    assert second.closed is not None
    assert second.closed.batch_key == first.batch.batch_key
    assert second.batch.event_id != first.batch.event_id
    (payload,) = await analyze_jobs(queue)
    assert payload["event_id"] == first.batch.event_id
    assert payload["final"] is True
    assert payload["batch_key"] == first.batch.batch_key


async def test_a_window_judges_a_lasting_incident_without_closing_it(db: Database) -> None:
    """While detections keep coming, the incident is judged each window and stays open."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    batcher = Batcher(db, queue, window=60, idle=30, cap=600, clock=clock)
    t0 = clock.now
    batcher.track((await db.run(lambda s: add_to_batch(s, "cam", 1, t0))).batch)
    for seconds in (20, 40, 59):
        at = t0 + timedelta(seconds=seconds)
        batcher.track((await db.run(lambda s, at=at: add_to_batch(s, "cam", 1, at))).batch)
    clock.now = t0 + timedelta(seconds=60)
    await batcher._close("cam")
    (payload,) = await analyze_jobs(queue)
    assert payload["final"] is False
    assert payload["judged"] == 4
    assert batcher.open_cameras == frozenset({"cam"})
    for job in await queue.claim(JobKind.ANALYZE, 10):
        await queue.complete(job)
    # Nothing new since: the next window asks nothing; idleness closes it.
    clock.now = t0 + timedelta(seconds=89)
    await batcher._close("cam")
    (payload,) = await analyze_jobs(queue)
    assert payload["final"] is True
    assert batcher.open_cameras == frozenset()
    await batcher.stop()


async def test_the_llm_is_asked_at_once_only_once_per_incident(db: Database) -> None:
    """Uploads with a person arriving together claim the incident's immediate judgement once."""
    t0 = Clock().now
    batch = (await db.run(lambda s: add_to_batch(s, "cam", 1, t0))).batch
    claims = [await db.run(lambda s: claim_fast(s, batch)) for _ in range(3)]
    assert claims == [True, False, False]


async def test_a_batch_left_by_the_previous_schema_closes_as_one_event(db: Database) -> None:
    """A batch row without an incident closes at its window's end, judged into a new event."""
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    batcher = Batcher(db, queue, window=90, idle=30, cap=600, clock=clock)
    t0 = clock.now

    def legacy(session: Session) -> None:
        session.execute(
            insert(BatchRow).values(
                camera_id="cam",
                batch_key="old",
                opened_at=t0 - timedelta(seconds=100),
                last_detection_at=t0,
                detection_count=2,
            )
        )

    await db.run(legacy)
    assert await batcher.resume() == 1
    await batcher._close("cam")
    (payload,) = await analyze_jobs(queue)
    assert "event_id" not in payload
    assert payload["batch_key"] == "old"
    await batcher.stop()


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
    batch = (await db.run(lambda s: add_to_batch(s, "cam", 1, t0))).batch
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
    batcher.track((await db.run(lambda s: add_to_batch(s, "cam", 1, t0))).batch)
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
    batcher = Batcher(db, queue, window=0.5, idle=0.3, cap=0.5)
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
    timers: list[asyncio.TimerHandle] = []  # kept alive, so no two share an id
    last = started = loop.time()
    try:
        for _ in range(6):
            now = datetime.now(UTC)
            batcher.track((await db.run(lambda s, now=now: add_to_batch(s, "cam", 1, now))).batch)
            last = loop.time()
            if not timers or timers[-1] is not batcher._timers["cam"]:
                timers.append(batcher._timers["cam"])
            await asyncio.sleep(0.1)
        # Replaced per detection, there would be six. A timer is only replaced when it fired
        # early, which takes an idle time (0.4 s) each: at most one more per idle time passed
        # (two on a quiet machine, more where the database answers slowly).
        assert len(timers) <= 1 + int((loop.time() - started) / 0.4)
        async with asyncio.timeout(5):
            while not await analyze_jobs(queue):
                await asyncio.sleep(0.02)
        closed = loop.time()
        assert closed - last >= 0.35
        (payload,) = await analyze_jobs(queue)
        assert payload["camera_id"] == "cam"
        assert batcher.open_cameras == frozenset()
    finally:
        await batcher.stop()


async def test_a_detection_after_the_idle_time_opens_a_new_incident(db: Database) -> None:
    """An incident idle too long is over even when its timer never fired (Home Assistant was down).

    The next detection closes it and opens the next visit.
    """
    clock = Clock()
    queue = JobQueue(db, clock=clock)
    t0 = clock.now
    idle = timedelta(seconds=30)
    first = await db.run(lambda s: add_to_batch(s, "cam", 1, t0, idle=idle))
    soon = t0 + timedelta(seconds=29)
    assert not (await db.run(lambda s: add_to_batch(s, "cam", 1, soon, idle=idle))).opened
    later = soon + timedelta(seconds=31)
    second = await db.run(lambda s: add_to_batch(s, "cam", 1, later, idle=idle))
    assert second.opened
    assert second.closed is not None
    assert second.closed.event_id == first.batch.event_id
    clock.now = later
    (payload,) = await analyze_jobs(queue)
    assert (payload["event_id"], payload["final"]) == (first.batch.event_id, True)
