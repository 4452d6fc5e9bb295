"""What the pipeline's stages share: its configuration, database, queue, cameras and zones.

Each stage (intake, detect, incidents, analyze, re-score, media) is a module with one job; they
do not reach into each other's state. What more than one of them needs lives here, built once by
pipeline.py: the resolved configuration, the database and job queue, the runner for blocking work,
the clock, the host's callbacks, the cameras known so far and their zones, and where derived
pictures go. Nothing here imports a stage.
"""

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from .derived import DerivedMedia
from .eventmedia import EventMedia
from .jobs import JobQueue
from .learned_spots import Spot
from .models import Camera, Detection, SecurityEvent
from .resilience import RetryPolicy
from .settings import LlmApi, PipelineOptions
from .storage import BlockingRunner, Database
from .zones import Zone, ZoneMap, describe as describe_zone


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything the pipeline needs to know, resolved by the host from its configuration."""

    camera_root: str
    database_url: str
    detector_urls: tuple[str, ...]
    llm_urls: tuple[str, ...]
    """The LLM servers sharing the judging; none set: every event is scored by the heuristic."""
    llm_api: LlmApi
    options: PipelineOptions
    local_tz: tzinfo
    intake_concurrency: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dedupe_ttl: float = 300.0
    detector_time_limit: float = 30.0
    llm_time_limit: float = 120.0
    summary_max: int = 200
    reasoning_max: int = 1000
    llm_extra_params: Mapping[str, Any] | None = None
    breaker_failures: int = 5
    """Consecutive failures after which a server is considered down."""
    breaker_reset: float = 30.0
    """Seconds a down server is left alone before one request probes it again."""
    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    polling_interval: float = 1.0
    media_root: str | None = None
    """Folder for annotated frames, thumbnails and clips of events; None: none are made."""
    history_before: datetime | None = None
    """When the hub was set up: uploads already there before it are history, not new arrivals.

    The start-up scan leaves them alone (they would otherwise all be judged, and announced as
    new events, the first time a folder full of old snapshots is added, or added again);
    process_old_uploads() takes them in on purpose."""


@dataclass(frozen=True, kw_only=True, slots=True)
class EventUpdate:
    """An incident judged again: what it was, what it is, and what changed."""

    previous: SecurityEvent
    event: SecurityEvent
    changed: tuple[str, ...]
    """Among "verdict" (score, level, summary or who judged) and "ended" (its end time, or it
    closed)."""
    level_rose: bool
    """Whether its level is now higher than any it had before (what is worth a new alert)."""


@dataclass(frozen=True, kw_only=True)
class PipelineCallbacks:
    """How the pipeline tells its host what happened; each runs on the loop, after the commit."""

    camera_added: Callable[[Camera], None] = lambda _camera: None
    detections: Callable[[Camera, list[Detection]], None] = lambda _camera, _found: None
    event: Callable[[Camera, SecurityEvent], None] = lambda _camera, _event: None
    """A new incident, once its key frame is drawn: once per incident."""
    batch_changed: Callable[[str, bool], None] = lambda _camera_id, _open: None
    event_updated: Callable[[Camera, EventUpdate], None] = lambda _camera, _update: None
    """An incident's verdict or end changed (judged again, closed, or re-scored by the LLM)."""
    event_media: Callable[[Camera, SecurityEvent, EventMedia], None] = (
        lambda _camera, _event, _media: None
    )
    """(camera, event, what was made): an event's pictures are ready, shortly after the event."""
    suppressed: Callable[[Camera, list[Detection]], None] = lambda _camera, _found: None
    """Detections taken for a learned spot (learned_spots.py): stored, counted, no incident."""


