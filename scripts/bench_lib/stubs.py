"""The model servers for the benchmark: a detector and an LLM that answer at once.

Each runs as its own process (python -m scripts.bench_lib.stubs detector|llm), so its CPU is not
charged to Home Assistant's process, and speaks just enough of the real protocol for the
integration's real clients: the detector reads the whole multipart upload (as RT-DETRv2's server
must) and answers one fixed detection; the LLM answers llama.cpp's /completion and the OpenAI chat
route with one fixed verdict. GET /stats reports the request counts and the process's own CPU time,
which the benchmark reads before and after the measured run. On start it prints "PORT <n>".
"""

import argparse
import asyncio
from collections import Counter
import contextlib
import json
import resource
import signal
import sys
from typing import Any, Final

from aiohttp import BodyPartReader, web

DETECTION: Final = {"class": "person", "confidence": 0.8, "bbox": [800.0, 400.0, 180.0, 420.0]}
"""One person, confident enough to be stored but below the default fast-path confidence (0.9), so
every image adds to its camera's batch and events come from closed batches."""

VERDICT: Final = {
    "risk_score": 42,
    "risk_level": "medium",
    "summary": "A person walking past",
    "reasoning": "One person on the road in daylight, not approaching the building.",
}


def _rss_kib() -> int:
    with open("/proc/self/statm", "rb") as file:
        return int(file.read().split()[1]) * resource.getpagesize() // 1024


class Stub:
    """Counts requests by route and answers them from pre-built bodies."""

    def __init__(self, kind: str, confidence: float) -> None:
        """Prepare the answers of a detector or LLM stub."""
        self.kind = kind
        self.counts: Counter[str] = Counter()
        self.bytes_received = 0
        detection = {**DETECTION, "confidence": confidence}
        self._detect_body = json.dumps(
            {"detections": [detection], "inference_time_ms": 1.0}
        ).encode()
        content = json.dumps(VERDICT)
        self._completion_body = json.dumps({"content": content, "stop_type": "eos"}).encode()
        self._chat_body = json.dumps(
            {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
        ).encode()

    def app(self) -> web.Application:
        """Return the aiohttp application with this stub's routes."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats)
        if self.kind == "detector":
            app.router.add_post("/detect", self._detect)
        else:
            app.router.add_get("/v1/models", self._models)
            app.router.add_post("/completion", self._completion)
            app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def _health(self, _request: web.Request) -> web.Response:
        self.counts["health"] += 1
        body: dict[str, Any] = {"status": "ok"}
        if self.kind == "detector":
            body |= {"model": "rtdetr_v2_r18vd", "device": "cpu"}
        return web.json_response(body)

    async def _models(self, _request: web.Request) -> web.Response:
        self.counts["models"] += 1
        return web.json_response({"object": "list", "data": [{"id": "bench", "object": "model"}]})

    async def _stats(self, _request: web.Request) -> web.Response:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response(
            {
                "counts": dict(self.counts),
                "bytes_received": self.bytes_received,
                "cpu_user": usage.ru_utime,
                "cpu_system": usage.ru_stime,
                # Not ru_maxrss: Linux carries it over from the parent across fork and exec.
                "rss_kib": _rss_kib(),
            }
        )

    async def _detect(self, request: web.Request) -> web.Response:
        # Read every byte of the upload, as a real detector must before it can decode the image.
        size = 0
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader):
                    while chunk := await part.read_chunk(256 * 1024):
                        size += len(chunk)
        else:
            size = len(await request.read())
        self.bytes_received += size
        self.counts["detect"] += 1
        return web.Response(body=self._detect_body, content_type="application/json")

    async def _completion(self, request: web.Request) -> web.Response:
        await request.read()
        self.counts["completion"] += 1
        return web.Response(body=self._completion_body, content_type="application/json")

    async def _chat(self, request: web.Request) -> web.Response:
        await request.read()
        self.counts["chat"] += 1
        return web.Response(body=self._chat_body, content_type="application/json")


async def _serve(kind: str, confidence: float) -> None:
    stub = Stub(kind, confidence)
    runner = web.AppRunner(stub.app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=("detector", "llm"))
    parser.add_argument("--confidence", type=float, default=DETECTION["confidence"])
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.kind, args.confidence))


if __name__ == "__main__":
    main()
