"""Pipeline.wait_for_media and wait_for_intake return when a task they track has just ended.

A task leaves the pipeline's set through its done callback, which the loop runs in its next
iteration, not when the task ends. A caller that looks in between finds a finished task still
in the set. Since Python 3.12, gathering only finished tasks completes without yielding to the
loop, so "while the set is not empty: gather it" never let that callback run: the event loop
span at 100 % CPU for good (tests that searched for an event and waited for its pictures hung
until the faulthandler dump). Each wait here runs on its own loop in a thread, so a spinning
wait fails the test after a bound instead of hanging the run.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
import threading

import pytest

from custom_components.ai_security.core.models import Camera, EventSource, RiskLevel, SecurityEvent
from custom_components.ai_security.core.pipeline import Pipeline
from tests.pipeline_helpers import config, running

PATIENCE = 20.0
"""Seconds a wait may take here; it needs milliseconds (slow machines included)."""

EVENT = SecurityEvent(
    event_id="e1",
    camera_id="porch",
    started_at=datetime(2026, 11, 26, 22, 0, tzinfo=UTC),
    ended_at=datetime(2026, 11, 26, 22, 0, 5, tzinfo=UTC),
    risk_score=10,
    risk_level=RiskLevel.LOW,
    summary="",
    reasoning="",
    object_types=(),
    detection_count=0,
    is_fast_path=False,
    source=EventSource.HEURISTIC,
)


def start_media(pipeline: Pipeline, root: Path) -> set[asyncio.Task[None]]:
    """Make the pictures of an event without detections: a task that ends in its first step."""
    pipeline.announcer.announce(Camera(camera_id="porch", name="Porch", folder="Porch"), EVENT, [])
    return pipeline.announcer.tasks.running


def start_intake(pipeline: Pipeline, root: Path) -> set[asyncio.Task[None]]:
    """Submit a path outside any camera folder: an intake task that ends in its first step."""
    pipeline.submit(str(root / "stray.jpg"))
    return pipeline.intake.tasks.running


async def wait_for_media(pipeline: Pipeline) -> None:
    await pipeline.wait_for_media()


async def wait_for_intake(pipeline: Pipeline) -> None:
    await pipeline.wait_for_intake()


@pytest.mark.parametrize(
    ("start", "wait"),
    [(start_media, wait_for_media), (start_intake, wait_for_intake)],
    ids=["media", "intake"],
)
def test_wait_returns_while_a_finished_task_is_still_tracked(
    tmp_path: Path,
    start: Callable[[Pipeline, Path], set[asyncio.Task[None]]],
    wait: Callable[[Pipeline], Awaitable[None]],
) -> None:
    """A task that ended in this loop iteration, its removal still pending, is waited for once."""
    root = tmp_path / "cameras"
    root.mkdir()
    cfg = config(
        root,
        f"sqlite:///{tmp_path / 'ai_security.db'}",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        media_root=str(tmp_path / "media"),
    )
    tracked: list[set[asyncio.Task[None]]] = []
    seen: list[tuple[bool, bool]] = []
    failures: list[BaseException] = []

    async def scenario() -> None:
        async with running(cfg) as (pipeline, _recorder):
            tasks = start(pipeline, root)
            tracked.append(tasks)
            (task,) = tasks
            # The task runs and ends before this coroutine resumes; its done callback (which
            # takes it out of the set) is only scheduled, for the loop's next iteration.
            await asyncio.sleep(0)
            seen.append((task.done(), task in tasks))
            await wait(pipeline)

    def run() -> None:
        try:
            asyncio.run(scenario())
        except BaseException as err:  # noqa: BLE001 - reported by the test's thread
            failures.append(err)

    thread = threading.Thread(target=run, name="pipeline wait test", daemon=True)
    thread.start()
    thread.join(PATIENCE)
    spun = thread.is_alive()
    if spun:
        # The spinning wait checks the set on each round: emptying it lets the thread end.
        tracked[0].clear()
        thread.join(PATIENCE)
    assert seen == [(True, True)], "the scenario did not catch a finished task still tracked"
    assert not spun, f"the wait did not return within {PATIENCE} s: it spins on a finished task"
    assert not failures, failures
