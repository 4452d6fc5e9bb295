"""Entry point: python -m scripts.bench_vision_lib; scripts/bench_vision runs it in the lab.

What pictures add to a verdict, in two parts. Making them: core.vision_frames.incident_frames over
an incident of 1080p uploads (the bench_media camera frame, about 300 KB each) in a temporary
camera folder, as the analyze stage runs it (files read and pictures drawn in threads). Sending
them: verdicts of a real llama-server on the tests' tiny random model with the tiny projector
(tests/llama.py, tests/llama_vision.py), with and without the pictures, on both APIs; the tiny
model is fast, so the difference is what carrying, decoding and encoding the pictures costs the
server, not what a real vision model spends looking at them. Tokens per picture are the server's
own count (prompt tokens with one picture minus without, minus its caption).
"""

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from custom_components.ai_security.core.analyzer import Analyzer
from custom_components.ai_security.core.llm_llama_cpp import COMPLETION_PATH, LlamaCppProvider
from custom_components.ai_security.core.llm_provider import UNKNOWN_TRAITS
from custom_components.ai_security.core.llm_vision import TEXT_ONLY
from custom_components.ai_security.core.models import BoundingBox, Detection
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from custom_components.ai_security.core.vision_frames import incident_frames
from scripts.bench_media_lib.__main__ import camera_frame
from tests.llama import LlamaServer, write_tiny_gguf
from tests.llama_vision import write_tiny_mmproj
from tests.programs import require_program

START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def say(line: str) -> None:
    """Write one line of the report."""
    sys.stdout.write(f"{line}\n")


def parse() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each measure")
    parser.add_argument("--frames", type=int, default=3, help="pictures per verdict")
    parser.add_argument("--size", type=int, default=768, help="long side of each picture")
    parser.add_argument("--uploads", type=int, default=8, help="uploads in the incident")
    return parser.parse_args()


def incident(root: Path, uploads: int) -> list[Detection]:
    """Write the incident's uploads; return one person detected in each."""
    camera = root / "Front Door"
    camera.mkdir(parents=True)
    found = []
    for index in range(uploads):
        path = camera / f"{index}.jpg"
        path.write_bytes(camera_frame(1920, 1080, seed=index))
        found.append(
            Detection(
                label="person",
                confidence=0.6 + index / 40,
                bbox=BoundingBox(x=300 + 40 * index, y=300, w=240, h=600),
                detected_at=START + timedelta(seconds=2 * index),
                frame_width=1920,
                frame_height=1080,
                path=str(path),
            )
        )
    return found


def summary(values: list[float]) -> str:
    """Return p50, p99 and mean of times in ms."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    mean = statistics.fmean(ordered)
    return f"p50 {statistics.median(ordered):6.1f} ms  p99 {p99:6.1f} ms  mean {mean:6.1f} ms"


async def make_frames(args: argparse.Namespace, root: Path, found: list[Detection]) -> Any:
    """Time making the incident's pictures; return the last ones made."""
    times = []
    frames: Any = ()
    for run in range(args.runs + 2):
        started = time.perf_counter()
        frames = await incident_frames(
            found,
            limit=args.frames,
            long_side=args.size,
            tz=ZoneInfo("Europe/Amsterdam"),
            run_blocking=asyncio.to_thread,
            camera_root=str(root),
        )
        if run >= 2:  # warm-up: the font loaded, the files in the page cache
            times.append((time.perf_counter() - started) * 1000)
    sizes = ", ".join(f"{len(frame.jpeg) / 1024:.0f} KB" for frame in frames)
    say(f"making {len(frames)} pictures ({args.size} px; {sizes}): {summary(times)}")
    return frames


async def verdicts(
    args: argparse.Namespace, server: LlamaServer, found: list[Detection], frames: Any
) -> None:
    """Time the server taking the prompt with and without the pictures; count their tokens.

    Each request asks for one token of answer (and no cached prompt), so the time is the
    server receiving, decoding and encoding the prompt with its pictures, not the random
    model's answer, whose length varies with its random output.
    """
    request = AnalysisRequest(
        camera_name="Front Door",
        started_at=START,
        ended_at=found[-1].detected_at or START,
        local_tz=UTC,
        detections=tuple(found),
    )
    async with aiohttp.ClientSession() as session:
        traits = await LlamaCppProvider().traits(session, server.url, 5.0)
        for api in (LlmApi.LLAMA_CPP, LlmApi.OPENAI):
            client = Analyzer(session, [server.url], api, thresholds=SeverityThresholds())
            # The same system text in both (it says how pictures come): only the pictures differ.
            bodies = {
                "text only": client.request(
                    request, frames, UNKNOWN_TRAITS if api is LlmApi.LLAMA_CPP else TEXT_ONLY
                ),
                f"{len(frames)} pictures": client.request(request, frames, traits),
            }
            tokens = {}
            for label, (path, body) in bodies.items():
                body.update(n_predict=1, max_tokens=1, cache_prompt=False)
                times = []
                for run in range(args.runs + 2):
                    started = time.perf_counter()
                    async with session.post(f"{server.url}{path}", json=body) as response:
                        answer = await response.json()
                    if run >= 2:
                        times.append((time.perf_counter() - started) * 1000)
                tokens[label] = int(
                    answer["tokens_evaluated"]
                    if path == COMPLETION_PATH
                    else answer["usage"]["prompt_tokens"]
                )
                count = tokens[label]
                say(f"prompt taken, {api.value:9} {label:11}: {summary(times)}  ({count} tokens)")
        captions = sum(len(frame.caption) + 2 for frame in frames)  # caption, newlines
        added = tokens[f"{len(frames)} pictures"] - tokens["text only"]
        each = (added - captions) / max(1, len(frames))
        say(
            f"tokens per picture (chat route): about {each:.0f} besides its caption "
            "(the tiny projector: 32x32 pixels in 8x8 patches)"
        )


async def main() -> None:
    """Run both parts in a temporary folder."""
    args = parse()
    with tempfile.TemporaryDirectory(prefix="bench_vision_") as folder:
        workdir = Path(folder)
        found = incident(workdir / "cameras", args.uploads)
        frames = await make_frames(args, workdir / "cameras", found)
        server = LlamaServer(
            program=require_program("llama-server"),
            model=write_tiny_gguf(workdir / "model.gguf"),
            workdir=workdir,
            mmproj=write_tiny_mmproj(workdir / "mmproj.gguf"),
        )
        server.start()
        try:
            await verdicts(args, server, found, frames)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
