"""Health of the model servers: periodic probes, latency windows, and one status per endpoint.

The detector and LLM clients already keep a circuit breaker per endpoint; the monitor shares those
breakers, so a failed health probe counts toward opening one, and a probe answered while one is
open turns it half-open at once (the next real request is the trial, without waiting out the
breaker's timer). Each endpoint's status is derived from its probe and its breaker: healthy,
degraded while the breaker is half-open (the server answers, its requests are on trial),
unhealthy while the probe fails or the breaker is open. Latency windows keep the last
100 real requests per service, which is what users feel, rather than the health probe's.

The same round reads how loaded the servers are: the detector's queue (queue_depth in its
/health answer, already fetched) and, for LLM servers that are llama.cpp, their busy slots (one
more request, after a probe that succeeded, bounded by the same time limit; core/llm_slots.py).
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import hashlib
import statistics
import time
from typing import Final

import aiohttp

from .gpu import GpuReading, gpu_from_report
from .health import ServiceUnavailableError, probe_detector, queue_depth_of, redact_url
from .llm_providers import probe_llm, provider_for
from .llm_slots import SlotReader, SlotUsage, combine
from .resilience import CircuitBreaker, CircuitState
from .settings import LlmApi

HEALTH_PROBE_TIMEOUT: Final = 5.0
"""Seconds a periodic probe may take: well inside the 15 s default interval."""

LATENCY_WINDOW: Final = 100
"""Requests whose latency the p50 figures are taken over."""


class ServiceKind(StrEnum):
    """Which model server an endpoint is."""

    DETECTOR = "detector"
    LLM = "llm"


class ServiceStatus(StrEnum):
    """An endpoint's health as users see it (and automate on)."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class LatencyWindow:
    """The latencies of the last `size` requests, for a median that follows recent behaviour."""

    def __init__(self, size: int = LATENCY_WINDOW) -> None:
        """Keep at most size values."""
        self._values: deque[float] = deque(maxlen=size)

    def add(self, milliseconds: float) -> None:
        """Record one request's latency."""
        self._values.append(milliseconds)

    @property
    def last(self) -> float | None:
        """Return the latest latency, or None before the first request."""
        return self._values[-1] if self._values else None

    def median(self) -> float | None:
        """Return the median of the window, or None before the first request."""
        return statistics.median(self._values) if self._values else None

    def __len__(self) -> int:
        """Return how many latencies are held."""
        return len(self._values)


def endpoint_key(kind: ServiceKind, url: str) -> str:
    """Return a stable, credential-free id for an endpoint (entity unique ids use it).

    A hash of the URL as configured: the same endpoint keeps its entities when others are added
    or reordered, and no password ever ends up in the entity registry.
    """
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{kind.value}_{digest}"


@dataclass(frozen=True, kw_only=True, slots=True)
class EndpointHealth:
    """What the last check found about one endpoint."""

    key: str
    kind: ServiceKind
    url: str
    """The URL without user name and password."""
    status: ServiceStatus
    circuit: CircuitState
    last_error: str | None
    latency_ms: float | None
    """The latest real request's latency (not the probe's)."""
    latency_p50_ms: float | None
    checked_at: float
    """time.time() of the check."""
    report: Mapping[str, object] = field(default_factory=dict)
    """What the server's health route answered (model, device, gpu...), empty when it failed."""
    slots: SlotUsage | None = None
    """An LLM server's busy slots, for llama.cpp servers that said (None otherwise)."""

    @property
    def queue_depth(self) -> int | None:
        """Return the images waiting at a detector, when its /health says (None otherwise)."""
        return queue_depth_of(self.report) if self.kind is ServiceKind.DETECTOR else None


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthReport:
    """One round of checks over every endpoint."""

    endpoints: tuple[EndpointHealth, ...]
    detector_latency_p50_ms: float | None
    llm_latency_p50_ms: float | None
    gpu: GpuReading | None
    """The first GPU a detector reported in its /health answer, if any."""

    @property
    def gpu_url(self) -> str | None:
        """Return the URL (no credentials) of the detector whose GPU gpu is, if any."""
        return next(
            (
                e.url
                for e in self.endpoints
                if e.kind is ServiceKind.DETECTOR and gpu_from_report(e.report) is not None
            ),
            None,
        )

    @property
    def detector_queue_depth(self) -> int | None:
        """Return the images waiting at the detectors, summed over those that say (or None).

        The pool spreads uploads over every detector, so the sum is what waits for the
        detection model as a whole; a detector that did not answer adds nothing.
        """
        depths = [e.queue_depth for e in self.endpoints if e.queue_depth is not None]
        return sum(depths) if depths else None

    @property
    def llm_slots(self) -> SlotUsage | None:
        """Return the LLM servers' slots summed over those that said (None when none did)."""
        return combine([e.slots for e in self.endpoints if e.slots is not None])

    @property
    def llm_slot_urls(self) -> tuple[str, ...]:
        """Return the URLs (no credentials) of the LLM servers whose slots llm_slots sums."""
        return tuple(e.url for e in self.endpoints if e.slots is not None)

    def status_of(self, kind: ServiceKind) -> ServiceStatus:
        """Return a service's overall status: its best endpoint's (one answering is enough)."""
        statuses = {e.status for e in self.endpoints if e.kind is kind}
        for status in (ServiceStatus.HEALTHY, ServiceStatus.DEGRADED):
            if status in statuses:
                return status
        return ServiceStatus.UNHEALTHY


