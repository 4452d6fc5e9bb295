"""The two detectors behind the server: RT-DETRv2 (transformers) and OpenCV's HOG people detector.

Both take a list of RGB images and give, per image, detections with boxes as [x, y, w, h] in that
image's own pixels, clipped to it. They are synchronous and run on the server's inference thread:
torch and OpenCV release the GIL while they compute, so the event loop keeps answering /health.
Heavy imports (torch, transformers, cv2) happen in load(), so that --help, the tests of the
HTTP layer and a server whose backend failed to load still work without them.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import math
from pathlib import Path
import threading
from typing import Any, Protocol

from PIL import Image

_LOGGER = logging.getLogger(__name__)

RTDETR_DEFAULT_MODEL = "PekingU/rtdetr_v2_r50vd"
"""The hub id used when --model is not given (transformers downloads it once, on the user's box)."""


@dataclass(frozen=True, slots=True)
class Detection:
    """One object found: its class name, the model's confidence and its box in image pixels."""

    label: str
    confidence: float
    box: tuple[float, float, float, float]
    """x, y (top left), width, height, in pixels of the image as sent (after EXIF orientation)."""

    def as_json(self) -> dict[str, Any]:
        """Return the detection in the protocol's shape."""
        return {
            "class": self.label,
            "confidence": round(self.confidence, 4),
            "bbox": [round(value, 1) for value in self.box],
        }


def clip_box(
    corners: tuple[float, float, float, float] | list[float], width: int, height: int
) -> tuple[float, float, float, float] | None:
    """Return corners (x1, y1, x2, y2) clipped to the image as [x, y, w, h], or None when empty.

    Models may place a box partly outside the frame; the protocol promises boxes inside it.
    """
    x1, y1, x2, y2 = corners
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        return None
    left, right = max(0.0, min(x1, x2)), min(float(width), max(x1, x2))
    top, bottom = max(0.0, min(y1, y2)), min(float(height), max(y1, y2))
    if right - left < 1.0 or bottom - top < 1.0:
        return None
    return (left, top, right - left, bottom - top)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An image made ready for its backend (resized, converted) off the inference thread."""

    data: Any
    size: tuple[int, int]
    """The image's own width and height: boxes are given in these pixels."""


class Backend(Protocol):
    """What the server needs of a detector."""

    name: str
    """The backend's name as --backend spells it."""
    model: str
    """The model it runs, for /health."""
    device: str
    """Where it runs: "cpu", "cuda:0", ..."""
    dtype: str
    """The numbers it computes with: "float32", "float16" or "uint8" (HOG)."""
    max_batch: int
    """The most images one detect() call should get; 1 means batching gains nothing."""

    def load(self) -> None:
        """Load the model (slow: seconds to minutes); detect() may be called after it returns."""

    def prepare(self, image: Image.Image) -> Prepared:
        """Turn an image into the backend's input; called on many threads at once, after load().

        Resizing and normalizing cost about as much as a GPU's forward pass, so they happen
        on the request's thread, in parallel, and the inference thread only computes.
        """

    def detect(self, inputs: list[Prepared], threshold: float) -> list[list[Detection]]:
        """Return the detections at or above threshold for each input, in order."""


class RtDetrBackend:
    """RT-DETRv2 through transformers' RTDetrV2ForObjectDetection and RTDetrImageProcessor.

    The model comes from a local folder (config.json plus weights, as save_pretrained writes it)
    or a Hugging Face hub id. On CUDA it runs in float16 unless told otherwise: RT-DETR loses
    nothing measurable in half precision and runs about twice as fast. Several images go through
    one forward pass (the processor resizes each to the model's input size), which is what the
    server's dynamic batching feeds it.
    """

    name = "rtdetr"

    def __init__(
        self,
        model: str = RTDETR_DEFAULT_MODEL,
        *,
        device: str = "auto",
        half: bool = True,
        max_batch: int = 8,
        threads: int | None = None,
    ) -> None:
        """Remember the settings; nothing is imported or loaded until load()."""
        self.model = model
        self.device = device
        self.dtype = "float32"
        self.max_batch = max(1, max_batch)
        self._half = half
        self._threads = threads
        self._torch: Any = None
        self._net: Any = None
        self._processor: Any = None
        self._labels: dict[int, str] = {}

    def load(self) -> None:
        """Import torch and transformers, load the model and run one warm-up pass."""
        import torch  # noqa: PLC0415 - heavy, and only this backend needs it
        from transformers import (  # noqa: PLC0415
            RTDetrImageProcessor,
            RTDetrV2ForObjectDetection,
        )

        if self._threads:
            torch.set_num_threads(self._threads)
        device = self.device
        if device == "auto":
            device = "cuda:0" if torch.cuda.is_available() else "cpu"
        elif device == "cuda":
            device = "cuda:0"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"--device {self.device}: torch sees no CUDA GPU")
        local = Path(self.model).expanduser()
        source = str(local) if local.exists() else self.model
        options: dict[str, Any] = {"local_files_only": True} if local.exists() else {}
        net = RTDetrV2ForObjectDetection.from_pretrained(source, **options)
        try:
            processor = RTDetrImageProcessor.from_pretrained(source, **options)
        except OSError:
            # A folder written with the model alone: the processor's defaults are RT-DETR's.
            _LOGGER.info("No image processor settings in %s; using RT-DETR's defaults", source)
            processor = RTDetrImageProcessor()
        dtype = torch.float16 if self._half and device.startswith("cuda") else torch.float32
        net = net.to(device=device, dtype=dtype).eval()
        self._torch, self._net, self._processor = torch, net, processor
        self._labels = {int(key): str(value) for key, value in net.config.id2label.items()}
        self.device = device
        self.dtype = str(dtype).removeprefix("torch.")
        # Warm-up: the first pass is slow (kernel selection, allocator).
        self.detect([self.prepare(Image.new("RGB", (640, 480)))], 1.0)

    def prepare(self, image: Image.Image) -> Prepared:
        """Resize and rescale image to the model's input (a 1x3xHxW float32 tensor on the CPU)."""
        if self._processor is None:
            raise RuntimeError("the model is not loaded")
        pixels = self._processor(images=[image], return_tensors="pt")["pixel_values"]
        return Prepared(data=pixels, size=image.size)

    def detect(self, inputs: list[Prepared], threshold: float) -> list[list[Detection]]:
        """Run one forward pass over inputs; return each one's detections in its own pixels."""
        torch, net = self._torch, self._net
        if net is None:
            raise RuntimeError("the model is not loaded")
        pixels = torch.cat([item.data for item in inputs]).to(device=self.device, dtype=net.dtype)
        with torch.inference_mode():
            outputs = net(pixel_values=pixels)
        outputs.logits = outputs.logits.float()
        outputs.pred_boxes = outputs.pred_boxes.float()
        sizes = [(item.size[1], item.size[0]) for item in inputs]
        results = self._processor.post_process_object_detection(
            outputs, threshold=threshold, target_sizes=sizes
        )
        found: list[list[Detection]] = []
        for (width, height), result in zip((item.size for item in inputs), results, strict=True):
            items: list[Detection] = []
            for score, label, corners in zip(
                result["scores"].tolist(),
                result["labels"].tolist(),
                result["boxes"].tolist(),
                strict=True,
            ):
                box = clip_box(corners, width, height)
                if box is not None and score >= threshold:
                    name = self._labels.get(int(label), f"class_{int(label)}")
                    items.append(Detection(label=name, confidence=float(score), box=box))
            found.append(items)
        return found


