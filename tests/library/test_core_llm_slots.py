"""core.llm_slots: llama.cpp's /slots and /metrics read as they are, odd answers read as nothing.

The shapes are the real server's: the newer /slots (captured from the lab's llama-server), the
older one with `state` and each slot's prompt and sampling settings, and the Prometheus text of a
server started with --metrics. One test asks the real llama-server itself.
"""

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from custom_components.ai_security.core.llm_openai import OpenAiProvider
from custom_components.ai_security.core.llm_providers import provider_for
from custom_components.ai_security.core.llm_slots import (
    MAX_BODY_BYTES,
    MAX_SLOTS,
    RETRY_UNSUPPORTED,
    SlotReader,
    SlotUsage,
    busy_from_metrics,
    combine,
    slots_from_list,
    total_from_props,
)
from custom_components.ai_security.core.monitor import HealthMonitor
from custom_components.ai_security.core.resilience import CircuitBreaker
from custom_components.ai_security.core.settings import LlmApi
from tests.llama import (
    LLAMA_BAN_LOGIT_BIAS,
    LlamaServer,
    llama_server_fixture,  # noqa: F401 - the fixture llama_server
    llama_server_process_fixture,  # noqa: F401 - the fixture llama_server_process
)
from tests.servers import ModelServer, free_port

NEW_SLOTS: list[dict[str, Any]] = [
    {"id": 0, "n_ctx": 4096, "speculative": False, "is_processing": True},
    {"id": 1, "n_ctx": 4096, "speculative": False, "is_processing": False},
]
"""GET /slots of a current llama-server (b11669), one request running."""

OLD_SLOTS: list[dict[str, Any]] = [
    {
        "id": 0,
        "id_task": 12,
        "n_ctx": 2048,
        "speculative": False,
        "state": 1,
        "prompt": "You judge security camera events...",
        "next_token": {"has_next_token": True, "n_remain": 180, "n_decoded": 76},
        "params": {"temperature": 0.2, "n_predict": 256},
    },
    {"id": 1, "id_task": -1, "n_ctx": 2048, "state": 0, "prompt": ""},
    {"id": 2, "id_task": 13, "n_ctx": 2048, "state": 1, "prompt": "..."},
]
"""GET /slots of an older llama-server: `state` 0 idle, 1 processing, with the slot's prompt."""