class HealthMonitor:
    """Probes every endpoint on demand and keeps request latencies between probes."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        detector_breakers: Mapping[str, CircuitBreaker],
        llm_breakers: Mapping[str, CircuitBreaker],
        llm_api: LlmApi,
        probe_timeout: float = HEALTH_PROBE_TIMEOUT,
        llm_probes: Mapping[str, Callable[[], Awaitable[Mapping[str, object]]]] | None = None,
    ) -> None:
        """Watch the detector and LLM endpoints (URL -> breaker), sharing their breakers.

        No LLM breakers means no LLM server is set: there is no LLM endpoint to watch.
        llm_probes check the LLM endpoints that are no HTTP server (an AI Task entity, by its
        name) their own way; the others are asked over HTTP as their API says.
        """
        self._llm_probes = dict(llm_probes or {})
        self._session = session
        self._detectors = dict(detector_breakers)
        self._by_redacted = {redact_url(url): url for url in self._detectors}
        self._llms = dict(llm_breakers)
        self._llm_api = llm_api
        self._probe_timeout = probe_timeout
        self.detector_latency = LatencyWindow()
        self.llm_latency = LatencyWindow()
        self._endpoint_latency: dict[str, LatencyWindow] = {
            url: LatencyWindow() for url in [*self._detectors, *self._llms]
        }
        self._slot_readers = {
            url: SlotReader(session, url, time_limit=probe_timeout)
            for url in self._llms
            if url not in self._llm_probes
        }

    def record_detector(self, endpoint: str, milliseconds: float) -> None:
        """Record a detect request's latency; endpoint is the URL as the client reports it."""
        self.detector_latency.add(milliseconds)
        url = self._by_redacted.get(endpoint, endpoint)
        if (window := self._endpoint_latency.get(url)) is not None:
            window.add(milliseconds)

    def record_llm(self, endpoint: str, milliseconds: float) -> None:
        """Record an LLM request's latency; endpoint is the URL as configured."""
        self.llm_latency.add(milliseconds)
        if (window := self._endpoint_latency.get(endpoint)) is not None:
            window.add(milliseconds)

    async def check(self) -> HealthReport:
        """Probe every endpoint at once and return what was found.

        A failed probe is recorded on the endpoint's breaker like a failed request; a probe
        answered while the breaker is open turns it half-open, so the pipeline's workers try a
        request without waiting for the breaker's own timer.
        """
        detector_urls = list(self._detectors)
        results = await asyncio.gather(
            *(
                self._check_one(ServiceKind.DETECTOR, url, self._detectors[url])
                for url in detector_urls
            ),
            *(self._check_one(ServiceKind.LLM, url, self._llms[url]) for url in self._llms),
        )
        gpu = next(
            (
                reading
                for entry in results
                if entry.kind is ServiceKind.DETECTOR
                and (reading := gpu_from_report(entry.report)) is not None
            ),
            None,
        )
        return HealthReport(
            endpoints=tuple(results),
            detector_latency_p50_ms=self.detector_latency.median(),
            llm_latency_p50_ms=self.llm_latency.median(),
            gpu=gpu,
        )

    async def _check_one(
        self, kind: ServiceKind, url: str, breaker: CircuitBreaker
    ) -> EndpointHealth:
        report: Mapping[str, object] = {}
        probe_error: str | None = None
        slots: SlotUsage | None = None
        try:
            if kind is ServiceKind.DETECTOR:
                report = await probe_detector(self._session, url, time_limit=self._probe_timeout)
            elif (probe := self._llm_probes.get(url)) is not None:
                report = await probe()
            else:
                report = await probe_llm(
                    self._session, url, self._llm_api, time_limit=self._probe_timeout
                )
        except ServiceUnavailableError as err:
            probe_error = str(err)
            breaker.record_failure(err)
        else:
            # Answering /health is not proof that requests work (the breaker may be open
            # because they fail): it earns the next real request a trial, which decides.
            breaker.trial()
            reader = self._slot_readers.get(url) if kind is ServiceKind.LLM else None
            if reader is not None and provider_for(self._llm_api).has_slots(report):
                slots = await reader.read()
        if probe_error is not None or breaker.state is CircuitState.OPEN:
            status = ServiceStatus.UNHEALTHY
        elif breaker.state is CircuitState.HALF_OPEN:
            status = ServiceStatus.DEGRADED
        else:
            status = ServiceStatus.HEALTHY
        window = self._endpoint_latency[url]
        return EndpointHealth(
            key=endpoint_key(kind, url),
            kind=kind,
            url=redact_url(url),
            status=status,
            circuit=breaker.state,
            last_error=probe_error or breaker.last_error,
            latency_ms=window.last,
            latency_p50_ms=window.median(),
            checked_at=time.time(),
            report=report,
            slots=slots,
        )

    def endpoints(self) -> Sequence[tuple[str, ServiceKind, str]]:
        """Return (key, kind, redacted URL) of every endpoint, for creating entities up front."""
        return [
            *(
                (endpoint_key(ServiceKind.DETECTOR, url), ServiceKind.DETECTOR, redact_url(url))
                for url in self._detectors
            ),
            *(
                (endpoint_key(ServiceKind.LLM, url), ServiceKind.LLM, redact_url(url))
                for url in self._llms
            ),
        ]
