"""The RT-DETRv2 detector client: one image in, validated detections out, over a pool of servers.

This module sends the request and turns every failure into a DetectorError whose message names
the endpoint without credentials. Which endpoint gets the image, and each one's circuit breaker
(shared with the health checks), is detector_pool's job; which items of a reply are usable, with
boxes clipped to the image so later stages (annotation, zones) can trust them, is
detector_reply's: a server that sends garbage costs a log line, never a crash.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
import json
import logging
import re
import time
from typing import Final

import aiohttp
from yarl import URL

from .detector_pool import DetectorPool
from .detector_reply import (
    FAR_OUTSIDE,
    UNIT_BOXES,
    Found,
    error_detail,
    finite_number,
    implausible_reply,
    validate_items,
)
from .health import redact_url
from .resilience import CircuitBreaker

__all__ = [
    "FAR_OUTSIDE",
    "MAX_REPLY_BYTES",
    "UNIT_BOXES",
    "DetectorClient",
    "DetectorError",
    "DetectorRejectedError",
    "DetectorResult",
    "Found",
    "content_type_for",
    "safe_filename",
]
"""Found and the two conventions a reply may wrongly follow are detector_reply's, named here too
because callers of the client (the pipeline, NMS, the tests) meet them through its results."""

_LOGGER = logging.getLogger(__name__)

DETECT_PATH: Final = "/detect"
"""The protocol's route for one image (POST, multipart/form-data, field "file")."""

MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
"""Largest reply body read; a real reply is a few kilobytes, so more is a broken server."""

_CONTENT_TYPES: Final = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
}
"""Content types by suffix; a table, because mimetypes reads system files (blocking I/O)."""


class DetectorError(Exception):
    """A detection request failed; the image is worth sending again later.

    Connection errors, time-outs, HTTP errors and replies that do not follow the protocol all end
    here. The message is meant for users and never contains credentials.
    """

    def __init__(
        self, message: str, *, status: int | None = None, unreachable: bool = False
    ) -> None:
        """Keep the HTTP status (None when there was no HTTP answer) for callers and diagnostics.

        unreachable: no connection could be made at all (refused, no route, no such host), the
        one failure that says the server is down rather than this image being a problem.
        """
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


class DetectorRejectedError(DetectorError):
    """The server answered with HTTP 4xx: it works, but refused this image (413 too large, 400).

    It does not count against the endpoint's circuit breaker. Sending the same image again will
    most likely be refused again, so a caller may give up on it sooner than on other errors.
    """


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectorResult:
    """What one image's detection request gave, with where and how fast it was answered."""

    detections: tuple[Found, ...]
    inference_time_ms: float | None
    """The server's own inference time; None when it did not report a usable one."""
    endpoint: str
    """The URL that answered, without credentials."""
    latency_ms: float
    """Round trip measured by the client: upload, inference and reply."""
    dropped: int
    """Items of the reply discarded as invalid (not those below the threshold, which is normal)."""


def content_type_for(filename: str) -> str:
    """Return the content type sent with the image, from its file name's suffix."""
    dot = filename.rfind(".")
    suffix = filename[dot:].lower() if dot >= 0 else ""
    return _CONTENT_TYPES.get(suffix, "application/octet-stream")


_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME: Final = 64