METRICS = """\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1532
# HELP llamacpp:predicted_tokens_seconds Average generation throughput in tokens/s
# TYPE llamacpp:predicted_tokens_seconds gauge
llamacpp:predicted_tokens_seconds 41.7
# HELP llamacpp:requests_processing Number of requests processing
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 3
# HELP llamacpp:requests_deferred Number of requests deferred
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""
"""GET /metrics of a llama-server started with --metrics (abridged), three requests running."""


def test_new_and_old_slot_lists() -> None:
    assert slots_from_list(NEW_SLOTS) == SlotUsage(busy=1, total=2)
    assert slots_from_list(OLD_SLOTS) == SlotUsage(busy=2, total=3)
    # A state other than 0 is some kind of work (later servers had more than one).
    assert slots_from_list([{"id": 0, "state": 2}, {"id": 1, "state": 0}]) == SlotUsage(
        busy=1, total=2
    )
    # is_processing wins where a server sends both.
    assert slots_from_list([{"is_processing": False, "state": 1}]) == SlotUsage(busy=0, total=1)


@pytest.mark.parametrize(
    "payload",
    [
        None,  # the body was not JSON
        "slots",
        {"error": {"code": 501, "message": "This server does not support slots endpoint."}},
        {"slots": NEW_SLOTS},  # a dict instead of a list
        [],
        [{"id": i, "is_processing": True} for i in range(MAX_SLOTS + 1)],
        [{"id": 0, "n_ctx": 4096}],  # says neither is_processing nor state
        [NEW_SLOTS[0], {"id": 1}],  # one slot that does not say
        [NEW_SLOTS[0], "slot 1"],
        [{"id": 0, "state": "idle"}],
        [{"id": 0, "state": -1}],
        [{"id": 0, "state": True}],
        [{"id": 0, "is_processing": "yes"}],
    ],
)
def test_what_is_not_a_slot_list_counts_nothing(
    payload: object, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="custom_components.ai_security.core.llm_slots"):
        assert slots_from_list(payload) is None
    assert caplog.records, "a debug line says why"


def test_a_large_but_plausible_list_is_counted() -> None:
    payload = [{"id": i, "is_processing": i % 2 == 0} for i in range(MAX_SLOTS)]
    assert slots_from_list(payload) == SlotUsage(busy=MAX_SLOTS // 2, total=MAX_SLOTS)


def test_metrics() -> None:
    assert busy_from_metrics(METRICS) == 3
    assert busy_from_metrics("llamacpp:requests_processing 2.0\n") == 2
    assert busy_from_metrics('llamacpp:requests_processing{model="q"} 1 1718000000000\n') == 1
    assert busy_from_metrics("llamacpp:requests_processing 0e0") == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html>Not found</html>",
        "llamacpp:requests_deferred 1\n",
        "# llamacpp:requests_processing 4\n",  # a comment, not the gauge
        "llamacpp:requests_processing_total 4\n",  # another metric
        "llamacpp:requests_processing NaN\n",
        "llamacpp:requests_processing +Inf\n",
        "llamacpp:requests_processing -1\n",
        "llamacpp:requests_processing many\n",
        f"llamacpp:requests_processing {MAX_SLOTS + 1}\n",
    ],
)
def test_metrics_without_a_busy_count(text: str) -> None:
    assert busy_from_metrics(text) is None


@pytest.mark.parametrize(
    ("payload", "total"),
    [
        ({"total_slots": 4, "default_generation_settings": {"n_ctx": 4096}}, 4),
        ({"total_slots": 0}, None),
        ({"total_slots": "4"}, None),
        ({"total_slots": True}, None),
        ({"total_slots": MAX_SLOTS + 1}, None),
        ({}, None),
        ([4], None),
        (None, None),
    ],
)
def test_total_from_props(payload: object, total: int | None) -> None:
    assert total_from_props(payload) == total


def test_busy_percent_and_combining_servers() -> None:
    assert SlotUsage(busy=1, total=4).busy_percent == 25
    assert SlotUsage(busy=5, total=4).busy_percent == 100  # (a count read mid-change)
    assert SlotUsage(busy=1, total=None).busy_percent is None
    assert SlotUsage(busy=0, total=0).busy_percent is None
    assert combine([]) is None
    assert combine([SlotUsage(busy=1, total=2), SlotUsage(busy=4, total=4)]) == SlotUsage(
        busy=5, total=6
    )
    # One server without a total: the pool's total is not known.
    assert combine([SlotUsage(busy=1, total=2), SlotUsage(busy=2, total=None)]) == SlotUsage(
        busy=3, total=None
    )


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_reader_asks_slots(llm: ModelServer) -> None:
    llm.slots_body = OLD_SLOTS
    async with aiohttp.ClientSession() as session:
        reader = SlotReader(session, llm.url, time_limit=5)
        assert await reader.read() == SlotUsage(busy=2, total=3)
        llm.slots_body = NEW_SLOTS
        assert await reader.read() == SlotUsage(busy=1, total=2)
    assert llm.requests == ["/slots", "/slots"]


async def test_reader_falls_back_to_metrics_and_remembers_what_is_missing(
    llm: ModelServer,
) -> None:
    """--no-slots (501): /metrics and /props, and /slots is not asked again for an hour."""
    llm.slots_status = 501
    llm.slots_body = {"error": {"code": 501, "type": "not_supported_error"}}
    llm.metrics_body = METRICS
    llm.props_body = {"total_slots": 4}
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        reader = SlotReader(session, llm.url, time_limit=5, clock=clock)
        assert await reader.read() == SlotUsage(busy=3, total=4)
        assert llm.requests == ["/slots", "/metrics", "/props"]
        llm.requests.clear()
        assert await reader.read() == SlotUsage(busy=3, total=4)
        assert llm.requests == ["/metrics", "/props"]

        # No /props (another build): the busy count alone.
        llm.props_body = None
        llm.requests.clear()
        assert await reader.read() == SlotUsage(busy=3, total=None)

        # An hour later the server may have been restarted with its slots on.
        clock.now += RETRY_UNSUPPORTED
        llm.slots_status = 200
        llm.slots_body = NEW_SLOTS
        llm.requests.clear()
        assert await reader.read() == SlotUsage(busy=1, total=2)
        assert llm.requests == ["/slots"]


async def test_reader_of_a_server_with_neither(llm: ModelServer) -> None:
    """No /slots and no /metrics: None, and nothing more is asked within the hour."""
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        reader = SlotReader(session, llm.url, time_limit=5, clock=clock)
        assert await reader.read() is None
        clock.now += RETRY_UNSUPPORTED - 1
        llm.slots_body = NEW_SLOTS
        assert await reader.read() is None
        assert llm.requests == []
        clock.now += 1
        assert await reader.read() == SlotUsage(busy=1, total=2)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>busy</html>"),
        (200, {"slots": NEW_SLOTS}),
        (500, {"error": "internal"}),
        (503, {"error": {"code": 503, "message": "Loading model"}}),
    ],
)
async def test_reader_gives_none_for_odd_answers_and_asks_again(
    llm: ModelServer, status: int, body: object
) -> None:
    """A bad answer is this round's None; the route is asked again next time (not given up)."""
    llm.slots_status, llm.slots_body = status, body
    llm.metrics_body = METRICS
    async with aiohttp.ClientSession() as session:
        reader = SlotReader(session, llm.url, time_limit=5)
        assert await reader.read() is None
        llm.slots_status, llm.slots_body = 200, NEW_SLOTS
        assert await reader.read() == SlotUsage(busy=1, total=2)


