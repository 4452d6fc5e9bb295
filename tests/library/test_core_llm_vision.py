"""Pictures to the LLM: real llama-servers with and without a vision projector, on both routes.

The tiny random model's answer barely depends on a picture, so a picture is proven to have
arrived by the server's own accounting: each costs the projector's 16 image tokens in the
prompt the server evaluated. A server without a projector refuses pictures (HTTP 400 on
/completion, HTTP 500 on the chat route); the verdict must come anyway, from the text.
"""

import base64
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
import hashlib
import io
import json
import logging
from types import SimpleNamespace
from typing import Any

import aiohttp
from PIL import Image
import pytest

from custom_components.ai_security.core.analyzer import Analyzer, prompt_hash
from custom_components.ai_security.core.llm_budget import ContextBudget
from custom_components.ai_security.core.llm_llama_cpp import (
    COMPLETION_PATH,
    TOKENIZE_PATH,
    LlamaCppProvider,
    traits_from_props,
)
from custom_components.ai_security.core.llm_openai import CHAT_PATH, OpenAiProvider
from custom_components.ai_security.core.llm_provider import (
    UNKNOWN_TRAITS,
    Prompt,
    PromptImage,
    ServerTraits,
)
from custom_components.ai_security.core.llm_vision import most_telling
from custom_components.ai_security.core.models import BoundingBox, Detection, EventSource
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from tests.llama import (
    SLOT_CONTEXT,
    LlamaServer,
    grammar_friendly_params,
    llama_server_fixture,  # noqa: F401
    llama_server_process_fixture,  # noqa: F401
)
from tests.llama_vision import (
    N_PATCHES,
    llama_vision_process_fixture,  # noqa: F401
    llama_vision_server_fixture,  # noqa: F401
)

START = datetime(2026, 12, 2, 3, 12, tzinfo=UTC)
MARKER = "<__media_TEST__>"
APIS = pytest.mark.parametrize("api", [LlmApi.LLAMA_CPP, LlmApi.OPENAI])


def picture(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    """Return a small JPEG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def framed(color: tuple[int, int, int], caption: str, frame: str) -> PromptImage:
    """Return a picture as vision_frames makes one: with its frame's id and its digest."""
    jpeg = picture(color)
    return PromptImage(
        jpeg=jpeg, caption=caption, frame=frame, digest=hashlib.sha256(jpeg).hexdigest()
    )


FRAMES = (
    framed((200, 30, 30), "Frame 1 (03:12:05): person #1", "11"),
    framed((30, 200, 30), "Frame 2 (03:12:09): person #1", "12@1.5"),
)


def make_request() -> AnalysisRequest:
    """Return a batch of one person at the Front Door."""
    return AnalysisRequest(
        camera_name="Front Door",
        started_at=START,
        ended_at=START + timedelta(seconds=10),
        local_tz=UTC,
        detections=(
            Detection(
                label="person",
                confidence=0.9,
                bbox=BoundingBox(x=300, y=200, w=120, h=360),
                frame_width=1920,
                frame_height=1080,
                detected_at=START,
                frame_time=None,
                path="a.jpg",
            ),
        ),
    )


def prompt(images: tuple[PromptImage, ...] = FRAMES) -> Prompt:
    return Prompt(
        system="Judge.", user="One person.", schema={}, max_tokens=8, temperature=0.0, images=images
    )


# --- Bodies, without a server ---------------------------------------------------------------------


def test_native_body_puts_each_picture_at_the_servers_marker() -> None:
    """Captions and markers between the system text and the user's; text always ends it."""
    _path, body = LlamaCppProvider().request(
        prompt(), ServerTraits(vision=True, media_marker=MARKER)
    )
    text = body["prompt"]["prompt_string"]
    assert text.count(MARKER) == 2
    assert text.index("Judge.") < text.index("Frame 1") < text.index(MARKER)
    assert text.rindex(MARKER) < text.index("One person.")
    assert text.endswith("JSON answer:\n")
    assert [base64.b64decode(item) for item in body["prompt"]["multimodal_data"]] == [
        frame.jpeg for frame in FRAMES
    ]


@pytest.mark.parametrize(
    "traits",
    [UNKNOWN_TRAITS, ServerTraits(vision=False, media_marker=MARKER), ServerTraits(vision=True)],
)
def test_native_body_is_text_where_pictures_cannot_go(traits: ServerTraits) -> None:
    """No word from the server, a model that does not see, or no marker: the text alone."""
    _path, body = LlamaCppProvider().request(prompt(), traits)
    assert body["prompt"] == LlamaCppProvider().request(prompt(()), traits)[1]["prompt"]
    assert isinstance(body["prompt"], str)


def test_chat_body_sends_pictures_as_content_parts() -> None:
    """Caption, data URI, caption, data URI, then the user's text; none when told text-only."""
    _path, body = OpenAiProvider().request(prompt(), UNKNOWN_TRAITS)
    parts = body["messages"][1]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "text", "image_url", "text"]
    assert parts[0]["text"] == FRAMES[0].caption
    assert parts[-1]["text"] == "One person."
    uri = parts[1]["image_url"]["url"]
    assert uri.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == FRAMES[0].jpeg
    _path, text = OpenAiProvider().request(prompt(), ServerTraits(vision=False))
    assert text["messages"][1]["content"] == "One person."


