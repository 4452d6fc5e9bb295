"""Command line: ``python3 -m scripts.detection_server [options]`` from the repository root.

Examples::

    # GPU box, trained RT-DETRv2 from the Hugging Face hub (downloaded once, then cached)
    python3 -m scripts.detection_server --model PekingU/rtdetr_v2_r50vd
    # no GPU, nothing to download: OpenCV's HOG people detector
    python3 -m scripts.detection_server --backend hog
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from . import __version__
from .app import ServerSettings, create_app
from .backends import RTDETR_DEFAULT_MODEL, Backend, HogBackend, RtDetrBackend
from .images import DEFAULT_MAX_PIXELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command line's settings."""
    parser = argparse.ArgumentParser(
        prog="python3 -m scripts.detection_server",
        description="The ai_security reference detection server (RT-DETRv2 or HOG).",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104
    parser.add_argument("--port", type=int, default=8090, help="port (default: 8090)")
    parser.add_argument(
        "--backend", choices=("rtdetr", "hog"), default="rtdetr", help="detector (default: rtdetr)"
    )
    parser.add_argument(
        "--model",
        default=RTDETR_DEFAULT_MODEL,
        help=f"rtdetr: a local folder or a Hugging Face hub id (default: {RTDETR_DEFAULT_MODEL})",
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
        help="inference threads (default: 1 for rtdetr, 2 for hog)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="rtdetr on CPU: torch threads (default: torch's)"
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


def build(args: argparse.Namespace) -> tuple[Backend, ServerSettings]:
    """Return the backend and the settings the arguments describe."""
    backend: Backend
    if args.backend == "hog":
        backend = HogBackend(max_side=args.hog_max_side)
        workers = args.workers or 2
    else:
        backend = RtDetrBackend(
            args.model,
            device=args.device,
            half=not args.fp32,
            max_batch=args.max_batch,
            threads=args.threads,
        )
        workers = args.workers or 1
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
    backend, settings = build(args)
    logging.getLogger(__name__).info("Detection server %s, %s backend", __version__, backend.name)
    return asyncio.run(serve(create_app(backend, settings), args.host, args.port))


if __name__ == "__main__":
    sys.exit(main())
