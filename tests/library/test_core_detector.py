"""core.detector: the RT-DETRv2 client against fake detector servers over real HTTP on 127.0.0.1.

Covers the multipart upload, reply validation item by item, the breaker per endpoint, balancing by
requests in flight, and servers going away and coming back.
"""

import asyncio
from collections.abc import AsyncIterator
import contextlib
import hashlib
import io
import logging
import math
import time
from typing import Any

import aiohttp
from PIL import Image
import pytest

from custom_components.ai_security.core.detector import (
    FAR_OUTSIDE,
    MAX_REPLY_BYTES,
    UNIT_BOXES,
    DetectorClient,
    DetectorError,
    DetectorRejectedError,
    DetectorResult,
    Found,
    _describe,
    content_type_for,
)
from custom_components.ai_security.core.models import BoundingBox
from custom_components.ai_security.core.resilience import CircuitOpenError, CircuitState
from tests.detector_server import DetectorServer, Reply, detection, detections

LOGGER_NAME = "custom_components.ai_security.core.detector"
WIDTH, HEIGHT = 100, 80


def make_image(width: int, height: int, kind: str = "JPEG") -> bytes:
    """Return an encoded image of the given size."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, kind)
    return buffer.getvalue()


IMAGE = make_image(WIDTH, HEIGHT)
GOOD = detection("person", 0.9, [10, 20, 30, 40])
GOOD_FOUND = Found(label="person", confidence=0.9, bbox=BoundingBox(x=10, y=20, w=30, h=40))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at an arbitrary non-zero reading, as time.monotonic() does."""
        self.now = 1000.0

    def __call__(self) -> float:
        """Return the current reading."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    """Return a client session (Home Assistant's shared one in production)."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    """Return a running fake detector answering empty detections."""
    async with DetectorServer() as fake:
        yield fake


@pytest.fixture
async def trio(socket_enabled: None) -> AsyncIterator[list[DetectorServer]]:
    """Return three running fake detectors."""
    async with DetectorServer() as a, DetectorServer() as b, DetectorServer() as c:
        yield [a, b, c]


async def detect(client: DetectorClient, image: bytes = IMAGE) -> DetectorResult:
    """Send the test image as front.jpg."""
    return await client.detect(image, filename="front.jpg", width=WIDTH, height=HEIGHT)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return the detector module's warnings."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER_NAME and record.levelno == logging.WARNING
    ]


