"""Throughput and latency of the reference detection server, per backend, batching and concurrency.

``python3 -m scripts.detection_server.bench [options]`` from the repository root (``--help``);
``scripts/bench_detector`` runs it in the lab.

Backends: hog, rtdetr (PyTorch), onnx (ONNX Runtime, fp32) and onnx-int8 (the same with
``--int8``); the onnx servers export (and quantise) the model on their first start, into a cache
beside it, before they report ready.

Why it exists: the integration sends one frame per request, from several cameras at once, so
what matters is how many images a second one server answers and how long each waits, with 1, 4
or 16 requests in flight. For the rtdetr backend the question is also what dynamic batching
buys: concurrent requests share one forward pass, which on a GPU costs little more than one
image. Random weights cost exactly the compute of trained ones, so by default the benchmark
writes a random RT-DETRv2 (``--size r18``, or ``r50``: the size of PekingU/rtdetr_v2_r50vd) and
needs no download.

What it does: for each backend (``--backend``, default every one whose Python modules import
here) and, for rtdetr, with batching on and off (``--batching``), it starts the server on
127.0.0.1 as a subprocess, waits for /health to say "ok", and then for each concurrency level
(``--concurrency``, default 1,4,16) sends a warm-up of that many requests (not measured), then
runs that many client tasks, each posting the same 1280x720 JPEG to /detect in a loop until
``--requests`` requests are done or ``--seconds`` have passed. ``--url`` benchmarks a server that
is already running instead (one run: its batching cannot be changed from here).

How to read the table (stdout): one row per backend, batching and concurrency.

- images/s: requests answered with 200, divided by the level's wall time (first request sent
  to last answer read). With batching off it stays near the single-image rate however many
  requests wait; with batching on it should grow with concurrency until batches are full.
- p50/p99 ms: client-side wall time of one request (sending, queueing, inference, reading the
  answer), over the successful ones; nearest-rank percentiles, so with few requests p99 is the
  slowest. Queueing dominates at high concurrency: p50 there is roughly concurrency / images/s.
- mean batch: images per backend call during the level, from the server's /metrics
  (detector_batch_size); 1.0 means every image had its own forward pass.
- pass ms: the mean time of one backend call (detector_inference_duration_seconds): what the
  model itself costs per batch, against which the latency shows the cost of everything else.
- GFLOPS: images/s times the model's GFLOPs per image (counted once by torch at its input
  size): how much of the CPU's or GPU's arithmetic the server turns into detections.
- fail: answers other than 200 (503 when the queue is full, for instance) and failed requests.

The header lines give the machine and, per server, its device, dtype, model and batching
settings as /health reports them. ``--json PATH`` writes the same rows as JSON.

It needs only the standard library, aiohttp, Pillow and numpy (plus, for the random model,
torch and transformers), never Home Assistant, so it runs on a GPU box next to the server.
Exit status: 0 after a run, 1 when a server could not start, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
import importlib
import io
import json
import math
import os
from pathlib import Path
import platform
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp
import numpy as np
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where ``python3 -m scripts.detection_server`` works from."""

BACKENDS = ("hog", "rtdetr", "onnx", "onnx-int8")
BACKEND_MODULES = {
    "hog": ("cv2",),
    "rtdetr": ("torch", "transformers"),
    "onnx": ("onnxruntime", "onnx", "torch", "transformers"),
    "onnx-int8": ("onnxruntime", "onnx", "torch", "transformers"),
}
"""What each backend imports on the server (onnx: torch for the export, the first time);
--backend all runs those whose modules import. onnx-int8 is the onnx backend with --int8."""

IMAGE_SIZE = (1280, 720)
JPEG_QUALITY = 85
BOUNDARY = "ai-security-bench-boundary"

START_TIMEOUT_S = 600.0
"""How long a server may take to load its model (a first CUDA start takes a while)."""
STOP_GRACE_S = 10.0
"""How long a server has to stop after SIGTERM before it is killed."""
REQUEST_TIMEOUT_S = 600.0
"""One request's limit: at concurrency 16 on a CPU a request queues behind fifteen others."""
LOG_TAIL_LINES = 30
HTTP_ERRORS = (aiohttp.ClientError, TimeoutError)
"""What a failed request raises. A named tuple of exceptions, not a bare ``except A, B:`` (which
ruff format writes for Python 3.14): the module must also run on an older python3 on a GPU box."""


