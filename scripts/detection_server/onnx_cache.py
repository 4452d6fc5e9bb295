"""RT-DETRv2 exported to ONNX once, quantised to int8 once, and both kept beside the model.

Why a cache: exporting takes seconds and quantising tens of seconds on a small CPU, while a
server restarts often (updates, reboots). Each file is keyed by what it is made from: the
model's config and weights (their bytes, hashed), the export's settings and this module's
format version, so a changed model or a newer exporter builds new files and never uses stale
ones. Each file has a manifest with its own SHA-256, checked on every start: a file cut short
by a crash or a full disk, or changed since, is rebuilt rather than loaded.

Two servers starting at once on the same model (two containers, a restart racing a stop) must
not corrupt the cache: the build holds an exclusive lock on the key's folder, the second server
waits and then finds the files made, and every file is written under a temporary name and
renamed into place, so a reader never sees half a file even where locks are not available.

Only the export needs torch and transformers; a server whose cache is built loads nothing but
ONNX Runtime (or OpenVINO), numpy and Pillow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass
import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile
import time
from typing import Any

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the exported graph or the quantisation changes: old cache files are then unused."""

OPSET = 17
"""ONNX opset of the export: GridSample (the deformable attention's sampling) needs 16 or more."""

CALIBRATION_SCENES = 16
"""Generated scenes the int8 model's activation ranges are measured on."""

AGREEMENT_WARNING = 0.8
"""Below this share of fp32's detections found again in int8, the build's log line is a warning.

Trained detectors keep nearly all their confident boxes in int8; a random-weight model, whose
ranking of near-equal candidates any rounding reorders, keeps about 60 %."""

INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("logits", "pred_boxes")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
"""Files whose bytes are the model's weights (save_pretrained writes .safetensors)."""

_HASH_CHUNK = 4 * 2**20
_UNREADABLE = (OSError, ValueError, AttributeError)
"""A manifest or file that is missing, not JSON, or not an object. A named tuple, not a bare
``except A, B:`` (which ruff format writes for Python 3.14): the server runs on older Pythons."""


class CacheError(RuntimeError):
    """The model cannot be found or the cache cannot be built; the message says which."""


def model_folder(model: str) -> Path:
    """Return the local folder of model: a folder given as is, or a hub id's downloaded snapshot.

    A hub id is downloaded once by huggingface_hub (as transformers would) and read from its
    cache afterwards.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise CacheError(f"--model {model}: a folder with config.json and weights is needed")
    try:
        from huggingface_hub import snapshot_download  # noqa: PLC0415 - only for hub ids
    except ImportError as err:
        raise CacheError(
            f"--model {model} is not a folder, and huggingface_hub is missing"
        ) from err
    return Path(snapshot_download(model, allow_patterns=["*.json", "*.safetensors"]))


def weights_key(folder: Path) -> str:
    """Return the SHA-256 of the model's config and weights and of the export's settings."""
    config = folder / "config.json"
    weights = sorted(
        path for path in folder.iterdir() if path.is_file() and path.suffix in WEIGHT_SUFFIXES
    )
    if not config.is_file() or not weights:
        raise CacheError(f"{folder} has no config.json and weights (as save_pretrained writes)")
    digest = hashlib.sha256(f"ai-security-onnx/{FORMAT_VERSION}/opset{OPSET}\n".encode())
    for path in (config, *weights):
        digest.update(f"{path.name}\n".encode())
        _hash_into(digest, path)
    return digest.hexdigest()


def _hash_into(digest: Any, path: Path) -> None:
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of the file at path."""
    digest = hashlib.sha256()
    _hash_into(digest, path)
    return digest.hexdigest()


def default_cache_root(folder: Path) -> Path:
    """Return where the cache lives: beside the model when its folder is writable, else ~/.cache.

    A hub snapshot's folder belongs to huggingface_hub (its files are links into a blob store),
    so its cache goes to the user's cache folder too.
    """
    if os.access(folder, os.W_OK) and "huggingface" not in folder.parts:
        return folder / "onnx-cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ai-security-detector" / "onnx"


@dataclass(frozen=True, slots=True)
class CachedModel:
    """The files one server runs: the model's folder (labels, image settings) and its ONNX file."""

    folder: Path
    onnx: Path
    precision: str
    built: bool
    """True when this start built the file (False: it came from the cache)."""