async def test_sends_multipart_file_and_parses_reply(
    session: aiohttp.ClientSession, server: DetectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The exact bytes go up as field "file"; labels are normalised and the threshold applied."""
    server.answer(
        Reply(
            body=detections(
                detection(" Person ", 0.95, [10, 20, 30, 40]),
                detection("CAR", 0.5, [0, 0, WIDTH, HEIGHT]),
                detection("dog", 0.49, [1, 1, 2, 2]),
                inference_time_ms=12.5,
            )
        )
    )
    client = DetectorClient(session, [server.url], threshold=0.5)
    result = await detect(client)
    assert result.detections == (
        Found(label="person", confidence=0.95, bbox=BoundingBox(x=10, y=20, w=30, h=40)),
        Found(label="car", confidence=0.5, bbox=BoundingBox(x=0, y=0, w=WIDTH, h=HEIGHT)),
    )
    assert result.inference_time_ms == 12.5
    assert result.endpoint == server.url
    assert result.dropped == 0
    assert 0 < result.latency_ms < 5000
    [request] = server.requests
    assert request.request_type.startswith("multipart/form-data; boundary=")
    assert request.fields == ("file",)
    assert request.filename == "front.jpg"
    assert request.content_type == "image/jpeg"
    assert request.size == len(IMAGE)
    assert request.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert (request.width, request.height) == (WIDTH, HEIGHT)
    assert client.in_flight(server.url) == 0
    assert client.breakers[server.url].state is CircuitState.CLOSED
    assert warnings(caplog) == []  # below the threshold is normal, not worth a warning


async def test_threshold_can_change(session: aiohttp.ClientSession, server: DetectorServer) -> None:
    """set_threshold() applies to the next request; nonsense thresholds are refused."""
    server.answer(Reply(body=detections(GOOD, detection("cat", 0.6, [1, 1, 5, 5]))))
    client = DetectorClient(session, [server.url], threshold=0.5)
    assert [found.label for found in (await detect(client)).detections] == ["person", "cat"]
    client.set_threshold(0.75)
    assert client.threshold == 0.75
    assert (await detect(client)).detections == (GOOD_FOUND,)
    for value in (-0.01, 1.01, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            client.set_threshold(value)
    assert client.threshold == 0.75


async def test_boxes_relative_to_the_image_sent(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """The fake server scales fractional boxes by the size Pillow reads from the upload."""
    png = make_image(200, 100, "PNG")
    server.answer(
        Reply(body=detections(detection("person", 0.9, [0.25, 0.5, 0.5, 0.25])), relative=True)
    )
    client = DetectorClient(session, [server.url + "/"], threshold=0.5)
    result = await client.detect(png, filename="Frame.PNG", width=200, height=100)
    assert result.detections == (
        Found(label="person", confidence=0.9, bbox=BoundingBox(x=50, y=50, w=100, h=25)),
    )
    [request] = server.requests
    assert (request.width, request.height, request.content_type) == (200, 100, "image/png")


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("a.jpg", "image/jpeg"),
        ("a.JPEG", "image/jpeg"),
        ("a.png", "image/png"),
        ("dir.v2/frame", "application/octet-stream"),
        ("noext", "application/octet-stream"),
    ],
)
def test_content_type_for(filename: str, expected: str) -> None:
    """The upload's content type comes from the suffix, with a safe default."""
    assert content_type_for(filename) == expected


async def test_content_type_override(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """A caller that knows better (a key frame without a name) sets the content type."""
    client = DetectorClient(session, [server.url], threshold=0.5)
    await client.detect(IMAGE, filename="frame", width=1, height=1, content_type="image/jpeg")
    assert server.requests[0].content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        pytest.param(
            Reply(status=500, body={"detail": "CUDA out of memory"}),
            r"answered HTTP 500 Internal Server Error: CUDA out of memory$",
            id="http-500-with-detail",
        ),
        pytest.param(
            Reply(status=503, body=["busy"]),
            r"answered HTTP 503 Service Unavailable$",
            id="http-503-no-detail",
        ),
        pytest.param(
            Reply(
                status=502, body="<html><body>Bad Gateway</body></html>", content_type="text/html"
            ),
            r"answered HTTP 502 Bad Gateway$",
            id="http-502-html",
        ),
        pytest.param(
            Reply(status=302, body=""), r"answered HTTP 302 Found$", id="redirect-not-followed"
        ),
        pytest.param(
            Reply(body="<html><body>Log in</body></html>", content_type="text/html"),
            r"did not answer with JSON \(text/html\)$",
            id="html-200",
        ),
        pytest.param(
            Reply(body="{not json", content_type="application/json"),
            r"did not answer with JSON \(application/json\)$",
            id="not-json",
        ),
        pytest.param(
            Reply(body=b"\xff\xfe\x00"),
            r"did not answer with JSON \(application/octet-stream\)$",
            id="not-utf8",
        ),
        pytest.param(
            Reply(body="[" * 100_000, content_type="application/json"),
            r"did not answer with JSON",
            id="nested-too-deep",
        ),
        pytest.param(
            Reply(body={"detections": "x"}), r"detector protocol", id="detections-not-a-list"
        ),
        pytest.param(Reply(body={"objects": []}), r"detector protocol", id="no-detections"),
        pytest.param(Reply(body=[GOOD]), r"detector protocol", id="top-level-list"),
        pytest.param(Reply(body="null"), r"detector protocol", id="top-level-null"),
        pytest.param(Reply(disconnect=True), r"Server disconnected", id="connection-dropped"),
    ],
)
async def test_bad_replies_are_errors_counted_by_the_breaker(
    session: aiohttp.ClientSession, server: DetectorServer, reply: Reply, message: str
) -> None:
    """Server errors and non-protocol bodies raise DetectorError and count as one failure."""
    server.answer(reply)
    client = DetectorClient(session, [server.url], threshold=0.5)
    with pytest.raises(DetectorError, match=message) as caught:
        await detect(client)
    assert type(caught.value) is DetectorError
    assert str(caught.value).startswith(server.url)
    breaker = client.breakers[server.url]
    assert breaker.consecutive_failures == 1
    assert breaker.last_error == str(caught.value)
    assert client.in_flight(server.url) == 0


