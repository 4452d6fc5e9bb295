"""core.analyzer: verdicts from a real llama-server on both APIs, its failures, and the breaker.

The real server (tests/llama.py) gives real answers, real HTTP 500s and 400s and really goes away;
what a random model cannot be made to say (an empty body, a score of 250, fenced JSON) comes from
canned strings given to the parser and from a small aiohttp stub server.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import json
import logging
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.ai_security.core.analyzer import (
    Analyzer,
    AnalyzerError,
    LlmRejectedError,
    LlmUnavailableError,
    parse_verdict,
)
from custom_components.ai_security.core.llm_errors import AnswerCutOffError
from custom_components.ai_security.core.llm_llama_cpp import COMPLETION_PATH, combine_prompt
from custom_components.ai_security.core.llm_openai import CHAT_PATH
from custom_components.ai_security.core.models import (
    BoundingBox,
    Detection,
    EventSource,
    RiskLevel,
)
from custom_components.ai_security.core.prompts import AnalysisRequest, verdict_schema
from custom_components.ai_security.core.resilience import CircuitBreaker, CircuitState
from custom_components.ai_security.core.risk import level_for
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from tests.llama import (
    LlamaServer,
    byte_token,
    failure_params,
    grammar_friendly_params,
    llama_server_fixture,  # noqa: F401 - the fixture llama_server
    llama_server_process_fixture,  # noqa: F401 - the fixture llama_server_process
)
from tests.servers import free_port

DEFAULT = SeverityThresholds()
START = datetime(2024, 6, 6, 21, 14, 5, tzinfo=UTC)
APIS = pytest.mark.parametrize("api", [LlmApi.LLAMA_CPP, LlmApi.OPENAI])
LOGGER_NAME = "custom_components.ai_security.core.analyzer"
PARSER_LOGGER = "custom_components.ai_security.core.verdict_parser"
GOOD = {"risk_score": 42, "risk_level": "medium", "summary": "A person", "reasoning": "At night"}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def only_breaker(analyzer: Analyzer) -> CircuitBreaker:
    """Return the breaker of an Analyzer of one server."""
    (breaker,) = analyzer.breakers.values()
    return breaker


def make_request(count: int = 3, *, label: str = "person") -> AnalysisRequest:
    """Return a batch of count detections at the Front Door, starting at START."""
    return AnalysisRequest(
        camera_name="Front Door",
        started_at=START,
        ended_at=START + timedelta(seconds=60),
        local_tz=UTC,
        detections=tuple(
            Detection(
                label=label,
                confidence=0.5 + (i % 50) / 100,
                bbox=BoundingBox(x=10 * i % 1800, y=300, w=120, h=360),
                frame_width=1920,
                frame_height=1080,
                detected_at=START + timedelta(seconds=i % 60),
                frame_time=1.0 if i % 2 else None,
                path=f"{i}.jpg",
            )
            for i in range(count)
        ),
    )


def llama_envelope(content: str, stop_type: str = "eos") -> dict[str, Any]:
    """Return a /completion answer around content, as llama-server writes it."""
    return {"content": content, "stop_type": stop_type, "tokens_predicted": 50}


def chat_envelope(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    """Return a /v1/chat/completions answer around content."""
    message = {"role": "assistant", "content": content}
    return {"choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


def envelope(api: LlmApi, content: str) -> dict[str, Any]:
    """Return the API's envelope around the model's text content."""
    return llama_envelope(content) if api is LlmApi.LLAMA_CPP else chat_envelope(content)


# --- The parser, on canned answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the answer is empty"),
        ("   \n ", "the answer is empty"),
        ("```json\n```", "the answer is empty"),
        ("The risk is low.", "the answer is not JSON: The risk is low."),
        ('{"risk_score": 42, "risk_level": "low"', "the answer is not JSON"),
        ("[1, 2]", "not a JSON object"),
        ("[" * 100_000, r"the answer is not JSON: \[\[\[.*\.\.\.$"),
        ('{"risk_score": 42}', "the answer lacks risk_level, summary, reasoning"),
        (json.dumps({**GOOD, "risk_score": 250}), r"score out of range \(0-100\): 250"),
        (json.dumps({**GOOD, "risk_score": -5}), r"score out of range \(0-100\): -5"),
        (json.dumps({**GOOD, "risk_score": True}), "risk_score is not a number: True"),
        (json.dumps({**GOOD, "risk_score": "42"}), "risk_score is not a number: '42'"),
        (json.dumps({**GOOD, "risk_score": 42.5}), "risk_score is not a whole number: 42.5"),
        ('{"risk_score": NaN, "risk_level": "low", "summary": "s", "reasoning": "r"}', "whole"),
        (json.dumps({**GOOD, "risk_level": 2}), "risk_level is not a string: 2"),
        (json.dumps({**GOOD, "summary": "  "}), "summary is empty"),
        (json.dumps({**GOOD, "reasoning": None}), "reasoning is not a string: None"),
    ],
)
def test_parser_refuses(text: str, message: str) -> None:
    """Each way an answer can be unusable fails with a message saying which."""
    with pytest.raises(AnalyzerError, match=message) as caught:
        parse_verdict(text, DEFAULT)
    assert not isinstance(caught.value, LlmUnavailableError)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        f"  \n{json.dumps(GOOD, indent=2)}\n ",
        f"```json\n{json.dumps(GOOD)}\n```",
        f"```\n{json.dumps(GOOD)}\n```",
        f"```JSON {json.dumps(GOOD)}```",
        json.dumps({**GOOD, "risk_score": 42.0}),
        json.dumps({**GOOD, "risk_level": " MEDIUM ", "extra": [1]}),
    ],
)
def test_parser_accepts(text: str) -> None:
    """Blanks, a code fence, a float with an integral value, any case: the same verdict."""
    verdict = parse_verdict(text, DEFAULT)
    assert (verdict.risk_score, verdict.risk_level) == (42, RiskLevel.MEDIUM)
    assert (verdict.summary, verdict.reasoning) == ("A person", "At night")
    assert verdict.source is EventSource.LLM
    assert verdict.model_level is None


def test_parser_derives_the_level_and_keeps_the_models(caplog: pytest.LogCaptureFixture) -> None:
    """The stored level follows the thresholds; a disagreeing or unknown one is kept and logged."""
    caplog.set_level(logging.DEBUG, logger=PARSER_LOGGER)
    verdict = parse_verdict(json.dumps({**GOOD, "risk_score": 90, "risk_level": "Low"}), DEFAULT)
    assert (verdict.risk_level, verdict.model_level) == (RiskLevel.CRITICAL, "low")
    custom = SeverityThresholds(medium=10, high=40, critical=95)
    verdict = parse_verdict(json.dumps({**GOOD, "risk_level": "alarming"}), custom)
    assert (verdict.risk_level, verdict.model_level) == (RiskLevel.HIGH, "alarming")
    records = [r.getMessage() for r in caplog.records if r.name == PARSER_LOGGER]
    assert records == [
        "The LLM named level 'low' for score 90; the thresholds make it critical",
        "The LLM named level 'alarming' for score 42; the thresholds make it high"
        " (not a known level)",
    ]
    caplog.clear()
    assert parse_verdict(json.dumps(GOOD), DEFAULT).model_level is None
    assert not caplog.records


def test_parser_cuts_long_strings() -> None:
    """Over-long strings are cut (marked with '...'), not refused; blanks around are stripped."""
    long = {**GOOD, "summary": "  " + "s" * 300, "reasoning": "word " * 500}
    verdict = parse_verdict(json.dumps(long), DEFAULT, summary_max=40, reasoning_max=100)
    assert verdict.summary == "s" * 37 + "..."
    assert verdict.reasoning == ("word " * 20)[:97] + "..."
    tiny = parse_verdict(json.dumps(long), DEFAULT, summary_max=2, reasoning_max=3)
    assert (tiny.summary, tiny.reasoning) == ("ss", "wor")


def test_parser_replaces_half_characters_the_database_cannot_store() -> None:
    """A small model may escape half an emoji (a lone surrogate): it becomes U+FFFD."""
    text = (
        '{"risk_score": 40, "risk_level": "medium", '
        '"summary": "A person \\ud83d at the door", "reasoning": "\\udc00"}'
    )
    verdict = parse_verdict(text, DEFAULT)
    assert verdict.summary == "A person \ufffd at the door"
    assert verdict.reasoning == "\ufffd"
    verdict.summary.encode("utf-8")  # what the database, the bus and a phone need


# --- HTTP, against a stub server ----------------------------------------------------------------


@dataclass
class StubLlm:
    """An HTTP server on 127.0.0.1 answering both LLM routes with what the test sets."""

    status: int = 200
    body: Any = field(default_factory=lambda: chat_envelope(json.dumps(GOOD)))
    """A str is sent as it is, anything else as JSON."""
    delay: float = 0.0
    requests: list[tuple[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, await request.json()))
        if self.delay:
            await asyncio.sleep(self.delay)
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return web.Response(status=self.status, text=text, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(COMPLETION_PATH, self._answer)
        app.router.add_post(CHAT_PATH, self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture(name="stub")
async def stub_fixture(socket_enabled: None) -> AsyncIterator[StubLlm]:
    """Return a running stub LLM server."""
    server = StubLlm()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(name="session")
async def session_fixture(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """Return a client session (Home Assistant's shared one, in the integration)."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_request_bodies(stub: StubLlm, session: aiohttp.ClientSession) -> None:
    """Each API gets its route and fields; extra_params are merged into both, last."""
    schema = verdict_schema(summary_max=40, reasoning_max=300)
    extra = {"seed": 7, "temperature": 0.5}
    common: dict[str, Any] = {"thresholds": DEFAULT, "summary_max": 40, "reasoning_max": 300}
    native = Analyzer(
        session, [stub.url + "/"], LlmApi.LLAMA_CPP, max_tokens=300, extra_params=extra, **common
    )
    stub.body = llama_envelope(json.dumps(GOOD))
    assert (await native.analyze(make_request())).risk_score == 42
    chat = Analyzer(session, [stub.url], LlmApi.OPENAI, model="qwen", **common)
    stub.body = chat_envelope(json.dumps(GOOD))
    assert (await chat.analyze(make_request())).risk_score == 42

    (native_path, native_body), (chat_path, chat_body) = stub.requests
    system, user = chat_body["messages"][0]["content"], chat_body["messages"][1]["content"]
    assert native_path == "/completion"
    assert native_body == {
        "prompt": combine_prompt(system, user),
        "n_predict": 300,
        "temperature": 0.5,
        "json_schema": schema,
        "cache_prompt": True,
        "stream": False,
        "seed": 7,
    }
    assert native_body["prompt"].endswith(f"{user}\n\nJSON answer:\n")
    assert chat_path == "/v1/chat/completions"
    assert chat_body == {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": 1024,
        "temperature": 0.2,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "security_verdict", "strict": True, "schema": schema},
        },
        "stream": False,
        "model": "qwen",
    }
    assert "Camera: Front Door" in user
    assert "0-29 low" in system


