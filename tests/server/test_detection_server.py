"""The reference detection server's HTTP contract and bad input, on its hog backend.

The server runs as a real process. The hog backend needs no model file, so these tests run the
server exactly as a user without a GPU would. The rtdetr backend's own tests are in
test_detection_server_rtdetr.py.
"""

import ast
import asyncio
from collections.abc import Iterator
import json
from pathlib import Path
import re
from typing import Any

import aiohttp
from PIL import Image
import pytest

from custom_components.ai_security.core.models import BoundingBox
from scripts.detection_server.backends import Detection, one_box_per_object
from scripts.detection_server.gpu import GpuReader
from tests.reference_detector import (
    ReferenceDetector,
    astronaut_scene,
    encode,
    iou,
    png_bomb,
    reference_detector,
    with_exif_rotation,
)

UPLOAD_LIMIT_MB = 4


@pytest.fixture(scope="module")
def hog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceDetector]:
    """One hog server for the module, with a 4 MiB upload limit (to test it cheaply)."""
    yield from reference_detector(
        tmp_path_factory.mktemp("hog"),
        "--backend",
        "hog",
        "--max-upload-mb",
        str(UPLOAD_LIMIT_MB),
    )


Scene = tuple[bytes, tuple[float, float, float, float]]
"""An encoded test image and the true [x, y, w, h] of the person in it."""


@pytest.fixture(scope="module")
def issue_scene() -> Scene:
    """Return the issue's scene as a JPEG: the astronaut 160 px tall at (600, 400) on 1280x720."""
    scene, truth = astronaut_scene()
    return encode(scene), truth


async def post_files(
    url: str,
    files: list[tuple[str, bytes]],
    *,
    path: str = "/detect",
    query: str = "",
) -> tuple[int, Any]:
    """POST files as multipart parts (field name, bytes); return the status and JSON answer."""
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field(name, data, filename="upload.jpg", content_type="image/jpeg")
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
        session.post(f"{url}{path}{query}", data=form) as response,
    ):
        return response.status, await response.json(content_type=None)


async def get(url: str) -> tuple[int, str, str]:
    """GET url; return the status, content type and body text."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(url) as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


def people(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the answer's person detections, checking every detection's shape on the way."""
    width, height = answer["image_size"]
    for item in answer["detections"]:
        assert set(item) == {"class", "confidence", "bbox"}
        x, y, w, h = item["bbox"]
        assert min(x, y) >= 0
        assert min(w, h) > 0
        assert x + w <= width + 0.01
        assert y + h <= height + 0.01
        assert 0.0 <= item["confidence"] <= 1.0
    return [item for item in answer["detections"] if item["class"] == "person"]


def best_iou(answer: dict[str, Any], truth: tuple[float, ...]) -> float:
    """Return the best IoU of a person detection with the true box (0 when none)."""
    return max((iou(item["bbox"], truth) for item in people(answer)), default=0.0)