class OnnxCache:
    """The ONNX files of one model, in root/<key>/: model-fp32.onnx and model-int8.onnx."""

    def __init__(self, folder: Path, root: Path | None = None) -> None:
        """Hash the model's weights (a fraction of a second per 100 MB)."""
        self.folder = folder
        self.key = weights_key(folder)
        self.root = root if root is not None else default_cache_root(folder)
        self.directory = self.root / self.key[:32]

    def path(self, precision: str) -> Path:
        """Return the file of precision ("fp32" or "int8")."""
        return self.directory / f"model-{precision}.onnx"

    def valid(self, precision: str) -> bool:
        """Return whether precision's file exists and its manifest vouches for its bytes."""
        path = self.path(precision)
        try:
            manifest = json.loads(_manifest(path).read_text(encoding="utf-8"))
            if manifest.get("key") != self.key or manifest.get("bytes") != path.stat().st_size:
                return False
            return bool(manifest.get("sha256") == file_sha256(path))
        except _UNREADABLE:
            return False

    def ensure(self, precision: str) -> CachedModel:
        """Return precision's file, building it (and the fp32 export it needs) when not valid."""
        if precision not in ("fp32", "int8"):
            raise CacheError(f"precision must be fp32 or int8, not {precision!r}")
        if self.valid(precision):
            return CachedModel(self.folder, self.path(precision), precision, built=False)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CacheError(f"cannot create the ONNX cache {self.directory}: {err}") from err
        with _locked(self.directory / ".lock"):
            # Another server may have built it while this one waited for the lock.
            if self.valid(precision):
                return CachedModel(self.folder, self.path(precision), precision, built=False)
            if not self.valid("fp32"):
                self._build("fp32", lambda target: export_onnx(self.folder, target))
            if precision == "int8":
                self._build("int8", self._quantize)
        return CachedModel(self.folder, self.path(precision), precision, built=True)

    def _quantize(self, target: Path) -> dict[str, Any]:
        """Write the int8 model to target; return how well it agrees with fp32, for the manifest."""
        from .onnx_backend import agreement  # noqa: PLC0415 - onnx_backend imports this module

        quantize_int8(self.path("fp32"), target, self.folder)
        found = agreement(self.path("fp32"), target, self.folder)
        level = logging.INFO if found["matched"] >= AGREEMENT_WARNING else logging.WARNING
        _LOGGER.log(
            level,
            "int8 agrees with fp32 on %.0f %% of its detections (same class, IoU >= 0.5; "
            "scores within %.2f at the median, %.2f at p90) over %d generated scenes%s",
            100 * found["matched"],
            found["score_p50"],
            found["score_p90"],
            found["scenes"],
            ""
            if level == logging.INFO
            else ": this model loses much in int8; without --int8 it runs exact",
        )
        return {"agreement": found}

    def _build(self, precision: str, make: Callable[[Path], dict[str, Any] | None]) -> None:
        """Make precision's file under a temporary name, then rename it and its manifest in."""
        path = self.path(precision)
        if path.exists():
            _LOGGER.warning("Rebuilding %s: it does not match its manifest", path)
        started = time.perf_counter()
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".onnx.partial")
        os.close(handle)
        target = Path(temporary)
        try:
            extra = make(target) or {}
            manifest = {
                "key": self.key,
                "precision": precision,
                "bytes": target.stat().st_size,
                "sha256": file_sha256(target),
                "format": FORMAT_VERSION,
                "opset": OPSET,
                "model": str(self.folder),
                **extra,
            }
            _atomic_write(_manifest(path), json.dumps(manifest, indent=1) + "\n")
            os.replace(target, path)
        finally:
            target.unlink(missing_ok=True)
        _LOGGER.info(
            "Built %s in %.1f s (%.1f MB)",
            path,
            time.perf_counter() - started,
            path.stat().st_size / 1e6,
        )


def _manifest(path: Path) -> Path:
    return path.with_suffix(".json")


def _atomic_write(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".json.partial")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path (waiting for it); without fcntl, renames alone protect."""
    try:
        import fcntl  # noqa: PLC0415 - POSIX only
    except ImportError:
        yield
        return
    with path.open("a") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def export_onnx(folder: Path, target: Path) -> None:
    """Export the RT-DETRv2 in folder to target: pixel_values (N, 3, H, W) -> logits, boxes.

    Only the network is exported; resizing before it and choosing the best (query, class) pairs
    after it happen in numpy (onnx_backend.py), as transformers does them outside the network
    too. The batch dimension is dynamic. TorchScript tracing (dynamo=False) is used: the dynamo
    exporter fixes the batch size of this model and stops at transformers' shape checks.
    """
    import warnings  # noqa: PLC0415

    import torch  # noqa: PLC0415 - heavy; only the export needs it
    from transformers import RTDetrV2ForObjectDetection  # noqa: PLC0415

    net = RTDetrV2ForObjectDetection.from_pretrained(folder, local_files_only=True).eval()
    height, width = input_size(folder)

    class Network(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: Any) -> tuple[Any, Any]:
            outputs = self.inner(pixel_values=pixel_values)
            return outputs.logits, outputs.pred_boxes

    example = torch.rand(2, 3, height, width)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    with warnings.catch_warnings(), torch.inference_mode():
        # Tracing warns about every Python-level shape check it freezes; the input size is fixed.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Network(net).eval(),
            (example,),
            str(target),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
        )


def input_size(folder: Path) -> tuple[int, int]:
    """Return the model's input height and width from its image processor settings (or 640)."""
    size = read_json(folder / "preprocessor_config.json").get("size") or {}
    return int(size.get("height", 640)), int(size.get("width", 640))


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in path, or {} when there is none."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CacheError(f"{path} could not be read: {err}") from err
    return value if isinstance(value, dict) else {}


def quantize_int8(
    source: Path, target: Path, folder: Path, scenes: int = CALIBRATION_SCENES
) -> None:
    """Write source quantised to int8: convolutions and matrix products, calibrated on scenes.

    Static quantisation in the QDQ format: weights per output channel as signed int8,
    activations as unsigned int8 with ranges measured on generated scenes (scenes.py) run
    through the fp32 model, since no data set may be downloaded. Normalisations, softmax and
    the deformable attention's sampling stay in fp32, where int8 would cost accuracy and gain
    little time.
    """
    from onnxruntime.quantization import (  # noqa: PLC0415 - only quantising needs it
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    from .onnx_backend import Preprocessor  # noqa: PLC0415 - onnx_backend imports this module
    from .scenes import scene  # noqa: PLC0415

    preprocessor = Preprocessor.from_folder(folder)

    class Scenes(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._seeds = iter(range(10_000, 10_000 + scenes))

        def get_next(self) -> dict[str, Any] | None:
            seed = next(self._seeds, None)
            if seed is None:
                return None
            return {INPUT_NAME: preprocessor(scene(seed))[None]}

    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(target),
            Scenes(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv", "MatMul"],
            calibrate_method=CalibrationMethod.MinMax,
        )
