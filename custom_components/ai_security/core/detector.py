"""The RT-DETRv2 detector client: one image in, validated detections out, over a pool of servers.

Each configured detector URL is an endpoint behind its own circuit breaker (shared with the health
checks). A request goes to the usable endpoint with the fewest requests in flight, so several GPU
servers share the load and a dead one stops receiving images until its breaker lets a probe through.
Replies are checked item by item: a server that sends garbage costs a log line, never a crash, and
boxes are clipped to the image so later stages (annotation, zones) can trust them.
"""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
import json
import logging
import math
import re
import time
from typing import Final

import aiohttp
from yarl import URL

from .health import redact_url
from .labels import normalize_label
from .models import BoundingBox
from .resilience import CircuitBreaker, CircuitOpenError

_LOGGER = logging.getLogger(__name__)

DETECT_PATH: Final = "/detect"
"""The protocol's route for one image (POST, multipart/form-data, field "file")."""

MAX_REPLY_BYTES: Final = 8 * 1024 * 1024
"""Largest reply body read; a real reply is a few kilobytes, so more is a broken server."""

_DETAIL_CHARS: Final = 200
"""How much of a server's error detail goes into an error message."""

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

_NOT_AN_OBJECT: Final = "not a JSON object"
_BAD_CLASS: Final = "no class name"
_BAD_CONFIDENCE: Final = "confidence not a number in [0, 1]"
_BAD_BBOX: Final = "bbox not 4 finite numbers with positive width and height"
_OUTSIDE: Final = "box outside the image"


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
class Found:
    """One object of a reply that passed validation and the threshold, its box inside the image."""

    label: str
    """Class name, normalised by labels.normalize_label ("person", "car")."""
    confidence: float
    bbox: BoundingBox


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


def _finite(value: object) -> float | None:
    """Return value as a float when it is a finite JSON number (bool is not a number), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _box_values(box: object) -> tuple[float, float, float, float] | None:
    """Return a reply's [x, y, w, h] as four finite floats, or None when it is not that."""
    if not isinstance(box, list) or len(box) != 4:
        return None
    x, y, w, h = (_finite(value) for value in box)
    if x is None or y is None or w is None or h is None:
        return None
    return x, y, w, h


def _parse_box(box: object, width: int, height: int) -> BoundingBox | str:
    """Return the protocol's [x, y, w, h] clipped to the image, or why it is unusable."""
    values = _box_values(box)
    if values is None:
        return _BAD_BBOX
    x, y, w, h = values
    if w <= 0 or h <= 0:
        return _BAD_BBOX
    left, top = max(x, 0.0), max(y, 0.0)
    right, bottom = min(x + w, float(width)), min(y + h, float(height))
    if right <= left or bottom <= top:
        return _OUTSIDE
    return BoundingBox(x=left, y=top, w=right - left, h=bottom - top)


UNIT_BOXES: Final = (
    "every box lies inside the unit square: the server seems to answer in 0-1 fractions of "
    "the image, not in pixels"
)
FAR_OUTSIDE: Final = (
    "boxes reach far outside the image: the server seems to answer [x1, y1, x2, y2] corners, "
    "or for another image size, instead of [x, y, width, height] in pixels of the image sent"
)
_MIN_SIDE_FOR_UNIT_CHECK: Final = 64
"""Images at least this wide and high cannot hold real boxes that all fit in one pixel."""
_OUTSIDE_SLACK: Final = 0.1
"""A box may overhang the image by this share of its size (plus a few pixels) before it is
implausible: models predict boxes a little past the edge, and servers do not always clip."""


def implausible_reply(items: Sequence[object], width: int, height: int) -> str | None:
    """Return why a reply's boxes make no sense for a width x height image, or None.

    Two conventions other than the protocol's are recognised: fractions of the image (every box
    in the unit square of a large image, which would be stored as sub-pixel boxes at the
    top-left corner), and boxes far past the image's edges (half of them or more: corners taken
    for sizes, or boxes for another image size). Such a reply is dropped whole: its boxes are in
    the wrong places.
    """
    boxes = [
        values
        for item in items
        if isinstance(item, dict) and (values := _box_values(item.get("bbox"))) is not None
    ]
    if not boxes:
        return None
    if (
        width >= _MIN_SIDE_FOR_UNIT_CHECK
        and height >= _MIN_SIDE_FOR_UNIT_CHECK
        and all(0.0 <= value <= 1.0 for values in boxes for value in values)
    ):
        return UNIT_BOXES
    slack_x, slack_y = width * _OUTSIDE_SLACK + 4, height * _OUTSIDE_SLACK + 4
    far = sum(
        1
        for x, y, w, h in boxes
        if x < -slack_x or y < -slack_y or x + w > width + slack_x or y + h > height + slack_y
    )
    # One stray item among good ones is that item's fault (it is dropped on its own); when
    # half the boxes or more overshoot, the reply follows another convention.
    return FAR_OUTSIDE if far and 2 * far >= len(boxes) else None