class HogBackend:
    """OpenCV's HOG + linear SVM pedestrian detector: class "person" only, CPU, no download.

    A low-accuracy fallback for demos and machines without a GPU: it finds upright people from
    about 100 px tall (its window is 64x128) and nothing else, and misses people sitting,
    bending or seen from above.
    Frames larger than max_side on their long side are scaled down first (people in them are
    big enough to be found, and the cost grows with the pixel count); boxes are scaled back.
    The SVM's margin becomes a confidence through the logistic function: 0.5 at the detector's
    own decision boundary, about 0.73 at a margin of 1. Windows are grouped when two or more
    overlap (groupThreshold 1, OpenCV's default is 2): on a photo of a person 160 px tall
    that frames her with IoU > 0.5 about twice as often, at the same cost, and found no more
    in scikit-image's photos without people than the default did.

    OpenCV's grouping still leaves boxes of one person at different scales: the whole person
    and, inside it, the upper body or the legs. Those are merged here (one_box_per_object), so
    one person is one box; nms=False sends OpenCV's boxes as they are.
    """

    name = "hog"

    def __init__(self, *, max_side: int = 1280, nms: bool = True) -> None:
        """Remember the settings; OpenCV is imported in load()."""
        self.model = "opencv-hog-default-people"
        self.device = "cpu"
        self.dtype = "uint8"
        self.max_batch = 1
        self._max_side = max_side
        self._nms = nms
        self._cv2: Any = None
        self._np: Any = None
        self._local = threading.local()

    def load(self) -> None:
        """Import OpenCV and check that this build still has the HOG people detector."""
        import cv2  # noqa: PLC0415 - only this backend needs it
        import numpy as np  # noqa: PLC0415

        if not hasattr(cv2, "HOGDescriptor"):
            raise RuntimeError(
                f"OpenCV {cv2.__version__} has no HOGDescriptor (removed in 5.0): "
                "install opencv-python-headless<5"
            )
        self._cv2, self._np = cv2, np
        self.model = f"opencv-{cv2.__version__}-hog-default-people"
        self._descriptor()

    def _descriptor(self) -> Any:
        """Return this thread's HOG descriptor (one per thread: OpenCV's is not shared safely)."""
        descriptor = getattr(self._local, "descriptor", None)
        if descriptor is None:
            cv2 = self._cv2
            descriptor = cv2.HOGDescriptor()
            descriptor.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
            self._local.descriptor = descriptor
        return descriptor

    def prepare(self, image: Image.Image) -> Prepared:
        """Scale image down to max_side and convert it to OpenCV's BGR array."""
        if self._cv2 is None:
            raise RuntimeError("the HOG detector is not loaded")
        scale = min(1.0, self._max_side / max(image.width, image.height))
        work = image
        if scale < 1.0:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            work = image.resize(size, Image.Resampling.BILINEAR)
        pixels = self._cv2.cvtColor(self._np.asarray(work), self._cv2.COLOR_RGB2BGR)
        return Prepared(data=(pixels, scale), size=image.size)

    def detect(self, inputs: list[Prepared], threshold: float) -> list[list[Detection]]:
        """Return the people found in each input (one at a time: HOG gains nothing from batches)."""
        if self._cv2 is None:
            raise RuntimeError("the HOG detector is not loaded")
        return [self._detect_one(item, threshold) for item in inputs]

    def _detect_one(self, item: Prepared, threshold: float) -> list[Detection]:
        pixels, scale = item.data
        width, height = item.size
        rects, weights = self._descriptor().detectMultiScale(
            pixels, winStride=(8, 8), padding=(8, 8), scale=1.05, groupThreshold=1
        )
        found: list[Detection] = []
        for (x, y, w, h), margin in zip(rects, self._np.ravel(weights), strict=True):
            confidence = 1.0 / (1.0 + math.exp(-float(margin)))
            corners = (x / scale, y / scale, (x + w) / scale, (y + h) / scale)
            box = clip_box(corners, width, height)
            if box is not None and confidence >= threshold:
                found.append(Detection(label="person", confidence=confidence, box=box))
        found.sort(key=lambda item: item.confidence, reverse=True)
        return one_box_per_object(found) if self._nms else found


