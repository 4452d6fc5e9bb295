"""A fake RT-DETRv2 server on 127.0.0.1 that speaks POST /detect and GET /health.

It is a real HTTP server (aiohttp), so the detector client's real multipart upload, time-outs and
error handling run. The test decides every answer: a default Reply, one-shot Replies queued in
order, or a callable that looks at the request (its bytes' SHA-256, the decoded image size) first.
A Reply can be detections, an HTTP error, any body (HTML, broken JSON), a delay, a hold on an
asyncio.Event, or a dropped connection; stop() and start() make the server go away and come back
on the same port.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
import hashlib
import io
import json
from typing import Any, Self

from aiohttp import BodyPartReader, web
from PIL import Image

DEFAULT_HEALTH: dict[str, Any] = {"status": "ok", "model": "rtdetr_v2_r18vd", "device": "cpu"}


def detection(label: str, confidence: float, bbox: Sequence[float]) -> dict[str, Any]:
    """Return one item of a /detect reply."""
    return {"class": label, "confidence": confidence, "bbox": list(bbox)}


def detections(*items: dict[str, Any], inference_time_ms: float = 12.5) -> dict[str, Any]:
    """Return a whole /detect reply body with the given items."""
    return {"detections": list(items), "inference_time_ms": inference_time_ms}


@dataclass(frozen=True, kw_only=True)
class DetectRequest:
    """What one POST /detect carried, as the server saw it."""

    fields: tuple[str, ...]
    """Names of the multipart fields, in order."""
    filename: str | None
    """The file name of the "file" field."""
    content_type: str | None
    """The content type of the "file" field."""
    size: int
    sha256: str
    width: int | None
    """The image's size as Pillow reads it from the header; None when it is no image."""
    height: int | None
    request_type: str
    """The request's own content type (multipart/form-data)."""


@dataclass(frozen=True, kw_only=True)
class Reply:
    """How the server answers one request."""

    status: int = 200
    body: Any = field(default_factory=detections)
    """A dict or list is sent as JSON (NaN allowed), a str as text, bytes as they are."""
    content_type: str | None = None
    """Overrides the content type ("text/html" for a proxy's error page)."""
    delay: float = 0.0
    """Seconds to wait before answering, to stall past the client's time limit."""
    hold: asyncio.Event | None = None
    """When set, the answer waits until the test sets this event."""
    relative: bool = False
    """The body's bboxes are fractions of the image: scale them by the decoded size."""
    disconnect: bool = False
    """Close the connection without answering, as a crashing server does."""


type Responder = Callable[[DetectRequest], Reply | Awaitable[Reply]]
"""Decides the answer from the request; may be async (to wait for something)."""


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    """Return the image's width and height from its header (no decoding of pixels)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is simply not an image
        return None, None
    return width, height


def _scale(body: Any, width: int | None, height: int | None) -> Any:
    """Return body with its bboxes multiplied from fractions to pixels, and image_size added."""
    if width is None or height is None or not isinstance(body, dict):
        return body
    items = []
    for item in body.get("detections", []):
        x, y, w, h = item["bbox"]
        items.append({**item, "bbox": [x * width, y * height, w * width, h * height]})
    return {**body, "detections": items, "image_size": [width, height]}


class DetectorServer:
    """An HTTP server answering POST /detect and GET /health the way the test says.

    record=False skips hashing and decoding for throughput tests: the body is still read, the
    answer is the default Reply at once, and only count goes up.
    """

    def __init__(self, *, reply: Reply | Responder | None = None, record: bool = True) -> None:
        """Create a stopped server; every request gets reply (empty detections by default)."""
        self.default: Reply | Responder = reply if reply is not None else Reply()
        self.record = record
        self.replies: deque[Reply | Responder] = deque()
        self.requests: list[DetectRequest] = []
        self.count = 0
        """POST /detect requests received, recorded or not."""
        self.health_status = 200
        self.health_body: Any = DEFAULT_HEALTH
        self.health_count = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        """Return the server's base URL (known after the first start())."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Return whether the server is listening."""
        return self._runner is not None

    def answer(self, reply: Reply | Responder) -> None:
        """Answer every request from now on with reply (once the queued replies are used up)."""
        self.default = reply

    def queue(self, *replies: Reply | Responder) -> None:
        """Answer the next requests with these, one each, in order, before the default."""
        self.replies.extend(replies)

    async def wait_for_requests(self, count: int, seconds: float = 5.0) -> None:
        """Wait until count POST /detect requests have arrived (held ones included).

        Raises TimeoutError after seconds, so a test that miscounts fails instead of hanging.
        """
        async with asyncio.timeout(seconds), self._arrived:
            await self._arrived.wait_for(lambda: self.count >= count)

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1, or on the port it had before a stop()."""
        if self._runner is not None:
            return
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/detect", self._detect)
        app.router.add_get("/health", self._health)
        # A short shutdown timeout: stop() cancels held or delayed handlers instead of waiting.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if not self.port:  # the system picked a free one; keep it for restarts
            self.port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Stop listening: connections are refused until start() is called again."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            # Handlers still holding or delaying an answer go with the server (their clients see
            # the connection drop); aiohttp would otherwise let them run on after a disconnect.
            for task in self._handlers:
                task.cancel()
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start the server for an async with block."""
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        """Stop the server at the end of the block."""
        await self.stop()

    async def _health(self, request: web.Request) -> web.Response:
        self.health_count += 1
        return self._response(self.health_status, self.health_body, None)

    async def _detect(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._handle(request)
        finally:
            self._handlers.discard(task)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        seen = await self._read(request)
        async with self._arrived:
            self.count += 1
            if seen is not None:
                self.requests.append(seen)
            self._arrived.notify_all()
        if seen is None:
            return self._send(self._plain(self.default))
        decide = self.replies.popleft() if self.replies else self.default
        reply = decide if isinstance(decide, Reply) else decide(seen)
        if not isinstance(reply, Reply):
            reply = await reply
        if reply.hold is not None:
            await reply.hold.wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.disconnect:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if reply.relative:
            reply = replace(reply, body=_scale(reply.body, seen.width, seen.height))
        return self._send(reply)

    def _plain(self, reply: Reply | Responder) -> Reply:
        """Return the fixed answer of a throughput server (which has no request to decide on)."""
        assert isinstance(reply, Reply), "record=False needs a fixed Reply"
        return reply

    def _send(self, reply: Reply) -> web.Response:
        return self._response(reply.status, reply.body, reply.content_type)

    async def _read(self, request: web.Request) -> DetectRequest | None:
        """Read the multipart body; return what it held (None without recording)."""
        request_type = request.headers.get("Content-Type", "")
        fields: list[str] = []
        data = b""
        filename: str | None = None
        content_type: str | None = None
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                name = part.name or ""
                fields.append(name)
                payload = await part.read()
                if name == "file":
                    data, filename = bytes(payload), part.filename
                    content_type = part.headers.get("Content-Type")
        else:
            await request.read()
        if not self.record:
            return None
        width, height = _image_size(data)
        return DetectRequest(
            fields=tuple(fields),
            filename=filename,
            content_type=content_type,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            request_type=request_type,
        )

    @staticmethod
    def _response(status: int, body: Any, content_type: str | None) -> web.Response:
        if isinstance(body, bytes):
            return web.Response(
                status=status, body=body, content_type=content_type or "application/octet-stream"
            )
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type=content_type or "text/plain")
        return web.Response(
            status=status,
            text=json.dumps(body),
            content_type=content_type or "application/json",
        )
