"""The reference server's rtdetr backend on a real RT-DETRv2 with random weights (no download).

The model has the architecture of rtdetr_v2_r18vd (20 M parameters, about 0.8 s per image here),
written by make_model with COCO's 80 labels. Random weights give random boxes, so the tests
compare the server with the model itself: the same weights run in this process, their raw
outputs (sigmoid scores, normalized centre boxes) turned into pixels by the test's own arithmetic,
must match what the server answers. That checks the box conversion ([x, y, w, h] in the pixels
of the image as sent), the labels and the threshold without trusting the server's code.
"""

import asyncio
from collections.abc import Iterator
import io
from pathlib import Path
from typing import Any

from PIL import Image
import pytest

from scripts.detection_server.make_model import COCO_LABELS, write_random_model
from scripts.detection_server.scenes import scene
from tests.reference_detector import (
    ReferenceDetector,
    encode,
    reference_detector,
    with_exif_rotation,
)

from .test_detection_server import get, parse_metrics, post_files

pytestmark = pytest.mark.slow

MAX_WAIT_MS = 300
"""Long enough that requests sent together reliably share a forward pass."""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the random-weight R18-sized RT-DETRv2, written once for the module."""
    return write_random_model(tmp_path_factory.mktemp("rtdetr") / "model", size="r18", seed=7)


@pytest.fixture(scope="module")
def rtdetr_server(model_dir: Path) -> Iterator[ReferenceDetector]:
    """One rtdetr server on the CPU with dynamic batching (up to 4 images, 300 ms)."""
    yield from reference_detector(
        model_dir.parent,
        "--backend",
        "rtdetr",
        "--model",
        str(model_dir),
        "--device",
        "cpu",
        "--max-batch",
        "4",
        "--max-wait-ms",
        str(MAX_WAIT_MS),
    )


def reference(model_dir: Path, image: Image.Image, threshold: float) -> list[dict[str, Any]]:
    """Run the model in this process and turn its raw output into the protocol by hand.

    RT-DETR scores every (query, class) pair with a sigmoid and keeps the best 300 pairs; a box
    is (centre x, centre y, width, height) relative to the image, so in pixels of the original
    it is ((cx - w/2) W, (cy - h/2) H, w W, h H), clipped to the image.
    """
    import torch  # noqa: PLC0415 - heavy; only this module's reference needs it
    from transformers import (  # noqa: PLC0415
        RTDetrImageProcessor,
        RTDetrV2ForObjectDetection,
    )

    model = RTDetrV2ForObjectDetection.from_pretrained(model_dir).eval()
    pixels = RTDetrImageProcessor.from_pretrained(model_dir)(images=[image], return_tensors="pt")
    with torch.inference_mode():
        out = model(pixel_values=pixels["pixel_values"])
    scores = out.logits[0].sigmoid()  # (queries, classes)
    boxes = out.pred_boxes[0]
    top = scores.flatten().topk(300)
    width, height = image.size
    found = []
    for score, flat in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        if score < threshold:
            continue
        query, label = divmod(flat, scores.shape[1])
        cx, cy, w, h = boxes[query].tolist()
        x1, y1 = max(0.0, (cx - w / 2) * width), max(0.0, (cy - h / 2) * height)
        x2, y2 = min(width, (cx + w / 2) * width), min(height, (cy + h / 2) * height)
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            found.append(
                {
                    "class": COCO_LABELS[label],
                    "confidence": score,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                }
            )
    return found


def assert_same(served: list[dict[str, Any]], expected: list[dict[str, Any]], near: float) -> None:
    """Assert two detection lists agree: same classes, confidence within 1e-3, boxes within 1 px.

    Pairs whose confidence is within `near` of the threshold may be on either side of it (float
    sums differ with thread counts), so only the others must appear in both.
    """

    def close(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return (
            a["class"] == b["class"]
            and abs(a["confidence"] - b["confidence"]) < 1e-3
            and all(abs(p - q) <= 1.0 for p, q in zip(a["bbox"], b["bbox"], strict=True))
        )

    for item in expected:
        if item["confidence"] - near < 0:
            continue
        assert any(close(item, other) for other in served), (item, served[:5])
    for item in served:
        if item["confidence"] - near < 0:
            continue
        assert any(close(item, other) for other in expected), (item, expected[:5])


async def test_contract_boxes_and_labels_match_the_model(
    rtdetr_server: ReferenceDetector, model_dir: Path, socket_enabled: None
) -> None:
    """The answer is the model's own output, in pixels of the image as sent, with COCO names."""
    image = scene(1)
    threshold = 0.15
    status, answer = await post_files(
        rtdetr_server.url, [("file", encode(image, quality=95))], query=f"?threshold={threshold}"
    )
    assert status == 200, answer
    assert answer["image_size"] == [960, 540]
    assert answer["inference_time_ms"] > 0
    assert answer["detections"], "a random model scores some pairs above 0.15"
    decoded = Image.open(io.BytesIO(encode(image, quality=95))).convert("RGB")
    expected = await asyncio.get_running_loop().run_in_executor(
        None, reference, model_dir, decoded, threshold
    )
    assert_same(answer["detections"], expected, near=threshold + 0.002)
    for item in answer["detections"]:
        assert item["class"] in COCO_LABELS
        assert item["confidence"] >= threshold


