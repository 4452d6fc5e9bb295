"""Entry point: python -m scripts.bench_alerts_lib [options] (scripts/bench_alerts runs it).

How soon, how often and with which picture is a phone told about a visit? Each scenario brings up
a real Home Assistant in this process with the integration, the notification blueprint as an
automation (every level, no cooldown) and a companion-app phone that records its notifications.
latency: file closed -> phone notified for a fast-path person, next to folder_watcher, without
an LLM and with a real llama-server; demo: three cameras each visited once (incidents, sounds,
silent replacements, whose picture); standing: a person in view for 10 minutes (incidents per
longest-incident option). Progress goes to stderr, the tables to stdout.
"""

import argparse
import asyncio
from collections.abc import Coroutine
import logging
import shlex
import sys
from typing import Any

from homeassistant import runner

from scripts.bench_lib.hass import BenchSetupError

from . import latency, report, visits
from .home import say


def _speed(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the speed must be positive")
    return value


def _caps(text: str) -> list[float]:
    try:
        caps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("minutes, separated by commas: 10,5") from None
    if not caps or min(caps) <= 0:
        raise argparse.ArgumentTypeError("minutes, separated by commas: 10,5")
    return caps


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_alerts",
        description="Phone alerts of a real Home Assistant with the integration and the "
        "notification blueprint: latency, one visit's notifications, a person standing still.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--scenario", choices=("latency", "demo", "standing", "all"), default="all")
    parser.add_argument(
        "--speed",
        type=_speed,
        default=5.0,
        help="demo and standing: divide every time by this (uploads, quiet, idle, window, cap)",
    )
    parser.add_argument("--files", type=int, default=200, help="latency: uploads per run")
    parser.add_argument("--cameras", type=int, default=8, help="latency: camera folders")
    parser.add_argument(
        "--idle",
        type=float,
        default=1.0,
        help="latency: idle timeout option, s (a camera's uploads come twice as far apart)",
    )
    parser.add_argument(
        "--latency-llm",
        choices=("none", "llama", "both"),
        default="both",
        help="latency: no LLM (llm_url empty), a real llama-server on a tiny model, or a run each",
    )
    parser.add_argument(
        "--visit-llm",
        choices=("stub", "none"),
        default="stub",
        help="demo and standing: the instant LLM stub, or none",
    )
    parser.add_argument(
        "--standing-caps",
        type=_caps,
        default=[10.0, 5.0],
        help="standing: longest-incident options in minutes, before --speed",
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.cameras < 1 or args.files % args.cameras:
        parser.error("--files must be a positive multiple of --cameras")
    if args.idle <= 0:
        parser.error("--idle must be positive")
    return args


def _print(text: str) -> None:
    sys.stdout.write(text + "\n\n")
    sys.stdout.flush()


def _run[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one Home Assistant's scenario on a loop of its own.

    Stopping Home Assistant marks its loop as shutting down (no more calls from threads),
    so the next one, whose folder_watcher registers from a thread, needs a new loop.
    """
    with asyncio.Runner(loop_factory=runner.create_event_loop) as bench_runner:
        return bench_runner.run(coroutine)


def bench(args: argparse.Namespace) -> None:
    """Run the chosen scenarios, printing each one's table as soon as it is done."""
    everything = args.scenario == "all"
    if everything or args.scenario == "latency":
        llms = ["none", "llama"] if args.latency_llm == "both" else [args.latency_llm]
        _print(report.latency([_run(latency.run(args, llm)) for llm in llms]))
    for scenario in ("demo", "standing"):
        if everything or args.scenario == scenario:
            _print(report.visits(_run(visits.run(args, scenario))))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_args(arguments)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _print(shlex.join(["scripts/bench_alerts", *arguments]) + "\n" + report.environment())
    try:
        bench(args)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchSetupError as err:
        say(f"error: {err}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
