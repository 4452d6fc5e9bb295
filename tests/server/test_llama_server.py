"""The llama-server fixture: a real llama.cpp server on a tiny random model the tests write.

Later tests drive the integration's LLM client against it, so this proves what they may rely on:
the server is healthy (not just installed), a JSON-schema grammar plus grammar_friendly_params()
yields a schema-valid verdict every time on both APIs, the failures are the real server's (HTTP
500 without the ban, always with failure_params(); HTTP 200 with finish_reason "length" when
cut off; HTTP 400 when the prompt does not fit), and the server can go away and come back on its
URL.
"""

import asyncio
import json
from pathlib import Path
import random
from typing import Any

import aiohttp
import pytest

from tests.llama import (
    BANNED_BYTES,
    LLAMA_BAN_LOGIT_BIAS,
    SLOT_CONTEXT,
    SPACE_TOKEN,
    UNBOUNDED_VERDICT_SCHEMA,
    VERDICT_SCHEMA,
    LlamaServer,
    byte_token,
    failure_params,
    grammar_friendly_params,
    llama_server_fixture,  # noqa: F401 - the fixture llama_server
    llama_server_process_fixture,  # noqa: F401 - the fixture llama_server_process
    schema_errors,
    write_tiny_gguf,
)

pytestmark = pytest.mark.slow

BANNED_TOKENS = {int(token) for token in LLAMA_BAN_LOGIT_BIAS}
PEG_FAILURE_BODY = {
    "error": {
        "code": 500,
        "message": "The model produced output that does not match the expected peg-native format",
        "type": "server_error",
    }
}


async def post(server: LlamaServer, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST body as JSON; return the status and the decoded JSON answer."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.post(f"{server.url}{path}", json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


async def get(url: str) -> tuple[int, Any]:
    """GET url; return the status and the decoded JSON answer."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session,
        session.get(url) as response,
    ):
        return response.status, await response.json(content_type=None)


def chat_body(schema: dict[str, Any], prompt: str, seed: int) -> dict[str, Any]:
    """Return an OpenAI-style chat request for a verdict following schema."""
    return {
        "messages": [
            {"role": "system", "content": "You judge camera detections. Answer in JSON."},
            {"role": "user", "content": prompt},
        ],
        "max_tokens": 256,
        "temperature": 0.8,
        "seed": seed,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        },
    }


def test_tiny_model_is_small_and_reproducible(tmp_path: Path) -> None:
    """The model is written, not downloaded: under 600 KB and the same bytes every time."""
    first = write_tiny_gguf(tmp_path / "a.gguf").read_bytes()
    second = write_tiny_gguf(tmp_path / "b.gguf").read_bytes()
    assert first.startswith(b"GGUF")
    assert 400_000 < len(first) < 600_000
    assert first == second


def test_schema_errors_checks_what_the_verdict_uses() -> None:
    """The small validator the tests use catches every kind of mistake it claims to."""
    good = {"risk_score": 7, "risk_level": "low", "summary": "", "reasoning": "x"}
    assert schema_errors(good, VERDICT_SCHEMA) == []
    bad = {"risk_score": True, "risk_level": "none", "summary": "s" * 41, "extra": 1}
    assert len(schema_errors(bad, VERDICT_SCHEMA)) == 5
    assert schema_errors({**good, "risk_score": 101}, VERDICT_SCHEMA)
    assert schema_errors("x", {"type": "string", "pattern": "^[a-z]+$"}) == []
    assert schema_errors("X", {"type": "string", "pattern": "^[a-z]+$", "minLength": 2})
    with pytest.raises(ValueError, match="oneOf"):
        schema_errors(1, {"oneOf": []})


def test_start_retries_a_taken_port(
    llama_server_process: LlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A random port already in use is given up for another; a fixed one fails with the log."""
    llama_server_process.start()  # running again if an earlier test stopped it
    taken = llama_server_process.port
    ports = iter([taken])
    real_randint = random.randint
    monkeypatch.setattr(random, "randint", lambda a, b: next(ports, None) or real_randint(a, b))
    second = LlamaServer(
        program=llama_server_process.program, model=llama_server_process.model, workdir=tmp_path
    )
    try:
        second.start()
        assert second.port not in {0, taken}
        assert second.spawned == 2
        assert "couldn't bind HTTP server socket" in second.log_path.read_text()
    finally:
        second.stop()
    assert second.pid is None

    third = LlamaServer(
        program=llama_server_process.program,
        model=llama_server_process.model,
        workdir=tmp_path,
        port=taken,
    )
    with pytest.raises(pytest.fail.Exception, match="couldn't bind HTTP server socket"):
        third.start()
    assert not third.running
    assert llama_server_process.running


async def test_server_is_healthy(llama_server: LlamaServer) -> None:
    """Not just installed: the server loaded the model and answers the routes the probes use."""
    assert llama_server.url.startswith("http://127.0.0.1:")
    assert await get(f"{llama_server.url}/health") == (200, {"status": "ok"})
    status, models = await get(f"{llama_server.url}/v1/models")
    assert status == 200
    assert [model["id"] for model in models["data"]] == [str(llama_server.model)]


async def test_ban_covers_the_right_tokens(llama_server: LlamaServer) -> None:
    """The banned ids are this tokenizer's byte tokens, and the server never samples them."""
    status, tokenized = await post(llama_server, "/tokenize", {"content": "\t\n\r\\é~ "})
    assert status == 200
    # Byte fallback for everything but the space, which SentencePiece turns into "▁".
    expected = [*(byte_token(b) for b in (*b"\t\n\r\\", 0xC3, 0xA9, ord("~"))), SPACE_TOKEN]
    assert tokenized["tokens"] == expected
    assert {byte_token(b) for b in BANNED_BYTES} == BANNED_TOKENS
    assert set(expected[:6]) <= BANNED_TOKENS
    assert not set(expected[6:]) & BANNED_TOKENS

    # No grammar and a high temperature: the model samples freely, about half of it banned bytes.
    free = {"prompt": "x", "n_predict": 200, "temperature": 1.5, "seed": 3, "return_tokens": True}
    status, unbanned = await post(llama_server, "/completion", free)
    assert status == 200
    assert set(unbanned["tokens"]) & BANNED_TOKENS
    status, banned = await post(llama_server, "/completion", {**free, **grammar_friendly_params()})
    assert status == 200
    assert banned["tokens"]
    assert not set(banned["tokens"]) & BANNED_TOKENS

    # The chat route reads the same logit_bias object.
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 200,
        "temperature": 1.5,
        "seed": 3,
        **grammar_friendly_params(),
    }
    status, chat = await post(llama_server, "/v1/chat/completions", body)
    assert status == 200
    content = chat["choices"][0]["message"]["content"]
    assert content
    assert not {ord(char) for char in content} & set(BANNED_BYTES)