async def test_exif_orientation_is_applied_before_detection(
    rtdetr_server: ReferenceDetector, socket_enabled: None
) -> None:
    """An image stored on its side with EXIF orientation 6 gets the upright image's answer.

    Both go as PNG (lossless; the tag in its eXIf chunk), so the server must see exactly the
    same pixels and answer exactly the same; without the tag applied it would see a 600x800
    picture of something else.
    """
    image = scene(2, (800, 600))
    status, upright = await post_files(
        rtdetr_server.url, [("file", encode(image, "PNG"))], query="?threshold=0.15"
    )
    assert status == 200
    assert upright["detections"]
    status, turned = await post_files(
        rtdetr_server.url, [("file", with_exif_rotation(image, "PNG"))], query="?threshold=0.15"
    )
    assert status == 200
    assert turned["image_size"] == upright["image_size"] == [800, 600]
    assert turned["detections"] == upright["detections"]


async def test_threshold_is_applied(rtdetr_server: ReferenceDetector, socket_enabled: None) -> None:
    """A higher threshold gives the subset of the lower one's detections at or above it."""
    data = encode(scene(3), "PNG")
    status, low = await post_files(rtdetr_server.url, [("file", data)], query="?threshold=0.12")
    assert status == 200
    status, high = await post_files(rtdetr_server.url, [("file", data)], query="?threshold=0.2")
    assert status == 200
    assert len(high["detections"]) < len(low["detections"])
    assert all(item["confidence"] >= 0.2 for item in high["detections"])
    assert all(item["confidence"] >= 0.12 for item in low["detections"])
    # The answer rounds scores to 4 decimals: a pair shown as 0.2 may have been 0.19996.
    assert [item for item in high["detections"] if item["confidence"] > 0.2] == [
        item for item in low["detections"] if item["confidence"] > 0.2
    ]
    assert all(
        item in low["detections"] for item in high["detections"] if item["confidence"] == 0.2
    )


async def test_batches_equal_single_requests(
    rtdetr_server: ReferenceDetector, socket_enabled: None
) -> None:
    """/detect/batch and concurrent /detect calls (one forward pass) equal one-by-one answers."""
    images = [
        encode(scene(10 + index, size), "PNG")
        for index, size in enumerate([(960, 540), (640, 640), (1280, 720)])
    ]
    singles = []
    for data in images:
        status, answer = await post_files(
            rtdetr_server.url, [("file", data)], query="?threshold=0.15"
        )
        assert status == 200
        singles.append(answer)

    _status, _ct, before = await get(f"{rtdetr_server.url}/metrics")
    status, batch = await post_files(
        rtdetr_server.url,
        [("file", data) for data in images],
        path="/detect/batch",
        query="?threshold=0.15",
    )
    assert status == 200
    concurrent = await asyncio.gather(
        *(
            post_files(rtdetr_server.url, [("file", data)], query="?threshold=0.15")
            for data in images
        )
    )
    _status, _ct, after = await get(f"{rtdetr_server.url}/metrics")

    for single, grouped, (status, alongside) in zip(
        singles, batch["results"], concurrent, strict=True
    ):
        assert status == 200
        assert grouped["image_size"] == alongside["image_size"] == single["image_size"]
        assert_same(grouped["detections"], single["detections"], near=0.152)
        assert_same(alongside["detections"], single["detections"], near=0.152)

    def total(metrics: str, name: str) -> float:
        return sum(value for _labels, value in parse_metrics(metrics).get(name, []))

    passes = total(after, "detector_batch_size_count") - total(before, "detector_batch_size_count")
    images_run = total(after, "detector_batch_size_sum") - total(before, "detector_batch_size_sum")
    assert images_run == 6
    assert passes <= 4, "six images sent three at a time took at most four forward passes"
