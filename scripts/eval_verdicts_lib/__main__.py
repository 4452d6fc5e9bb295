"""Entry point: python -m scripts.eval_verdicts_lib; scripts/eval_verdicts runs it in the lab.

Each scene is a short incident with what a user would call its right level: a delivery at the
door in the afternoon is low or medium, two people in the driveway at half past two in the
night are high or critical. The scenes are drawn here (the demo's camera views and portraits,
scripts/demo/feeder.py) into a temporary camera folder, the detections are the boxes where the
people were drawn (and a knife, a car or a dog where a scene says so), and each is judged
through the integration's own analyzer: the same prompt, the same pictures (core.vision_frames),
the same parser and the same verifier (core.verdict_check). Reported per scene: the verdict
against the expected levels, the time it took and the tokens the server counted, and below it
the verdict's title and the verifier's marks (what the model said it saw that no detector did,
or denied that one did); then the agreement and the medians. A Home Assistant AI Task entity
(--ha, --entity) is judged the same way through Home Assistant's API (home_assistant.py), so a
cloud or Ollama entity can be set beside a llama-server. Use it to choose a model and its
settings; a random model (--tiny) only proves that the harness runs.
"""

import argparse
import asyncio
from dataclasses import dataclass
import datetime as dt
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import aiohttp
import numpy as np

