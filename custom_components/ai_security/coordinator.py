"""The hub's periodic refresh: model-server health, job queue depths and the GPU, every 15 s.

Camera entities follow the cameras' coordinator (camera_coordinator.py), pushed as things happen;
what has no event of its own (is the detector still up? how deep is the queue? how hot is the
GPU?) is polled here, on the interval the user picked, for the hub's entities. Whether the camera
folder is there is polled too, and handed to the hub for the cameras' entities.

Each refresh also judges the load of the model-server box (core/load.py): the GPU's temperature,
utilisation and memory, and the LLM servers' busy slots, each held against its limits over time;
the conditions that hold are part of the refresh's figures (the Server load binary sensor and
Repairs show them).

The coordinator only fetches: what reacts to a refresh listens to it (async_add_refresh_listener)
instead of being called from here: the status announcements (service_status.py: a log line and
`ai_security_service_status` when a model server goes down or comes back) and Repairs.

The config entry type and its runtime data live here, beside the coordinator, as in Home
Assistant's own integrations: every module that reads an entry's runtime data imports them from
here, and nothing this module imports (the hub, the cameras' coordinator, the clean-up, core/)
reads one, so the modules form no import cycle (tests/library/test_import_cycles.py).
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
import os
import socket
from typing import TYPE_CHECKING, Final, override

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .core.gpu import GpuReading, NvmlReader
from .core.load import LoadCondition, LoadWatcher, load_samples
from .core.monitor import EndpointHealth, HealthReport, ServiceStatus

if TYPE_CHECKING:
    from .camera_coordinator import AiSecurityCameraCoordinator
    from .cleanup import DailyCleanup
    from .core.pipeline import Pipeline
    from .core.settings import LlmApi, PipelineOptions
    from .hub import AiSecurityHub

OUTAGE_INTERVAL: Final = timedelta(seconds=5)
"""How often servers are probed while one is down (the user's interval applies otherwise)."""


@dataclass(kw_only=True, slots=True)
class AiSecurityRuntimeData:
    """What a loaded entry holds: its resolved settings, its pipeline and the hub around it."""

    camera_root: str
    detector_urls: list[str]
    llm_urls: list[str]
    """The LLM servers sharing the judging; empty when the heuristic judges every event."""
    llm_entity: str | None
    """The AI Task entity judging beside the LLM servers (None: none)."""
    llm_api: LlmApi
    options: PipelineOptions
    hub: AiSecurityHub
    pipeline: Pipeline
    coordinator: AiSecurityCoordinator
    """The hub's entities' data, polled."""
    camera_coordinator: AiSecurityCameraCoordinator
    """The cameras' entities' data, pushed by the hub."""
    cleanup: DailyCleanup


type AiSecurityConfigEntry = ConfigEntry[AiSecurityRuntimeData]


@dataclass(frozen=True, kw_only=True, slots=True)
class HubData:
    """One refresh of the hub's polled figures."""

    health: HealthReport
    queue: dict[str, int]
    """Job counts by "<kind>_<state>", as Pipeline.queue_depths() gives them."""
    gpu: GpuReading | None
    images_processed: int
    camera_root_ok: bool = True
    """Whether the camera folder is there (an unmounted share makes it vanish)."""
    implausible_replies: Mapping[str, str] = field(default_factory=dict)
    """Detector endpoints whose replies make no sense for the images, and what is wrong."""
    pictures_refused: Mapping[str, str] = field(default_factory=dict)
    """LLM endpoints that refused the incidents' pictures (judging from text), and how."""
    load: tuple[LoadCondition, ...] = ()
    """The load conditions that hold (a GPU too hot, every LLM slot busy...), by kind."""

    def endpoint(self, key: str) -> EndpointHealth | None:
        """Return the endpoint whose key is key, if it is still configured."""
        return next((e for e in self.health.endpoints if e.key == key), None)

    @property
    def dead_jobs(self) -> int:
        """Return the dead-letter jobs of every kind."""
        return sum(count for name, count in self.queue.items() if name.endswith("_dead"))


type RefreshListener = Callable[[HubData], Awaitable[None]]
type HealthListener = Callable[[HealthReport], None]
"""Awaited with each refresh's figures before the refresh counts as done (see below)."""


class AiSecurityCoordinator(DataUpdateCoordinator[HubData]):
    """Polls the pipeline's health monitor, job queue and GPU for the hub's entities."""

    config_entry: AiSecurityConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: AiSecurityConfigEntry,
        hub: AiSecurityHub,
        interval: float,
    ) -> None:
        """Refresh every interval seconds."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.title}",
            update_interval=timedelta(seconds=interval),
        )
        self.hub = hub
        self._interval = timedelta(seconds=interval)
        self._nvml: NvmlReader | None = None
        self._refresh_listeners: list[RefreshListener] = []
        self._health_listeners: list[HealthListener] = []
        self._load = LoadWatcher()

    @callback
    def async_add_health_listener(self, listener: HealthListener) -> CALLBACK_TYPE:
        """Call listener with every round of health checks, as soon as it is done.

        Before the rest of the refresh: a server's change is told even when the refresh then
        fails (the database down), which would hold back a refresh listener.
        """
        return _listen(self._health_listeners, listener)

    @callback
    def async_add_refresh_listener(self, listener: RefreshListener) -> CALLBACK_TYPE:
        """Await listener with the figures of every refresh that fetched them; return its removal.

        Unlike async_add_listener's callbacks, listener may wait on I/O (Repairs measures the
        disks in the executor), and it has run by the time a refresh returns and the entities
        see the figures, so whoever awaits a refresh sees what it raised or cleared. A listener
        that fails fails the refresh, as any failure to fetch does.
        """
        return _listen(self._refresh_listeners, listener)

    @override
    async def _async_setup(self) -> None:
        """Open NVML once (in the executor: it loads the driver library) if the host has a GPU."""
        reader = NvmlReader()
        if await self.hass.async_add_executor_job(reader.open):
            self._nvml = reader

    @override
    async def async_shutdown(self) -> None:
        """Close NVML along with the coordinator."""
        await super().async_shutdown()
        reader, self._nvml = self._nvml, None
        if reader is not None:
            await self.hass.async_add_executor_job(reader.close)

    @override
    async def _async_update_data(self) -> HubData:
        pipeline = self.hub.pipeline
        if pipeline is None:
            raise UpdateFailed(translation_domain=DOMAIN, translation_key="not_running")
        health = await pipeline.health.check()
        self._follow_outages(health)
        for health_listener in list(self._health_listeners):
            health_listener(health)
        try:
            queue = await pipeline.queue_depths()
        except Exception as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="database_failed",
                translation_placeholders={"error": str(err)},
            ) from err
        gpu = health.gpu
        if self._nvml is not None:
            gpu = await self.hass.async_add_executor_job(self._nvml.read) or gpu
        load = self._load.update(
            load_samples(
                gpu=gpu,
                # NVML reads this host's GPU; otherwise it is the detector's that reported one.
                gpu_server=socket.gethostname()
                if gpu is not None and gpu.source == "nvml"
                else health.gpu_url,
                slots=health.llm_slots,
                slot_servers=health.llm_slot_urls,
            ),
            dt_util.utcnow().timestamp(),
        )
        root_ok = await self.hass.async_add_executor_job(os.path.isdir, pipeline.config.camera_root)
        self.hub.set_camera_root_ok(root_ok)
        data = HubData(
            health=health,
            queue=queue,
            gpu=gpu,
            images_processed=pipeline.images_processed,
            camera_root_ok=root_ok,
            implausible_replies=dict(pipeline.detector.implausible),
            pictures_refused=dict(pipeline.analyzer.vision_refused)
            if pipeline.analyzer is not None
            else {},
            load=load,
        )
        for listener in list(self._refresh_listeners):
            await listener(data)
        return data

    def _follow_outages(self, health: HealthReport) -> None:
        """Check every few seconds while a server is down, so work resumes soon after it is back.

        A health probe answered while a breaker is open lets the next request through at once
        (see HealthMonitor.check): probing often while down is what makes uploads queued during
        an outage go out within seconds of the server's return.
        """
        down = any(e.status is ServiceStatus.UNHEALTHY for e in health.endpoints)
        self.update_interval = min(self._interval, OUTAGE_INTERVAL) if down else self._interval


def _listen[T](listeners: list[T], listener: T) -> CALLBACK_TYPE:
    """Add listener to listeners; return the callback that removes it (once, harmlessly twice)."""
    listeners.append(listener)

    @callback
    def remove() -> None:
        if listener in listeners:
            listeners.remove(listener)

    return remove
