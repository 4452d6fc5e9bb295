"""The HTTP side of the detection server: routes, limits, errors and metrics (aiohttp).

The server starts listening at once and loads its model on a thread, so /health can say
"loading" (the integration counts that as reachable and retries detections that get 503 until
the model is ready). Every answer is JSON; every refusal is a 4xx or 503 with {"error": "..."}
that says what was wrong, and nothing a client sends can stop the server serving the next one:
uploads are bounded in bytes while they stream in, images in pixels before they are decoded
(images.py), and the queue in images (batching.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
import logging
import math
import time
from typing import Any

from aiohttp import BodyPartReader, web

from . import __version__
from .backends import Backend, Detection, Prepared
from .batching import DynamicBatcher, QueueFullError, describe
from .gpu import GpuReader
from .images import DEFAULT_MAX_PIXELS, ImageRejectedError, decode_image
from .metrics import ServerMetrics

_LOGGER = logging.getLogger(__name__)

FIELD = "file"
"""The multipart field that carries an image, on /detect and (repeated) on /detect/batch."""

_CHUNK = 256 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerSettings:
    """The limits and defaults of one server."""

    threshold: float = 0.25
    """Confidence below which detections are left out, when a request names none."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_upload_bytes: int = 32 * 2**20
    """Largest upload, per image; more gets 413 while it is still streaming in."""
    max_batch_files: int = 32
    """Most images one /detect/batch request may carry."""
    max_batch: int = 8
    max_wait: float = 0.010
    workers: int = 1
    max_queue: int = 256


class RequestError(Exception):
    """A request the server refuses: status and a message for the client's JSON error."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        """Keep what the answer needs."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class DetectionService:
    """The model, its batcher, its state and its metrics, shared by the routes."""

    def __init__(self, backend: Backend, settings: ServerSettings, gpu: GpuReader) -> None:
        """Set up the metrics; start() loads the model."""
        self.backend = backend
        self.settings = settings
        self.gpu = gpu
        self.status = "loading"
        self.error: str | None = None
        self.started = time.monotonic()
        self.metrics = ServerMetrics(
            queue_depth=lambda: float(self.batcher.depth),
            in_progress=lambda: float(self.batcher.busy),
            model_loaded=lambda: 1.0 if self.status == "ok" else 0.0,
        )
        self.batcher = DynamicBatcher(
            backend,
            max_batch=min(settings.max_batch, backend.max_batch),
            max_wait=settings.max_wait,
            workers=settings.workers,
            max_queue=settings.max_queue,
            observe=self._observe_batch,
            incoming=lambda: self.preparing,
        )
        self.preparing = 0
        """Images being decoded and prepared: the batcher waits for them, not for nothing."""
        self._loader: asyncio.Task[None] | None = None

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_sizes.observe(size)
        self.metrics.inference.observe(seconds)

    async def start(self) -> None:
        """Start loading the model in the background (the server listens meanwhile)."""
        self._loader = asyncio.create_task(self._load(), name="load model")

    async def _load(self) -> None:
        started = time.perf_counter()
        _LOGGER.info("Loading %s backend (model %s)", self.backend.name, self.backend.model)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.backend.load)
        except Exception as err:  # reported by /health; the server stays up
            self.status, self.error = "error", f"{type(err).__name__}: {err}"
            _LOGGER.exception("The %s backend failed to load", self.backend.name)
            return
        self.batcher.start()
        self.status = "ok"
        _LOGGER.info(
            "Model %s ready on %s (%s) in %.1f s",
            self.backend.model,
            self.backend.device,
            self.backend.dtype,
            time.perf_counter() - started,
        )

    async def stop(self) -> None:
        """Stop loading (if still loading) and stop the batcher."""
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            await asyncio.gather(self._loader, return_exceptions=True)
        if self.status == "ok":
            await self.batcher.stop()

    def require_ready(self) -> None:
        """Raise a 503 unless the model answers."""
        if self.status == "loading":
            raise RequestError(503, "the model is still loading", retry_after=5)
        if self.status == "error":
            raise RequestError(503, f"the model failed to load: {self.error}", retry_after=60)

    async def detect(self, data: bytes, threshold: float) -> dict[str, Any]:
        """Decode one upload and return its result in the protocol's shape."""
        loop = asyncio.get_running_loop()

        def prepare() -> Prepared:
            return self.backend.prepare(decode_image(data, max_pixels=self.settings.max_pixels))

        self.preparing += 1
        try:
            image = await loop.run_in_executor(None, prepare)
        except ImageRejectedError as err:
            self.metrics.images.labels("rejected").inc()
            raise RequestError(err.status, err.message) from None
        finally:
            self.preparing -= 1
        try:
            found, elapsed_ms = await self.batcher.submit(image, threshold)
        except QueueFullError as err:
            self.metrics.images.labels("busy").inc()
            raise RequestError(503, f"the server is busy: {err}", retry_after=1) from None
        self.metrics.images.labels("ok").inc()
        for item in found:
            self.metrics.detections.labels(item.label).inc()
        return result_json(found, elapsed_ms, image.size)

    def health(self, gpu: dict[str, Any] | None) -> dict[str, Any]:
        """Return the /health answer."""
        answer: dict[str, Any] = {
            "status": self.status,
            "backend": self.backend.name,
            "model": self.backend.model,
            "device": self.backend.device,
            "dtype": self.backend.dtype,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "threshold": self.settings.threshold,
            "max_pixels": self.settings.max_pixels,
            "batching": describe(self.batcher),
            "queue_depth": self.batcher.depth,
        }
        if self.error is not None:
            answer["error"] = self.error
        if gpu is not None:
            answer["gpu"] = gpu
        return answer