from custom_components.ai_security.core.analyzer import Analyzer
from custom_components.ai_security.core.llm_llama_cpp import COMPLETION_PATH
from custom_components.ai_security.core.llm_provider import UNKNOWN_TRAITS, PromptImage
from custom_components.ai_security.core.llm_providers import provider_for
from custom_components.ai_security.core.llm_vision import ServerVision
from custom_components.ai_security.core.models import BoundingBox, Detection, RiskLevel
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.risk import Verdict, heuristic_verdict
from custom_components.ai_security.core.settings import LlmApi, SeverityThresholds
from custom_components.ai_security.core.verdict_check import check_verdict
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
from scripts.eval_verdicts_lib.home_assistant import (
    AiTaskEntity,
    HomeAssistantCallError,
    answer_text,
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
    parser.add_argument(
        "--ha", default=None, metavar="URL", help="Home Assistant, to judge with --entity"
    )
    parser.add_argument(
        "--token",
        default=None,
        help="an administrator's long-lived access token for --ha (default: $HA_TOKEN)",
    )
    parser.add_argument(
        "--entity", default=None, metavar="ai_task.NAME", help="the AI Task entity that judges"
    )
    args = parser.parse_args()
    if args.ha and not args.entity:
        parser.error("--ha needs --entity: the AI Task entity that judges")
    if args.entity and not args.ha:
        parser.error("--entity needs --ha: the Home Assistant it belongs to")
    if not args.url and not args.tiny and not (args.ha and args.entity):
        parser.error(
            "name a server with --url, an AI Task entity with --ha and --entity, or --tiny"
        )
    # scripts/eval_verdicts hands HA_TOKEN over as AI_SECURITY_HA_TOKEN where only the
    # lab's own variables reach this process.
    args.token = args.token or os.environ.get("HA_TOKEN") or os.environ.get("AI_SECURITY_HA_TOKEN")
    if args.ha and not args.token:
        parser.error("--ha needs a long-lived access token: --token, or HA_TOKEN")
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


@dataclass(frozen=True, slots=True)
class Judged:
    """One verdict as the integration would store it, and what it cost."""

    verdict: Verdict
    """Checked against the detections (verdict_check), as the integration checks it."""
    ms: float
    tokens: tuple[int, int] | None
    """Prompt and answer tokens as the server counted them; None where nobody says."""


class Judge(Protocol):
    """Something that judges one scene: a server, or a Home Assistant AI Task entity."""

    async def __call__(
        self, request: AnalysisRequest, detections: list[Detection], root: Path
    ) -> Judged:
        """Return the verdict on the scene whose pictures lie under root."""


def checked(verdict: Verdict, request: AnalysisRequest) -> Verdict:
    """Return the verdict with the verifier's marks, its score kept up where it contradicts."""
    thresholds = SeverityThresholds()
    return check_verdict(
        verdict, request.detections, heuristic_verdict(request, thresholds), thresholds
    )


async def pictures_of(
    args: argparse.Namespace, detections: list[Detection], root: Path
) -> tuple[PromptImage, ...]:
    """Return the scene's pictures for the model, as the integration makes them."""
    if args.frames <= 0:
        return ()
    return await incident_frames(
        detections,
        limit=args.frames,
        long_side=args.size,
        tz=TZ,
        run_blocking=asyncio.to_thread,
        camera_root=str(root),
    )


async def judge(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    url: str,
    *,
    request: AnalysisRequest,
    detections: list[Detection],
    root: Path,
) -> Judged:
    """Return one server's verdict, its time and the tokens the server counted.

    The request is the analyzer's own (Analyzer.request, with the pictures where the server
    takes them), sent here so the server's token counts can be read from its reply.
    """
    api = LlmApi(args.api)
    client = Analyzer(
        session, [url], api, thresholds=SeverityThresholds(), model=args.model, **args.tuning
    )
    pictures = await pictures_of(args, detections, root)
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
    return Judged(checked(verdict, request), elapsed, tokens)


async def judge_by_entity(
    session: aiohttp.ClientSession,
    args: argparse.Namespace,
    entity: AiTaskEntity,
    *,
    attach: bool,
    request: AnalysisRequest,
    detections: list[Detection],
    root: Path,
) -> Judged:
    """Return an AI Task entity's verdict and the time its task took (no tokens: not told).

    The prompt is the analyzer's, as the integration gives its entity (ai_task_judge): its
    instructions, the verdict's structure, and the pictures as attachments where the entity
    takes them; the answer goes through the same parser and verifier.
    """
    client = Analyzer(
        session, [entity.entity_id], LlmApi(args.api), thresholds=SeverityThresholds()
    )
    pictures = await pictures_of(args, detections, root) if attach else ()
    data, seconds = await entity.ask(client.prompt(request, pictures))
    verdict = parse_verdict(answer_text(data), SeverityThresholds())
    return Judged(checked(verdict, request), seconds * 1000, None)


def marks(verdict: Verdict) -> str:
    """Return the verdict's title and the verifier's marks, for the line below the verdict."""
    details = verdict.details
    if details is None:
        return "(no details)"
    parts = [f'"{details.title}"' if details.title else "(no title)"]
    if details.unverified:
        parts.append(f"unverified: {', '.join(details.unverified)}")
    if details.contradiction:
        parts.append(f"contradiction: {details.contradiction}")
    return "; ".join(parts)


async def evaluate_judge(args: argparse.Namespace, heading: str, ask: Judge, root: Path) -> None:
    """Judge every case with one judge; print the table and the summary."""
    agree = total = 0
    times: list[float] = []
    tokens: list[int] = []
    say(heading)
    for index, case in enumerate(CASES):
        request, detections = draw_case(case, root / f"{index}", seed=index)
        low, high = case.expected
        wanted = f"{low}-{high}"
        for _ in range(args.runs):
            total += 1
            try:
                judged = await ask(request, detections, root / f"{index}")
            except Exception as err:  # noqa: BLE001 - a failed verdict is a result too
                say(f"  {case.name:42} {wanted:16} no verdict: {err}")
                continue
            verdict = judged.verdict
            level = verdict.risk_level.value
            right = LEVELS.index(low) <= LEVELS.index(level) <= LEVELS.index(high)
            agree += right
            times.append(judged.ms)
            counted = "-"
            if judged.tokens is not None:
                sent, answered = judged.tokens
                tokens.append(sent + answered)
                counted = f"{sent} + {answered} tokens"
            say(
                f"  {case.name:42} {wanted:16} {level:8} {verdict.risk_score:3}  "
                f"{'ok  ' if right else 'MISS'} {judged.ms:7.0f} ms  {counted}"
            )
            say(f"      {marks(verdict)}")
    if times:
        per_verdict = f"{statistics.median(tokens):.0f}" if tokens else "-"
        say(
            f"  agreement {agree}/{total} ({100 * agree / total:.0f} %), latency p50 "
            f"{statistics.median(times):.0f} ms, tokens per verdict p50 {per_verdict}"
        )


async def evaluate(args: argparse.Namespace, urls: list[str], root: Path) -> None:
    """Judge every case on every server, then with the AI Task entity when one is named."""
    async with aiohttp.ClientSession() as session:
        for url in urls:

            async def by_server(
                request: AnalysisRequest, detections: list[Detection], root: Path, url: str = url
            ) -> Judged:
                return await judge(
                    session, args, url, request=request, detections=detections, root=root
                )

            heading = f"server {url} ({args.api}, {args.frames} pictures of {args.size} px)"
            await evaluate_judge(args, heading, by_server, root)
        if args.ha:
            await evaluate_entity(session, args, root)


async def evaluate_entity(
    session: aiohttp.ClientSession, args: argparse.Namespace, root: Path
) -> None:
    """Judge every case with the Home Assistant AI Task entity; say what was left behind."""
    async with AiTaskEntity(session, args.ha, args.token, args.entity) as entity:
        heading = f"AI Task {args.entity} on {entity.base_url}"
        try:
            attach = await entity.takes_pictures() and args.frames > 0
        except (HomeAssistantCallError, aiohttp.ClientError, TimeoutError) as err:
            say(f"{heading}: {err}")
            return
        if attach:
            heading += f" ({args.frames} pictures of {args.size} px)"
        elif args.frames > 0:
            heading += " (it takes no attachments: text only)"
        else:
            heading += " (text only)"

        async def by_entity(
            request: AnalysisRequest, detections: list[Detection], root: Path
        ) -> Judged:
            return await judge_by_entity(
                session,
                args,
                entity,
                attach=attach,
                request=request,
                detections=detections,
                root=root,
            )

        await evaluate_judge(args, heading, by_entity, root)
    if entity.unremoved:
        say(
            f"  not removed from Home Assistant's media (delete them by hand): "
            f"{', '.join(entity.unremoved)}"
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