IOU_THRESHOLD = 0.5
"""Boxes of one class overlapping by this intersection over union or more show one object."""
CONTAINED_SHARE = 0.8
"""A box lying this share of its area or more inside another of its class is a duplicate: IoU
misses a torso box inside a whole-person box (their IoU is 0.2 or less)."""


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float]:
    """Return the IoU of two [x, y, w, h] boxes and the share of the smaller inside the other."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    shared = max(0.0, width) * max(0.0, height)
    area_a, area_b = a[2] * a[3], b[2] * b[3]
    union = area_a + area_b - shared
    smaller = min(area_a, area_b)
    return (shared / union if union > 0 else 0.0, shared / smaller if smaller > 0 else 0.0)


def one_box_per_object(found: list[Detection]) -> list[Detection]:
    """Return found without duplicate boxes: greedy non-maximum suppression per class.

    The most confident box is taken first (ties: the larger one). A box overlapping a kept box
    of its class by IOU_THRESHOLD or more is dropped. A box that holds a kept box (CONTAINED_SHARE
    or more of the kept one inside it) gives the kept one its outline: HOG is often surer of the
    upper body than of the whole person around it, and the whole person is the box to show, with
    the surer score. A box lying inside a kept one is dropped. The integration merges every
    detector's answer by the same overlap rules; doing it here too means the server's own answer
    says one person, and its metrics count one.
    """
    kept: list[Detection] = []
    for item in sorted(found, key=lambda d: (-d.confidence, -d.box[2] * d.box[3])):
        for index, other in enumerate(kept):
            if other.label != item.label:
                continue
            union_share, inside_share = overlap(item.box, other.box)
            if union_share >= IOU_THRESHOLD or inside_share >= CONTAINED_SHARE:
                if inside_share >= CONTAINED_SHARE and _area(item) > _area(other):
                    kept[index] = Detection(other.label, other.confidence, item.box)
                break
        else:
            kept.append(item)
    return kept


def _area(item: Detection) -> float:
    return item.box[2] * item.box[3]