class ServerStartError(Exception):
    """The server exited, reported "error" or never became ready; the message says which."""


@dataclass(frozen=True, slots=True)
class RunPlan:
    """One server to start: its backend and the extra command line that sets its batching."""

    backend: str
    batching: str
    """"on", "off", or "-" for a backend that always runs one image at a time (hog)."""
    server_args: tuple[str, ...]


@dataclass(slots=True)
class Row:
    """The figures of one concurrency level against one server."""

    backend: str
    batching: str
    device: str
    dtype: str
    model: str
    concurrency: int
    requests: int
    """Requests measured (warm-up not included), successful or not."""
    failures: int
    elapsed_s: float
    images_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    mean_batch: float | None
    pass_ms: float | None = None
    """Mean time of one backend call (forward pass over a batch) during the level."""
    gflops: float | None = None
    """The model's work done per second: images/s times its GFLOPs per image (None for hog)."""


# --------------------------------------------------------------------------------------------
# The image and the request body


def make_image() -> bytes:
    """Return the benchmark's frame: a 1280x720 JPEG (quality 85) of a few shapes.

    When scikit-image is there, its astronaut (a person) is pasted at 160x160, so HOG has
    someone to find; the compute per image hardly depends on it.
    """
    image = Image.new("RGB", IMAGE_SIZE, (118, 128, 112))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 470, 1280, 720), fill=(92, 88, 80))  # ground
    draw.rectangle((80, 180, 420, 470), fill=(170, 150, 130), outline=(40, 40, 40), width=4)
    draw.rectangle((180, 330, 260, 470), fill=(70, 50, 40))  # door
    draw.polygon([(60, 180), (250, 60), (440, 180)], fill=(120, 50, 45))  # roof
    draw.ellipse((900, 60, 1020, 180), fill=(235, 220, 120))
    draw.rectangle((820, 500, 1180, 640), fill=(40, 70, 140), outline=(10, 10, 10), width=3)
    draw.ellipse((860, 610, 940, 690), fill=(20, 20, 20))
    draw.ellipse((1060, 610, 1140, 690), fill=(20, 20, 20))
    person = astronaut()
    if person is not None:
        image.paste(person.resize((160, 160), Image.Resampling.BILINEAR), (600, 400))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def astronaut() -> Image.Image | None:
    """Return scikit-image's astronaut picture, or None without scikit-image (or its data)."""
    try:
        from skimage import data  # noqa: PLC0415 - optional

        return Image.fromarray(np.asarray(data.astronaut(), dtype=np.uint8)).convert("RGB")
    except Exception:  # noqa: BLE001 - not installed or broken: shapes only
        return None


