"""Command line: ``python3 -m scripts.detection_server [options]`` from the repository root.

Examples::

    # GPU box, trained RT-DETRv2 from the Hugging Face hub (downloaded once, then cached)
    python3 -m scripts.detection_server --model PekingU/rtdetr_v2_r50vd
    # no GPU: the same model through ONNX Runtime (exported once, cached), or int8 (faster)
    python3 -m scripts.detection_server --model PekingU/rtdetr_v2_r18vd --int8
    # nothing to download: OpenCV's HOG people detector
    python3 -m scripts.detection_server --backend hog
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
from pathlib import Path
import signal
import sys

from aiohttp import web

from . import __version__
from .app import ServerSettings, create_app
from .backends import RTDETR_DEFAULT_MODEL, Backend, HogBackend, RtDetrBackend
from .gpu import GpuReader
from .images import DEFAULT_MAX_PIXELS
from .onnx_backend import OnnxBackend

BACKENDS = ("auto", "rtdetr", "onnx", "hog")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command line's settings."""
    parser = argparse.ArgumentParser(
        prog="python3 -m scripts.detection_server",
        description="The ai_security reference detection server (RT-DETRv2 or HOG).",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8090, help="port (default: 8090)")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="detector: rtdetr (PyTorch, for a GPU), onnx (ONNX Runtime, CPU), hog (people "
        "only, no model); auto: rtdetr with an NVIDIA GPU, else onnx, else what is installed "
        "(default: auto)",
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="onnx: run the model quantised to int8 (faster, a little less exact)",
    )
    parser.add_argument(
        "--onnx-cache",
        type=Path,
        default=None,
        help="onnx: where the exported model is kept (default: beside the model, or "
        "~/.cache/ai-security-detector/onnx)",
    )
    parser.add_argument(
        "--model",
        default=RTDETR_DEFAULT_MODEL,
        help="rtdetr, onnx: a local folder or a Hugging Face hub id "
        f"(default: {RTDETR_DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--device", default="auto", help="rtdetr: auto, cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument(
        "--fp32", action="store_true", help="rtdetr: compute in float32 on CUDA too (default: fp16)"
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="rtdetr: most images per forward pass; 1 turns dynamic batching off (default: 8)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long a forward pass waits for more images to fill its batch (default: 10)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="inference threads (default: 2 for hog, else 1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="on the CPU: threads of one forward pass (default: the runtime's, one per core)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.25,
        help="confidence below which detections are left out, unless a request's ?threshold= "
        "says otherwise (default: 0.25)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"larger images are refused with HTTP 413 (default: {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=32.0, help="largest file, in MiB (default: 32)"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="images that may wait; more get HTTP 503 with Retry-After (default: 256)",
    )
    parser.add_argument(
        "--hog-max-side",
        type=int,
        default=1280,
        help="hog: frames are scaled down to this long side first (default: 1280)",
    )
    parser.add_argument(
        "--no-hog-nms",
        action="store_true",
        help="hog: send OpenCV's boxes as they are, several for one person (default: merged)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    if not 0.0 <= args.threshold <= 1.0:
        parser.error("--threshold must be from 0 to 1")
    for name in ("max_batch", "max_pixels", "max_queue", "hog_max_side"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.max_wait_ms < 0 or args.max_upload_mb <= 0:
        parser.error("--max-wait-ms must be >= 0 and --max-upload-mb > 0")
    return args


def choose_backend(requested: str, device: str, *, gpu_seen: bool = False) -> str:
    """Return the backend to run: requested, or for "auto" the best this machine has.

    A GPU (seen by NVML, or asked for with --device cuda) runs PyTorch in fp16; without one,
    ONNX Runtime runs the same model two to three times faster than PyTorch's CPU path; without
    either installed, PyTorch on the CPU; with nothing, HOG.
    """
    if requested != "auto":
        return requested

    def installed(module: str) -> bool:
        return importlib.util.find_spec(module) is not None

    wants_gpu = device.startswith("cuda") or (device == "auto" and gpu_seen)
    if wants_gpu and installed("torch"):
        return "rtdetr"
    if device in ("auto", "cpu") and installed("onnxruntime"):
        return "onnx"
    if installed("torch") and installed("transformers"):
        return "rtdetr"
    return "hog"


def build(args: argparse.Namespace, gpu: GpuReader) -> tuple[Backend, ServerSettings]:
    """Return the backend and the settings the arguments describe (gpu: what NVML sees)."""
    backend: Backend
    name = choose_backend(args.backend, args.device, gpu_seen=gpu.available)
    if args.backend == "auto":
        logging.getLogger(__name__).info("--backend auto: %s", name)
    workers = args.workers or 1
    if name == "hog":
        backend = HogBackend(max_side=args.hog_max_side, nms=not args.no_hog_nms)
        workers = args.workers or 2
    elif name == "onnx":
        backend = OnnxBackend(
            args.model,
            precision="int8" if args.int8 else "fp32",
            max_batch=args.max_batch,
            threads=args.threads,
            cache_root=args.onnx_cache,
        )
    else:
        backend = RtDetrBackend(
            args.model,
            device=args.device,
            half=not args.fp32,
            max_batch=args.max_batch,
            threads=args.threads,
        )
    settings = ServerSettings(
        threshold=args.threshold,
        max_pixels=args.max_pixels,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_batch=args.max_batch,
        max_wait=args.max_wait_ms / 1000.0,
        workers=workers,
        max_queue=args.max_queue,
    )
    return backend, settings


async def serve(app: web.Application, host: str, port: int) -> int:
    """Serve app on host:port until SIGINT or SIGTERM; return the exit status.

    The "listening on" line is logged once the socket is bound (tests and scripts wait for it);
    a port that is taken ends the process with status 2 and "could not bind" in the log.
    """
    log = logging.getLogger(__name__)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as err:
            log.error("could not bind %s:%d: %s", host, port, err)  # noqa: TRY400 - no traceback
            return 2
        log.info("listening on http://%s:%d", host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("stopping")
        return 0
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT or SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    gpu = GpuReader()
    backend, settings = build(args, gpu)
    logging.getLogger(__name__).info("Detection server %s, %s backend", __version__, backend.name)
    return asyncio.run(serve(create_app(backend, settings, gpu), args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
