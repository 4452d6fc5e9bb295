"""Entry point: python -m scripts.bench_search_lib [options] (scripts/bench_search runs it).

Fills a database the way months of a busy installation would (varied summaries in several
languages, levels mostly low, some events reviewed), then times core.events through Database.run,
as the integration calls it: the figures include the hop to the database thread.
"""

import argparse
import asyncio
from collections.abc import Callable, Iterator
import contextlib
from datetime import UTC, datetime, timedelta
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any
import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from custom_components.ai_security.core import events as ev
from custom_components.ai_security.core.events import EventQuery
from custom_components.ai_security.core.models import RiskLevel
from custom_components.ai_security.core.storage import Database, EventRow
from scripts.bench_lib.postgres import postgres_server

SEARCH_TARGET_MS = 100.0
BROWSER_TARGET_MS = 200.0
END = datetime(2026, 11, 1, tzinfo=UTC)
TZ = ZoneInfo("Europe/Paris")

_SUBJECTS = (
    ("person", "A person"),
    ("person", "A man in a hooded jacket"),
    ("person", "A woman walking a dog"),
    ("person", "A delivery driver"),
    ("person", "Two teenagers"),
    ("person", "The postman"),
    ("person", "A neighbour"),
    ("car", "A silver car"),
    ("car", "A taxi"),
    ("truck", "A white van"),
    ("truck", "A garbage truck"),
    ("bicycle", "A cyclist"),
    ("motorcycle", "A motorcycle"),
    ("cat", "A cat"),
    ("dog", "A dog"),
    ("bird", "A bird"),
)
_ACTIONS = (
    "walked up to",
    "lingered near",
    "rang the bell at",
    "looked through",
    "tried the handle of",
    "stopped in front of",
    "drove past",
    "left a package at",
    "crossed",
    "ran across",
    "sniffed around",
    "climbed over",
    "photographed",
    "waited by",
)
_PLACES = (
    "the front door",
    "the driveway",
    "the garden gate",
    "the garage",
    "the back yard",
    "the side window",
    "the mailbox",
    "the terrace",
    "the shed",
    "the parking space",
    "the fence",
    "the bins",
)
_WHEN = (
    "at night",
    "in the early morning",
    "at dusk",
    "in heavy rain",
    "in daylight",
    "around midnight",
    "at noon",
    "in fog",
)
_FOREIGN = (
    ("Une personne s'est approchée de la porte d'entrée", ["person"]),
    ("Caméra obstruée par une araignée", []),
    ("Ein Paket wurde vor der Haustür abgelegt", ["person", "suitcase"]),
    ("Un coche se detuvo frente al garaje", ["car"]),
    ("Una persona con mochila cruzó el jardín", ["person", "backpack"]),
    ("Kot przeszedł przez podjazd", ["cat"]),
    ("Jemand klingelte zweimal an der Tür", ["person"]),
    ("Un livreur a déposé un colis devant le garage", ["person", "truck"]),
)
_REASONS = {
    RiskLevel.LOW: ("Routine activity", "Expected visitor", "An animal, no threat"),
    RiskLevel.MEDIUM: ("Unfamiliar person", "Lingered longer than usual", "Unusual hour"),
    RiskLevel.HIGH: ("Attempted entry", "Face hidden from the camera", "Checked several doors"),
    RiskLevel.CRITICAL: ("Forced entry", "Break-in in progress", "Window broken"),
}
_DETAILS = (
    "no interaction with the property",
    "left after {n} seconds",
    "the number plate was unreadable",
    "the same person was seen {n} minutes earlier",
    "the package stayed on the doorstep",
    "the view was partly blocked",
    "carried a backpack and an umbrella",
    "the motion light switched on",
)
_LEVELS = (RiskLevel.LOW,) * 60 + (RiskLevel.MEDIUM,) * 25 + (RiskLevel.HIGH,) * 12
_LEVELS += (RiskLevel.CRITICAL,) * 3

WORDS = (
    # Common, medium, rare, prefixes, two words, other languages, and one found nowhere.
    *("person", "door", "car", "night", "the", "dog", "cat", "van", "package", "garage"),
    *("hooded", "taxi", "motorcycle", "mailbox", "terrace", "umbrella", "fog", "teenagers"),
    *("postman", "neighbour", "plate", "unreadable", "forced", "broken", "midnight", "bins"),
    *("deliv", "gar", "pa", "wal", "photo", "lin", "ter", "cy", "sn", "mo"),
    *("person door", "white van", "cat garden", "driver package", "face hidden"),
    *("caméra", "araignée", "paket", "haustür", "coche", "colis", "przeszedł"),
    *("elephant", "zebra"),
)


