"""One replay of the synthetic weeks through the real pipeline, with or without the user's reviews.

The core pipeline runs as Home Assistant runs it (folder watcher, SQLite, job queue, detector
and LLM over HTTP), on a clock that is the visit's time plus the real time elapsed, so days
pass in milliseconds while the incidents' own timers still run. Visits are replayed one at a
time: the scripted detector (the tests' protocol-speaking server) answers each upload with its
scene's boxes, the scripted LLM stub with its scene's score, and every incident is closed once
its upload is taken in. The phone is notified when the incident's level, at opening or later,
reaches the notification blueprint's default minimum (high). The simulated user presses "False
alarm" on the night's false alarms the next morning at 08:00, the first ones only (a budget of
reviews; real alarms are acted on, not reviewed), each through the review operation the
review_event action uses, followed by relearning the camera's spots as that action does.
"""

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path
import tempfile
import time as monotonic_time

import aiohttp

from custom_components.ai_security.core import operations
from custom_components.ai_security.core.jobs import JobState
from custom_components.ai_security.core.models import (
    Camera,
    Detection,
    RiskLevel,
    SecurityEvent,
)
from custom_components.ai_security.core.pipeline import EventUpdate, Pipeline, PipelineCallbacks
from tests.detector_server import DetectorServer, Reply, detections
from tests.pipeline_helpers import config, jpeg, wait_until, write
from tests.servers import LlmStub

from .world import TZ, Visit

NOTIFIED: frozenset[RiskLevel] = frozenset({RiskLevel.HIGH, RiskLevel.CRITICAL})
"""The notification blueprint's default minimum level (high) and above."""
REVIEW_HOUR = time(8, 0)


@dataclass(slots=True)
class Outcome:
    """What became of one visit."""

    visit: Visit
    notified: bool = False
    suppressed: bool = False
    """The detector's boxes were all taken for a learned spot: no incident at all."""
    event_id: str = ""
    levels: list[RiskLevel] = field(default_factory=list)
    """Every level the incident was announced with (opening, verdict, end)."""
    calibration: str = ""
    reviews_before: int = 0
    """Reviews the user had made when the visit happened."""


@dataclass(slots=True)
class _Host:
    """The pipeline's host: what it announced."""

    opened: dict[str, SecurityEvent] = field(default_factory=dict)
    latest: dict[str, SecurityEvent] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)
    levels: dict[str, list[RiskLevel]] = field(default_factory=dict)
    suppressed: int = 0
    detected: int = 0

    def callbacks(self) -> PipelineCallbacks:
        return PipelineCallbacks(
            event=self._event,
            event_updated=self._updated,
            detections=self._detections,
            suppressed=self._suppressed,
        )

    def _event(self, _camera: Camera, event: SecurityEvent) -> None:
        self.opened[event.event_id] = event
        self.latest[event.event_id] = event
        self.levels.setdefault(event.event_id, []).append(event.risk_level)

    def _updated(self, _camera: Camera, update: EventUpdate) -> None:
        event = update.event
        self.latest[event.event_id] = event
        self.levels.setdefault(event.event_id, []).append(event.risk_level)
        if not event.ongoing:
            self.closed.add(event.event_id)

    def _detections(self, _camera: Camera, found: list[Detection]) -> None:
        self.detected += 1

    def _suppressed(self, _camera: Camera, found: list[Detection]) -> None:
        self.suppressed += 1


class _Clock:
    """The visit's time plus the real time elapsed since it was set."""

    def __init__(self, start: datetime) -> None:
        self._base = start
        self._set = monotonic_time.monotonic()

    def __call__(self) -> datetime:
        return self._base + timedelta(seconds=monotonic_time.monotonic() - self._set)

    def go_to(self, when: datetime) -> None:
        self._base, self._set = when, monotonic_time.monotonic()