@APIS
async def test_fenced_answer_over_http(
    api: LlmApi, stub: StubLlm, session: aiohttp.ClientSession
) -> None:
    """A verdict wrapped in a Markdown fence comes through; the level is the thresholds'."""
    stub.body = envelope(api, f"```json\n{json.dumps({**GOOD, 'risk_score': 61})}\n```")
    analyzer = Analyzer(session, [stub.url], api, thresholds=DEFAULT)
    verdict = await analyzer.analyze(make_request())
    assert (verdict.risk_score, verdict.risk_level, verdict.model_level) == (
        61,
        RiskLevel.HIGH,
        "medium",
    )
    assert only_breaker(analyzer).state is CircuitState.CLOSED


@pytest.mark.parametrize(
    ("api", "status", "body", "message"),
    [
        (LlmApi.OPENAI, 200, "", "answered with something that is not JSON: an empty body"),
        (LlmApi.LLAMA_CPP, 200, "", "answered with something that is not JSON: an empty body"),
        (LlmApi.OPENAI, 200, "<html>oops</html>", "not JSON: <html>oops</html>"),
        (LlmApi.OPENAI, 500, {"error": {"code": 500, "message": "boom"}}, "HTTP 500 from .*: boom"),
        (LlmApi.LLAMA_CPP, 503, {"error": "Loading model"}, "HTTP 503 from .*: Loading model"),
        (LlmApi.OPENAI, 502, "Bad gateway", "HTTP 502 from .*: Bad gateway"),
        (LlmApi.OPENAI, 429, "", "HTTP 429 from .*: no body"),
        (LlmApi.OPENAI, 200, chat_envelope("I think it is fine"), "not JSON: I think it is fine"),
        (LlmApi.LLAMA_CPP, 200, llama_envelope(""), "the answer is empty"),
        (LlmApi.OPENAI, 200, chat_envelope(None), "answered without the model's text"),
        (LlmApi.OPENAI, 200, {"choices": []}, "answered without the model's text"),
        (LlmApi.LLAMA_CPP, 200, {"tokens": []}, "answered without the model's text"),
        (LlmApi.LLAMA_CPP, 200, ["x"], "answered without the model's text"),
        (
            LlmApi.LLAMA_CPP,
            200,
            llama_envelope(json.dumps({**GOOD, "risk_score": 250})),
            "score out of range",
        ),
        (
            LlmApi.LLAMA_CPP,
            200,
            llama_envelope('{"reasoning": "abc', stop_type="limit"),
            r"not JSON.*\(the answer was cut off at 1024 tokens\)",
        ),
        (
            LlmApi.OPENAI,
            200,
            chat_envelope('{"reasoning": "abc', finish_reason="length"),
            r"\(the answer was cut off at 1024 tokens\)",
        ),
    ],
)
async def test_bad_answers_are_retryable_failures(
    api: LlmApi,
    status: int,
    body: Any,
    message: str,
    stub: StubLlm,
    session: aiohttp.ClientSession,
) -> None:
    """5xx, 429 and anything that is not a valid verdict: AnalyzerError, counted by the breaker."""
    stub.status, stub.body = status, body
    analyzer = Analyzer(session, [stub.url], api, thresholds=DEFAULT)
    with pytest.raises(AnalyzerError, match=message) as caught:
        await analyzer.analyze(make_request())
    # Not a subclass that means "unreachable" or "refused": a cut-off answer is its own kind.
    cut_off = "cut off" in message
    assert type(caught.value) is (AnswerCutOffError if cut_off else AnalyzerError)
    assert only_breaker(analyzer).consecutive_failures == 1
    assert len(stub.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 413])