def test_traits_from_props_take_only_what_makes_sense() -> None:
    """Odd /props answers say nothing rather than something wrong."""
    good = {
        "modalities": {"vision": True},
        "media_marker": MARKER,
        "default_generation_settings": {"n_ctx": 4096},
    }
    assert traits_from_props(good) == ServerTraits(
        vision=True, media_marker=MARKER, context_tokens=4096
    )
    assert traits_from_props([1]) == UNKNOWN_TRAITS
    odd = {"modalities": {"vision": "yes"}, "media_marker": "", "default_generation_settings": 3}
    assert traits_from_props(odd) == UNKNOWN_TRAITS
    assert traits_from_props({"default_generation_settings": {"n_ctx": True}}) == UNKNOWN_TRAITS


# --- Real servers --------------------------------------------------------------------------------


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def counting_session() -> tuple[aiohttp.ClientSession, SimpleNamespace]:
    """Return a session, and the paths it sent requests to and the JSON bodies it sent."""
    seen = SimpleNamespace(paths=[], bodies=[])

    async def on_start(_session: object, _ctx: object, params: Any) -> None:
        seen.paths.append(params.url.path)

    async def on_chunk(_session: object, _ctx: object, params: Any) -> None:
        seen.bodies.append(json.loads(params.chunk))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_chunk_sent.append(on_chunk)
    return aiohttp.ClientSession(trace_configs=[trace]), seen


def analyzer(
    session: aiohttp.ClientSession, server: LlamaServer, api: LlmApi, **kwargs: Any
) -> Analyzer:
    schema_friendly = {"seed": 1, **grammar_friendly_params()}
    options: dict[str, Any] = {
        "thresholds": SeverityThresholds(),
        "summary_max": 40,
        "reasoning_max": 40,
        "max_tokens": 768,
        "time_limit": 30.0,
        "extra_params": schema_friendly,
    } | kwargs
    return Analyzer(session, [server.url], api, **options)


async def prompt_tokens(
    session: aiohttp.ClientSession, server: LlamaServer, path: str, body: dict[str, Any]
) -> int:
    """Send body as the analyzer would and return how many prompt tokens the server evaluated."""
    body = {**body, "cache_prompt": False, "n_predict": 1, "max_tokens": 1}
    async with session.post(f"{server.url}{path}", json=body) as response:
        assert response.status == 200, await response.text()
        answer = await response.json()
    return int(
        answer["tokens_evaluated"] if path == COMPLETION_PATH else answer["usage"]["prompt_tokens"]
    )