async def test_health_names_backend_model_and_state(
    hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """/health says ok, which backend and model on which device; gpu only when NVML sees one."""
    status, content_type, body = await get(f"{hog_server.url}/health")
    assert status == 200
    assert content_type.startswith("application/json")
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["backend"] == "hog"
    assert health["device"] == "cpu"
    assert re.fullmatch(r"opencv-4\.\d+\.\d+-hog-default-people", health["model"])
    assert health["batching"]["max_batch"] == 1
    assert ("gpu" in health) == GpuReader().available


async def test_hog_finds_the_astronaut(hog_server: ReferenceDetector, socket_enabled: None) -> None:
    """The issue's scene: the astronaut photo 160 px tall on a 1280x720 canvas; IoU > 0.5.

    HOG's pedestrian model is trained on whole bodies and this is a half-length portrait, so its
    box depends a little on the photo's place and encoding: at the issue's place it frames her
    (IoU 0.56 to 0.59 as PNG or JPEG); elsewhere it sometimes finds only her head and shoulders
    (IoU about 0.3). So the second half asks, over 8 places times 3 encodings, for what HOG
    does here (found 23 of 24 times, framed 17): found at least 20 times, framed at least 12.
    """
    for data in await scenes([((600, 400), "JPEG", 75), ((600, 400), "PNG", None)]):
        status, answer = await post_files(hog_server.url, [("file", data[0])])
        assert status == 200, answer
        assert answer["image_size"] == [1280, 720]
        assert answer["inference_time_ms"] > 0
        assert best_iou(answer, data[1]) > 0.5, answer

    places = [(600, 400), (200, 300), (900, 100), (100, 50), (1000, 500), (450, 220), (604, 404)]
    cases = [
        (at, fmt, quality)
        for at in [*places, (300, 500)]
        for fmt, quality in (("PNG", None), ("JPEG", 75), ("JPEG", 90))
    ]
    made = await scenes(cases)
    answers = await asyncio.gather(
        *(post_files(hog_server.url, [("file", data)]) for data, _truth in made)
    )
    ious = [
        best_iou(answer, truth) for (_s, answer), (_d, truth) in zip(answers, made, strict=True)
    ]
    assert sum(value > 0.25 for value in ious) >= 20, ious
    assert sum(value > 0.5 for value in ious) >= 12, ious


async def scenes(cases: list[tuple[tuple[int, int], str, int | None]]) -> list[Scene]:
    """Return (encoded scene, person box) for each (place, format, JPEG quality), off the loop."""

    def make() -> list[Scene]:
        made: list[Scene] = []
        for at, fmt, quality in cases:
            scene, truth = astronaut_scene(at=at)
            options = {"quality": quality} if quality else {}
            made.append((encode(scene, fmt, **options), truth))
        return made

    return await asyncio.get_running_loop().run_in_executor(None, make)


async def test_boxes_are_in_the_pixels_of_the_image_as_sent(
    hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """A 2560x1440 frame is scaled down for HOG and its boxes scaled back; EXIF turns first."""

    def make() -> tuple[Scene, Scene]:
        big, big_truth = astronaut_scene(scale=2)
        scene, truth = astronaut_scene()
        return (encode(big), big_truth), (with_exif_rotation(scene), truth)

    (big, big_truth), (turned, truth) = await asyncio.get_running_loop().run_in_executor(None, make)
    status, answer = await post_files(hog_server.url, [("file", big)])
    assert status == 200
    assert answer["image_size"] == [2560, 1440]
    assert best_iou(answer, big_truth) > 0.5, answer

    status, answer = await post_files(hog_server.url, [("file", turned)])
    assert status == 200
    assert answer["image_size"] == [1280, 720]
    assert best_iou(answer, truth) > 0.5, answer


async def test_threshold_query(
    hog_server: ReferenceDetector, issue_scene: Scene, socket_enabled: None
) -> None:
    """?threshold= drops what is below it; a threshold that is not 0..1 gets 400."""
    image = issue_scene[0]
    status, everything = await post_files(hog_server.url, [("file", image)], query="?threshold=0")
    assert status == 200
    assert people(everything)
    top = max(item["confidence"] for item in everything["detections"])
    status, above = await post_files(
        hog_server.url, [("file", image)], query=f"?threshold={top - 0.0001:.4f}"
    )
    assert status == 200
    assert [item["confidence"] for item in above["detections"]] == [top]
    status, none = await post_files(
        hog_server.url, [("file", image)], query=f"?threshold={min(1.0, top + 0.001):.4f}"
    )
    assert status == 200
    assert none["detections"] == []

    for bad in ("abc", "1.5", "-0.1", "nan"):
        status, answer = await post_files(
            hog_server.url, [("file", image)], query=f"?threshold={bad}"
        )
        assert status == 400
        assert "threshold" in answer["error"]


def fifty_megapixels() -> bytes:
    """Return a 8660x5774 (50.0 MP) grayscale JPEG: under a megabyte, 50 MB once decoded."""
    return encode(Image.new("L", (8660, 5774), 128), quality=50)


def truncated_jpeg() -> bytes:
    """Return the first half of a real JPEG."""
    scene, _truth = astronaut_scene()
    data = encode(scene)
    return data[: len(data) // 2]


BAD_UPLOADS: dict[str, tuple[Any, int, str]] = {
    "empty file": (lambda: [("file", b"")], 400, "empty"),
    "not an image": (lambda: [("file", b"%PDF-1.7 not an image " * 50)], 415, "not an image"),
    "wrong field name": (lambda: [("image", truncated_jpeg())], 400, "'file'"),
    "50 megapixels": (lambda: [("file", fifty_megapixels())], 413, "megapixels"),
    "decompression bomb": (lambda: [("file", png_bomb())], 413, "megapixels"),
    "truncated JPEG": (lambda: [("file", truncated_jpeg())], 400, "could not be"),
    "over the upload limit": (
        lambda: [("file", b"\xff\xd8" + b"\0" * (UPLOAD_LIMIT_MB * 2**20))],
        413,
        "MiB",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
async def test_bad_upload_gets_a_json_4xx_and_the_server_keeps_serving(
    hog_server: ReferenceDetector, issue_scene: Scene, socket_enabled: None, case: str
) -> None:
    """Each hostile upload is refused with its own status and a JSON error; then all is well."""
    make, expected_status, phrase = BAD_UPLOADS[case]
    files = await asyncio.get_running_loop().run_in_executor(None, make)
    status, answer = await post_files(hog_server.url, files)
    assert status == expected_status, answer
    assert isinstance(answer["error"], str)
    assert phrase in answer["error"]

    assert hog_server.running
    status, answer = await post_files(hog_server.url, [("file", issue_scene[0])])
    assert status == 200
    assert best_iou(answer, issue_scene[1]) > 0.5


async def test_requests_that_are_not_uploads(
    hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """A body that is not multipart, a GET on /detect and an unknown path: JSON errors."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{hog_server.url}/detect", data=b"\xff\xd8raw") as response:
            assert response.status == 400
            assert "multipart/form-data" in (await response.json())["error"]
        async with session.get(f"{hog_server.url}/detect") as response:
            assert response.status == 405
            assert (await response.json())["error"] == "Method Not Allowed"
        async with session.get(f"{hog_server.url}/nowhere") as response:
            assert response.status == 404
            assert (await response.json())["error"] == "Not Found"
    assert hog_server.running


async def test_batch_answers_each_image_in_order(
    hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """/detect/batch gives each image the result /detect gives it; a bad one gets its error."""
    (first, _), (second, _) = await scenes([((600, 400), "JPEG", 75), ((200, 300), "JPEG", 75)])
    images = [first, b"not an image", second]
    status, batch = await post_files(
        hog_server.url, [("file", data) for data in images], path="/detect/batch"
    )
    assert status == 200
    results = batch["results"]
    assert len(results) == 3
    assert results[1] == {"error": "the file is not an image this server can read", "status": 415}
    for index in (0, 2):
        status, single = await post_files(hog_server.url, [("file", images[index])])
        assert status == 200
        assert results[index]["detections"] == single["detections"]
        assert results[index]["image_size"] == single["image_size"]

    status, answer = await post_files(hog_server.url, [("files", images[0])], path="/detect/batch")
    assert status == 400
    assert "'file'" in answer["error"]


SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>[-+0-9.eE]+|\+Inf|NaN)$"
)


def parse_metrics(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parse the Prometheus text format strictly: every line is a comment or a valid sample."""
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match is not None, f"not a Prometheus sample: {line!r}"
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        series.setdefault(match["name"], []).append((labels, float(match["value"])))
    for name in series:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"{name} has no # TYPE line"
    return series


async def test_metrics_count_requests_latency_and_queue(
    hog_server: ReferenceDetector, issue_scene: Scene, socket_enabled: None
) -> None:
    """/metrics is valid Prometheus text; its counters move with the requests made."""
    image = issue_scene[0]
    _status, _ct, before_text = await get(f"{hog_server.url}/metrics")
    before = parse_metrics(before_text)
    results = await asyncio.gather(
        *(post_files(hog_server.url, [("file", image)]) for _ in range(4))
    )
    assert [status for status, _answer in results] == [200] * 4
    await post_files(hog_server.url, [("file", b"")])

    status, content_type, text = await get(f"{hog_server.url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    after = parse_metrics(text)

    def value(
        metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
    ) -> float:
        return sum(v for found, v in metrics.get(name, []) if labels.items() <= found.items())

    assert (
        value(after, "detector_requests_total", endpoint="/detect", status="200")
        - value(before, "detector_requests_total", endpoint="/detect", status="200")
        == 4
    )
    assert (
        value(after, "detector_requests_total", endpoint="/detect", status="400")
        - value(before, "detector_requests_total", endpoint="/detect", status="400")
        >= 1
    )
    count = value(after, "detector_request_duration_seconds_count", endpoint="/detect")
    assert count - value(before, "detector_request_duration_seconds_count", endpoint="/detect") == 5
    buckets = [
        (float(labels["le"]), v)
        for labels, v in after["detector_request_duration_seconds_bucket"]
        if labels["endpoint"] == "/detect"
    ]
    assert [v for _le, v in buckets] == sorted(v for _le, v in buckets)
    assert buckets[-1] == (float("inf"), count)
    assert (
        value(after, "detector_batch_size_count") - value(before, "detector_batch_size_count") == 4
    )
    assert (
        value(after, "detector_images_total", outcome="ok")
        - value(before, "detector_images_total", outcome="ok")
        == 4
    )
    assert after["detector_queue_depth"] == [({}, 0.0)]
    assert after["detector_model_loaded"] == [({}, 1.0)]
    assert value(after, "detector_detections_total", **{"class": "person"}) >= 4


async def test_a_model_that_fails_to_load_is_reported_not_fatal(
    tmp_path: Path, socket_enabled: None
) -> None:
    """A missing model folder: /health says error with the reason, /detect answers 503."""
    server = ReferenceDetector(
        workdir=tmp_path,
        options=["--backend", "rtdetr", "--model", str(tmp_path / "no-such-model")],
    )
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: server.start(wait_ready=False))
    try:
        deadline = loop.time() + 120
        while "failed to load" not in server.log():
            assert server.running, server.log_tail()
            assert loop.time() < deadline, server.log_tail()
            await asyncio.sleep(0.1)
        status, _content_type, body = await get(f"{server.url}/health")
        health = json.loads(body)
        assert (status, health["status"]) == (200, "error")
        assert "no-such-model" in health["error"]
        status, answer = await post_files(
            server.url, [("file", encode(Image.new("RGB", (64, 64))))]
        )
        assert status == 503
        assert answer["error"].startswith("the model failed to load")
        assert server.running
    finally:
        assert await loop.run_in_executor(None, server.stop) == 0


def test_image_decoding_refuses_before_decoding() -> None:
    """decode_image judges size from the header: the 900 MP bomb is refused without decoding."""
    from scripts.detection_server.images import ImageRejectedError, decode_image  # noqa: PLC0415

    with pytest.raises(ImageRejectedError) as caught:
        decode_image(png_bomb(), max_pixels=40_000_000)
    assert caught.value.status == 413
    image = decode_image(encode(Image.new("RGB", (300, 200), (1, 2, 3)), "PNG"))
    assert (image.size, image.mode, image.getpixel((0, 0))) == ((300, 200), "RGB", (1, 2, 3))
    gray = decode_image(encode(Image.new("L", (10, 10), 7), "PNG"))
    assert gray.mode == "RGB"
    with pytest.raises(ImageRejectedError) as caught:
        decode_image(encode(Image.new("RGB", (100, 100))), max_pixels=9_999)
    assert caught.value.status == 413


async def test_hog_sends_one_box_per_person(
    hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """Demo frames where OpenCV's HOG finds one person two to four times: the server sends one.

    The same frames sent with --no-hog-nms come back with overlapping boxes
    (test_nms_pipeline.py checks that), so this can only pass through the server's own merging.
    """
    from scripts.demo import feeder  # noqa: PLC0415
    from tests.library.test_nms_pipeline import (  # noqa: PLC0415 - the demo's frames
        HOG_DUPLICATES,
        demo_frame,
        on_the_person,
    )
    from tests.pipeline_helpers import fast_options  # noqa: PLC0415

    threshold = fast_options().confidence_threshold
    for camera, seed in HOG_DUPLICATES:
        image, placement = demo_frame(camera, seed)
        status, answer = await post_files(
            hog_server.url,
            [("file", encode(image, quality=feeder.JPEG_QUALITY))],
            query=f"?threshold={threshold}",
        )
        assert status == 200, answer
        found = people(answer)
        assert len(found) == 1, (camera, seed, found)
        x, y, w, h = found[0]["bbox"]
        box = BoundingBox(x=x, y=y, w=w, h=h)
        assert on_the_person(box, camera, placement), (camera, seed, found, placement)


def test_overlapping_boxes_of_one_class_are_merged() -> None:
    """Greedy NMS: nested and overlapping boxes of one class merge; neighbours and classes stay.

    A part found more surely than the whole (HOG's upper body inside the person) keeps its score
    and takes the whole's outline.
    """
    person = Detection("person", 0.9, (100.0, 100.0, 80.0, 200.0))
    torso = Detection("person", 0.95, (110.0, 110.0, 60.0, 80.0))  # surer of the part
    shifted = Detection("person", 0.7, (108.0, 104.0, 80.0, 200.0))  # IoU about 0.86
    neighbour = Detection("person", 0.8, (190.0, 100.0, 80.0, 200.0))  # touching, not overlapping
    bike = Detection("bicycle", 0.6, (100.0, 180.0, 80.0, 120.0))
    kept = one_box_per_object([person, torso, shifted, neighbour, bike])
    assert kept == [Detection("person", 0.95, person.box), neighbour, bike]
    assert one_box_per_object([torso, shifted]) == [Detection("person", 0.95, shifted.box)]
    assert one_box_per_object([]) == []
    equal = Detection("person", 0.9, (0.0, 0.0, 10.0, 10.0))
    larger = Detection("person", 0.9, (0.0, 0.0, 10.0, 11.0))
    assert one_box_per_object([equal, larger]) == [larger]


def test_the_server_parses_as_python_3_10() -> None:
    """The server runs on a GPU box's own Python (3.10 or newer), not only on the lab's 3.14.

    The formatter writes 3.14's unparenthesised ``except A, B:``; a module that uses it (or any
    other newer grammar) would not even start there.
    """
    folder = Path(__file__).resolve().parents[2] / "scripts" / "detection_server"
    modules = sorted(folder.glob("*.py"))
    assert len(modules) >= 10
    for path in modules:
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=(3, 10))