async def test_completion_json_schema_is_always_valid(llama_server: LlamaServer) -> None:
    """llama.cpp's native /completion: the grammar-bound answer parses and validates, 10 of 10."""
    for seed in range(10):
        body = {
            "prompt": f"<|im_start|>user\nJudge detection window {seed}.<|im_end|>\n",
            "n_predict": 256,
            "temperature": 0.8,
            "seed": seed,
            "json_schema": VERDICT_SCHEMA,
            "cache_prompt": True,
            **grammar_friendly_params(),
        }
        status, answer = await post(llama_server, "/completion", body)
        assert status == 200, answer
        assert answer["stop_type"] == "eos", answer
        verdict = json.loads(answer["content"])
        assert schema_errors(verdict, VERDICT_SCHEMA) == [], answer["content"]


async def test_chat_json_schema_is_always_valid(llama_server: LlamaServer) -> None:
    """OpenAI-style /v1/chat/completions, 10 requests at once on 2 slots: all schema-valid."""
    bodies = [
        chat_body(VERDICT_SCHEMA, f"Person at the door, window {seed}", seed)
        | grammar_friendly_params()
        for seed in range(10)
    ]
    answers = await asyncio.gather(
        *(post(llama_server, "/v1/chat/completions", body) for body in bodies)
    )
    for status, answer in answers:
        assert status == 200, answer
        choice = answer["choices"][0]
        assert choice["finish_reason"] == "stop", answer
        verdict = json.loads(choice["message"]["content"])
        assert schema_errors(verdict, VERDICT_SCHEMA) == [], choice["message"]["content"]