@pytest.mark.slow
async def test_the_vision_server_says_what_it_takes(
    llama_vision_server: LlamaServer, llama_server: LlamaServer, session: aiohttp.ClientSession
) -> None:
    """/props: the projector's server sees and publishes its marker; the text one does not see."""
    seeing = await LlamaCppProvider().traits(session, llama_vision_server.url, 5.0)
    assert seeing.vision is True
    assert seeing.media_marker is not None
    assert seeing.media_marker.startswith("<__media_")
    assert seeing.context_tokens == SLOT_CONTEXT
    blind = await LlamaCppProvider().traits(session, llama_server.url, 5.0)
    assert blind.vision is False


@pytest.mark.slow
@APIS
async def test_each_picture_reaches_the_model(
    api: LlmApi, llama_vision_server: LlamaServer, session: aiohttp.ClientSession
) -> None:
    """The analyzer's own bodies cost the projector's tokens per picture; its verdict is valid."""
    client = analyzer(session, llama_vision_server, api)
    traits = await LlamaCppProvider().traits(session, llama_vision_server.url, 5.0)
    counts = []
    for frames in ((), FRAMES[:1], FRAMES):
        path, body = client.request(make_request(), frames, traits)
        counts.append(await prompt_tokens(session, llama_vision_server, path, body))
    # One token per byte of caption, and the projector's tokens: without the picture, the
    # difference would be the caption alone.
    caption_tokens = [len(frame.caption) for frame in FRAMES]
    assert counts[1] - counts[0] >= N_PATCHES + caption_tokens[0]
    assert counts[2] - counts[1] >= N_PATCHES + caption_tokens[1]
    verdict = await client.analyze(make_request(), FRAMES)
    assert verdict.source is EventSource.LLM
    assert client.vision_refused == {}
    # What it was shown is recorded: which frames, the hash of text and pictures, the server.
    assert verdict.details is not None
    assert verdict.details.frames == ("11", "12@1.5")
    assert verdict.details.prompt_hash == prompt_hash(client.prompt(make_request(), FRAMES), FRAMES)
    assert verdict.details.server == llama_vision_server.url
    # The tiny model fills every field the schema asks for (random words, but all there).
    assert verdict.details.title
    assert verdict.details.observations
    assert verdict.details.confidence is not None


def test_the_prompt_hash_covers_the_text_and_each_picture() -> None:
    """Another picture, another order or another word: another hash; the same: the same."""
    prompt = Prompt(system="s", user="u", schema={}, max_tokens=1, temperature=0.0)
    base = prompt_hash(prompt, FRAMES)
    assert len(base) == 64
    assert prompt_hash(prompt, FRAMES) == base
    assert prompt_hash(prompt, FRAMES[::-1]) != base
    assert prompt_hash(prompt, FRAMES[:1]) != base
    assert prompt_hash(replace(prompt, user="u "), FRAMES) != base
    assert prompt_hash(replace(prompt, system="su", user=""), ()) != prompt_hash(prompt, ())


@pytest.mark.slow
async def test_a_blind_native_server_gets_the_text_without_asking_twice(
    llama_server: LlamaServer,
) -> None:
    """/props says no vision: one request, text only, no warning needed."""
    session, seen = counting_session()
    async with session:
        client = analyzer(session, llama_server, LlmApi.LLAMA_CPP)
        for _ in range(2):
            verdict = await client.analyze(make_request(), FRAMES)
            assert verdict.source is EventSource.LLM
    assert seen.paths == ["/props", COMPLETION_PATH, COMPLETION_PATH]
    assert client.vision_refused == {}
    assert verdict.details is not None
    assert verdict.details.frames == ()  # none were shown