def multipart_body(jpeg: bytes) -> bytes:
    """Return a multipart/form-data body carrying jpeg in the field "file" (built once)."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="bench.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + jpeg + f"\r\n--{BOUNDARY}--\r\n".encode()


# --------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], q: float) -> float | None:
    """Return the nearest-rank q-th percentile of values (None when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def parse_batch_metrics(text: str) -> tuple[float, float, float, float]:
    """Return (sum, count) of detector_batch_size, then of detector_inference_duration_seconds.

    From Prometheus text; 0 where absent. Summed over every series, so labels would not matter.
    """
    total = count = seconds = passes = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_and_labels, _, value = line.rpartition(" ")
        name = name_and_labels.split("{", 1)[0]
        try:
            number = float(value)
        except ValueError:
            continue
        if name == "detector_batch_size_sum":
            total += number
        elif name == "detector_batch_size_count":
            count += number
        elif name == "detector_inference_duration_seconds_sum":
            seconds += number
        elif name == "detector_inference_duration_seconds_count":
            passes += number
    return total, count, seconds, passes


# --------------------------------------------------------------------------------------------
# The server


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last lines of the server's log."""
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"(the log {path} could not be read: {err})"
    return "\n".join(text.splitlines()[-lines:])


class ServerProcess:
    """A detection server run as a subprocess; a context manager that always stops it."""

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        """Keep the server's command line (after ``-m scripts.detection_server``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.command = [
            sys.executable,
            "-m",
            "scripts.detection_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        """Start the server, its output going to the log file."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.command,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server: SIGTERM, then SIGKILL after STOP_GRACE_S."""
        self.stop()

    def stop(self) -> None:
        """Terminate the server and wait for it (kill it when it does not stop in time)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def exited(self) -> int | None:
        """Return the exit status when the server has stopped, else None."""
        return None if self.process is None else self.process.poll()


async def wait_ready(
    session: aiohttp.ClientSession, url: str, server: ServerProcess | None
) -> dict[str, Any]:
    """Poll /health until it says "ok" and return it; raise ServerStartError otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server is not None and (code := server.exited()) is not None:
            raise ServerStartError(f"the server exited with status {code}")
        try:
            async with session.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=10)) as r:
                health: dict[str, Any] = await r.json(content_type=None)
        except (*HTTP_ERRORS, ValueError) as err:
            last = f"{type(err).__name__}: {err}"
        else:
            status = health.get("status")
            if status == "ok":
                return health
            if status == "error":
                raise ServerStartError(f"the model failed to load: {health.get('error')}")
            last = f"status {status!r}"
        await asyncio.sleep(0.5)
    raise ServerStartError(f"not ready after {START_TIMEOUT_S:.0f} s ({last})")


# --------------------------------------------------------------------------------------------
# The load


