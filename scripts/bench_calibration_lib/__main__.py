"""Entry point: python -m scripts.bench_calibration_lib; scripts/bench_calibration runs it.

Does the user's "False alarm" stop the false alarms, without losing a real threat? Synthetic
labelled weeks (world.py) are replayed twice through the real core pipeline (replay.py): once
with nobody reviewing, once with the user reviewing the first alarms; the table compares the
two week by week. Progress goes to stderr, the table to stdout.
"""

import argparse
import asyncio
import logging
import shlex
import sys
import time

from scripts.bench_alerts_lib.report import environment

from . import report, world
from .replay import replay


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_calibration",
        description="False alarms and threats notified over synthetic weeks, with and without "
        "the user's reviews.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--weeks", type=int, default=4, help="weeks to replay (2 at least)")
    parser.add_argument("--reviews", type=int, default=5, help="reviews the user makes")
    parser.add_argument("--seed", type=int, default=1, help="the weeks' random seed")
    args = parser.parse_args(argv)
    if args.weeks < 2 or args.reviews < 0:
        parser.error("--weeks must be 2 or more, --reviews 0 or more")
    return args


async def bench(args: argparse.Namespace) -> str:
    """Replay the weeks without and with reviews; return the report."""
    visits = world.weeks(args.weeks, args.seed)
    sys.stderr.write(f"{len(visits)} visits over {args.weeks} weeks\n")
    began = time.monotonic()
    baseline = await replay(visits, review_budget=0)
    sys.stderr.write(f"without reviews: {time.monotonic() - began:.0f} s\n")
    began = time.monotonic()
    learned = await replay(visits, review_budget=args.reviews)
    sys.stderr.write(f"with reviews: {time.monotonic() - began:.0f} s\n")
    return report.weeks(baseline, learned, args.reviews)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parse(arguments)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sys.stdout.write(shlex.join(["scripts/bench_calibration", *arguments]) + "\n")
    sys.stdout.write(environment() + "\n\n")
    sys.stdout.write(asyncio.run(bench(args)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