async def test_oversized_reply(session: aiohttp.ClientSession, server: DetectorServer) -> None:
    """A reply bigger than any real one is refused before it fills memory."""
    server.answer(Reply(body=b"x" * (MAX_REPLY_BYTES + 1)))
    client = DetectorClient(session, [server.url], threshold=0.5)
    with pytest.raises(DetectorError, match=r"sent a reply over 8 MiB$"):
        await detect(client)
    assert client.breakers[server.url].consecutive_failures == 1


async def test_time_limit(session: aiohttp.ClientSession, server: DetectorServer) -> None:
    """A server that stalls past the time limit is a DetectorError, not a hang."""
    server.answer(Reply(delay=5))
    client = DetectorClient(session, [server.url], threshold=0.5, time_limit=0.3)
    started = time.monotonic()
    with pytest.raises(DetectorError, match=rf"^no answer from {server.url} within 0\.3 s$"):
        await detect(client)
    assert time.monotonic() - started < 2
    assert client.breakers[server.url].consecutive_failures == 1


CONFIDENCE = "confidence not a number in [0, 1]"
BBOX = "bbox not 4 finite numbers with positive width and height"
CLASS = "no class name"
BOX = [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        pytest.param({"class": "cat", "confidence": math.nan, "bbox": BOX}, CONFIDENCE, id="nan"),
        pytest.param({"class": "cat", "confidence": math.inf, "bbox": BOX}, CONFIDENCE, id="inf"),
        pytest.param({"class": "cat", "confidence": "0.9", "bbox": BOX}, CONFIDENCE, id="text"),
        pytest.param({"class": "cat", "confidence": True, "bbox": BOX}, CONFIDENCE, id="bool"),
        pytest.param({"class": "cat", "confidence": 1.5, "bbox": BOX}, CONFIDENCE, id="above-1"),
        pytest.param({"class": "cat", "confidence": -0.1, "bbox": BOX}, CONFIDENCE, id="negative"),
        pytest.param({"class": "cat", "bbox": BOX}, CONFIDENCE, id="no-confidence"),
        pytest.param({"class": "cat", "confidence": 0.9, "bbox": [1, 2, 3]}, BBOX, id="3-numbers"),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, 2, 3, 4, 5]}, BBOX, id="5-numbers"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": ["1", "2", "3", "4"]}, BBOX, id="strings"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, math.nan, 3, 4]}, BBOX, id="bbox-nan"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, 2, 3, math.inf]}, BBOX, id="bbox-inf"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, 2, -3, 4]}, BBOX, id="negative-w"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, 2, 3, -4]}, BBOX, id="negative-h"
        ),
        pytest.param({"class": "cat", "confidence": 0.9, "bbox": [1, 2, 0, 4]}, BBOX, id="zero-w"),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [True, 2, 3, 4]}, BBOX, id="bbox-bool"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": [1, 2, 10**400, 4]}, BBOX, id="huge-int"
        ),
        pytest.param(
            {"class": "cat", "confidence": 0.9, "bbox": {"x": 1, "y": 2, "w": 3, "h": 4}},
            BBOX,
            id="bbox-object",
        ),
        pytest.param({"class": "cat", "confidence": 0.9}, BBOX, id="no-bbox"),
        pytest.param({"confidence": 0.9, "bbox": BOX}, CLASS, id="no-class"),
        pytest.param({"class": "  ", "confidence": 0.9, "bbox": BOX}, CLASS, id="blank-class"),
        pytest.param({"class": 5, "confidence": 0.9, "bbox": BOX}, CLASS, id="class-number"),
        pytest.param("person", "not a JSON object", id="item-text"),
        pytest.param(None, "not a JSON object", id="item-null"),
    ],
)
async def test_bad_items_are_dropped_with_one_warning(
    session: aiohttp.ClientSession,
    server: DetectorServer,
    caplog: pytest.LogCaptureFixture,
    item: Any,
    reason: str,
) -> None:
    """An unusable item is dropped and reported; the good one next to it survives."""
    server.answer(Reply(body=detections(GOOD, item)))
    client = DetectorClient(session, [server.url], threshold=0.5)
    result = await detect(client)
    assert result.detections == (GOOD_FOUND,)
    assert result.dropped == 1
    assert warnings(caplog) == [
        f"Detector {server.url} sent 1 unusable of 2 detections, dropped: 1 {reason}"
    ]
    breaker = client.breakers[server.url]
    assert breaker.consecutive_failures == 0  # the reply was the protocol; only items were bad


