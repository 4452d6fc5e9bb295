"""Entry point: python -m scripts.bench_assist_lib; scripts/bench_assist runs it in the lab.

How fast does Assist answer from a large history? The database is filled with incidents spread
over a year up to now (so today, last night and this week hold their share), Home Assistant
starts on it with the integration (model-server stubs answer only health checks) and its
conversation integration, and each sentence is sent through conversation.process to the default
agent, as typing it in Assist does; then each tool of the AI Security LLM API is called through
llm.async_get_api as an agent calls it, and its answer's size measured. Progress goes to
stderr, the report to stdout.
"""

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
import json
import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from typing import Any, Final

from homeassistant.core import Context, HomeAssistant
from homeassistant.helpers import llm
from homeassistant.setup import async_setup_component

from custom_components.ai_security.core.risk import level_for
from custom_components.ai_security.core.settings import SeverityThresholds
from custom_components.ai_security.core.storage import CameraRow, Database
from scripts.bench_alerts_lib.report import environment
from scripts.bench_lib.hass import add_entry, start_home_assistant, stop_home_assistant
from scripts.bench_search_lib.__main__ import _event, fill, say
from scripts.bench_search_lib.browse import _serve

TARGET_MS: Final = 200.0
CAMERAS: Final = (
    "Front Door",
    "Driveway",
    "Garden",
    "Back Yard",
    "Garage",
    "Side Gate",
    "Porch",
    "Street",
)
SENTENCES: Final = (
    "What happened at the front door today?",
    "Was anyone in the driveway last night?",
    "Any alerts while we were away?",
    "How many people at the garden this week?",
    "What happened at the back yard this month?",
)
TOOLS: Final = (
    ("search_incidents", {"text": "person door", "period": "last_30_days", "limit": 10}),
    ("summarize_period", {"period": "this_week", "notable": 10}),
    ("summarize_period", {"period": "last_30_days", "cameras": ["front door"], "notable": 10}),
    ("latest_incident", {"camera": "garden"}),
    ("camera_status", {}),
)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_assist",
        description="Assist's sentences and tools over a large stored history.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=100_000, help="incidents stored")
    parser.add_argument("--days", type=int, default=365, help="days they span, up to now")
    parser.add_argument("--repeat", type=int, default=40, help="timed runs of each")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.events < 1 or args.days < 1 or args.repeat < 2:
        parser.error("--events, --days and --repeat must be positive (--repeat 2 or more)")
    return args


def _rows(rng: random.Random, total: int, days: int, now: datetime) -> Any:
    ids = [name.lower().replace(" ", "_") for name in CAMERAS]
    span = days * 86400
    for n in range(total):
        row = _event(rng, ids[n % len(ids)], now - timedelta(seconds=rng.uniform(60, span)))
        # The level follows the score, as the pipeline stores them.
        row["risk_level"] = level_for(row["risk_score"], SeverityThresholds()).value
        yield row


def _row(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    mark = "ok" if p95 < TARGET_MS else "OVER"
    return (
        f"  {name:<48} p50 {statistics.median(values):7.1f}  p95 {p95:7.1f}  "
        f"max {max(values):7.1f} ms  [{mark}]"
    )


async def _say(hass: HomeAssistant, text: str) -> str:
    reply = await hass.services.async_call(
        "conversation", "process", {"text": text}, blocking=True, return_response=True
    )
    speech: str = (reply or {})["response"]["speech"]["plain"]["speech"]
    return speech


async def _tools(hass: HomeAssistant, repeat: int) -> list[str]:
    """Time each LLM API tool called as an agent calls it; return the report's lines."""
    context = llm.LLMContext(
        platform="bench",
        context=Context(),
        language="en",
        assistant="conversation",
        device_id=None,
    )
    api = await llm.async_get_api(hass, "ai_security", context)
    lines = ["LLM API tools, called as an agent calls them (answer size in bytes of JSON):"]
    for name, tool_args in TOOLS:
        times = []
        size = 0
        for _ in range(repeat):
            began = time.perf_counter()
            result = await api.async_call_tool(llm.ToolInput(tool_name=name, tool_args=tool_args))
            times.append((time.perf_counter() - began) * 1000)
            size = len(json.dumps(result.data))
        lines.append(_row(f"{name} {json.dumps(tool_args)[:28]}", times) + f"  {size:,} B")
    return lines


async def bench(args: argparse.Namespace) -> list[str]:
    """Fill the database, start Home Assistant on it, time the sentences and the tools."""
    work = tempfile.mkdtemp(prefix="ai_security_bench_assist_")
    config_dir, camera_root = os.path.join(work, "config"), os.path.join(work, "cameras")
    for folder in [config_dir, *(os.path.join(camera_root, name) for name in CAMERAS)]:
        os.makedirs(folder)
    url = f"sqlite:///{work}/events.db"
    db = Database(url)
    await db.start()
    try:
        say(f"Filling SQLite with {args.events:,} incidents over {args.days} days...")
        now = datetime.now(UTC)
        rng = random.Random(args.seed)  # noqa: S311 - made-up data, not secrets
        await fill(db, _rows(rng, args.events, args.days, now), args.events)
        await db.run(
            lambda s: s.add_all(
                CameraRow(
                    camera_id=name.lower().replace(" ", "_"),
                    folder=name,
                    name=name,
                    created_at=now - timedelta(days=args.days),
                )
                for name in CAMERAS
            )
        )
    finally:
        await db.close()
    detector, detector_url = await _serve("detector")
    llm_server, llm_url = await _serve("llm")
    hass = entry = None
    lines: list[str] = []
    try:
        say("Starting Home Assistant...")
        hass = await start_home_assistant(config_dir, [camera_root])
        for component in ("conversation", "llm"):
            await async_setup_component(hass, component, {})
        entry = await add_entry(
            hass,
            camera_root=camera_root,
            detector_url=detector_url,
            llm_url=llm_url,
            llm_api="llama_cpp",
            options={"database_url": url},
        )
        await hass.async_block_till_done()
        lines.append(
            f"Default agent, conversation.process, {args.events:,} incidents over {args.days} "
            f"days, {len(CAMERAS)} cameras, {args.repeat} runs each (target p95 < "
            f"{TARGET_MS:g} ms):"
        )
        answers = []
        for sentence in SENTENCES:
            await _say(hass, sentence)  # warm: the first call compiles the sentences
            times = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                answer = await _say(hass, sentence)
                times.append((time.perf_counter() - began) * 1000)
            lines.append(_row(repr(sentence), times))
            answers.append(f"  {sentence}\n    -> {answer}")
        lines += ["", *await _tools(hass, args.repeat)]
        lines += ["", "What was answered:", *answers]
    finally:
        if hass is not None:
            await stop_home_assistant(hass, entry)
        await detector.cleanup()
        await llm_server.cleanup()
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parse(arguments)
    sys.stdout.write(shlex.join(["scripts/bench_assist", *arguments]) + "\n")
    sys.stdout.write(environment() + "\n\n")
    sys.stdout.write("\n".join(asyncio.run(bench(args))) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
