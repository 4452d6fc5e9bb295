"""Entry point: python -m scripts.eval_verdicts_lib; scripts/eval_verdicts runs it in the lab.

Each scene is a short incident with what a user would call its right level: a delivery at the
door in the afternoon is low or medium, two people in the driveway at half past two in the
night are high or critical. The scenes are drawn here (the demo's camera views and portraits,
scripts/demo/feeder.py) into a temporary camera folder, the detections are the boxes where the
people were drawn (and a knife, a car or a dog where a scene says so), and each is judged
through the integration's own analyzer: the same prompt, the same pictures (core.vision_frames),
the same parser. Reported per scene: the verdict against the expected levels, the time it took
and the tokens the server counted; then the agreement and the medians. Use it to choose a model
and its settings; a random model (--tiny) only proves that the harness runs.
"""

import argparse
import asyncio
from dataclasses import dataclass
import datetime as dt
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np

from custom_components.ai_security.core.analyzer import Analyzer
from custom_components.ai_security.core.llm_llama_cpp import COMPLETION_PATH
from custom_components.ai_security.core.llm_provider import UNKNOWN_TRAITS
from custom_components.ai_security.core.llm_providers import provider_for
from custom_components.ai_security.core.llm_vision import ServerVision
from custom_components.ai_security.core.models import BoundingBox, Detection, RiskLevel
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from custom_components.ai_security.core.verdict_parser import parse_verdict
from custom_components.ai_security.core.vision_frames import incident_frames
from scripts.demo.feeder import (
    HEIGHT,
    WIDTH,
    Placement,
    person_height,
    person_sprite,
    render,
    scene_for,
)

TZ = ZoneInfo("Europe/Amsterdam")
LEVELS = [level.value for level in RiskLevel]


@dataclass(frozen=True, slots=True)
class Case:
    """One labelled incident."""

    name: str
    camera: str
    at: dt.time
    people: int
    frames: int
    seconds: int
    expected: tuple[str, str]
    """The lowest and the highest level that are right for it."""
    extra: str | None = None
    """Another object the detector saw: knife, car, dog."""


CASES = (
    Case(
        "delivery at the door, afternoon",
        "Front Door",
        dt.time(14, 10),
        1,
        2,
        40,
        ("low", "medium"),
    ),
    Case(
        "two visitors in the garden, daytime",
        "Garden",
        dt.time(15, 30),
        2,
        2,
        90,
        ("low", "medium"),
    ),
    Case(
        "car in the driveway, morning", "Driveway", dt.time(8, 45), 0, 1, 20, ("low", "low"), "car"
    ),
    Case("dog at the door, evening", "Front Door", dt.time(19, 5), 0, 2, 30, ("low", "low"), "dog"),
    Case(
        "person at the door, 3 am", "Front Door", dt.time(3, 5), 1, 3, 180, ("medium", "critical")
    ),
    Case(
        "two people in the driveway, 2:30 am",
        "Driveway",
        dt.time(2, 30),
        2,
        4,
        300,
        ("high", "critical"),
    ),
    Case(
        "person with a knife in the garden, night",
        "Garden",
        dt.time(1, 40),
        1,
        3,
        120,
        ("high", "critical"),
        "knife",
    ),
)


def say(line: str) -> None:
    """Write one line of the report."""
    sys.stdout.write(f"{line}\n")


def parse() -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", default=[], help="LLM server (repeatable)")
    parser.add_argument("--api", choices=[api.value for api in LlmApi], default="llama_cpp")
    parser.add_argument("--model", default=None, help="the model name, for servers of several")
    parser.add_argument("--frames", type=int, default=3, help="pictures per verdict (0: text)")
    parser.add_argument("--size", type=int, default=768, help="long side of each picture")
    parser.add_argument("--runs", type=int, default=1, help="verdicts per scene")
    parser.add_argument(
        "--tiny", action="store_true", help="start the tests' tiny random vision model and use it"
    )
    args = parser.parse_args()
    if not args.url and not args.tiny:
        parser.error("name a server with --url, or use --tiny")
    args.tuning = {}
    return args


def draw_case(case: Case, root: Path, seed: int) -> tuple[AnalysisRequest, list[Detection]]:
    """Draw the case's frames into root/<camera>/; return its request and detections."""
    rng = np.random.default_rng(seed)
    scene = scene_for(case.camera)
    folder = root / case.camera
    folder.mkdir(parents=True, exist_ok=True)
    day = dt.date(2026, 12, 2)
    start = dt.datetime.combine(day, case.at, TZ)
    detections: list[Detection] = []
    for frame in range(case.frames):
        when = start + dt.timedelta(seconds=case.seconds * frame / max(1, case.frames - 1))
        boxes: list[tuple[str, float, BoundingBox]] = []
        image = None
        for person in range(max(1, case.people)):
            feet = float(HEIGHT - 40 - 90 * person)
            centre = WIDTH * (0.35 + 0.3 * person) + 40 * frame
            placement = Placement(portrait=person % 2, centre_x=centre, feet_y=feet)
            if case.people:
                image = render(scene, case.camera, when, placement, rng) if image is None else image
                height = person_height(scene, feet)
                sprite = person_sprite(placement.portrait)
                width = sprite.width * height / sprite.height
                box = BoundingBox(x=centre - width / 2, y=feet - height, w=width, h=height)
                boxes.append(("person", 0.9 - 0.05 * person, box))
        if image is None:
            image = render(scene, case.camera, when, None, rng)
        if case.extra is not None:
            size = {"car": (420, 220), "dog": (140, 110), "knife": (40, 60)}[case.extra]
            box = BoundingBox(x=WIDTH * 0.55, y=HEIGHT - 40 - size[1], w=size[0], h=size[1])
            boxes.append((case.extra, 0.8, box))
        path = folder / f"{case.name.replace(' ', '_')}_{frame}.jpg"
        image.save(path, "JPEG", quality=85)
        detections.extend(
            Detection(
                label=label,
                confidence=confidence,
                bbox=box,
                detected_at=when.astimezone(dt.UTC),
                frame_width=WIDTH,
                frame_height=HEIGHT,
                path=str(path),
            )
            for label, confidence, box in boxes
        )
    request = AnalysisRequest(
        camera_name=case.camera,
        started_at=start.astimezone(dt.UTC),
        ended_at=(start + dt.timedelta(seconds=case.seconds)).astimezone(dt.UTC),
        local_tz=TZ,
        detections=tuple(detections),
    )
    return request, detections