@pytest.mark.slow
async def test_a_refusing_chat_server_is_warned_about_once_and_judges_from_text(
    llama_server: LlamaServer, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTP 500 'image input is not supported': text at once, and from then on text only."""
    caplog.set_level(logging.WARNING)
    session, seen = counting_session()
    async with session:
        client = analyzer(session, llama_server, LlmApi.OPENAI)
        for _ in range(2):
            verdict = await client.analyze(make_request(), FRAMES)
            assert verdict.source is EventSource.LLM
    assert seen.paths == [CHAT_PATH, CHAT_PATH, CHAT_PATH]  # pictures, then text, then text
    ((where, why),) = client.vision_refused.items()
    assert where == llama_server.url
    assert "HTTP 500" in why
    warnings = [r.getMessage() for r in caplog.records if "refused pictures" in r.getMessage()]
    assert len(warnings) == 1
    # The refusal is not held against the server: it answered the text.
    assert client.breakers[llama_server.url].consecutive_failures == 0


@pytest.mark.slow
async def test_a_restarted_server_gets_the_pictures_at_its_new_marker(
    llama_vision_server: LlamaServer,
) -> None:
    """The marker changes with the process: the stale one is refused, asked again, sent again."""
    session, seen = counting_session()
    async with session:
        client = analyzer(session, llama_vision_server, LlmApi.LLAMA_CPP)
        await client.analyze(make_request(), FRAMES)
        await llama_vision_server.async_restart()
        seen.paths.clear()
        verdict = await client.analyze(make_request(), FRAMES)
    assert verdict.source is EventSource.LLM
    assert seen.paths == [COMPLETION_PATH, "/props", COMPLETION_PATH]
    assert client.vision_refused == {}


def test_prompt_json_stays_valid_with_pictures() -> None:
    """Pictures are base64 text in the JSON body: it serialises, with no raw bytes."""
    _path, body = OpenAiProvider().request(prompt(), UNKNOWN_TRAITS)
    assert json.loads(json.dumps(body)) == body


def padding(tokens: int) -> tuple[str, ...]:
    """Return context lines that add about tokens to the tiny model's prompt (a token a byte)."""
    lines: list[str] = []
    while tokens > 1:
        size = min(tokens - 1, 200)  # a line, and its newline
        lines.append("x" * size)
        tokens -= size + 1
    return tuple(lines)


LONG_CAPTIONED = tuple(
    PromptImage(jpeg=picture(color), caption=f"F{rank} " + "c" * 384, rank=rank)
    for rank, color in ((1, (200, 30, 30)), (0, (30, 200, 30)), (2, (30, 30, 200)))
)
"""Three pictures with long captions: each costs the tiny model about 405 tokens (16 of them the
picture's), so one fits beside a long text and the answer (at most about 720 tokens), three do
not. The clearest is the second (rank 0)."""


def roomy_analyzer(session: aiohttp.ClientSession, server: LlamaServer) -> Analyzer:
    """Return an analyzer for the tiny vision model that lists every detection.

    The prompt's length is then the test's to set (with context lines).
    """
    return analyzer(
        session, server, LlmApi.LLAMA_CPP, max_prompt_chars=1_000_000, max_detections=500
    )


@pytest.mark.slow
async def test_pictures_that_do_not_fit_become_fewer(llama_vision_server: LlamaServer) -> None:
    """A prompt that fits with one picture, not three: the clearest goes, and then only one.

    The server refuses the three with HTTP 400 (over its context); the same verdict is asked
    again with the most telling picture, and the next verdict sends one at once.
    """
    frames = LONG_CAPTIONED
    session, seen = counting_session()
    async with session:
        client = roomy_analyzer(session, llama_vision_server)
        base = make_request()
        # With pictures given, the system text says how they come: measured with it (the
        # native body without traits carries the text alone).
        text_tokens = await prompt_tokens(
            session, llama_vision_server, *client.request(base, frames)
        )
        # One picture and the answer leave about 100 tokens of room: more than the margin the
        # measured budget keeps on the text (llm_budget.TEXT_MARGIN).
        target = SLOT_CONTEXT - 1300
        request = replace(base, context=padding(target - text_tokens))
        padded = await prompt_tokens(session, llama_vision_server, *client.request(request, frames))
        assert target - 5 <= padded <= target
        seen.paths.clear()
        seen.bodies.clear()
        first = await client.analyze(request, frames)
        second = await client.analyze(request, frames)
    assert first.source is second.source is EventSource.LLM
    # Refused with three, taken with one (and measured: /tokenize), then one at once.
    assert seen.paths == [
        "/props",
        COMPLETION_PATH,
        COMPLETION_PATH,
        TOKENIZE_PATH,
        COMPLETION_PATH,
    ]
    sent = [
        [base64.b64decode(item) for item in body["prompt"]["multimodal_data"]]
        for body in seen.bodies
        if "prompt" in body
    ]
    assert sent == [[frame.jpeg for frame in frames], [frames[1].jpeg], [frames[1].jpeg]]
    assert client.vision_refused == {}


@pytest.mark.slow
async def test_a_measured_server_gets_what_fits_before_anything_is_refused(
    llama_vision_server: LlamaServer,
) -> None:
    """One verdict with pictures teaches what a picture costs; then nothing is refused.

    A long prompt goes at once with the pictures that fit its context beside the answer.
    """
    frames = LONG_CAPTIONED
    session, seen = counting_session()
    async with session:
        client = roomy_analyzer(session, llama_vision_server)
        base = make_request()
        text_tokens = await prompt_tokens(
            session, llama_vision_server, *client.request(base, frames)
        )
        seen.paths.clear()
        seen.bodies.clear()
        first = await client.analyze(base, frames)  # short: all three fit, and are measured
        long = replace(base, context=padding(SLOT_CONTEXT - 1300 - text_tokens))
        second = await client.analyze(long, frames)
    assert first.source is second.source is EventSource.LLM
    assert seen.paths == ["/props", COMPLETION_PATH, TOKENIZE_PATH, COMPLETION_PATH]
    completions = [body for body in seen.bodies if "prompt" in body]
    sent = [
        [base64.b64decode(item) for item in body["prompt"]["multimodal_data"]]
        for body in completions
    ]
    assert sent == [[frame.jpeg for frame in frames], [frames[1].jpeg]]
    assert client.vision_refused == {}


def test_the_budget_keeps_room_for_the_text_and_the_answer() -> None:
    """The measured costs size a prompt: none fit, some fit, all fit; unmeasured, all go."""
    budget = ContextBudget()
    images = tuple(PromptImage(jpeg=b"", caption=str(rank), rank=rank) for rank in (2, 0, 1))
    prompt = Prompt(system="s" * 100, user="u" * 900, schema={}, max_tokens=500, temperature=0)
    assert budget.fitting("http://a", 4096, prompt, images) == images  # not measured yet
    budget.learn("http://a", prompt_tokens=1800, text_tokens=500, text_chars=1000, pictures=2)
    cost = budget.cost("http://a")
    assert cost is not None
    assert (cost.per_picture, cost.per_char) == (650.0, 0.5)
    # 1002 characters: about 517 tokens with the margin, and the answer's 500.
    assert budget.fitting("http://a", 1017 + 650 * 3, prompt, images) == images
    assert budget.fitting("http://a", 1017 + 650 * 2, prompt, images) == images[1:]
    assert budget.fitting("http://a", 1017 + 649, prompt, images) == ()
    assert budget.fitting("http://a", None, prompt, images) == images  # no context published
    assert budget.fitting("http://b", 100, prompt, images) == images  # another server
    # Measurements that say nothing are ignored.
    budget.learn("http://b", prompt_tokens=100, text_tokens=100, text_chars=10, pictures=1)
    budget.learn("http://b", prompt_tokens=900, text_tokens=100, text_chars=10, pictures=0)
    assert budget.cost("http://b") is None


def test_most_telling_keeps_the_lowest_ranks_in_order() -> None:
    """Fewer pictures: the lowest ranks, still in the order they were seen."""
    ranked = tuple(PromptImage(jpeg=b"", caption=str(rank), rank=rank) for rank in (3, 1, 0, 2))
    assert [image.caption for image in most_telling(ranked, 2)] == ["1", "0"]
    assert most_telling(ranked, 9) == ranked
    assert most_telling(ranked, 0) == ()
