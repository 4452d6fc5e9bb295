"""RT-DETRv2 on the CPU through ONNX Runtime, in fp32 or int8.

Why: most users have no GPU, and PyTorch's eager CPU path runs an R18 at about 1.2 images/s on
two cores, well below what those cores can compute. The same network exported to ONNX
(onnx_cache.py) runs in ONNX Runtime with fused, layout-optimised kernels; quantised to int8 it
runs faster again.

Why not OpenVINO, which reads the same files: its Python package sends usage reports to Google
Analytics from a thread started on import (openvino_telemetry), which a local security system
must not do, and on the 2-core AMD machine measured it was slower than ONNX Runtime in fp32
(0.63 s against 0.55 s an image) and about the same in int8.

Resizing before the network and choosing detections after it are done here in numpy, exactly
as transformers' RTDetrImageProcessor does them (its settings are read from the model's
preprocessor_config.json), so the answers equal the rtdetr backend's on the same weights, and
the server needs neither torch nor transformers once the cache is built.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .backends import RTDETR_DEFAULT_MODEL, Detection, Prepared, clip_box, overlap
from .onnx_cache import INPUT_NAME, CacheError, OnnxCache, input_size, model_folder, read_json

_LOGGER = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True, slots=True)
class Preprocessor:
    """RTDetrImageProcessor's resize, rescale and (optional) normalisation, in Pillow and numpy."""

    height: int = 640
    width: int = 640
    resample: Image.Resampling = Image.Resampling.BILINEAR
    rescale: float | None = 1 / 255
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    @classmethod
    def from_folder(cls, folder: Path) -> Preprocessor:
        """Return the settings of folder's preprocessor_config.json (RT-DETR's defaults without)."""
        config = read_json(folder / "preprocessor_config.json")
        height, width = input_size(folder)
        normalize = bool(config.get("do_normalize", False))
        return cls(
            height=height,
            width=width,
            resample=Image.Resampling(int(config.get("resample", Image.Resampling.BILINEAR))),
            rescale=float(config.get("rescale_factor", 1 / 255))
            if config.get("do_rescale", True)
            else None,
            mean=tuple(config.get("image_mean", (0.485, 0.456, 0.406))) if normalize else None,
            std=tuple(config.get("image_std", (0.229, 0.224, 0.225))) if normalize else None,
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Return image as the network's input: float32, channels first, 3 x height x width."""
        resized = image.convert("RGB").resize((self.width, self.height), self.resample)
        pixels: np.ndarray[Any, np.dtype[np.float32]] = np.asarray(resized, dtype=np.float32)
        if self.rescale is not None:
            pixels = np.multiply(pixels, np.float32(self.rescale), dtype=np.float32)
        if self.mean is not None and self.std is not None:
            mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
            pixels = np.divide(np.subtract(pixels, mean), std, dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def best_pairs(
    logits: np.ndarray, boxes: np.ndarray, size: tuple[int, int], threshold: float, top: int
) -> list[tuple[int, float, tuple[float, float, float, float]]]:
    """Return one image's best (class, score, corners) pairs at or above threshold, best first.

    transformers' post_process_object_detection for RT-DETR: every (query, class) pair is
    scored by a sigmoid, the best `top` pairs (the number of queries) are kept, and a box
    (centre x, centre y, width, height, relative) becomes corners in the image's pixels.
    """
    scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float64).ravel()))
    top = min(top, scores.size)
    chosen = np.argpartition(-scores, top - 1)[:top]
    chosen = chosen[np.argsort(-scores[chosen], kind="stable")]
    chosen = chosen[scores[chosen] >= threshold]
    queries, labels = np.divmod(chosen, logits.shape[-1])
    width, height = size
    found = []
    for query, label, score in zip(queries, labels, scores[chosen], strict=True):
        cx, cy, w, h = (float(value) for value in boxes[query])
        corners = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width)
        found.append((int(label), float(score), (*corners, (cy + h / 2) * height)))
    return found