def safe_filename(name: str) -> str:
    """Return the file name sent with an image: ASCII letters, digits, ".", "_" and "-" only.

    Upload names are the cameras' (and anyone with FTP access's): a newline, a quote or a byte
    that is not UTF-8 in one makes aiohttp refuse the multipart header, and a leading dash or
    an overlong name can confuse the server. The server needs only the suffix, which is kept.
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    suffix = suffix.lower() if f".{suffix.lower()}" in _CONTENT_TYPES else ""
    cleaned = _UNSAFE_NAME.sub("_", stem).strip("._-")[:_MAX_NAME] or "upload"
    return f"{cleaned}.{suffix}" if suffix else cleaned


def _describe(err: BaseException, url: str) -> str:
    """Return err's message without url's user information (aiohttp messages quote the URL)."""
    text = str(err) or type(err).__name__
    try:
        parsed = URL(url)
    except ValueError:
        return type(err).__name__  # cannot tell the credentials apart: say nothing of the URL
    user, password = parsed.raw_user, parsed.raw_password
    if password is not None:
        text = text.replace(f"{user or ''}:{password}@", "")
    if user:
        text = text.replace(f"{user}@", "")
    return text


class DetectorClient:
    """Send images to a pool of RT-DETRv2 servers and return what they found.

    It never creates an aiohttp session: it uses the one it is given (Home Assistant's shared
    session). It is not thread-safe: use it from the event loop.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Sequence[str],
        *,
        threshold: float,
        time_limit: float = 30.0,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the endpoint pool: one closed breaker per URL (duplicates ignored).

        Raises ValueError for no URLs, a threshold outside [0, 1], a time limit that is not
        positive or breaker settings CircuitBreaker refuses: programming errors, not server
        trouble.
        """
        if not time_limit > 0:
            raise ValueError(f"time_limit must be positive, not {time_limit}")
        self._session = session
        self._time_limit = time_limit
        self._threshold = self._checked_threshold(threshold)
        self._pool = DetectorPool(
            urls, failure_threshold=failure_threshold, reset_timeout=reset_timeout, clock=clock
        )

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Return one breaker per URL, keyed by the URL as configured, shared with health checks."""
        return self._pool.breakers

    @property
    def implausible(self) -> dict[str, str]:
        """Return endpoints (redacted URL) whose latest reply with boxes made no sense, and why."""
        return self._pool.implausible

    @staticmethod
    def _checked_threshold(value: float) -> float:
        """Return value when it is a usable confidence threshold; raise ValueError otherwise."""
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise ValueError(f"threshold must be in [0, 1], not {value}")
        return float(value)

    @property
    def urls(self) -> tuple[str, ...]:
        """Return the endpoints in the order they were configured."""
        return self._pool.urls

    @property
    def threshold(self) -> float:
        """Return the confidence below which detections are dropped."""
        return self._threshold

    def set_threshold(self, value: float) -> None:
        """Change the confidence threshold (the options changed) for requests from now on."""
        self._threshold = self._checked_threshold(value)

    def in_flight(self, url: str) -> int:
        """Return how many requests to url are waiting for an answer."""
        return self._pool.in_flight(url)

    async def detect(
        self,
        image: bytes,
        *,
        filename: str,
        width: int,
        height: int,
        content_type: str | None = None,
    ) -> DetectorResult:
        """Send one image (width x height pixels) to an endpoint and return its detections.

        Raises CircuitOpenError, without sending, when every endpoint's breaker is open;
        DetectorRejectedError when the server answered 4xx (not held against the endpoint); and
        DetectorError for every other failure (counted by the endpoint's breaker).
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, not {width}x{height}")
        url = self._pool.choose()
        breaker = self.breakers[url]
        endpoint = redact_url(url)
        with self._pool.sending(url):
            started = time.perf_counter()
            try:
                items, inference = await self._post(
                    url, image, filename, content_type or content_type_for(filename)
                )
            except DetectorRejectedError:
                breaker.record_success()  # it answered; the image was the problem
                raise
            except DetectorError as err:
                breaker.record_failure(err)
                raise
            except BaseException:
                breaker.release()  # cancelled, or a bug of ours: no verdict on the server
                raise
        problem = implausible_reply(items, width, height)
        self._pool.note_plausibility(endpoint, problem, bool(items))
        if problem is not None:
            # Not "nothing seen": the image waits (its job is retried, then kept as dead) until
            # the server answers in pixels, and the breaker moves traffic to other endpoints.
            error = DetectorError(f"{endpoint}: {problem}", status=200)
            breaker.record_failure(error)
            raise error
        breaker.record_success()
        latency_ms = (time.perf_counter() - started) * 1000.0
        found, dropped = self._validate(items, width, height, endpoint)
        return DetectorResult(
            detections=tuple(item for item in found if item.confidence >= self._threshold),
            inference_time_ms=inference,
            endpoint=endpoint,
            latency_ms=latency_ms,
            dropped=dropped,
        )

    async def _post(
        self, url: str, image: bytes, filename: str, content_type: str
    ) -> tuple[list[object], float | None]:
        """POST the image to url's /detect; return the reply's detections list and timing.

        Every failure becomes a DetectorError (DetectorRejectedError for 4xx) with a message
        that names the endpoint without credentials.
        """
        endpoint = redact_url(url)
        form = aiohttp.FormData()
        form.add_field("file", image, filename=safe_filename(filename), content_type=content_type)
        try:
            async with self._session.post(
                f"{url.rstrip('/')}{DETECT_PATH}",
                data=form,
                timeout=aiohttp.ClientTimeout(total=self._time_limit),
                allow_redirects=False,
            ) as response:
                body = await self._read(response, endpoint)
                status, reason = response.status, response.reason or ""
                reply_type = response.content_type
        except TimeoutError as err:
            raise DetectorError(f"no answer from {endpoint} within {self._time_limit:g} s") from err
        except aiohttp.InvalidURL as err:
            raise DetectorError(f"{endpoint} is not a usable URL") from err
        except aiohttp.ClientConnectorError as err:
            raise DetectorError(f"{endpoint}: {_describe(err, url)}", unreachable=True) from err
        except aiohttp.ClientError as err:
            raise DetectorError(f"{endpoint}: {_describe(err, url)}") from err
        if status >= 300:
            detail = error_detail(body)
            message = f"{endpoint} answered HTTP {status} {reason}".rstrip()
            message = f"{message}: {detail}" if detail else message
            if 400 <= status < 500:
                raise DetectorRejectedError(message, status=status)
            raise DetectorError(message, status=status)
        try:
            payload = json.loads(body)
        except ValueError, RecursionError:
            raise DetectorError(
                f"{endpoint} did not answer with JSON ({reply_type or 'no content type'})",
                status=status,
            ) from None
        if not isinstance(payload, dict) or not isinstance(payload.get("detections"), list):
            raise DetectorError(
                f"{endpoint} did not answer in the detector protocol "
                "(a JSON object with a detections list)",
                status=status,
            )
        items: list[object] = payload["detections"]
        inference = finite_number(payload.get("inference_time_ms"))
        return items, inference if inference is not None and inference >= 0 else None

    @staticmethod
    async def _read(response: aiohttp.ClientResponse, endpoint: str) -> bytes:
        """Return the reply body; raise DetectorError beyond MAX_REPLY_BYTES instead of hoarding."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > MAX_REPLY_BYTES:
                raise DetectorError(
                    f"{endpoint} sent a reply over {MAX_REPLY_BYTES // (1024 * 1024)} MiB",
                    status=response.status,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _validate(
        items: list[object], width: int, height: int, endpoint: str
    ) -> tuple[list[Found], int]:
        """Return the usable items and how many were dropped, logging one warning per reply."""
        found, reasons = validate_items(items, width, height)
        dropped = reasons.total()
        if dropped:
            _LOGGER.warning(
                "Detector %s sent %d unusable of %d detections, dropped: %s",
                endpoint,
                dropped,
                len(items),
                ", ".join(f"{count} {reason}" for reason, count in reasons.items()),
            )
        return found, dropped
