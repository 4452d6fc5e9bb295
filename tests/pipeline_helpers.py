"""Building blocks for pipeline tests: distinct camera images, a recording host, a factory."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass, field, replace
import io
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np
from PIL import Image

from custom_components.ai_security.core.jobs import Job, JobKind, JobState
from custom_components.ai_security.core.models import Camera, Detection, SecurityEvent
from custom_components.ai_security.core.pipeline import (
    EventUpdate,
    Pipeline,
    PipelineCallbacks,
    PipelineConfig,
)
from custom_components.ai_security.core.resilience import RetryPolicy
from custom_components.ai_security.core.settings import LlmApi, PipelineOptions


def jpeg(seed: int, width: int = 320, height: int = 240) -> bytes:
    """Return a JPEG whose content differs for every seed (so it hashes differently)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def write(path: Path, content: bytes) -> Path:
    """Write an upload, creating its camera folder (blocking: call through to_thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], seconds: float = 10.0, what: str = ""
) -> None:
    """Poll condition until it holds; fail the test with what it was waiting for otherwise."""
    try:
        async with asyncio.timeout(seconds):
            while True:
                result = condition()
                if not isinstance(result, bool):
                    result = await result
                if result:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None


@dataclass
class Recorder:
    """The host side of a pipeline: records what the pipeline announces."""

    cameras: list[Camera] = field(default_factory=list)
    detections: list[tuple[str, Detection]] = field(default_factory=list)
    events: list[SecurityEvent] = field(default_factory=list)
    """Incidents as announced when they opened (and events of version-3 batches)."""
    batches: list[tuple[str, bool]] = field(default_factory=list)
    updates: list[EventUpdate] = field(default_factory=list)

    @property
    def closed(self) -> list[SecurityEvent]:
        """Incidents as they were when they closed, in closing order."""
        return [u.event for u in self.updates if u.previous.ongoing and not u.event.ongoing]

    def latest(self, event_id: str) -> SecurityEvent:
        """Return an incident as last announced."""
        for update in reversed(self.updates):
            if update.event.event_id == event_id:
                return update.event
        return next(event for event in self.events if event.event_id == event_id)

    def callbacks(self) -> PipelineCallbacks:
        return PipelineCallbacks(
            camera_added=self.cameras.append,
            detections=lambda camera, found: self.detections.extend(
                (camera.camera_id, d) for d in found
            ),
            event=lambda _camera, event: self.events.append(event),
            batch_changed=lambda camera_id, is_open: self.batches.append((camera_id, is_open)),
            event_updated=lambda _camera, update: self.updates.append(update),
        )


def fast_options(**changes: Any) -> PipelineOptions:
    """Return options with short windows, so batches close within a test's patience."""
    defaults: dict[str, Any] = {
        "batch_window": 1.5,
        "batch_idle_timeout": 0.6,
        "debounce": 0.1,
        "fast_path_objects": ("person",),
        "fast_path_confidence": 0.9,
    }
    return replace(PipelineOptions(), **(defaults | changes))


def config(
    root: Path, database_url: str, detector_url: str, llm_url: str, **changes: Any
) -> PipelineConfig:
    """Return a pipeline configuration for tests (fast retries, short breaker pauses).

    llm_url is the one LLM server ("" for none); pass llm_urls in changes for a pool.
    """
    values: dict[str, Any] = {
        "camera_root": str(root),
        "database_url": database_url,
        "detector_urls": (detector_url,),
        "llm_urls": (llm_url,) if llm_url else (),
        "llm_api": LlmApi.LLAMA_CPP,
        "options": fast_options(),
        "local_tz": ZoneInfo("Europe/Amsterdam"),
        "retry": RetryPolicy(max_attempts=5, base=0.05, maximum=0.2),
        "breaker_reset": 0.3,
        "detector_time_limit": 2.0,
        "llm_time_limit": 5.0,
    }
    return PipelineConfig(**(values | changes))


@contextlib.asynccontextmanager
async def running(
    cfg: PipelineConfig, recorder: Recorder | None = None
) -> AsyncIterator[tuple[Pipeline, Recorder]]:
    """Run a pipeline for the duration of the block, with its own HTTP session."""
    recorder = recorder or Recorder()
    async with aiohttp.ClientSession() as session:
        pipeline = Pipeline(cfg, session, callbacks=recorder.callbacks())
        await pipeline.start()
        try:
            yield pipeline, recorder
        finally:
            await pipeline.stop()


async def wait_for_jobs(
    pipeline: Pipeline, kind: JobKind, state: JobState, count: int, seconds: float = 10.0
) -> None:
    """Wait until exactly count jobs of kind are in state."""

    async def reached() -> bool:
        return (await pipeline.queue.counts()).get((kind, state), 0) == count

    await wait_until(reached, seconds, what=f"{count} {state} {kind} job(s)")


async def wait_for_dead_jobs(pipeline: Pipeline, seconds: float = 10.0) -> list[Job]:
    """Wait until a job has given up; return the dead jobs."""

    async def any_dead() -> bool:
        return bool(await pipeline.queue.dead_jobs())

    await wait_until(any_dead, seconds, what="a dead job")
    return await pipeline.queue.dead_jobs()