def say(message: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _event(rng: random.Random, camera: str, started_at: datetime) -> dict[str, Any]:
    level = rng.choice(_LEVELS)
    if rng.random() < 0.1:
        summary, objects = rng.choice(_FOREIGN)
    else:
        label, subject = rng.choice(_SUBJECTS)
        summary = f"{subject} {rng.choice(_ACTIONS)} {rng.choice(_PLACES)} {rng.choice(_WHEN)}"
        objects = sorted({label, *rng.sample(("person", "car", "dog", "backpack"), k=1)})
    detail = rng.choice(_DETAILS).format(n=rng.randint(2, 90))
    return {
        "event_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        "camera_id": camera,
        "started_at": started_at,
        "ended_at": started_at + timedelta(seconds=rng.randint(5, 120)),
        "risk_score": rng.randint(0, 100),
        "risk_level": level.value,
        "summary": summary,
        "reasoning": f"{rng.choice(_REASONS[level])}; {detail}.",
        "object_types": objects,
        "detection_count": rng.randint(1, 12),
        "is_fast_path": False,
        "source": "llm",
        "reviewed": rng.random() < 0.3,
        "created_at": started_at,
    }


def generate(
    rng: random.Random, total: int, cameras: int, camera_events: int, days: int
) -> Iterator[dict[str, Any]]:
    """Yield total events over days before END: camera 'cam0' gets exactly camera_events."""
    span = days * 86400
    for n in range(total):
        camera = "cam0" if n < camera_events else f"cam{1 + n % (cameras - 1)}"
        yield _event(rng, camera, END - timedelta(seconds=rng.uniform(0, span)))


async def fill(db: Database, rows: Iterator[dict[str, Any]], total: int) -> float:
    """Insert the events in large executemany batches; return the seconds it took."""
    began = time.perf_counter()
    done = 0
    while True:
        chunk = [row for _, row in zip(range(10_000), rows, strict=False)]
        if not chunk:
            break
        await db.run(lambda s, c=chunk: s.execute(insert(EventRow), c))
        done += len(chunk)
        say(f"  {done:,} / {total:,} events stored")
    return time.perf_counter() - began


async def timed[T](
    db: Database, fn: Callable[[Session], T], repeat: int = 1
) -> tuple[list[float], T]:
    """Run fn through db.run repeat times; return the milliseconds of each and the last result."""
    times: list[float] = []
    while True:
        began = time.perf_counter()
        result = await db.run(fn)
        times.append((time.perf_counter() - began) * 1000)
        if len(times) >= repeat:
            return times, result


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def line(name: str, values: list[float], target: float | None, note: str = "") -> str:
    """Return one report line: p50, p99 and max in ms, and the verdict against target (p99)."""
    p50, p99 = statistics.median(values), percentile(values, 0.99)
    verdict = "" if target is None else ("OK  " if p99 < target else "MISS") + f" < {target:g} ms"
    return (
        f"  {name:<44} n={len(values):<3} p50 {p50:7.1f}  p99 {p99:7.1f}  "
        f"max {max(values):7.1f} ms  {verdict} {note}".rstrip()
    )


async def measure(db: Database, args: argparse.Namespace) -> list[str]:
    """Time the searches and the media browser's pages; return the report lines."""
    rng = random.Random(args.seed + 1)  # noqa: S311 - made-up data, not secrets
    report: list[str] = []
    # Warm the caches once, as a running installation has them.
    for word in WORDS[:10]:
        await db.run(lambda s, w=word: ev.search_events(s, EventQuery(text=w)))

    word_times: list[float] = []
    totals: dict[str, int] = {}
    for word in WORDS:
        times, page = await timed(db, lambda s, w=word: ev.search_events(s, EventQuery(text=w)))
        word_times += times
        totals[word] = page.total
    report.append(line("search one word (page of 50 + total)", word_times, SEARCH_TARGET_MS))

    count_times: list[float] = []
    for word in WORDS:
        times, _ = await timed(db, lambda s, w=word: ev.count_events(s, EventQuery(text=w)))
        count_times += times
    report.append(line("count of a word search", count_times, SEARCH_TARGET_MS))

    filtered_times: list[float] = []
    cameras = [f"cam{n}" for n in range(args.cameras)]
    for word in WORDS:
        start = END - timedelta(days=rng.randint(31, args.days))
        query = EventQuery(
            text=word,
            camera_ids=tuple(rng.sample(cameras, k=2)),
            min_level=RiskLevel.MEDIUM,
            start=start,
            end=start + timedelta(days=30),
            reviewed=False,
        )
        times, _ = await timed(db, lambda s, q=query: ev.search_events(s, q))
        filtered_times += times
    report.append(
        line("search + 2 cameras, >= medium, 30 days, unreviewed", filtered_times, SEARCH_TARGET_MS)
    )

    times, _ = await timed(db, lambda s: ev.search_events(s, EventQuery()), repeat=20)
    report.append(line("newest 50 of all events (no text)", times, SEARCH_TARGET_MS))
    times, _ = await timed(db, lambda s: ev.search_events(s, EventQuery(page=200)), repeat=20)
    report.append(line("page 200 of all events (no text)", times, SEARCH_TARGET_MS))

    days_times, days = await timed(db, lambda s: ev.event_days(s, "cam0", TZ), repeat=20)
    report.append(line(f"event_days (cam0: {len(days)} days)", days_times, BROWSER_TARGET_MS))
    newest = datetime.combine(days[0], datetime.min.time(), tzinfo=TZ)
    bounds = (newest.astimezone(UTC), (newest + timedelta(days=1)).astimezone(UTC))

    def day_page(session: Session) -> list[Any]:
        return ev.events_for_camera_day(session, "cam0", *bounds, offset=0, limit=50)

    page_times, _ = await timed(db, day_page, repeat=20)
    report.append(line("events_for_camera_day (50 of a day)", page_times, BROWSER_TARGET_MS))
    counts_times, _ = await timed(db, ev.camera_event_counts, repeat=20)
    report.append(line("camera_event_counts", counts_times, BROWSER_TARGET_MS))

    def browser(session: Session) -> int:
        found = ev.event_days(session, "cam0", TZ)
        first = datetime.combine(found[0], datetime.min.time(), tzinfo=TZ)
        events = ev.events_for_camera_day(
            session,
            "cam0",
            first.astimezone(UTC),
            (first + timedelta(days=1)).astimezone(UTC),
            offset=0,
            limit=50,
        )
        return len(found) + len(events)

    browser_times, _ = await timed(db, browser, repeat=20)
    report.append(
        line("media-browser page: days + 50 events of a day", browser_times, BROWSER_TARGET_MS)
    )
    common = max(totals, key=lambda w: totals[w])
    report.append(
        f"  (matches per word: min {min(totals.values()):,}, median "
        f"{statistics.median(totals.values()):,.0f}, max {totals[common]:,} for {common!r})"
    )
    return report


async def run(url: str, args: argparse.Namespace) -> list[str]:
    """Fill the database at url and time it; return the report lines."""
    db = Database(url)
    await db.start()
    try:
        rng = random.Random(args.seed)  # noqa: S311 - made-up data, not secrets
        say(f"Filling {db.dialect} with {args.events:,} events...")
        rows = generate(rng, args.events, args.cameras, args.camera_events, args.days)
        seconds = await fill(db, rows, args.events)
        if db.dialect == "postgresql":
            # A server that ran for months has statistics; one filled a second ago may not yet.
            await db.run(lambda s: s.execute(text("ANALYZE ai_security_events")))
        say("Measuring...")
        lines = await measure(db, args)
    finally:
        await db.close()
    head = (
        f"Event search on {db.dialect}: {args.events:,} events, {args.cameras} cameras, "
        f"{args.days} days; cam0 has {args.camera_events:,}. Filled in {seconds:.1f} s "
        f"({args.events / seconds:,.0f} events/s)."
    )
    return [head, *lines]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the options."""
    parser = argparse.ArgumentParser(prog="scripts/bench_search", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=100_000, help="events in all (100,000)")
    parser.add_argument("--cameras", type=int, default=8, help="cameras (8)")
    parser.add_argument(
        "--camera-events", type=int, default=10_000, help="events of camera cam0 (10,000)"
    )
    parser.add_argument("--days", type=int, default=183, help="days the events span (183)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--media-browser",
        action="store_true",
        help="time the media browser through a real Home Assistant instead (SQLite)",
    )
    args = parser.parse_args(argv)
    if args.cameras < 2 or args.camera_events > args.events or args.days < 31:
        parser.error("need --cameras >= 2, --camera-events <= --events and --days >= 31")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    args = parse_args(argv)
    if args.media_browser:
        from .browse import browse  # noqa: PLC0415 - loads Home Assistant only when asked

        sys.stdout.write("\n".join(asyncio.run(browse(args))) + "\n")
        return 0
    with contextlib.ExitStack() as stack:
        if args.database == "postgresql":
            try:
                url = stack.enter_context(postgres_server()).url
            except (OSError, RuntimeError) as err:
                say(f"cannot start PostgreSQL: {err}")
                return 1
        else:
            folder = tempfile.mkdtemp(prefix="ai_security_bench_search_")
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            url = f"sqlite:///{folder}/ai_security.db"
        report = asyncio.run(run(url, args))
    sys.stdout.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
