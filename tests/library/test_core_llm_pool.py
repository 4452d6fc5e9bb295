"""The LLM side as a pool of servers: least in flight, a breaker each, a dead one passed over.

The pool itself is checked on its own (which endpoint, which breaker is told what); the analyzer,
the health monitor and the whole pipeline against several LLM stubs over real HTTP on 127.0.0.1,
one of them often a port nobody listens on.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.ai_security.core.analyzer import (
    Analyzer,
    AnalyzerError,
    LlmUnavailableError,
)
from custom_components.ai_security.core.endpoint_pool import EndpointPool
from custom_components.ai_security.core.models import BoundingBox, Detection, EventSource
from custom_components.ai_security.core.monitor import (
    HealthMonitor,
    ServiceKind,
    ServiceStatus,
    endpoint_key,
)
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.resilience import CircuitOpenError, CircuitState
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import config, jpeg, running, wait_until, write
from tests.servers import LlmStub, free_port

A, B, C = "http://a:8080", "http://b:8080", "http://c:8080"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request() -> AnalysisRequest:
    """Return a small batch to judge."""
    at = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
    return AnalysisRequest(
        camera_name="Front Door",
        started_at=at,
        ended_at=at,
        local_tz=UTC,
        detections=(
            Detection(
                label="person",
                confidence=0.9,
                bbox=BoundingBox(x=10, y=10, w=50, h=120),
                frame_width=640,
                frame_height=480,
                detected_at=at,
                frame_time=None,
                path="a.jpg",
            ),
        ),
    )


# --- The pool on its own -----------------------------------------------------------------------


def test_choose_takes_the_least_busy_then_the_earliest() -> None:
    """Fewest in flight wins, ties go to configuration order, repeats are one endpoint."""
    pool = EndpointPool([A, B, A, C], service="LLM")
    assert pool.urls == (A, B, C)
    assert pool.choose() == A
    with pool.sending(A):
        assert pool.choose() == B
        with pool.sending(B), pool.sending(A):
            assert pool.choose() == C
        assert pool.in_flight(A) == 1
    assert pool.in_flight(A) == pool.in_flight(B) == 0
    assert pool.choose(exclude=[A]) == B
    assert pool.breakers[B].name == "LLM http://b:8080"
    with pytest.raises(ValueError, match="at least one LLM URL"):
        EndpointPool([], service="LLM")
    with pytest.raises(TypeError, match="a list of URLs"):
        EndpointPool(A, service="LLM")


def test_open_breakers_are_passed_over_and_the_oldest_is_named() -> None:
    """An open breaker takes nothing; when all refuse, the error names the one open longest."""
    clock = Clock()
    pool = EndpointPool([A, B], service="LLM", failure_threshold=1, reset_timeout=30, clock=clock)
    pool.breakers[A].record_failure("connection refused")
    assert pool.choose() == B
    assert pool.would_allow()
    assert pool.any_closed()
    clock.now += 1
    pool.breakers[B].record_failure("HTTP 500")
    assert not pool.would_allow()
    assert not pool.any_closed()
    with pytest.raises(CircuitOpenError, match="LLM http://a:8080 is unavailable: connection"):
        pool.choose()
    with pytest.raises(CircuitOpenError, match="LLM http://b:8080"):
        pool.choose(exclude=[A])
    clock.now += 30  # both may probe again; only one probe each
    assert pool.would_allow()
    assert pool.choose() == A
    assert pool.breakers[A].state is CircuitState.HALF_OPEN
    assert pool.choose() == B
    with pytest.raises(CircuitOpenError):
        pool.choose()


class RefusedError(Exception):
    """The server answered and said no (like an HTTP 400)."""


async def fail_in(pool: EndpointPool, error: BaseException, **kwargs: Any) -> None:
    """Raise error inside one request of pool, with the URL it was given as its message."""
    async with pool.request(**kwargs) as url:
        error.args = (url,)
        raise error


async def test_request_tells_the_chosen_breaker_how_it_went() -> None:
    """Success closes, failure counts, answered errors are successes, cancel frees a probe."""
    clock = Clock()
    pool = EndpointPool([A, B], service="LLM", failure_threshold=2, reset_timeout=5, clock=clock)
    with pytest.raises(OSError, match=A):
        await fail_in(pool, OSError())
    assert pool.breakers[A].consecutive_failures == 1
    assert pool.in_flight(A) == 0
    with pytest.raises(RefusedError, match=A):
        await fail_in(pool, RefusedError(), answered=(RefusedError,))
    assert pool.breakers[A].consecutive_failures == 0
    async with pool.request(exclude=[A]) as url:
        assert (url, pool.in_flight(B)) == (B, 1)
    assert pool.in_flight(B) == 0
    for _ in range(2):
        with pytest.raises(OSError, match=A):
            await fail_in(pool, OSError(), exclude=[B])
    assert pool.breakers[A].state is CircuitState.OPEN
    clock.now += 5
    with pytest.raises(asyncio.CancelledError, match=A):
        await fail_in(pool, asyncio.CancelledError(), exclude=[B])
    assert pool.breakers[A].state is CircuitState.HALF_OPEN
    # The cancelled probe was given back: the next request is the probe, and it closes A.
    async with pool.request(exclude=[B]) as url:
        assert url == A
    assert pool.breakers[A].state is CircuitState.CLOSED


# --- The analyzer over several servers ----------------------------------------------------------


@pytest.fixture
async def stubs(socket_enabled: None) -> AsyncIterator[tuple[LlmStub, LlmStub]]:
    """Two LLM stubs answering exact verdicts."""
    first, second = LlmStub(), LlmStub()
    await first.start()
    await second.start()
    yield first, second
    await second.stop()
    await first.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def analyzer(session: aiohttp.ClientSession, urls: list[str], **kwargs: object) -> Analyzer:
    return Analyzer(
        session,
        urls,
        LlmApi.LLAMA_CPP,
        thresholds=SeverityThresholds(),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_concurrent_batches_share_the_servers(
    stubs: tuple[LlmStub, LlmStub], session: aiohttp.ClientSession
) -> None:
    """Four batches at once on two slow servers: two each, and each verdict says where it came."""
    first, second = stubs
    first.completion_delay = second.completion_delay = 0.3
    pool = analyzer(session, [first.url, second.url])
    results = await asyncio.gather(*(pool.analyze_at(request()) for _ in range(4)))
    assert len(first.requests) == len(second.requests) == 2
    assert sorted(url for _verdict, url in results) == sorted([first.url, second.url] * 2)
    assert all(verdict.source is EventSource.LLM for verdict, _url in results)


async def test_a_dead_server_is_passed_over_then_left_alone(
    stubs: tuple[LlmStub, LlmStub],
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nobody listening on the first: the second judges at once; after two tries the first rests."""
    caplog.set_level(logging.DEBUG)
    _first, second = stubs
    dead = f"http://judge:pw@127.0.0.1:{free_port()}"
    pool = analyzer(session, [dead, second.url], failure_threshold=2, reset_timeout=3600)
    for _ in range(4):
        verdict, url = await pool.analyze_at(request())
        assert (verdict.risk_score, url) == (72, second.url)
    assert len(second.requests) == 4
    assert pool.breakers[dead].state is CircuitState.OPEN
    assert pool.breakers[dead].consecutive_failures == 2  # not tried again once open
    assert pool.breakers[second.url].state is CircuitState.CLOSED
    assert "asking the next LLM server" in caplog.text
    assert ":pw@" not in caplog.text