async def post_image(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[bool, float]:
    """Post one image to /detect; return whether it got 200 and the seconds it took."""
    started = time.perf_counter()
    try:
        async with session.post(
            f"{url}/detect",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        ) as response:
            await response.read()
            ok = response.status == 200
    except HTTP_ERRORS:
        ok = False
    return ok, time.perf_counter() - started


async def batch_metrics(
    session: aiohttp.ClientSession, url: str
) -> tuple[float, float, float, float] | None:
    """Return parse_batch_metrics of the server's /metrics, or None when /metrics fails."""
    try:
        async with session.get(f"{url}/metrics", timeout=aiohttp.ClientTimeout(total=30)) as r:
            if r.status != 200:
                return None
            return parse_batch_metrics(await r.text())
    except HTTP_ERRORS:
        return None


@dataclass(slots=True)
class LevelResult:
    """What one concurrency level measured."""

    requests: int
    failures: int
    elapsed_s: float
    latencies_s: list[float]
    """Of the successful requests."""
    mean_batch: float | None
    pass_ms: float | None = None


async def run_level(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    seconds: float,
) -> LevelResult:
    """Warm up with concurrency requests, then keep concurrency requests in flight and measure.

    Each client task posts in a loop; no new request starts once requests have been sent or
    seconds have passed, and the level ends when the last answer is read.
    """
    await asyncio.gather(*(post_image(session, url, body) for _ in range(concurrency)))
    before = await batch_metrics(session, url)
    latencies: list[float] = []
    outcome = {"sent": 0, "failures": 0}
    started = time.perf_counter()
    deadline = started + seconds

    async def client() -> None:
        while outcome["sent"] < requests and time.perf_counter() < deadline:
            outcome["sent"] += 1
            ok, took = await post_image(session, url, body)
            if ok:
                latencies.append(took)
            else:
                outcome["failures"] += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    after = await batch_metrics(session, url)
    mean_batch = pass_ms = None
    if before is not None and after is not None and after[1] > before[1]:
        mean_batch = (after[0] - before[0]) / (after[1] - before[1])
    if before is not None and after is not None and after[3] > before[3]:
        pass_ms = 1000.0 * (after[2] - before[2]) / (after[3] - before[3])
    return LevelResult(
        outcome["sent"], outcome["failures"], elapsed, latencies, mean_batch, pass_ms
    )


def default_requests(backend: str, device: str) -> int:
    """Return how many requests a level sends by default: fewer for RT-DETR on a CPU."""
    if backend == "rtdetr" and not device.startswith("cuda"):
        return 16
    if backend == "onnx":
        return 32
    return 64


def model_gflops(model: str) -> float | None:
    """Return the RT-DETRv2 in model's GFLOPs for one image at its input size, or None.

    Counted by torch's FlopCounterMode over one forward pass (two FLOPs per multiply-add of
    convolutions and matrix products, the convention of the RT-DETR paper's 60 GFLOPs for R18);
    the deformable attention's sampling and the element-wise operations are not counted, so
    the GFLOPS column slightly understates the work done.
    """
    try:
        import torch  # noqa: PLC0415 - optional: only for this column
        from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415
        from transformers import RTDetrV2ForObjectDetection  # noqa: PLC0415

        from .onnx_cache import input_size, model_folder  # noqa: PLC0415
    except ImportError:
        return None
    folder = model_folder(model)
    net = RTDetrV2ForObjectDetection.from_pretrained(folder, local_files_only=True).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(pixel_values=torch.zeros(1, 3, *input_size(folder)))
    return float(counter.get_total_flops()) / 1e9


def batching_label(plan_batching: str, health: dict[str, Any]) -> str:
    """Return the batching column: "-" for hog, else on/off with the server's settings."""
    if plan_batching == "-":
        return "-"
    settings = health.get("batching") or {}
    most = settings.get("max_batch")
    if not isinstance(most, int) or most <= 1:
        return "off"
    wait = settings.get("max_wait_ms")
    return f"on ({most}, {wait:g} ms)" if isinstance(wait, int | float) else f"on ({most})"


async def bench_server(
    url: str,
    server: ServerProcess | None,
    plan: RunPlan | None,
    body: bytes,
    args: argparse.Namespace,
) -> tuple[dict[str, Any], list[Row]]:
    """Wait for the server at url, run every concurrency level, return /health and the rows."""
    connector = aiohttp.TCPConnector(limit=max(args.concurrency) + 4)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        health = await wait_ready(session, url, server)
        backend = str(health.get("backend", plan.backend if plan else "?"))
        device = str(health.get("device", "?"))
        dtype = str(health.get("dtype", "?"))
        model = str(health.get("model", "?"))
        if plan is not None:
            batching = batching_label(plan.batching, health)
        else:
            batching = batching_label("-" if backend == "hog" else "on", health)
        progress(
            f"{backend} ({batching}) ready on {device} ({dtype}) "
            f"after {time.perf_counter() - started:.1f} s"
        )
        requests = args.requests or default_requests(backend, device)
        gflops = None if backend == "hog" else getattr(args, "model_gflops", None)
        rows: list[Row] = []
        for concurrency in args.concurrency:
            level = await run_level(
                session,
                url,
                body,
                concurrency=concurrency,
                requests=requests,
                seconds=args.seconds,
            )
            done = len(level.latencies_s)
            row = Row(
                backend=backend,
                batching=batching,
                device=device,
                dtype=dtype,
                model=model,
                concurrency=concurrency,
                requests=level.requests,
                failures=level.failures,
                elapsed_s=round(level.elapsed_s, 3),
                images_per_s=round(done / level.elapsed_s, 3) if level.elapsed_s > 0 else 0.0,
                p50_ms=_ms(percentile(level.latencies_s, 50)),
                p99_ms=_ms(percentile(level.latencies_s, 99)),
                mean_batch=None if level.mean_batch is None else round(level.mean_batch, 2),
                pass_ms=None if level.pass_ms is None else round(level.pass_ms, 2),
                gflops=None
                if gflops is None
                else round(gflops * done / level.elapsed_s, 1)
                if level.elapsed_s > 0
                else None,
            )
            progress(
                f"  concurrency {concurrency}: {row.images_per_s:.2f} images/s, "
                f"{level.requests} requests in {level.elapsed_s:.1f} s"
            )
            rows.append(row)
        return health, rows


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 1)


# --------------------------------------------------------------------------------------------
# The report