def result_json(
    found: list[Detection], inference_ms: float, size: tuple[int, int]
) -> dict[str, Any]:
    """Return one image's answer: its detections, the backend call's time and its size."""
    return {
        "detections": [item.as_json() for item in found],
        "inference_time_ms": round(inference_ms, 2),
        "image_size": [size[0], size[1]],
    }


SERVICE = web.AppKey("service", DetectionService)


def _threshold(request: web.Request, default: float) -> float:
    raw = request.query.get("threshold")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RequestError(400, f"threshold must be a number from 0 to 1, not {raw!r}") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RequestError(400, f"threshold must be from 0 to 1, not {raw}")
    return value


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    """Read one multipart part, refusing it with 413 as soon as it passes limit bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise RequestError(
                413, f"the file is larger than this server's limit of {limit / 2**20:g} MiB"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _files(request: web.Request, limit: int, most: int) -> list[bytes]:
    """Return the contents of every part named FIELD, in order (400 when there is none)."""
    if not request.content_type.startswith("multipart/"):
        raise RequestError(
            400,
            f"send the image as multipart/form-data in the field '{FIELD}' "
            f"(the request's content type is '{request.content_type}')",
        )
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as err:
        raise RequestError(400, f"the multipart body could not be read: {err}") from None
    files: list[bytes] = []
    others: list[str] = []
    try:
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                others.append("(nested multipart)")
                continue
            if part.name != FIELD:
                others.append(repr(part.name))
                await part.release()
                continue
            if len(files) >= most:
                raise RequestError(413, f"at most {most} files per request")
            files.append(await _read_part(part, limit))
    except (ValueError, AssertionError, RuntimeError) as err:
        raise RequestError(400, f"the multipart body could not be read: {err}") from None
    if not files:
        named = f" (it has {', '.join(others)})" if others else ""
        raise RequestError(400, f"the request has no multipart field '{FIELD}'{named}")
    return files


async def handle_detect(request: web.Request) -> web.Response:
    """POST /detect: one image in, its detections out."""
    service = request.app[SERVICE]
    threshold = _threshold(request, service.settings.threshold)
    service.require_ready()
    (data,) = await _files(request, service.settings.max_upload_bytes, 1)
    return web.json_response(await service.detect(data, threshold))


async def handle_detect_batch(request: web.Request) -> web.Response:
    """POST /detect/batch: several images in (all named 'file'), one result each, in order.

    An image that is refused gets {"error", "status"} in its place, so one bad file does not
    cost the others their detections.
    """
    service = request.app[SERVICE]
    threshold = _threshold(request, service.settings.threshold)
    service.require_ready()
    files = await _files(
        request, service.settings.max_upload_bytes, service.settings.max_batch_files
    )
    started = time.perf_counter()
    outcomes = await asyncio.gather(
        *(service.detect(data, threshold) for data in files), return_exceptions=True
    )
    results: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, RequestError):
            results.append({"error": outcome.message, "status": outcome.status})
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append(outcome)
    return web.json_response(
        {
            "results": results,
            "elapsed_ms": round((time.perf_counter() - started) * 1000.0, 2),
        }
    )


async def handle_health(request: web.Request) -> web.Response:
    """GET /health: the model's state and, when NVML sees one, the GPU's."""
    service = request.app[SERVICE]
    gpu = None
    if service.gpu.available:
        gpu = await asyncio.get_running_loop().run_in_executor(None, service.gpu.read)
    return web.json_response(service.health(gpu))


async def handle_metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    body, content_type = request.app[SERVICE].metrics.render(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every refusal and failure into a JSON answer, and count and time every request."""
    service = request.app[SERVICE]
    started = time.perf_counter()
    route = request.match_info.route.resource
    endpoint = route.canonical if route is not None else "unmatched"
    refusal = ""
    try:
        response = await handler(request)
    except RequestError as err:
        refusal = err.message
        headers = {"Retry-After": str(err.retry_after)} if err.retry_after else None
        response = web.json_response({"error": err.message}, status=err.status, headers=headers)
    except web.HTTPException as err:
        refusal = err.reason
        response = web.json_response(
            {"error": err.reason}, status=err.status, headers=_allowed(err)
        )
    except Exception:  # a bug must not take the server down with it
        _LOGGER.exception("Unexpected error answering %s %s", request.method, request.path)
        response = web.json_response({"error": "internal server error"}, status=500)
    service.metrics.requests.labels(endpoint, str(response.status)).inc()
    service.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
    if refusal:
        _LOGGER.info("%s %s -> %d: %s", request.method, request.path, response.status, refusal)
    return response


def _allowed(err: web.HTTPException) -> dict[str, str] | None:
    allow = err.headers.get("Allow")
    return {"Allow": allow} if allow else None


def create_app(
    backend: Backend, settings: ServerSettings, gpu: GpuReader | None = None
) -> web.Application:
    """Return the aiohttp application serving backend; the model loads when the app starts."""
    # The multipart reader streams, so client_max_size only bounds bodies read whole; uploads
    # are bounded per part in _read_part. Allow a full batch of maximal files plus framing.
    app = web.Application(
        middlewares=[errors_and_metrics],
        client_max_size=settings.max_upload_bytes * settings.max_batch_files + 2**20,
    )
    service = DetectionService(backend, settings, gpu if gpu is not None else GpuReader())
    app[SERVICE] = service
    app.router.add_post("/detect", handle_detect)
    app.router.add_post("/detect/batch", handle_detect_batch)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)

    async def lifecycle(app: web.Application) -> Any:
        await service.start()
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    return app