async def test_boxes_are_clipped_to_the_image(
    session: aiohttp.ClientSession, server: DetectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Boxes partly outside are cut to the image; those with nothing inside are dropped."""
    server.answer(
        Reply(
            body=detections(
                detection("a", 0.9, [-10, 20, 50, 30]),
                detection("b", 0.9, [90, -5, 20, 25]),
                detection("c", 0.9, [-2, -2, WIDTH + 4, HEIGHT + 4]),
                detection("d", 0.9, [0.5, 0.25, 10, 10]),
                detection("gone", 0.9, [WIDTH, 10, 5, 5]),
                detection("gone", 0.9, [-12, 10, 10, 5]),
                detection("gone", 0.9, [10, HEIGHT, 5, 5]),
                detection("gone", 0.9, [WIDTH + 1, HEIGHT + 1, 2, 2]),
            )
        )
    )
    client = DetectorClient(session, [server.url], threshold=0.5)
    result = await detect(client)
    assert [(found.label, found.bbox) for found in result.detections] == [
        ("a", BoundingBox(x=0, y=20, w=40, h=30)),
        ("b", BoundingBox(x=90, y=0, w=10, h=20)),
        ("c", BoundingBox(x=0, y=0, w=WIDTH, h=HEIGHT)),
        ("d", BoundingBox(x=0.5, y=0.25, w=10, h=10)),
    ]
    assert result.dropped == 4
    assert warnings(caplog) == [
        f"Detector {server.url} sent 4 unusable of 8 detections, dropped: 4 box outside the image"
    ]


@pytest.mark.parametrize(
    ("boxes", "problem"),
    [
        ([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.2, 0.2]], UNIT_BOXES),
        ([[10, 10, 20, 20], [-1e6, -1e6, 3e6, 3e6]], FAR_OUTSIDE),
        ([[10, 200, 5, 5]], FAR_OUTSIDE),
        ([[30, 20, 95, 75]], FAR_OUTSIDE),  # corners (x1, y1, x2, y2) read as sizes
        ([[1e308, 1e308, 1e308, 1e308]], FAR_OUTSIDE),
    ],
)
async def test_replies_that_make_no_sense_are_refused_whole(
    session: aiohttp.ClientSession,
    server: DetectorServer,
    caplog: pytest.LogCaptureFixture,
    boxes: list[list[float]],
    problem: str,
) -> None:
    """Fractions of the image, or boxes far outside it: a failed request, flagged, warned once.

    Not an empty answer: the image must be detected again later, not taken as "nothing seen".
    """
    server.answer(Reply(body=detections(*(detection("person", 0.9, box) for box in boxes))))
    client = DetectorClient(session, [server.url], threshold=0.5)
    with pytest.raises(DetectorError, match=r"fractions|far outside") as caught:
        await detect(client)
    assert problem in str(caught.value)
    assert not caught.value.unreachable
    assert client.implausible == {server.url: problem}
    assert client.breakers[server.url].consecutive_failures == 1
    with pytest.raises(DetectorError):
        await detect(client)
    assert len([r for r in caplog.records if "make no sense" in r.getMessage()]) == 1
    server.answer(Reply(body=detections()))  # an empty reply proves nothing either way
    await detect(client)
    assert client.implausible == {server.url: problem}
    server.answer(Reply(body=detections(GOOD)))
    assert (await detect(client)).detections == (GOOD_FOUND,)
    assert client.implausible == {}


async def test_a_small_image_may_have_boxes_under_one_pixel(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """The unit-square rule needs a large image: on a 4x4 thumbnail tiny boxes are plausible."""
    server.answer(Reply(body=detections(detection("person", 0.9, [0.5, 0.5, 0.5, 0.5]))))
    client = DetectorClient(session, [server.url], threshold=0.5)
    result = await client.detect(b"x", filename="a.jpg", width=4, height=4)
    assert len(result.detections) == 1


async def test_one_warning_per_reply(
    session: aiohttp.ClientSession, server: DetectorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A server sending many broken items costs one summarising warning per reply, no more."""
    broken = detections(
        *[{"class": "x", "confidence": math.nan, "bbox": BOX}] * 4,
        *[{"class": "x", "confidence": 0.9, "bbox": [1]}] * 3,
        *[{"confidence": 0.9, "bbox": BOX}] * 3,
        GOOD,
        detection("low", 0.1, BOX),
    )
    server.queue(Reply(body=broken), Reply(body=broken), Reply(body=detections(GOOD)))
    client = DetectorClient(session, [server.url], threshold=0.5)
    results = [await detect(client) for _ in range(3)]
    assert [result.dropped for result in results] == [10, 10, 0]
    assert [result.detections for result in results] == [(GOOD_FOUND,)] * 3
    expected = (
        f"Detector {server.url} sent 10 unusable of 12 detections, dropped: "
        f"4 {CONFIDENCE}, 3 {BBOX}, 3 {CLASS}"
    )
    assert warnings(caplog) == [expected, expected]


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (7, 7.0),
        (0, 0.0),
        (3.25, 3.25),
        ("12", None),
        (-1, None),
        (math.nan, None),
        (math.inf, None),
        (True, None),
        (None, None),
    ],
)
async def test_inference_time(
    session: aiohttp.ClientSession, server: DetectorServer, reported: Any, expected: float | None
) -> None:
    """Only a finite non-negative number is taken as the server's inference time."""
    server.answer(Reply(body={"detections": [], "inference_time_ms": reported}))
    client = DetectorClient(session, [server.url], threshold=0.5)
    assert (await detect(client)).inference_time_ms == expected