async def test_client_errors_are_rejections_not_counted(
    status: int, stub: StubLlm, session: aiohttp.ClientSession
) -> None:
    """4xx: the server is up and said no; the breaker counts an answer, never opens."""
    stub.status = status
    stub.body = {"error": {"message": "request (5000 tokens) exceeds the available context"}}
    analyzer = Analyzer(session, [stub.url], LlmApi.OPENAI, thresholds=DEFAULT)
    for _ in range(7):
        with pytest.raises(LlmRejectedError, match=f"HTTP {status} .*exceeds") as caught:
            await analyzer.analyze(make_request())
        assert caught.value.status == status
    assert only_breaker(analyzer).state is CircuitState.CLOSED
    assert only_breaker(analyzer).consecutive_failures == 0
    assert len(stub.requests) == 7


async def test_time_limit(stub: StubLlm, session: aiohttp.ClientSession) -> None:
    """A server that does not answer in time: a retryable AnalyzerError, not 'unavailable'."""
    stub.delay = 0.3
    analyzer = Analyzer(session, [stub.url], LlmApi.LLAMA_CPP, thresholds=DEFAULT, time_limit=0.05)
    with pytest.raises(
        AnalyzerError, match=r"no answer from .*/completion within 0\.05 s"
    ) as caught:
        await analyzer.analyze(make_request())
    assert type(caught.value) is AnalyzerError
    assert only_breaker(analyzer).consecutive_failures == 1


