"""Home Assistant's own llama.cpp conversation agent uses the AI Security tools.

The user sets up the llama.cpp integration (Home Assistant's, not ours) and ticks AI Security
beside Assist in its agent's options. The agent then sends our tools to its server with every
request, runs the calls its model asks for through our API, and gives the model their answers.
The model here is a scripted OpenAI-compatible chat server (a random model cannot decide to
call a tool): it asks for summarize_period, then answers from the tool's result, and records
what the agent sent it.
"""

from collections.abc import AsyncIterator
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import set_up, upload_event

TOOL = "ai-security__summarize_period"


class ScriptedModel:
    """An OpenAI-compatible chat server whose model calls our tool once, then answers."""

    def __init__(self) -> None:
        """Start with no requests."""
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": "local-model", "object": "model"}]}
        )

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        results = [m for m in body["messages"] if m.get("role") == "tool"]
        if body.get("max_tokens", 0) <= 3 or not any(
            tool["function"]["name"] == TOOL for tool in body.get("tools", [])
        ):
            message: dict[str, Any] = {"role": "assistant", "content": "ok"}
        elif not results:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": TOOL,
                            "arguments": json.dumps({"period": "today", "cameras": ["front door"]}),
                        },
                    }
                ],
            }
        else:
            # The agent sends the tool's result as it came: {"data": ..., "error": false}.
            found = json.loads(results[-1]["content"]).get("data", {})
            said = (
                f"The front door had {found['incidents']} incident(s) today."
                if "incidents" in found
                else f"The tool failed: {results[-1]['content']}"
            )
            message = {"role": "assistant", "content": said}
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "local-model",
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    }
                ],
            }
        )


@pytest.fixture
async def model(socket_enabled: None) -> AsyncIterator[ScriptedModel]:
    server = ScriptedModel()
    await server.start()
    yield server
    await server.stop()


async def test_llama_cpp_agent_calls_our_tools(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    model: ScriptedModel,
) -> None:
    """Ticked beside Assist, our tools reach the model; its call is answered from the history."""
    for component in ("homeassistant", "conversation", "llm"):
        assert await async_setup_component(hass, component, {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Front Door/a.jpg", 1, events)
    agent_entry = MockConfigEntry(
        domain="llama_cpp",
        title=model.url,
        data={"base_url": model.url, "streaming": False},
        subentries_data=[
            ConfigSubentryData(
                subentry_type="conversation",
                data={
                    "recommended": True,
                    "llm_hass_api": ["assist", "ai_security"],
                    "chat_model": "local-model",
                },
                title="Local model",
                unique_id=None,
            )
        ],
    )
    agent_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(agent_entry.entry_id)
    await hass.async_block_till_done()
    agent_id = next(
        state.entity_id
        for state in hass.states.async_all("conversation")
        if state.entity_id != "conversation.home_assistant"
    )
    reply = await hass.services.async_call(
        "conversation",
        "process",
        {"text": "Anything at the front door today?", "agent_id": agent_id},
        blocking=True,
        return_response=True,
    )
    assert reply is not None
    assert reply["response"]["speech"]["plain"]["speech"] == (
        "The front door had 1 incident(s) today."
    )
    asked, answered = model.requests[-2:]
    sent = {tool["function"]["name"] for tool in asked["tools"]}
    assert {
        TOOL,
        "ai-security__search_incidents",
        "ai-security__latest_incident",
        "ai-security__camera_status",
    } <= sent
    assert "Cite the time and the camera" in asked["messages"][0]["content"]
    (result,) = [m for m in answered["messages"] if m.get("role") == "tool"]
    summary = json.loads(result["content"])
    assert summary["error"] is False
    assert summary["data"]["by_camera"] == {"Front Door": {"high": 1}}