class OnnxBackend:
    """RT-DETRv2 exported to ONNX and run by ONNX Runtime on the CPU."""

    def __init__(
        self,
        model: str = RTDETR_DEFAULT_MODEL,
        *,
        precision: str = "fp32",
        max_batch: int = 8,
        threads: int | None = None,
        cache_root: Path | None = None,
    ) -> None:
        """Remember the settings; the model is exported (or found in the cache) in load()."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.name = "onnx"
        self.model = model
        self.device = "cpu"
        self.dtype = "float32" if precision == "fp32" else "int8"
        self.max_batch = max(1, max_batch)
        self.precision = precision
        self.onnx_file: Path | None = None
        self._threads = threads
        self._cache_root = cache_root
        self._preprocessor: Preprocessor | None = None
        self._labels: dict[int, str] = {}
        self._queries = 300
        self._run: Any = None

    def load(self) -> None:
        """Find or build the ONNX file, open it in ONNX Runtime, and run one warm-up pass."""
        folder = model_folder(self.model)
        cached = OnnxCache(folder, self._cache_root).ensure(self.precision)
        self.onnx_file = cached.onnx
        config = read_json(folder / "config.json")
        self._labels = {int(k): str(v) for k, v in (config.get("id2label") or {}).items()}
        self._queries = int(config.get("num_queries", 300))
        self._preprocessor = Preprocessor.from_folder(folder)
        self._run = self._open(cached.onnx)
        self.detect([self.prepare(Image.new("RGB", (640, 480)))], 1.0)
        _LOGGER.info(
            "ONNX Runtime %s model from %s (%s)",
            self.precision,
            cached.onnx,
            "built now" if cached.built else "cached",
        )

    def _open(self, path: Path) -> Any:
        import onnxruntime as ort  # noqa: PLC0415 - heavy; --help and the HTTP tests do without

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self._threads:
            options.intra_op_num_threads = self._threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            logits, boxes = session.run(None, {INPUT_NAME: pixels})
            return logits, boxes

        return run

    def prepare(self, image: Image.Image) -> Prepared:
        """Resize and rescale image to the network's input (3 x H x W float32)."""
        if self._preprocessor is None:
            raise RuntimeError("the model is not loaded")
        return Prepared(data=self._preprocessor(image), size=image.size)

    def detect(self, inputs: list[Prepared], threshold: float) -> list[list[Detection]]:
        """Run the network once over inputs; return each one's detections in its own pixels."""
        if self._run is None:
            raise RuntimeError("the model is not loaded")
        logits, boxes = self._run(np.stack([item.data for item in inputs]))
        found: list[list[Detection]] = []
        for index, item in enumerate(inputs):
            width, height = item.size
            items: list[Detection] = []
            for label, score, corners in best_pairs(
                logits[index], boxes[index], item.size, threshold, self._queries
            ):
                box = clip_box(corners, width, height)
                if box is not None:
                    name = self._labels.get(label, f"class_{label}")
                    items.append(Detection(label=name, confidence=score, box=box))
            found.append(items)
        return found


AGREEMENT_SCENES = range(20_000, 20_008)
"""Generated scenes, none of them used for calibration, on which int8 is compared with fp32."""
AGREEMENT_THRESHOLD = 0.3
AGREEMENT_IOU = 0.5


def agreement(fp32: Path, int8: Path, folder: Path) -> dict[str, Any]:
    """Return how many of fp32's detections int8 finds again, and how far their scores moved.

    Run once when the int8 model is built, so that the log (and the cache's manifest) says what
    quantising cost on this very model: a detection is found again when int8 has one of the same
    class with an IoU of AGREEMENT_IOU or more; its score difference is the smallest among those.
    """
    import onnxruntime as ort  # noqa: PLC0415

    from .scenes import scene  # noqa: PLC0415

    preprocessor = Preprocessor.from_folder(folder)
    queries = int(read_json(folder / "config.json").get("num_queries", 300))
    sessions = [
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (fp32, int8)
    ]
    wanted = found = 0
    differences: list[float] = []
    for seed in AGREEMENT_SCENES:
        image = scene(seed)
        pixels = preprocessor(image)[None]
        answers = []
        for session, threshold in zip(sessions, (AGREEMENT_THRESHOLD, 0.0), strict=True):
            logits, boxes = session.run(None, {INPUT_NAME: pixels})
            answers.append(best_pairs(logits[0], boxes[0], image.size, threshold, queries))
        exact, rounded = answers
        for label, score, corners in exact:
            wanted += 1
            near = [
                abs(score - other_score)
                for other_label, other_score, other_corners in rounded
                if other_label == label
                and overlap(_xywh(corners), _xywh(other_corners))[0] >= AGREEMENT_IOU
            ]
            if near:
                found += 1
                differences.append(min(near))
    ordered = sorted(differences) or [0.0]
    return {
        "scenes": len(AGREEMENT_SCENES),
        "detections": wanted,
        "matched": round(found / wanted, 3) if wanted else 1.0,
        "score_p50": round(ordered[len(ordered) // 2], 3),
        "score_p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
    }


def _xywh(corners: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Return (x1, y1, x2, y2) corners as the [x, y, w, h] box the server's overlap rules take."""
    return (corners[0], corners[1], corners[2] - corners[0], corners[3] - corners[1])


__all__ = ["CacheError", "OnnxBackend", "Preprocessor", "agreement", "best_pairs"]