async def test_reader_reads_a_long_answer_whole(llm: ModelServer) -> None:
    """Older servers put each slot's prompt in /slots: a megabyte arrives in many chunks."""
    llm.slots_body = [
        {"id": index, "state": index % 2, "prompt": "word " * 60_000} for index in range(4)
    ]
    async with aiohttp.ClientSession() as session:
        assert await SlotReader(session, llm.url, time_limit=5).read() == SlotUsage(busy=2, total=4)


async def test_reader_refuses_a_huge_body(llm: ModelServer) -> None:
    llm.slots_body = [{"id": 0, "state": 0, "prompt": "x" * MAX_BODY_BYTES}]
    async with aiohttp.ClientSession() as session:
        assert await SlotReader(session, llm.url, time_limit=5).read() is None


async def test_reader_is_bounded_in_time(socket_enabled: None) -> None:
    """A server that takes too long gives None within the time limit, not a hung health check."""

    release = asyncio.Event()

    class Stuck(ModelServer):
        async def _optional(self, request: Any) -> Any:
            await release.wait()
            return await super()._optional(request)

    stuck = Stuck(slots_body=NEW_SLOTS)
    await stuck.start()
    try:
        async with aiohttp.ClientSession() as session:
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await SlotReader(session, stuck.url, time_limit=0.2).read() is None
            assert loop.time() - started < 2
    finally:
        release.set()
        await stuck.stop()


async def test_reader_of_a_server_that_is_gone(socket_enabled: None) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{free_port()}"
        assert await SlotReader(session, url, time_limit=2).read() is None


def test_which_servers_have_slots() -> None:
    """llama.cpp natively always; over the OpenAI API only when its model list is llama.cpp's."""
    assert provider_for(LlmApi.LLAMA_CPP).has_slots({"status": "ok"})
    openai = OpenAiProvider()
    llama = {"object": "list", "data": [{"id": "qwen.gguf", "owned_by": "llamacpp"}]}
    assert openai.has_slots(llama)
    assert not openai.has_slots({"object": "list", "data": [{"id": "q", "owned_by": "vllm"}]})
    assert not openai.has_slots({"object": "list", "data": [{"id": "llama3", "owned_by": None}]})
    assert not openai.has_slots({"object": "list", "data": "llamacpp"})
    assert not openai.has_slots({})