async def test_without_the_ban_answers_mostly_fail(llama_server: LlamaServer) -> None:
    """Without grammar_friendly_params() the chat route nearly always answers HTTP 500.

    Non-ASCII bytes get into the strings (bounded or not: 29 of 30 seeds failed with the bounded
    verdict too). Sampling is seeded, so on one machine each request gives the same answer every
    run (here 9 of these 10 fail, 57 of 60 seeds did); another CPU's arithmetic may pick other
    tokens, hence "at least 7".
    """
    bodies = [
        chat_body(UNBOUNDED_VERDICT_SCHEMA, f"Car in the driveway, window {seed}", seed)
        for seed in range(10)
    ]
    answers = [await post(llama_server, "/v1/chat/completions", body) for body in bodies]
    failures = [answer for status, answer in answers if status != 200]
    assert all(answer == PEG_FAILURE_BODY for answer in failures), failures
    assert len(failures) >= 7


async def test_failure_params_always_fail(llama_server: LlamaServer) -> None:
    """failure_params() makes any verdict request fail, on any seed: for retry-path tests."""
    for seed in range(5):
        body = chat_body(VERDICT_SCHEMA, f"Person in the garden, window {seed}", seed)
        body |= failure_params()
        assert await post(llama_server, "/v1/chat/completions", body) == (500, PEG_FAILURE_BODY)

    body = {
        "prompt": "Judge detection window 0.",
        "n_predict": 256,
        "temperature": 0.8,
        "seed": 0,
        "json_schema": VERDICT_SCHEMA,
        **failure_params(),
    }
    status, answer = await post(llama_server, "/completion", body)
    assert status == 200
    assert answer["stop_type"] == "limit"
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer["content"])


async def test_cut_off_answer_is_not_an_http_error(llama_server: LlamaServer) -> None:
    """An answer cut off by max_tokens is HTTP 200 on both routes, with unparsable content.

    The shortest verdict is over 60 characters, each a token, so 32 tokens never finish it: the
    client must look at finish_reason / stop_type (or parse), not only at the status.
    """
    body = chat_body(VERDICT_SCHEMA, "Person in the garden", 0)
    body |= {"max_tokens": 32, **grammar_friendly_params()}
    status, answer = await post(llama_server, "/v1/chat/completions", body)
    assert status == 200
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice["message"]["content"])

    body = {
        "prompt": "Judge detection window 0.",
        "n_predict": 32,
        "temperature": 0.8,
        "seed": 0,
        "json_schema": VERDICT_SCHEMA,
        **grammar_friendly_params(),
    }
    status, answer = await post(llama_server, "/completion", body)
    assert status == 200
    assert (answer["stop_type"], answer["tokens_predicted"]) == ("limit", 32)
    with pytest.raises(json.JSONDecodeError):
        json.loads(answer["content"])


async def test_prompt_over_the_slot_context_is_refused(llama_server: LlamaServer) -> None:
    """One token per byte: a prompt of SLOT_CONTEXT characters cannot fit and gets HTTP 400."""
    body = chat_body(VERDICT_SCHEMA, "x" * SLOT_CONTEXT, 0) | grammar_friendly_params()
    status, answer = await post(llama_server, "/v1/chat/completions", body)
    assert status == 400
    assert answer["error"]["type"] == "exceed_context_size_error"
    assert (
        f"exceeds the available context size ({SLOT_CONTEXT} tokens)" in answer["error"]["message"]
    )


async def test_stop_and_restart(llama_server: LlamaServer) -> None:
    """Stopped, the server refuses connections; restarted, it is healthy on the same URL."""
    url, pid = llama_server.url, llama_server.pid
    await llama_server.async_start()  # already running: nothing to do
    assert llama_server.pid == pid

    llama_server.stop()
    assert not llama_server.running
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(f"{url}/health")
    llama_server.restart()  # blocks until the model is loaded and it listens
    assert llama_server.url == url
    assert llama_server.pid not in {None, pid}
    assert await get(f"{url}/health") == (200, {"status": "ok"})

    # The same without blocking the event loop, as tests with Home Assistant running need.
    await llama_server.async_stop()
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(f"{url}/health")
    await llama_server.async_restart()
    assert llama_server.url == url
    assert await get(f"{url}/health") == (200, {"status": "ok"})

    # Left stopped: the llama_server fixture starts it again for the next test.
    await llama_server.async_stop()


async def test_fixture_brings_a_stopped_server_back(llama_server: LlamaServer) -> None:
    """An earlier test left the server stopped (above); this one gets it healthy anyway."""
    assert llama_server.running
    assert await get(f"{llama_server.url}/health") == (200, {"status": "ok"})