async def test_every_server_dead_is_unavailable(session: aiohttp.ClientSession) -> None:
    """None answers: LlmUnavailableError (the heuristic judges); each breaker counts its failure."""
    urls = [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"]
    pool = analyzer(session, urls, failure_threshold=1, reset_timeout=3600)
    with pytest.raises(
        LlmUnavailableError, match=r"cannot reach http://127\.0\.0\.1:\d+/completion"
    ):
        await pool.analyze(request())
    assert [b.state for b in pool.breakers.values()] == [CircuitState.OPEN] * 2
    with pytest.raises(LlmUnavailableError, match=r"LLM http://127\.0\.0\.1:\d+ is unavailable"):
        await pool.analyze(request())


async def test_a_failing_answer_is_not_sent_elsewhere_at_once(
    stubs: tuple[LlmStub, LlmStub], session: aiohttp.ClientSession
) -> None:
    """HTTP 500 is the job's to retry later (maybe elsewhere), not a reason to ask twice now."""
    first, second = stubs
    first.completion_status = 500
    pool = analyzer(session, [first.url, second.url])
    with pytest.raises(AnalyzerError, match="HTTP 500") as caught:
        await pool.analyze(request())
    assert type(caught.value) is AnalyzerError
    assert (len(first.requests), len(second.requests)) == (1, 0)
    assert pool.breakers[first.url].consecutive_failures == 1


async def test_health_shows_each_llm_server(
    stubs: tuple[LlmStub, LlmStub], session: aiohttp.ClientSession
) -> None:
    """One endpoint per server, each with its status and latency; the service is up if one is."""
    first, second = stubs
    pool = analyzer(session, [first.url, second.url])
    monitor = HealthMonitor(
        session, detector_breakers={}, llm_breakers=pool.breakers, llm_api=LlmApi.LLAMA_CPP
    )
    assert [key for key, _kind, _url in monitor.endpoints()] == [
        endpoint_key(ServiceKind.LLM, first.url),
        endpoint_key(ServiceKind.LLM, second.url),
    ]
    monitor.record_llm(second.url, 250.0)
    await first.stop()
    report = await monitor.check()
    down, up = report.endpoints
    assert (down.status, up.status) == (ServiceStatus.UNHEALTHY, ServiceStatus.HEALTHY)
    assert (down.latency_ms, up.latency_ms) == (None, 250.0)
    assert report.status_of(ServiceKind.LLM) is ServiceStatus.HEALTHY
    await second.stop()
    report = await monitor.check()
    assert report.status_of(ServiceKind.LLM) is ServiceStatus.UNHEALTHY
    await first.start()  # the fixture stops both
    await second.start()


# --- The pipeline -------------------------------------------------------------------------------


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.9, [10, 10, 40, 80])))
    )
    await server.start()
    yield server
    await server.stop()