async def test_health_check_reads_slots_and_queue(socket_enabled: None) -> None:
    """One round: the detectors' queues summed, the llama.cpp servers' slots; not an AI Task's."""
    detectors = [
        ModelServer(health_body={"status": "ok", "queue_depth": 3}),
        ModelServer(health_body={"status": "ok", "queue_depth": 2}),
        ModelServer(health_body={"status": "ok"}),  # an older server: no figure, not 0
    ]
    llms = [ModelServer(slots_body=NEW_SLOTS), ModelServer(slots_body=OLD_SLOTS), ModelServer()]
    for each in (*detectors, *llms):
        await each.start()
    asked = 0

    async def ai_task_probe() -> dict[str, object]:
        nonlocal asked
        asked += 1
        return {"state": "ok"}

    try:
        async with aiohttp.ClientSession() as session:
            monitor = HealthMonitor(
                session,
                detector_breakers={d.url: CircuitBreaker(name=d.url) for d in detectors},
                llm_breakers={
                    **{llm.url: CircuitBreaker(name=llm.url) for llm in llms},
                    "ai_task.openai": CircuitBreaker(name="ai_task.openai"),
                },
                llm_api=LlmApi.LLAMA_CPP,
                llm_probes={"ai_task.openai": ai_task_probe},
            )
            report = await monitor.check()
            assert report.detector_queue_depth == 5
            assert [e.queue_depth for e in report.endpoints[:3]] == [3, 2, None]
            assert report.llm_slots == SlotUsage(busy=3, total=5)
            assert report.llm_slot_urls == (llms[0].url, llms[1].url)
            assert [e.slots for e in report.endpoints[3:]] == [
                SlotUsage(busy=1, total=2),
                SlotUsage(busy=2, total=3),
                None,
                None,
            ]
            assert asked == 1

            # A server down is no figure (and no slots are asked of it).
            await detectors[0].stop()
            await llms[0].stop()
            report = await monitor.check()
            assert report.detector_queue_depth == 2
            assert report.llm_slots == SlotUsage(busy=2, total=3)
    finally:
        for each in (*detectors, *llms):
            await each.stop()


async def test_health_check_asks_an_openai_server_only_when_it_is_llama_cpp(
    socket_enabled: None,
) -> None:
    vllm = ModelServer(slots_body=NEW_SLOTS)
    llama = ModelServer(
        slots_body=NEW_SLOTS,
        models_body={"object": "list", "data": [{"id": "m.gguf", "owned_by": "llamacpp"}]},
    )
    for each in (vllm, llama):
        await each.start()
    try:
        async with aiohttp.ClientSession() as session:
            monitor = HealthMonitor(
                session,
                detector_breakers={},
                llm_breakers={s.url: CircuitBreaker(name=s.url) for s in (vllm, llama)},
                llm_api=LlmApi.OPENAI,
            )
            report = await monitor.check()
        assert [e.slots for e in report.endpoints] == [None, SlotUsage(busy=1, total=2)]
        assert "/slots" not in vllm.requests
    finally:
        for each in (vllm, llama):
            await each.stop()


@pytest.mark.slow
async def test_real_llama_server_slots(llama_server: LlamaServer) -> None:
    """The lab's llama-server (2 slots): both idle, then one busy while a long answer runs."""
    async with aiohttp.ClientSession() as session:
        reader = SlotReader(session, llama_server.url, time_limit=5)
        assert await reader.read() == SlotUsage(busy=0, total=2)
        body = {
            "prompt": "Count:",
            "n_predict": 1500,
            "ignore_eos": True,
            "logit_bias": LLAMA_BAN_LOGIT_BIAS,
            "cache_prompt": False,
        }

        async def complete() -> None:
            async with session.post(f"{llama_server.url}/completion", json=body) as response:
                assert response.status == 200
                await response.read()

        answer = asyncio.create_task(complete())
        seen: set[int] = set()
        while not answer.done():
            usage = await reader.read()
            assert usage is not None
            assert usage.total == 2
            seen.add(usage.busy)
        await answer
        assert 1 in seen, seen
        assert await reader.read() == SlotUsage(busy=0, total=2)
