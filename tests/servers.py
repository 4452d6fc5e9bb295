"""Small model-server stand-ins on 127.0.0.1 that speak the detector's and the LLM's health routes.

They are real HTTP servers (aiohttp) so the integration's real client code, time-outs and error
handling run; a test flips what they answer to walk the failure paths.
"""

import asyncio
import base64
from dataclasses import dataclass, field
import json
import socket
from typing import Any

from aiohttp import web


def free_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ModelServer:
    """An HTTP server answering GET /health and GET /v1/models with what the test sets."""

    health_status: int = 200
    health_body: Any = field(default_factory=lambda: {"status": "ok"})
    models_status: int = 200
    models_body: Any = field(
        default_factory=lambda: {"object": "list", "data": [{"id": "tiny", "object": "model"}]}
    )
    slots_status: int = 200
    slots_body: Any = None
    """What GET /slots answers (llama.cpp's slot list); None: no such route (404)."""
    metrics_status: int = 200
    metrics_body: str | None = None
    """What GET /metrics answers (Prometheus text); None: no such route (404)."""
    props_body: Any = None
    """What GET /props answers; None: no such route (404)."""
    delay: float = 0.0
    """Seconds to wait before answering, to exercise client time-outs."""
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        """Return the server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def _health(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        return self._answer(self.health_status, self.health_body)

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return self._answer(self.models_status, self.models_body)

    async def _optional(self, request: web.Request) -> web.Response:
        """Answer /slots, /metrics or /props as set; 404 (not recorded) where nothing is set."""
        status, body = {
            "/slots": (self.slots_status, self.slots_body),
            "/metrics": (self.metrics_status, self.metrics_body),
            "/props": (200, self.props_body),
        }[request.path]
        if body is None:
            raise web.HTTPNotFound
        self.requests.append(request.path)
        return self._answer(status, body)

    @staticmethod
    def _answer(status: int, body: Any) -> web.Response:
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 (or the port it had, after a stop)."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        for path in ("/slots", "/metrics", "/props"):
            app.router.add_get(path, self._optional)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Stop listening: requests are refused until start() is called again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def routes(self, app: web.Application) -> None:
        """Add routes beyond the health ones (subclasses)."""


@dataclass
class LlmStub(ModelServer):
    """An LLM server answering both completion routes with a verdict the test sets.

    For pipeline tests that need exact, repeatable verdicts; the analyzer itself is tested
    against a real llama-server (tests/llama.py).
    """

    verdict: Any = field(
        default_factory=lambda: {
            "risk_score": 72,
            "risk_level": "high",
            "summary": "Person at the door at night",
            "reasoning": "One person close to the entrance late at night.",
        }
    )
    completion_status: int = 200
    completion_delay: float = 0.0
    """Seconds a completion takes; its prompt is recorded once it is answered."""
    prompts: list[str] = field(default_factory=list)
    images: list[list[bytes]] = field(default_factory=list)
    """The pictures each answered request carried (JPEG bytes), beside its prompt's text."""
    refuse_pictures: bool = False
    """Answer a request with pictures as a server without a vision model does (HTTP 500)."""
    room_for_pictures: int | None = None
    """With more pictures than this, the context is full: the answer is cut off mid-verdict."""

    def routes(self, app: web.Application) -> None:
        """Serve llama.cpp's /completion and the OpenAI chat route."""
        app.router.add_post("/completion", self._completion)
        app.router.add_post("/v1/chat/completions", self._chat)

    def _content(self) -> str:
        return self.verdict if isinstance(self.verdict, str) else json.dumps(self.verdict)

    async def _completion(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.completion_delay:
            await asyncio.sleep(self.completion_delay)
        self.requests.append(request.path)
        prompt = body.get("prompt", "")
        if isinstance(prompt, dict):  # text with pictures: prompt_string and multimodal_data
            self.images.append([base64.b64decode(item) for item in prompt["multimodal_data"]])
            prompt = prompt["prompt_string"]
        else:
            self.images.append([])
        self.prompts.append(prompt)
        if self.completion_status != 200:
            return web.json_response({"error": "stub failure"}, status=self.completion_status)
        return web.json_response({"content": self._content(), "stop_type": "eos"})

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.completion_delay:
            await asyncio.sleep(self.completion_delay)
        self.requests.append(request.path)
        content = body["messages"][-1]["content"]
        if isinstance(content, list):  # content parts: texts and image_url data URIs
            self.images.append(
                [
                    base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
                    for part in content
                    if part["type"] == "image_url"
                ]
            )
            content = "\n".join(part["text"] for part in content if part["type"] == "text")
        else:
            self.images.append([])
        self.prompts.append(content)
        if self.completion_status != 200:
            return web.json_response({"error": "stub failure"}, status=self.completion_status)
        if self.refuse_pictures and self.images[-1]:
            refusal = {"code": 500, "message": "image input is not supported"}
            return web.json_response({"error": refusal}, status=500)
        if self.room_for_pictures is not None and len(self.images[-1]) > self.room_for_pictures:
            cut = {"message": {"content": self._content()[:20]}, "finish_reason": "length"}
            return web.json_response({"choices": [cut]})
        return web.json_response(
            {"choices": [{"message": {"content": self._content()}, "finish_reason": "stop"}]}
        )