async def replay(visits: list[Visit], *, review_budget: int) -> list[Outcome]:
    """Replay visits in order; the user makes at most review_budget reviews."""
    detector = DetectorServer()
    llm = LlmStub()
    await detector.start()
    await llm.start()
    clock = _Clock(visits[0].at - timedelta(hours=1))
    host = _Host()
    outcomes: list[Outcome] = []
    pending: list[Outcome] = []
    reviews = 0
    try:
        with tempfile.TemporaryDirectory(prefix="bench_calibration_") as folder:
            root = Path(folder) / "cameras"
            root.mkdir()
            cfg = config(root, f"sqlite:///{folder}/bench.db", detector.url, llm.url)
            cfg = replace(cfg, local_tz=TZ)
            async with aiohttp.ClientSession() as session:
                pipeline = Pipeline(cfg, session, callbacks=host.callbacks(), clock=clock)
                await pipeline.start()
                try:
                    for number, visit in enumerate(visits):
                        # The user's morning: last night's alarms, the first ones only.
                        while pending and reviews < review_budget:
                            due = datetime.combine(
                                pending[0].visit.at.astimezone(TZ).date()
                                + timedelta(days=pending[0].visit.at.astimezone(TZ).hour >= 12),
                                REVIEW_HOUR,
                                TZ,
                            )
                            if due > visit.at:
                                break
                            clock.go_to(due)
                            await _review(pipeline, pending.pop(0), due)
                            reviews += 1
                        clock.go_to(visit.at)
                        outcome = await _visit(pipeline, detector, llm, host, root, number, visit)
                        outcome.reviews_before = reviews
                        outcomes.append(outcome)
                        if (
                            outcome.notified
                            and not visit.threat
                            and reviews + len(pending) < review_budget
                        ):
                            pending.append(outcome)
                finally:
                    await pipeline.stop()
    finally:
        await llm.stop()
        await detector.stop()
    return outcomes


async def _visit(  # noqa: PLR0917 - the replay's parts, each needed
    pipeline: Pipeline,
    detector: DetectorServer,
    llm: LlmStub,
    host: _Host,
    root: Path,
    number: int,
    visit: Visit,
) -> Outcome:
    """Upload the visit's picture and follow its incident to its end."""
    detector.queue(Reply(body=detections(*(seen.as_detection() for seen in visit.seen))))
    llm.verdict = {
        "risk_score": visit.score,
        "risk_level": "",
        "summary": f"The {visit.scene}",
        "reasoning": f"Scripted verdict for the {visit.scene}.",
    }
    heard = host.detected + host.suppressed
    before = set(host.opened)
    content = jpeg(number, 640, 480)
    path = root / visit.camera / f"{number:05d}.jpg"
    await asyncio.to_thread(write, path, content)
    await wait_until(
        lambda: host.detected + host.suppressed > heard, 20, f"visit {number} to be detected"
    )
    # Both callbacks of one upload follow its one commit: let the loop run them.
    await asyncio.sleep(0.01)
    new = set(host.opened) - before
    outcome = Outcome(visit)
    if not new:
        outcome.suppressed = True
        return outcome
    (event_id,) = new
    camera_id = host.opened[event_id].camera_id
    await pipeline.batcher.close_now(camera_id)
    await wait_until(lambda: event_id in host.closed, 20, f"visit {number}'s incident to close")
    await _settled(pipeline)
    final = host.latest[event_id]
    outcome.event_id = event_id
    outcome.levels = list(host.levels[event_id])
    outcome.notified = any(level in NOTIFIED for level in outcome.levels)
    outcome.calibration = final.calibration
    return outcome


async def _settled(pipeline: Pipeline) -> None:
    """Return once no job is waiting or running (the incident's last verdict is in)."""
    for _ in range(4000):
        counts = await pipeline.queue.counts()
        if not any(state in (JobState.QUEUED, JobState.RUNNING) for _kind, state in counts):
            return
        await asyncio.sleep(0.005)
    raise RuntimeError("the pipeline's jobs did not settle")


async def _review(pipeline: Pipeline, outcome: Outcome, now: datetime) -> None:
    """Mark a false alarm as the user does from the card or the phone's "False alarm"."""
    event = await operations.review_event(
        pipeline.db,
        outcome.event_id,
        reviewed=True,
        dismissed=True,
        note=None,
        now=now,
        keep=None,
    )
    if event is None:
        raise RuntimeError(f"the event {outcome.event_id} is gone")
    await pipeline.relearn_spots(event.camera_id)
