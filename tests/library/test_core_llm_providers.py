"""LLM providers: one class per kind of server behind one protocol, chosen from a registry.

The analyzer must hold no server dialect of its own: a provider registered for an API is all it
takes to speak to a new kind of server. Shown with a provider made up here (its own route, body
and reply envelope) against a real HTTP server, and with the configuration's every API having a
provider and a label in the config flow.
"""

from collections.abc import AsyncIterator
import json
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
import pytest

from custom_components.ai_security.core import llm_providers
from custom_components.ai_security.core.analyzer import Analyzer, AnalyzerError
from custom_components.ai_security.core.health import ServiceUnavailableError, get_json
from custom_components.ai_security.core.llm_provider import (
    UNKNOWN_TRAITS,
    Capabilities,
    Prompt,
    Reply,
    ServerTraits,
)
from custom_components.ai_security.core.llm_providers import PROVIDERS, probe_llm, provider_for
from custom_components.ai_security.core.models import EventSource
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from tests.translations import STRINGS

from .test_core_analyzer import make_request

VERDICT = {"risk_score": 80, "risk_level": "high", "summary": "Someone", "reasoning": "At night"}


class ShoutingProvider:
    """A server kind nobody ships: POST /shout {"words": ...} -> {"said": ..., "tired": bool}."""

    api: ClassVar[LlmApi] = LlmApi.OPENAI
    capabilities: ClassVar[Capabilities] = Capabilities()

    def request(
        self, prompt: Prompt, traits: ServerTraits = UNKNOWN_TRAITS
    ) -> tuple[str, dict[str, Any]]:
        return "/shout", {"words": f"{prompt.system}|{prompt.user}".upper(), "max": 7}

    def reply(self, envelope: object) -> Reply:
        if not isinstance(envelope, dict):
            return Reply(content=None, cut_off=False)
        return Reply(content=envelope.get("said"), cut_off=bool(envelope.get("tired")))

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        payload = await get_json(session, f"{base_url}/awake", time_limit)
        if payload != {"awake": True}:
            raise ServiceUnavailableError("not awake")
        return {"awake": True}

    async def traits(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> ServerTraits:
        return UNKNOWN_TRAITS


@pytest.fixture
async def shouting_server(socket_enabled: None) -> AsyncIterator[tuple[str, list[Any]]]:
    """Run a server speaking ShoutingProvider's dialect; yield its URL and the bodies it got."""
    seen: list[Any] = []
    answers = iter([{"said": json.dumps(VERDICT)}, {"said": '{"risk_sc', "tired": True}])

    async def shout(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(next(answers))

    async def awake(_request: web.Request) -> web.Response:
        return web.json_response({"awake": True})

    app = web.Application()
    app.router.add_post("/shout", shout)
    app.router.add_get("/awake", awake)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def test_every_api_has_a_provider_and_a_label() -> None:
    """The config flow offers every LlmApi; each is spoken by the provider registered for it."""
    assert set(PROVIDERS) == set(LlmApi)
    for api in LlmApi:
        assert provider_for(api).api is api
    labels = STRINGS["selector"]["llm_api"]["options"]
    assert set(labels) == {api.value for api in LlmApi}


async def test_the_analyzer_speaks_whatever_the_registered_provider_speaks(
    monkeypatch: pytest.MonkeyPatch, shouting_server: tuple[str, list[Any]]
) -> None:
    """A provider registered for an API is used for its requests, replies and probes.

    The verdict comes from the made-up envelope; a reply it marks as cut off is reported so.
    """
    url, seen = shouting_server
    monkeypatch.setitem(llm_providers.PROVIDERS, LlmApi.OPENAI, ShoutingProvider)
    async with aiohttp.ClientSession() as session:
        analyzer = Analyzer(session, [url], LlmApi.OPENAI, thresholds=SeverityThresholds())
        verdict = await analyzer.analyze(make_request())
        assert (verdict.risk_score, verdict.summary, verdict.source) == (
            80,
            "Someone",
            EventSource.LLM,
        )
        ((body),) = seen
        assert body["max"] == 7
        assert "CAMERA:" in body["words"]
        with pytest.raises(AnalyzerError, match="cut off"):
            await analyzer.analyze(make_request())
        assert await probe_llm(session, url, LlmApi.OPENAI) == {"awake": True}