async def test_pipeline_judges_with_the_server_that_answers(
    root: Path, sqlite_url: str, detector: DetectorServer, stubs: tuple[LlmStub, LlmStub]
) -> None:
    """First LLM down, second up: the incident gets the LLM's verdict, both are watched."""
    first, second = stubs
    await first.stop()
    cfg = config(root, sqlite_url, detector.url, "", llm_urls=(first.url, second.url))
    async with running(cfg) as (pipeline, rec):
        assert list(pipeline.llm_breakers) == [first.url, second.url]
        await asyncio.to_thread(write, root / "Front Door" / "a.jpg", jpeg(3))
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
        (event,) = rec.closed
        assert (event.source, event.risk_score) == (EventSource.LLM, 72)
        # Each judgement (at the opening, at the close) tried the dead one first, then the other.
        assert len(second.requests) >= 1
        assert pipeline.llm_breakers[first.url].consecutive_failures == len(second.requests)
        report = await pipeline.health.check()
        statuses = {e.url: e.status for e in report.endpoints if e.kind is ServiceKind.LLM}
        assert statuses == {first.url: ServiceStatus.UNHEALTHY, second.url: ServiceStatus.HEALTHY}
    await first.start()  # the fixture stops both


async def test_pipeline_without_llm_servers_has_no_llm_side(
    root: Path, sqlite_url: str, detector: DetectorServer
) -> None:
    """No URL: no analyzer, no breakers, no LLM endpoint; the heuristic judges."""
    async with running(config(root, sqlite_url, detector.url, "")) as (pipeline, rec):
        assert (pipeline.analyzer, dict(pipeline.llm_breakers)) == (None, {})
        assert all(kind is not ServiceKind.LLM for _key, kind, _url in pipeline.health.endpoints())
        await asyncio.to_thread(write, root / "Front Door" / "a.jpg", jpeg(4))
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
        assert rec.closed[0].source is EventSource.HEURISTIC