async def judge(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    url: str,
    *,
    request: AnalysisRequest,
    detections: list[Detection],
    root: Path,
) -> tuple[str, int, float, int, int]:
    """Return (level, score, ms, prompt tokens, answer tokens) of one verdict.

    The request is the analyzer's own (Analyzer.request, with the pictures where the server
    takes them), sent here so the server's token counts can be read from its reply.
    """
    api = LlmApi(args.api)
    client = Analyzer(
        session, [url], api, thresholds=SeverityThresholds(), model=args.model, **args.tuning
    )
    pictures = await incident_frames(
        detections,
        limit=args.frames,
        long_side=args.size,
        tz=TZ,
        run_blocking=asyncio.to_thread,
        camera_root=str(root),
    )
    vision = ServerVision(provider_for(api), session, 5.0)
    traits = await vision.traits(url) if pictures else UNKNOWN_TRAITS
    path, body = client.request(request, pictures, traits)
    started = time.perf_counter()
    async with session.post(
        f"{url.rstrip('/')}{path}", json=body, timeout=aiohttp.ClientTimeout(total=300)
    ) as response:
        reply: Any = await response.json(content_type=None)
        if response.status >= 300:
            raise RuntimeError(f"HTTP {response.status}: {str(reply)[:200]}")
    elapsed = (time.perf_counter() - started) * 1000
    found = provider_for(api).reply(reply)
    limits = {
        key: args.tuning[key] for key in ("summary_max", "reasoning_max") if key in args.tuning
    }
    verdict = parse_verdict(str(found.content), SeverityThresholds(), **limits)
    if path == COMPLETION_PATH:
        tokens = (int(reply.get("tokens_evaluated", 0)), int(reply.get("tokens_predicted", 0)))
    else:
        usage = reply.get("usage") or {}
        tokens = (int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))
    return verdict.risk_level.value, verdict.risk_score, elapsed, *tokens


async def evaluate(args: argparse.Namespace, urls: list[str], root: Path) -> None:
    """Judge every case on every server; print the table and the summary."""
    async with aiohttp.ClientSession() as session:
        for url in urls:
            agree = total = 0
            times: list[float] = []
            tokens: list[int] = []
            say(f"server {url} ({args.api}, {args.frames} pictures of {args.size} px)")
            for index, case in enumerate(CASES):
                request, detections = draw_case(case, root / f"{index}", seed=index)
                low, high = case.expected
                wanted = f"{low}-{high}"
                for _ in range(args.runs):
                    total += 1
                    try:
                        level, score, ms, sent, answered = await judge(
                            session,
                            args,
                            url,
                            request=request,
                            detections=detections,
                            root=root / f"{index}",
                        )
                    except Exception as err:  # noqa: BLE001 - a failed verdict is a result too
                        say(f"  {case.name:42} {wanted:16} no verdict: {err}")
                        continue
                    right = LEVELS.index(low) <= LEVELS.index(level) <= LEVELS.index(high)
                    agree += right
                    times.append(ms)
                    tokens.append(sent + answered)
                    say(
                        f"  {case.name:42} {wanted:16} {level:8} {score:3}  "
                        f"{'ok  ' if right else 'MISS'} {ms:7.0f} ms  {sent} + {answered} tokens"
                    )
            if times:
                say(
                    f"  agreement {agree}/{total} ({100 * agree / total:.0f} %), latency p50 "
                    f"{statistics.median(times):.0f} ms, tokens per verdict p50 "
                    f"{statistics.median(tokens):.0f}"
                )


async def main() -> None:
    """Run the evaluation, starting the tiny vision server first when asked."""
    args = parse()
    with tempfile.TemporaryDirectory(prefix="eval_verdicts_") as folder:
        root = Path(folder)
        if not args.tiny:
            await evaluate(args, args.url, root / "cameras")
            return
        from tests.llama import (  # noqa: PLC0415 - only for --tiny
            LlamaServer,
            grammar_friendly_params,
            write_tiny_gguf,
        )
        from tests.llama_vision import write_tiny_mmproj  # noqa: PLC0415
        from tests.programs import require_program  # noqa: PLC0415

        server = LlamaServer(
            program=require_program("llama-server"),
            model=write_tiny_gguf(root / "model.gguf"),
            workdir=root,
            mmproj=write_tiny_mmproj(root / "mmproj.gguf"),
        )
        # What the tests give the random model so its answers are valid verdicts: short strings
        # and no bytes that break JSON (see tests/llama.py).
        args.tuning = {
            "summary_max": 40,
            "reasoning_max": 40,
            "max_tokens": 768,  # the verdict's further fields, at their bounds
            "extra_params": {"seed": 1, **grammar_friendly_params()},
        }
        server.start()
        try:
            await evaluate(args, [*args.url, server.url], root / "cameras")
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