def _parse_item(item: object, width: int, height: int) -> Found | str:
    """Return the item as a Found with its box clipped to the image, or why it is unusable."""
    if not isinstance(item, dict):
        return _NOT_AN_OBJECT
    raw_label = item.get("class")
    label = normalize_label(raw_label) if isinstance(raw_label, str) else None
    if label is None:
        return _BAD_CLASS
    confidence = _finite(item.get("confidence"))
    if confidence is None or not 0.0 <= confidence <= 1.0:
        return _BAD_CONFIDENCE
    box = _parse_box(item.get("bbox"), width, height)
    if isinstance(box, str):
        return box
    return Found(label=label, confidence=confidence, bbox=box)


def _error_detail(body: bytes) -> str:
    """Return the "detail" or "error" text of a JSON error body (FastAPI's style), else ""."""
    try:
        payload = json.loads(body)
    except ValueError, RecursionError:
        return ""
    if not isinstance(payload, dict):
        return ""
    for key in ("detail", "error", "message"):
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:_DETAIL_CHARS]
    return ""


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
        """Create one closed breaker per URL (duplicates ignored); ties go to the earlier URL.

        Raises ValueError for no URLs, a threshold outside [0, 1], a time limit that is not
        positive or breaker settings CircuitBreaker refuses: programming errors, not server
        trouble.
        """
        unique = tuple(dict.fromkeys(urls))
        if not unique:
            raise ValueError("at least one detector URL is needed")
        if not time_limit > 0:
            raise ValueError(f"time_limit must be positive, not {time_limit}")
        self._session = session
        self._urls = unique
        self._time_limit = time_limit
        self._threshold = self._checked_threshold(threshold)
        self._in_flight = dict.fromkeys(unique, 0)
        self.breakers: dict[str, CircuitBreaker] = {
            url: CircuitBreaker(
                name=f"Detector {redact_url(url)}",
                failure_threshold=failure_threshold,
                reset_timeout=reset_timeout,
                clock=clock,
            )
            for url in unique
        }
        """One breaker per URL, keyed by the URL as configured, for the health checks to share."""
        self.implausible: dict[str, str] = {}
        """Endpoints (redacted URL) whose latest reply with boxes made no sense, and why."""

    def _note_plausibility(self, endpoint: str, problem: str | None, answered: bool) -> None:
        """Warn once when an endpoint's replies stop making sense, and say when they do again.

        Only a reply with boxes can show either way: an empty one leaves the verdict as it was.
        """
        if problem is not None:
            if self.implausible.get(endpoint) != problem:
                _LOGGER.warning(
                    "Detector %s sent boxes that make no sense for the image: %s. Its replies "
                    "are refused, and the images wait, until they fit the image",
                    endpoint,
                    problem,
                )
            self.implausible[endpoint] = problem
        elif answered and self.implausible.pop(endpoint, None) is not None:
            _LOGGER.info("Detector %s sends plausible boxes again", endpoint)

    @staticmethod
    def _checked_threshold(value: float) -> float:
        """Return value when it is a usable confidence threshold; raise ValueError otherwise."""
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise ValueError(f"threshold must be in [0, 1], not {value}")
        return float(value)

    @property
    def urls(self) -> tuple[str, ...]:
        """Return the endpoints in the order they were configured."""
        return self._urls

    @property
    def threshold(self) -> float:
        """Return the confidence below which detections are dropped."""
        return self._threshold

    def set_threshold(self, value: float) -> None:
        """Change the confidence threshold (the options changed) for requests from now on."""
        self._threshold = self._checked_threshold(value)

    def in_flight(self, url: str) -> int:
        """Return how many requests to url are waiting for an answer."""
        return self._in_flight[url]

    def _choose(self) -> str:
        """Return the endpoint for the next request and take its breaker's permission.

        Candidates are tried in order of fewest requests in flight (ties: configuration order);
        the first breaker that allows a request wins. allow_request() only changes state when it
        grants (a half-open probe), so asking in turn and stopping at the first yes is safe.
        Raises CircuitOpenError, naming the breaker opened longest ago, when all refuse.
        """
        for url in sorted(self._urls, key=self._in_flight.__getitem__):
            if self.breakers[url].allow_request():
                return url
        refused = min(
            self.breakers.values(),
            key=lambda breaker: math.inf if breaker.opened_at is None else breaker.opened_at,
        )
        raise CircuitOpenError(refused.name, refused.last_error)

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
        url = self._choose()
        breaker = self.breakers[url]
        endpoint = redact_url(url)
        self._in_flight[url] += 1
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
        finally:
            self._in_flight[url] -= 1
        problem = implausible_reply(items, width, height)
        self._note_plausibility(endpoint, problem, bool(items))
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
            detail = _error_detail(body)
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
        inference = _finite(payload.get("inference_time_ms"))
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
        found: list[Found] = []
        reasons: Counter[str] = Counter()
        for item in items:
            parsed = _parse_item(item, width, height)
            if isinstance(parsed, str):
                reasons[parsed] += 1
            else:
                found.append(parsed)
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