async def test_connection_refused_and_credentials(
    stub: StubLlm, session: aiohttp.ClientSession
) -> None:
    """Nobody listening: LlmUnavailableError; credentials in the URL never show in errors."""
    dead = Analyzer(
        session, [f"http://admin:s3cret@127.0.0.1:{free_port()}"], LlmApi.OPENAI, thresholds=DEFAULT
    )
    with pytest.raises(LlmUnavailableError, match=r"cannot reach http://127.0.0.1:") as caught:
        await dead.analyze(make_request())
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in only_breaker(dead).name
    assert only_breaker(dead).consecutive_failures == 1

    stub.status, stub.body = 500, "down"
    secret_url = stub.url.replace("http://", "http://admin:s3cret@")
    alive = Analyzer(session, [secret_url], LlmApi.OPENAI, thresholds=DEFAULT)
    with pytest.raises(AnalyzerError, match=r"HTTP 500 from http://127.0.0.1") as caught:
        await alive.analyze(make_request())
    assert "s3cret" not in str(caught.value)


async def test_other_client_errors(stub: StubLlm, session: aiohttp.ClientSession) -> None:
    """A connection dropped mid-answer is a retryable failure, with the URL redacted."""

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_post(CHAT_PATH, drop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        analyzer = Analyzer(
            session, [f"http://u:pw@127.0.0.1:{port}"], LlmApi.OPENAI, thresholds=DEFAULT
        )
        with pytest.raises(
            AnalyzerError, match=r"http://127\.0\.0\.1:\d+/v1/chat/completions: "
        ) as caught:
            await analyzer.analyze(make_request())
        assert type(caught.value) is AnalyzerError
        assert ":pw@" not in str(caught.value)
    finally:
        await runner.cleanup()


async def test_breaker_opens_after_five_failures_and_recovers(
    stub: StubLlm, session: aiohttp.ClientSession
) -> None:
    """5 failures in a row open it; then nothing is sent until a probe after the reset time."""
    clock = FakeClock()
    analyzer = Analyzer(
        session, [stub.url], LlmApi.OPENAI, thresholds=DEFAULT, reset_timeout=30.0, clock=clock
    )
    breaker = only_breaker(analyzer)
    stub.status, stub.body = 500, {"error": {"message": "boom"}}
    for _ in range(5):
        with pytest.raises(AnalyzerError, match="HTTP 500"):
            await analyzer.analyze(make_request())
    assert breaker.state is CircuitState.OPEN
    stub.status, stub.body = 200, chat_envelope(json.dumps(GOOD))
    with pytest.raises(
        LlmUnavailableError, match=r"LLM http://127\.0\.0\.1:\d+ is unavailable: HTTP 500 .*: boom"
    ):
        await analyzer.analyze(make_request())
    assert len(stub.requests) == 5  # refused without sending
    clock.now += 30
    assert (await analyzer.analyze(make_request())).risk_score == 42
    assert breaker.state is CircuitState.CLOSED
    assert len(stub.requests) == 6


# --- The real llama-server ----------------------------------------------------------------------


def counting_session() -> tuple[aiohttp.ClientSession, SimpleNamespace]:
    """Return a session and a counter of the requests it starts (failed connections included)."""
    counter = SimpleNamespace(sent=0)

    async def on_start(*_: object) -> None:
        counter.sent += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return aiohttp.ClientSession(trace_configs=[trace]), counter


QUOTE_BIAS = -5
"""Logit bias against the '"' byte: the grammar still forces every quote JSON needs, but a string
is then rarely closed at once. This llama-server does not enforce the schema's minLength (it
lets "" through), and the random model closes a string at once about once in fifty answers,
which the parser rightly refuses as empty; with the bias that is some hundred times rarer."""


def verdict_params() -> dict[str, Any]:
    """Return grammar_friendly_params() plus QUOTE_BIAS: verdicts the parser always accepts."""
    params = grammar_friendly_params()
    return {**params, "logit_bias": params["logit_bias"] | {str(byte_token(ord('"'))): QUOTE_BIAS}}


def real_analyzer(
    session: aiohttp.ClientSession,
    server: LlamaServer,
    api: LlmApi,
    *,
    seed: int = 0,
    good: bool = True,
    **kwargs: Any,
) -> Analyzer:
    """Return an Analyzer for the tiny model: bounded strings, and the ban that keeps it valid."""
    params = verdict_params() if good else failure_params()
    options: dict[str, Any] = {
        "thresholds": DEFAULT,
        "summary_max": 40,
        "reasoning_max": 40,
        "max_tokens": 768,
        "time_limit": 30.0,
        "extra_params": {"seed": seed, **params},
    } | kwargs
    return Analyzer(session, [server.url], api, **options)


@pytest.mark.slow
@APIS
async def test_real_verdicts(api: LlmApi, llama_server: LlamaServer) -> None:
    """The real server's grammar-bound answers parse into valid verdicts, for several batches."""
    custom = SeverityThresholds(medium=20, high=50, critical=80)
    async with aiohttp.ClientSession() as session:
        verdicts = await asyncio.gather(
            *(
                real_analyzer(session, llama_server, api, seed=seed, thresholds=custom).analyze(
                    make_request(count=seed * 7)
                )
                for seed in range(3)
            )
        )
    for verdict in verdicts:
        assert 0 <= verdict.risk_score <= 100
        assert verdict.risk_level is level_for(verdict.risk_score, custom)
        assert 1 <= len(verdict.summary) <= 40
        assert 1 <= len(verdict.reasoning) <= 40
        assert verdict.summary == verdict.summary.strip()
        assert verdict.source is EventSource.LLM
        assert verdict.model_level in {None, "low", "medium", "high", "critical"}
        assert verdict.model_level != verdict.risk_level


@pytest.mark.slow
@APIS
async def test_real_failure(api: LlmApi, llama_server: LlamaServer) -> None:
    """failure_params(): the chat route answers 500, /completion returns cut-off non-JSON."""
    async with aiohttp.ClientSession() as session:
        analyzer = real_analyzer(session, llama_server, api, good=False, max_tokens=64)
        expected = "HTTP 500 .*peg-native" if api is LlmApi.OPENAI else "not JSON.*cut off at 64"
        with pytest.raises(AnalyzerError, match=expected) as caught:
            await analyzer.analyze(make_request())
    cut_off = api is LlmApi.LLAMA_CPP
    assert type(caught.value) is (AnswerCutOffError if cut_off else AnalyzerError)
    assert only_breaker(analyzer).consecutive_failures == 1


@pytest.mark.slow
@APIS
async def test_real_prompt_too_long(api: LlmApi, llama_server: LlamaServer) -> None:
    """A prompt over the slot's context: HTTP 400, a rejection the breaker does not count."""
    async with aiohttp.ClientSession() as session:
        analyzer = real_analyzer(
            session, llama_server, api, max_detections=500, max_prompt_chars=1_000_000
        )
        for _ in range(6):
            with pytest.raises(LlmRejectedError, match=r"HTTP 400 .*exceeds the available context"):
                await analyzer.analyze(make_request(count=200))
        assert only_breaker(analyzer).state is CircuitState.CLOSED
        assert only_breaker(analyzer).consecutive_failures == 0
        # The default bound keeps the same batch within the model's context.
        bounded = real_analyzer(session, llama_server, api, max_detections=500)
        verdict = await bounded.analyze(make_request(count=200))
    assert 0 <= verdict.risk_score <= 100


@pytest.mark.slow
@APIS
async def test_real_server_stopped(api: LlmApi, llama_server: LlamaServer) -> None:
    """Connection refused: LlmUnavailableError (fall back to the heuristic), counted once."""
    await llama_server.async_stop()  # the llama_server fixture starts it again for the next test
    async with aiohttp.ClientSession() as session:
        analyzer = real_analyzer(session, llama_server, api)
        with pytest.raises(LlmUnavailableError, match=r"cannot reach http://127\.0\.0\.1:\d+/"):
            await analyzer.analyze(make_request())
    assert only_breaker(analyzer).consecutive_failures == 1
    assert only_breaker(analyzer).state is CircuitState.CLOSED


@pytest.mark.slow
async def test_real_server_down_then_breaker_then_back(llama_server: LlamaServer) -> None:
    """Stopped: unavailable, 5 times opens the breaker, then nothing is sent; back: a probe closes.

    The failures mix both kinds the breaker counts: HTTP 500s while up, refusals while down.
    """
    clock = FakeClock()
    session, counter = counting_session()
    async with session:
        failing = real_analyzer(
            session, llama_server, LlmApi.OPENAI, good=False, reset_timeout=30.0, clock=clock
        )
        good = real_analyzer(session, llama_server, LlmApi.OPENAI, pool=failing.pool)
        breaker = only_breaker(failing)
        for _ in range(2):
            with pytest.raises(AnalyzerError, match="HTTP 500"):
                await failing.analyze(make_request())
        await llama_server.async_stop()
        for _ in range(3):
            with pytest.raises(LlmUnavailableError, match="cannot reach"):
                await good.analyze(make_request())
        assert breaker.state is CircuitState.OPEN
        assert counter.sent == 5

        await llama_server.async_restart()
        with pytest.raises(
            LlmUnavailableError, match=r"LLM http://127\.0\.0\.1:\d+ is unavailable: "
        ):
            await good.analyze(make_request())
        assert counter.sent == 5  # refused by the breaker, not sent
        clock.now += 30
        verdict = await good.analyze(make_request())
        assert counter.sent == 6
    assert breaker.state is CircuitState.CLOSED
    assert verdict.source is EventSource.LLM
