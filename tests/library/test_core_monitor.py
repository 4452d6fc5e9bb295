"""core.monitor against real HTTP servers: statuses, the shared breakers, latency windows."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from custom_components.ai_security.core.detector import DetectorError
from custom_components.ai_security.core.monitor import (
    HealthMonitor,
    LatencyWindow,
    ServiceKind,
    ServiceStatus,
    endpoint_key,
)
from custom_components.ai_security.core.resilience import CircuitBreaker, CircuitState
from custom_components.ai_security.core.settings import LlmApi
from tests.detector_server import DetectorServer
from tests.servers import ModelServer


@pytest.fixture
async def servers(socket_enabled: None) -> AsyncIterator[tuple[DetectorServer, ModelServer]]:
    detector = DetectorServer()
    llm = ModelServer()
    await detector.start()
    await llm.start()
    yield detector, llm
    await llm.stop()
    await detector.stop()


def breaker(name: str) -> CircuitBreaker:
    return CircuitBreaker(name=name, failure_threshold=2, reset_timeout=3600)


async def test_statuses_follow_probes_and_breakers(
    servers: tuple[DetectorServer, ModelServer],
) -> None:
    """Healthy; unhealthy while /health fails or requests opened the breaker; degraded on trial."""
    detector, llm = servers
    detector_breaker, llm_breaker = breaker("detector"), breaker("llm")
    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(
            session,
            detector_breakers={detector.url: detector_breaker},
            llm_breakers={llm.url: llm_breaker},
            llm_api=LlmApi.LLAMA_CPP,
        )
        report = await monitor.check()
        assert [e.status for e in report.endpoints] == [ServiceStatus.HEALTHY] * 2
        assert report.endpoints[0].key == endpoint_key(ServiceKind.DETECTOR, detector.url)
        assert report.status_of(ServiceKind.DETECTOR) is ServiceStatus.HEALTHY

        # Requests keep failing although /health answers: the breaker opens; the next check
        # sees the server answer and puts it on trial (half-open): degraded.
        detector_breaker.record_failure(DetectorError("HTTP 500"))
        detector_breaker.record_failure(DetectorError("HTTP 500"))
        assert detector_breaker.state is CircuitState.OPEN
        report = await monitor.check()
        (endpoint, _llm) = report.endpoints
        assert (endpoint.status, endpoint.circuit) == (
            ServiceStatus.DEGRADED,
            CircuitState.HALF_OPEN,
        )
        assert endpoint.last_error == "HTTP 500"
        assert detector_breaker.would_allow()
        # The trial request succeeds: healthy again.
        detector_breaker.allow_request()
        detector_breaker.record_success()
        report = await monitor.check()
        assert report.endpoints[0].status is ServiceStatus.HEALTHY

        # /health fails: unhealthy at once, and the failures count on the shared breaker.
        llm.health_status = 503
        report = await monitor.check()
        assert report.endpoints[1].status is ServiceStatus.UNHEALTHY
        assert "HTTP 503" in (report.endpoints[1].last_error or "")
        assert report.status_of(ServiceKind.LLM) is ServiceStatus.UNHEALTHY
        await monitor.check()
        assert llm_breaker.state is CircuitState.OPEN


async def test_latency_windows_keep_the_last_hundred(
    servers: tuple[DetectorServer, ModelServer],
) -> None:
    """Request latencies feed per-service medians over the last 100 requests."""
    detector, llm = servers
    window = LatencyWindow()
    for value in range(300):
        window.add(float(value))
    assert len(window) == 100
    assert window.median() == 249.5
    assert window.last == 299.0
    async with aiohttp.ClientSession() as session:
        monitor = HealthMonitor(
            session,
            detector_breakers={detector.url: breaker("d")},
            llm_breakers={llm.url: breaker("l")},
            llm_api=LlmApi.OPENAI,
        )
        for ms in (10.0, 20.0, 90.0):
            monitor.record_detector(detector.url, ms)
        monitor.record_llm(llm.url, 800.0)
        report = await monitor.check()
    assert report.detector_latency_p50_ms == 20.0
    assert report.llm_latency_p50_ms == 800.0
    assert report.endpoints[0].latency_ms == 90.0
    assert report.endpoints[0].latency_p50_ms == 20.0
    assert report.gpu is None