class Cameras:
    """The cameras known so far, by id and by folder; announced to the host when first seen."""

    def __init__(self, callbacks: PipelineCallbacks) -> None:
        """Start with none; callbacks.camera_added hears of each one added."""
        self._callbacks = callbacks
        self._by_id: dict[str, Camera] = {}
        self._by_folder: dict[str, Camera] = {}

    @property
    def by_id(self) -> Mapping[str, Camera]:
        """Return the known cameras by id."""
        return self._by_id

    def get(self, camera_id: str) -> Camera | None:
        """Return the camera with this id, if known."""
        return self._by_id.get(camera_id)

    def in_folder(self, folder: str) -> Camera | None:
        """Return the camera of this folder (relative to the camera root), if known."""
        return self._by_folder.get(folder)

    def add(self, camera: Camera, *, new: bool = False) -> bool:
        """Know camera, and tell the host unless it was known already; return whether it was.

        new (the camera's row was just created) tells the host even if the id was known.
        """
        if not new and camera.camera_id in self._by_id:
            return False
        self._by_id[camera.camera_id] = camera
        self._by_folder[camera.folder] = camera
        self._callbacks.camera_added(camera)
        return True

    def forget(self, camera_id: str) -> None:
        """Forget a camera until it is added again (its next upload)."""
        camera = self._by_id.pop(camera_id, None)
        if camera is not None:
            self._by_folder.pop(camera.folder, None)


class Zones:
    """Each camera's zones, as the user drew them; replaced as a whole when they change."""

    def __init__(self) -> None:
        """Start with no zones."""
        self._zones: dict[str, ZoneMap] = {}

    def set(self, zones: Mapping[str, ZoneMap]) -> None:
        """Use these zones (camera id -> its zones) from now on; empty maps are dropped."""
        self._zones = {camera_id: found for camera_id, found in zones.items() if len(found)}

    def of(self, camera_id: str) -> ZoneMap | None:
        """Return a camera's zones, if it has any."""
        return self._zones.get(camera_id)

    def descriptions(self, camera_id: str) -> dict[str, str]:
        """Return a camera's zones described in words, by name (for the LLM's prompt)."""
        found = self._zones.get(camera_id)
        return {} if found is None else {zone.name: describe_zone(zone) for zone in found}


class BackgroundTasks:
    """Tasks a stage starts and does not await (an upload's intake, an event's pictures).

    Kept so they are not garbage-collected while they run, waited for by tests and benchmarks,
    and cancelled at stop.
    """

    def __init__(self) -> None:
        """Start with none."""
        self.running: set[asyncio.Task[None]] = set()
        """The tasks started and not yet seen to finish (a finished one leaves with its done
        callback, in the loop's next iteration)."""

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run work as a task of its own."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def wait(self) -> None:
        """Return once every task started has finished.

        Only unfinished tasks are waited for: a finished task may still be in the set until its
        done callback runs, and awaiting finished tasks does not yield to the loop, so waiting
        for the set to empty could spin forever, freezing the loop.
        """
        while pending := [task for task in self.running if not task.done()]:
            await asyncio.wait(pending)

    async def cancel(self) -> None:
        """Cancel every task still running and return once they have ended."""
        for task in list(self.running):
            task.cancel()
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)


def zone_name(zone: Zone | None) -> str | None:
    """Return a zone's name, None for no zone."""
    return None if zone is None else zone.name


@dataclass(kw_only=True)
class StageContext:
    """What every stage is built with (see the module's docstring)."""

    config: PipelineConfig
    db: Database
    queue: JobQueue
    run_blocking: BlockingRunner
    clock: Callable[[], datetime]
    callbacks: PipelineCallbacks
    cameras: Cameras
    zones: Zones
    media: DerivedMedia | None
    """Where an event's pictures go; None: none are made."""
    notes: dict[str, str] = field(default_factory=dict)
    """Camera id -> what its owner says is normal there, for the LLM's prompt."""
    spots: dict[str, tuple[Spot, ...]] = field(default_factory=dict)
    """Camera id -> its learned spots (learned_spots.py), relearned after each review."""
    running: bool = False
    """Set between start and stop: work arriving otherwise is left for the next start."""