def machine() -> dict[str, Any]:
    """Return what the report says of this machine."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def describe_server(health: dict[str, Any], batching: str) -> str:
    """Return one header line about a server: backend, device, dtype, model, GPU, batching."""
    settings = health.get("batching") or {}
    what = "one image per call" if batching == "-" else f"batching {batching}"
    line = (
        f"# {health.get('backend')} ({what}): device {health.get('device')}, "
        f"dtype {health.get('dtype')}, model {health.get('model')}, "
        f"workers {settings.get('workers')}"
    )
    gpu = health.get("gpu")
    if isinstance(gpu, dict) and gpu.get("name"):
        line += f", GPU {gpu['name']} ({gpu.get('memory_total_mb')} MiB)"
    return line


def table(rows: Sequence[Row]) -> str:
    """Return the rows as a plain text table."""
    headers = (
        "backend",
        "batching",
        "conc",
        "requests",
        "images/s",
        "p50 ms",
        "p99 ms",
        "mean batch",
        "pass ms",
        "GFLOPS",
        "fail",
    )

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        (
            f"{row.backend} {row.dtype}",
            row.batching,
            str(row.concurrency),
            str(row.requests),
            cell(row.images_per_s, 2),
            cell(row.p50_ms, 1),
            cell(row.p99_ms, 1),
            cell(row.mean_batch, 2),
            cell(row.pass_ms, 1),
            cell(row.gflops, 0),
            str(row.failures),
        )
        for row in rows
    ]
    widths = [max(len(text) for text in column) for column in zip(headers, *lines, strict=True)]
    out = []
    for index, line in enumerate((headers, *lines)):
        cells = [
            text.ljust(width) if column < 2 else text.rjust(width)
            for column, (text, width) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def progress(message: str) -> None:
    """Say what is happening, on stderr (stdout holds only the report)."""
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the command line's settings."""
    parser = argparse.ArgumentParser(
        prog="python3 -m scripts.detection_server.bench",
        description="Images/s and p50/p99 latency of the detection server at several "
        "concurrency levels, per backend and (rtdetr) with dynamic batching on and off.",
    )
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        default="all",
        help="which backend(s) to run (default: all whose Python modules import here)",
    )
    parser.add_argument(
        "--model",
        help="rtdetr: model folder or hub id (default: a random model written for the run, "
        "see --size)",
    )
    parser.add_argument(
        "--size",
        choices=("r18", "r50"),
        default="r18",
        help="rtdetr: size of the random model (default: r18; r50 is rtdetr_v2_r50vd's)",
    )
    parser.add_argument("--device", default="auto", help="rtdetr: auto, cpu, cuda, cuda:N")
    parser.add_argument("--fp32", action="store_true", help="rtdetr: float32 on CUDA too")
    parser.add_argument(
        "--batching",
        choices=("on", "off", "both"),
        default="both",
        help="rtdetr: dynamic batching on, off or one run of each (default: both)",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="batching on: (default: 8)")
    parser.add_argument(
        "--max-wait-ms", type=float, default=10.0, help="batching on: (default: 10)"
    )
    parser.add_argument("--workers", type=int, help="server's inference threads")
    parser.add_argument("--threads", type=int, help="rtdetr on CPU: server's torch threads")
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=(1, 4, 16),
        help="requests in flight, comma separated (default: 1,4,16)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        help="requests per level (default: 64; rtdetr on a CPU: 16)",
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="most seconds per level (default: 20)"
    )
    parser.add_argument(
        "--url", help="benchmark the server already running there instead of starting one"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file as JSON")
    args = parser.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.seconds <= 0 or args.max_batch < 1 or args.max_wait_ms < 0:
        parser.error("--seconds must be > 0, --max-batch >= 1 and --max-wait-ms >= 0")
    if args.url:
        args.url = args.url.rstrip("/")
    return args


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("levels must be whole numbers of at least 1")
    return levels


def importable(backend: str) -> bool:
    """Return whether the Python modules the backend's server needs import here."""
    for name in BACKEND_MODULES[backend]:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - missing or broken: either way not available
            return False
    return True


def plans(args: argparse.Namespace, model: str | None) -> list[RunPlan]:
    """Return the servers to start, in order."""
    backends = [args.backend] if args.backend != "all" else [b for b in BACKENDS if importable(b)]
    extra: list[str] = []
    if args.workers:
        extra += ["--workers", str(args.workers)]
    out: list[RunPlan] = []
    for backend in backends:
        if backend == "hog":
            out.append(RunPlan("hog", "-", ("--backend", "hog", *extra)))
            continue
        name = "rtdetr" if backend == "rtdetr" else "onnx"
        common = ["--backend", name, "--model", str(model), *extra]
        if name == "rtdetr":
            common += ["--device", args.device]
        if args.fp32 and name == "rtdetr":
            common.append("--fp32")
        if backend == "onnx-int8":
            common.append("--int8")
        if args.threads:
            common += ["--threads", str(args.threads)]
        if args.batching in {"on", "both"}:
            batched = ("--max-batch", str(args.max_batch), "--max-wait-ms", f"{args.max_wait_ms}")
            out.append(RunPlan(backend, "on", (*common, *batched)))
        if args.batching in {"off", "both"}:
            out.append(RunPlan(backend, "off", (*common, "--max-batch", "1")))
    return out


def run(args: argparse.Namespace, workdir: Path) -> int:
    """Benchmark every planned server (or the one at --url), print the report; return status."""
    body = multipart_body(make_image())
    results: list[tuple[dict[str, Any], list[Row]]] = []
    failed = False
    if args.url:
        try:
            results.append(asyncio.run(bench_server(args.url, None, None, body, args)))
        except ServerStartError as err:
            progress(f"the server at {args.url} is not ready: {err}")
            return 1
    else:
        model = args.model
        if model is not None and Path(model).exists():
            model = str(Path(model).resolve())  # the server runs from the repository root
        wanted = args.backend != "hog"
        if model is None and wanted and (args.backend != "all" or importable("rtdetr")):
            from .make_model import write_random_model  # noqa: PLC0415 - needs torch

            progress(f"writing a random RT-DETRv2 {args.size} model")
            try:
                model = str(write_random_model(workdir / f"rtdetr_{args.size}", size=args.size))
            except ImportError as err:
                progress(f"no random model without torch and transformers ({err}); give --model")
                return 1
        if model is not None and wanted:
            progress("counting the model's GFLOPs per image")
            args.model_gflops = model_gflops(model)
            if args.model_gflops is not None:
                progress(f"  {args.model_gflops:.1f} GFLOPs per image")
        runs = plans(args, model)
        if not runs:
            progress("no backend is available here (hog needs cv2, rtdetr torch + transformers)")
            return 1
        for index, plan in enumerate(runs):
            log_path = workdir / f"server_{index}_{plan.backend}_{plan.batching}.log"
            progress(f"starting the {plan.backend} server (batching: {plan.batching})")
            with ServerProcess(plan.server_args, log_path) as server:
                try:
                    results.append(asyncio.run(bench_server(server.url, server, plan, body, args)))
                except ServerStartError as err:
                    failed = True
                    progress(
                        f"the {plan.backend} server could not start: {err}\n"
                        f"--- last lines of its log ---\n{log_tail(log_path)}"
                    )
    report(results, args.json, getattr(args, "model_gflops", None))
    return 1 if failed else 0


def report(
    results: Sequence[tuple[dict[str, Any], list[Row]]],
    json_path: Path | None,
    gflops: float | None = None,
) -> None:
    """Print the header lines and the table; write the JSON file when asked."""
    info = {**machine(), "model_gflops": gflops}
    lines = [f"# machine: {info['cpus']} CPUs, {info['platform']}, Python {info['python']}"]
    if info.get("model_gflops"):
        lines.append(f"# model: {info['model_gflops']:.1f} GFLOPs per image (torch's count)")
    rows = [row for _, server_rows in results for row in server_rows]
    lines += [describe_server(health, mine[0].batching) for health, mine in results if mine]
    if rows:
        lines.append(table(rows))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    if json_path is not None:
        document = {"machine": info, "rows": [asdict(row) for row in rows]}
        json_path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 after a run, 1 when a server could not start, 130 on Ctrl-C."""
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="detection_bench_") as workdir:
            return run(args, Path(workdir))
    except KeyboardInterrupt:
        progress("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