async def test_inference_time_missing(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """The minimal reply is just a detections list."""
    server.answer(Reply(body={"detections": [GOOD]}))
    client = DetectorClient(session, [server.url], threshold=0.5)
    result = await detect(client)
    assert (result.detections, result.inference_time_ms) == ((GOOD_FOUND,), None)


async def test_five_failures_open_the_breaker_and_a_probe_closes_it(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """5 failures in a row open it; nothing is sent until reset_timeout; a good probe closes it."""
    clock = FakeClock()
    server.answer(Reply(status=500))
    client = DetectorClient(session, [server.url], threshold=0.5, clock=clock)
    breaker = client.breakers[server.url]
    for failures in range(1, 6):
        assert breaker.state is CircuitState.CLOSED
        with pytest.raises(DetectorError):
            await detect(client)
        assert breaker.consecutive_failures == failures
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError, match=r"HTTP 500") as caught:
        await detect(client)
    assert caught.value.name == f"Detector {server.url}"
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError):
        await detect(client)
    assert server.count == 5

    server.answer(Reply(body=detections(GOOD)))
    clock.advance(0.1)
    assert (await detect(client)).detections == (GOOD_FOUND,)
    assert server.count == 6
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_failed_probe_opens_again(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """A probe that fails opens the breaker with a fresh timer."""
    clock = FakeClock()
    server.answer(Reply(status=503))
    client = DetectorClient(session, [server.url], threshold=0.5, clock=clock)
    breaker = client.breakers[server.url]
    for _ in range(5):
        with pytest.raises(DetectorError):
            await detect(client)
    clock.advance(30)
    with pytest.raises(DetectorError, match="HTTP 503"):
        await detect(client)
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == clock.now
    with pytest.raises(CircuitOpenError):
        await detect(client)
    assert server.count == 6


async def test_only_one_probe_at_a_time(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """While the probe is out, other requests are refused without being sent."""
    clock = FakeClock()
    server.answer(Reply(status=500))
    client = DetectorClient(session, [server.url], threshold=0.5, clock=clock)
    breaker = client.breakers[server.url]
    for _ in range(5):
        with pytest.raises(DetectorError):
            await detect(client)
    clock.advance(30)
    release = asyncio.Event()
    server.answer(Reply(hold=release))
    probe = asyncio.create_task(detect(client))
    await server.wait_for_requests(6)
    assert breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        await detect(client)
    release.set()
    assert (await probe).detections == ()
    assert breaker.state is CircuitState.CLOSED
    assert server.count == 6


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (413, "Content Too Large"), (422, "Unprocessable Content")],
)
async def test_client_errors_do_not_count(
    session: aiohttp.ClientSession, server: DetectorServer, status: int, reason: str
) -> None:
    """A 4xx means the server works and refused this image: no strike against the endpoint."""
    server.answer(Reply(status=status, body={"detail": "image too large"}))
    client = DetectorClient(session, [server.url], threshold=0.5)
    breaker = client.breakers[server.url]
    for _ in range(8):
        with pytest.raises(DetectorRejectedError) as caught:
            await detect(client)
    assert caught.value.status == status
    assert str(caught.value) == f"{server.url} answered HTTP {status} {reason}: image too large"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0

    # Between server errors, a 4xx still shows the server answering: the run starts again.
    server.queue(*[Reply(status=500)] * 4, Reply(status=status))
    server.answer(Reply(status=500))
    for _ in range(4):
        with pytest.raises(DetectorError):
            await detect(client)
    with pytest.raises(DetectorRejectedError):
        await detect(client)
    assert breaker.consecutive_failures == 0
    for _ in range(4):
        with pytest.raises(DetectorError):
            await detect(client)
    assert breaker.state is CircuitState.CLOSED
    with pytest.raises(DetectorError):
        await detect(client)
    assert breaker.state is CircuitState.OPEN


async def test_cancelled_probe_frees_the_slot(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """A cancelled request records nothing, and a cancelled probe lets the next one probe."""
    clock = FakeClock()
    server.answer(Reply(status=500))
    client = DetectorClient(session, [server.url], threshold=0.5, clock=clock)
    breaker = client.breakers[server.url]
    for _ in range(5):
        with pytest.raises(DetectorError):
            await detect(client)
    clock.advance(30)
    server.answer(Reply(hold=asyncio.Event()))  # never set
    probe = asyncio.create_task(detect(client))
    await server.wait_for_requests(6)
    assert client.in_flight(server.url) == 1
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe
    assert client.in_flight(server.url) == 0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.consecutive_failures == 5

    server.answer(Reply())
    await detect(client)
    assert breaker.state is CircuitState.CLOSED


async def test_requests_go_to_the_endpoint_with_fewest_in_flight(
    session: aiohttp.ClientSession, trio: list[DetectorServer]
) -> None:
    """Concurrent requests spread over the endpoints; ties go to the first configured."""
    release = asyncio.Event()
    for fake in trio:
        fake.answer(Reply(hold=release))
    a, b, c = trio
    client = DetectorClient(session, [a.url, b.url, c.url], threshold=0.5)
    tasks = [asyncio.create_task(detect(client)) for _ in range(4)]
    for fake, count in zip(trio, (2, 1, 1), strict=True):
        await fake.wait_for_requests(count)
    assert [client.in_flight(fake.url) for fake in trio] == [2, 1, 1]
    tasks.append(asyncio.create_task(detect(client)))
    await b.wait_for_requests(2)
    assert [client.in_flight(fake.url) for fake in trio] == [2, 2, 1]
    release.set()
    results = await asyncio.gather(*tasks)
    assert [result.endpoint for result in results] == [a.url, b.url, c.url, a.url, b.url]
    assert [client.in_flight(fake.url) for fake in trio] == [0, 0, 0]
    assert [fake.count for fake in trio] == [2, 2, 1]

    # One at a time, nothing is in flight at any choice: the first endpoint takes them all.
    for _ in range(3):
        assert (await detect(client)).endpoint == a.url
    assert [fake.count for fake in trio] == [5, 2, 1]


async def test_dead_endpoint_is_skipped_then_all_down(
    session: aiohttp.ClientSession, trio: list[DetectorServer]
) -> None:
    """A stopped endpoint opens its breaker and traffic moves on; with all open, nothing is sent."""
    clock = FakeClock()
    a, b, c = trio
    await a.stop()
    client = DetectorClient(session, [a.url, b.url, c.url], threshold=0.5, clock=clock)
    for _ in range(5):
        with pytest.raises(DetectorError, match=rf"^{a.url}: Cannot connect"):
            await detect(client)
    assert client.breakers[a.url].state is CircuitState.OPEN
    assert [(await detect(client)).endpoint for _ in range(2)] == [b.url, b.url]

    clock.advance(10)
    await b.stop()
    for _ in range(5):
        with pytest.raises(DetectorError, match=rf"^{b.url}: "):
            await detect(client)
    clock.advance(10)
    await c.stop()
    for _ in range(5):
        with pytest.raises(DetectorError, match=rf"^{c.url}: "):
            await detect(client)
    assert [client.breakers[fake.url].state for fake in trio] == [CircuitState.OPEN] * 3
    with pytest.raises(CircuitOpenError) as caught:
        await detect(client)
    assert caught.value.name == f"Detector {a.url}"  # opened first: due back first
    assert "Cannot connect" in str(caught.value)

    # a comes back; once its timer has run out, the next request probes it and closes it.
    await a.start()
    with pytest.raises(CircuitOpenError):
        await detect(client)  # 20 s after a opened: still waiting
    clock.advance(10)
    assert (await detect(client)).endpoint == a.url
    assert [client.breakers[fake.url].state for fake in trio] == [
        CircuitState.CLOSED,
        CircuitState.OPEN,
        CircuitState.OPEN,
    ]
    assert [fake.count for fake in trio] == [1, 2, 0]


async def test_server_goes_away_and_comes_back(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """The same URL works again after the server restarts; its breaker forgets the failures."""
    server.answer(Reply(body=detections(GOOD)))
    client = DetectorClient(session, [server.url], threshold=0.5)
    url = server.url
    assert (await detect(client)).detections == (GOOD_FOUND,)
    await server.stop()
    # Refused, or (when the pooled keep-alive connection is reused before the client saw it
    # close) a write error: either way one DetectorError naming the endpoint.
    with pytest.raises(DetectorError, match=rf"^{url}: "):
        await detect(client)
    await server.start()
    assert server.url == url
    assert (await detect(client)).detections == (GOOD_FOUND,)
    assert client.breakers[url].consecutive_failures == 0
    assert server.count == 2


async def test_stopped_server_drops_held_requests(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """A server that goes away mid-request is a DetectorError for the request it held."""
    server.answer(Reply(hold=asyncio.Event()))
    client = DetectorClient(session, [server.url], threshold=0.5)
    task = asyncio.create_task(detect(client))
    await server.wait_for_requests(1)
    await server.stop()
    with pytest.raises(DetectorError, match=rf"^{server.url}: "):
        await task
    assert client.breakers[server.url].consecutive_failures == 1


async def test_credentials_never_show(
    session: aiohttp.ClientSession, server: DetectorServer
) -> None:
    """User and password in the URL are used but never appear in results, errors or names."""
    secret_url = server.url.replace("//", "//admin:s3cret@")
    client = DetectorClient(session, [secret_url], threshold=0.5)
    breaker = client.breakers[secret_url]
    assert breaker.name == f"Detector {server.url}"
    assert (await detect(client)).endpoint == server.url
    server.answer(Reply(status=500))
    with pytest.raises(DetectorError) as caught:
        await detect(client)
    await server.stop()
    with pytest.raises(DetectorError) as refused:
        await detect(client)
    for text in (str(caught.value), str(refused.value), str(breaker.last_error)):
        assert "s3cret" not in text
        assert "admin" not in text
        assert server.url in text


async def test_fixed_answer_server_for_throughput(session: aiohttp.ClientSession) -> None:
    """record=False answers at once with a fixed reply and only counts requests."""
    async with DetectorServer(reply=Reply(body=detections(GOOD)), record=False) as fast:
        client = DetectorClient(session, [fast.url], threshold=0.5)
        results = await asyncio.gather(*(detect(client) for _ in range(20)))
        assert {result.detections for result in results} == {(GOOD_FOUND,)}
        assert fast.count == 20
        assert fast.requests == []


async def test_health_route(session: aiohttp.ClientSession, server: DetectorServer) -> None:
    """The fake answers GET /health like the real server, with what the test sets."""
    async with session.get(f"{server.url}/health") as response:
        assert (response.status, await response.json()) == (
            200,
            {"status": "ok", "model": "rtdetr_v2_r18vd", "device": "cpu"},
        )
    server.health_status, server.health_body = 503, {"status": "loading"}
    async with session.get(f"{server.url}/health") as response:
        assert (response.status, await response.json()) == (503, {"status": "loading"})
    assert server.health_count == 2


@pytest.mark.parametrize(
    ("urls", "kwargs", "message"),
    [
        ([], {}, "at least one"),
        (["http://h"], {"threshold": 1.5}, "threshold"),
        (["http://h"], {"threshold": -0.1}, "threshold"),
        (["http://h"], {"time_limit": 0}, "time_limit"),
        (["http://h"], {"failure_threshold": 0}, "failure_threshold"),
        (["http://h"], {"reset_timeout": -1}, "reset_timeout"),
    ],
)
async def test_constructor_refuses_nonsense(
    session: aiohttp.ClientSession, urls: list[str], kwargs: dict[str, Any], message: str
) -> None:
    """Programming errors fail at once with ValueError."""
    with pytest.raises(ValueError, match=message):
        DetectorClient(session, urls, **{"threshold": 0.5, **kwargs})


async def test_duplicates_and_bad_sizes(session: aiohttp.ClientSession) -> None:
    """A URL listed twice is one endpoint; an image size that is not positive is refused."""
    client = DetectorClient(session, ["http://a", "http://b", "http://a"], threshold=0.5)
    assert client.urls == ("http://a", "http://b")
    assert list(client.breakers) == ["http://a", "http://b"]
    with pytest.raises(ValueError, match="0x80"):
        await client.detect(IMAGE, filename="x.jpg", width=0, height=80)
    assert client.breakers["http://a"].consecutive_failures == 0


async def test_unusable_url_is_an_error(session: aiohttp.ClientSession) -> None:
    """A URL aiohttp cannot use fails like an unreachable server, without crashing."""
    client = DetectorClient(session, ["http://user:pw@[::1"], threshold=0.5)
    with pytest.raises(DetectorError, match=r"^<invalid url> is not a usable URL$") as caught:
        await detect(client)
    assert "pw" not in str(caught.value)


def test_error_text_without_credentials() -> None:
    """Messages quoting the URL lose its user information; with a broken URL, only the type."""
    err = aiohttp.ClientOSError(None, "Can not write request body for http://u:p4ss@h:1/detect")
    assert _describe(err, "http://u:p4ss@h:1") == (
        "[Errno None] Can not write request body for http://h:1/detect"
    )
    assert _describe(ValueError("x"), "http://tok3n@h") == "x"
    assert _describe(ValueError("http://tok3n@h"), "http://tok3n@h") == "http://h"
    assert _describe(TimeoutError(), "http://h") == "TimeoutError"
    assert _describe(ValueError("http://u:p4ss@[::1"), "http://u:p4ss@[::1") == "ValueError"
