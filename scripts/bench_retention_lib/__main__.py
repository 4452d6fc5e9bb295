"""Entry point: python -m scripts.bench_retention_lib [options] (scripts/bench_retention runs it).

Fills a database the way 75 days of a busy installation would (events of 10 detections from 3
uploads each, their links, a finished job per upload and per event, audit rows, a derived-media
folder per event and some upload files), then runs core.retention as Home Assistant would: on the
event loop, with the database work on the database thread and the file work in the default
executor. Meanwhile a probe sleeps 10 ms at a time on the same loop and records how late it
wakes (the loop's lag), and a writer stores a small job every 50 ms, as the pipeline does, to
show how long its transactions wait behind retention's chunks.
"""

import argparse
import asyncio
from collections.abc import Iterator
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
import gc
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any
import uuid

from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.orm import Session

from custom_components.ai_security.core.derived import DerivedMedia
from custom_components.ai_security.core.jobs import JobKind, add_job
from custom_components.ai_security.core.retention import (
    DEFAULT_CHUNK,
    RetentionStats,
    run_retention,
)
from custom_components.ai_security.core.storage import (
    AuditRow,
    CameraRow,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    JobRow,
    MediaRow,
)
from scripts.bench_lib.postgres import postgres_server

LAG_TARGET_MS = 50.0
SPAN_DAYS = 75
"""The data's age range: with 30 days kept, 45 of 75 days (60%) are old."""
KEEP_DAYS = 30
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=KEEP_DAYS + 1)
"""The run's "now": a month ahead, so the upload files written today are older than its cutoff
(retention judges a file's age by its change time, which only the real clock sets)."""
LINK_INDEX = "ix_ai_security_event_detections_detection"
PROBE_S = 0.01
WRITE_EVERY_S = 0.05


def say(message: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@dataclass(slots=True)
class Batch:
    """The rows of some events, inserted together in one transaction."""

    events: list[dict[str, Any]] = field(default_factory=list)
    media: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    folders: list[tuple[str, str, datetime]] = field(default_factory=list)


@dataclass(slots=True)
class Expected:
    """What retention should leave and remove, counted while generating."""

    old_events: int = 0
    kept_events: int = 0
    old_detections: int = 0


def generate(
    rng: random.Random, args: argparse.Namespace, root: str, expected: Expected
) -> Iterator[Batch]:
    """Yield the installation's rows, 5,000 events at a time."""
    span = SPAN_DAYS * 86400
    cutoff = NOW - timedelta(days=KEEP_DAYS)
    per_event, uploads = args.detections_per_event, args.uploads_per_event
    batch = Batch()
    for n in range(args.events):
        camera = f"cam{n % args.cameras}"
        started = NOW - timedelta(seconds=rng.uniform(0, span))
        event_id = uuid.UUID(int=rng.getrandbits(128)).hex
        keep = rng.random() < args.keep_fraction
        old = started < cutoff
        expected.old_events += old and not keep
        expected.kept_events += old and keep
        expected.old_detections += per_event if old and not keep else 0
        batch.events.append(
            {
                "event_id": event_id,
                "camera_id": camera,
                "started_at": started,
                "ended_at": started + timedelta(seconds=30),
                "risk_score": rng.randint(0, 100),
                "risk_level": "low",
                "summary": f"A person walked past camera {camera}",
                "reasoning": "Routine activity",
                "object_types": ["person"],
                "detection_count": per_event,
                "is_fast_path": False,
                "source": "llm",
                "reviewed": False,
                "created_at": started,
                "keep": keep,
            }
        )
        batch.folders.append((camera, event_id, started))
        for u in range(uploads):
            media_id = n * uploads + u + 1
            received = started + timedelta(seconds=u)
            batch.media.append(
                {
                    "media_id": media_id,
                    "camera_id": camera,
                    "path": f"{root}/{camera}/{received:%Y-%m-%d}/{media_id}.jpg",
                    "sha256": f"{media_id:064x}",
                    "media_type": "image",
                    "size": 120_000,
                    "width": 1920,
                    "height": 1080,
                    "received_at": received,
                }
            )
            batch.jobs.append(_job(rng, "detect", {"media_id": media_id}, received))
        batch.jobs.append(_job(rng, "analyze", {"camera_id": camera}, started))
        for k in range(per_event):
            detection_id = n * per_event + k + 1
            batch.detections.append(
                {
                    "detection_id": detection_id,
                    "media_id": n * uploads + k % uploads + 1,
                    "camera_id": camera,
                    "label": "person",
                    "confidence": 0.8,
                    "x": 0.1,
                    "y": 0.2,
                    "w": 0.1,
                    "h": 0.3,
                    "frame_width": 1920,
                    "frame_height": 1080,
                    "detected_at": started + timedelta(seconds=k % uploads),
                }
            )
            batch.links.append({"event_id": event_id, "detection_id": detection_id})
        if len(batch.events) == 5000:
            yield batch
            batch = Batch()
    if batch.events:
        yield batch


def _job(rng: random.Random, kind: str, payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    state = "dead" if rng.random() < 0.01 else "done"
    return {
        "kind": kind,
        "payload": payload,
        "state": state,
        "attempts": 1,
        "next_attempt_at": at,
        "created_at": at,
        "updated_at": at + timedelta(seconds=2),
    }


def store(session: Session, *, batch: Batch) -> None:
    """Insert a batch with executemany, parents first."""
    connection = session.connection()
    for table, rows in (
        (EventRow, batch.events),
        (MediaRow, batch.media),
        (DetectionRow, batch.detections),
        (EventDetectionRow, batch.links),
        (JobRow, batch.jobs),
    ):
        connection.execute(insert(table), rows)


def write_files(media: DerivedMedia, batch: Batch, upload_every: int, rng: random.Random) -> int:
    """Write each event's key frame and one upload in upload_every; return the uploads written."""
    for camera, event_id, started in batch.folders:
        folder = media.event_dir(camera, event_id, started)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "key.jpg").write_bytes(b"k" * 2048)
    written = 0
    for row in batch.media:
        if upload_every and rng.randrange(upload_every) == 0:
            os.makedirs(os.path.dirname(row["path"]), exist_ok=True)
            with open(row["path"], "wb") as file:
                file.write(b"u" * 4096)
            written += 1
    return written


async def fill(db: Database, args: argparse.Namespace, workdir: str) -> tuple[Expected, int, float]:
    """Fill the database and the folders; return what to expect, uploads written, seconds."""
    began = time.perf_counter()
    rng = random.Random(args.seed)  # noqa: S311 - made-up data, not secrets
    media = DerivedMedia(os.path.join(workdir, "derived"))
    root = os.path.join(workdir, "cameras")

    def cameras(session: Session) -> None:
        session.add_all(
            CameraRow(camera_id=f"cam{n}", folder=f"cam{n}", name=f"Camera {n}", created_at=NOW)
            for n in range(args.cameras)
        )
        session.add_all(
            AuditRow(
                at=NOW - timedelta(days=SPAN_DAYS * n / 1000),
                action="delete_event",
                arguments={},
                success=True,
            )
            for n in range(1000)
        )

    await db.run(cameras)
    expected = Expected()
    uploads = done = 0
    for batch in generate(rng, args, root, expected):
        await db.run(partial(store, batch=batch))
        if args.files:
            uploads += await asyncio.to_thread(write_files, media, batch, args.upload_every, rng)
        done += len(batch.events)
        say(f"  {done:,} / {args.events:,} events stored")
    if db.dialect == "postgresql":
        # A server that ran for months has statistics; one filled a minute ago may not yet.
        await db.run(lambda s: s.execute(text("ANALYZE")))
    return expected, uploads, time.perf_counter() - began


async def link_index(db: Database, mode: str) -> str:
    """Return how the links' detection_id index stands, adding it when asked and missing.

    Deleting a detection makes the database look for links to it (the foreign key); without an
    index whose first column is detection_id that is a scan of all links per detection.
    """

    def present(session: Session) -> bool:
        indexes = inspect(session.connection()).get_indexes(EventDetectionRow.__tablename__)
        return any(index["column_names"][:1] == ["detection_id"] for index in indexes)

    if await db.run(present):
        return "present in the schema"
    if mode == "as-is":
        return "MISSING (measured as the schema stands)"
    await db.run(
        lambda s: s.execute(
            text(f"CREATE INDEX {LINK_INDEX} ON {EventDetectionRow.__tablename__} (detection_id)")
        )
    )
    if db.dialect == "postgresql":
        await db.run(lambda s: s.execute(text(f"ANALYZE {EventDetectionRow.__tablename__}")))
    return f"MISSING from the schema: added ({LINK_INDEX}) for this run"


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def spread(values: list[float]) -> str:
    """Return n, p50, p99 and max of values (seconds) in ms."""
    ms = [value * 1000 for value in values] or [0.0]

    return (
        f"n={len(values):<6,} p50 {statistics.median(ms):6.1f}  p99 {percentile(ms, 0.99):6.1f}  "
        f"max {max(ms):6.1f} ms"
    )


async def probe(stop: asyncio.Event, lags: list[tuple[float, float]]) -> None:
    """Sleep 10 ms at a time on the loop; record when each sleep began and how late it woke."""
    loop = asyncio.get_running_loop()  # its time() is time.monotonic(), as the GC watch's
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(PROBE_S)
        lags.append((before, loop.time() - before - PROBE_S))


@contextlib.contextmanager
def full_collections() -> Iterator[list[tuple[float, float]]]:
    """Record (start, end) of CPython's full garbage collections during the block.

    A full collection holds the GIL throughout, stopping the loop whatever it is doing; its
    length depends on the whole heap, not on retention, which only brings them on sooner by
    allocating.
    """
    pauses: list[tuple[float, float]] = []
    began: list[float] = []

    def watch(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            began[:] = [time.monotonic()]
        elif began:
            pauses.append((began[0], time.monotonic()))

    gc.callbacks.append(watch)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(watch)


def outside(
    lags: list[tuple[float, float]], pauses: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Return the probe's samples that overlap no full garbage collection."""
    return [
        (before, lag)
        for before, lag in lags
        if not any(start <= before + PROBE_S + lag and before <= end for start, end in pauses)
    ]


async def writer(db: Database, stop: asyncio.Event, waits: list[float]) -> None:
    """Store a small job every 50 ms, as the pipeline does, and record each one's latency."""
    while not stop.is_set():
        began = time.perf_counter()
        await db.run(lambda s: add_job(s, JobKind.DETECT, {"media_id": 0}, NOW))
        waits.append(time.perf_counter() - began)
        await asyncio.sleep(WRITE_EVERY_S)


@dataclass(slots=True)
class Measured:
    """What one retention run next to the probe and the writer showed."""

    stats: RetentionStats
    lags: list[tuple[float, float]]
    idle: list[tuple[float, float]]
    waits: list[float]
    transactions: int
    pauses: list[tuple[float, float]]
    """CPython's full garbage collections during the run."""


async def measure(db: Database, args: argparse.Namespace, workdir: str) -> Measured:
    """Run retention next to the probe and the writer, after 2 s of the probe alone.

    One full collection first: filling the database left about a million objects queued for
    the collector's oldest generation, whose pass would otherwise land inside the run and be
    charged to retention (scripts/bench does the same before its GO). Full passes the run itself
    causes are still counted.
    """
    gc.collect()
    stop = asyncio.Event()
    idle: list[tuple[float, float]] = []
    idle_task = asyncio.create_task(probe(stop, idle))
    await asyncio.sleep(2)
    stop.set()
    await idle_task

    stop = asyncio.Event()
    lags: list[tuple[float, float]] = []
    waits: list[float] = []
    tasks = [asyncio.create_task(probe(stop, lags)), asyncio.create_task(writer(db, stop, waits))]
    transactions = db.transactions
    with full_collections() as pauses:
        try:
            stats = await run_retention(
                db,
                now=NOW,
                days=KEEP_DAYS,
                media=DerivedMedia(os.path.join(workdir, "derived")),
                delete_uploads=True,
                camera_root=os.path.join(workdir, "cameras"),
                run_blocking=asyncio.to_thread,
                chunk=args.chunk,
                pause=args.pause,
            )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    return Measured(stats, lags, idle, waits, db.transactions - transactions, list(pauses))


async def run(url: str, args: argparse.Namespace, workdir: str) -> list[str]:
    """Fill the database at url, run retention on it and return the report lines."""
    db = Database(url)
    await db.start()
    try:
        say(f"Filling {db.dialect} with {args.events:,} events...")
        expected, uploads, filled = await fill(db, args, workdir)
        index = await link_index(db, args.link_index)
        say(f"Running retention (link index {index})...")
        measured = await measure(db, args, workdir)

        def left(session: Session) -> tuple[int, int]:
            return (
                session.scalar(select(func.count()).select_from(EventRow)) or 0,
                session.scalar(select(func.count()).select_from(DetectionRow)) or 0,
            )

        events_left, detections_left = await db.run(left)
    finally:
        await db.close()
    stats = measured.stats
    detections = args.events * args.detections_per_event
    media_rows = args.events * args.uploads_per_event
    lags = [lag for _before, lag in measured.lags]
    clean = [lag for _before, lag in outside(measured.lags, measured.pauses)]
    gc_ms = [(end - start) for start, end in measured.pauses]
    worst = max(lags, default=0.0) * 1000
    verdict = "OK  " if worst < LAG_TARGET_MS else "MISS"
    clean_verdict = "OK  " if max(clean, default=0.0) * 1000 < LAG_TARGET_MS else "MISS"
    checks_ok = (stats.events, stats.detections) == (expected.old_events, expected.old_detections)
    return [
        f"Retention on {db.dialect}: {args.events:,} events, {detections:,} detections, "
        f"{media_rows:,} uploads' rows, {media_rows + args.events:,} finished jobs, 1,000 audit "
        f"rows over {SPAN_DAYS} days; {uploads:,} upload files, "
        f"{args.events if args.files else 0:,} derived-media folders. Filled in {filled:.0f} s.",
        f"  link index on detection_id: {index}",
        f"  run_retention(days={KEEP_DAYS}, chunk={args.chunk}, pause={args.pause:g}, "
        f"delete_uploads=True): {stats.seconds:.1f} s, {measured.transactions:,} transactions "
        "(the writer's too)",
        f"  deleted: {stats.events:,} events, {stats.detections:,} detections, "
        f"{stats.media:,} uploads' rows, {stats.jobs:,} jobs, {stats.audit:,} audit rows "
        f"({stats.rows / max(stats.seconds, 1e-9):,.0f} rows/s); {stats.files:,} folders and "
        f"files, {stats.bytes_freed / 1e6:,.1f} MB",
        f"  loop lag during retention        {spread(lags)}  {verdict} max < {LAG_TARGET_MS:g} ms",
        f"    outside full GC collections    {spread(clean)}  {clean_verdict}",
        f"    CPython full GC pauses         {spread(gc_ms)}  ({len(gc.get_objects()):,} objects "
        "tracked)",
        f"  loop lag idle (2 s, the floor)   {spread([lag for _b, lag in measured.idle])}",
        f"  pipeline write every 50 ms       {spread(measured.waits)}  (latency of db.run)",
        f"  check: {'OK' if checks_ok else 'WRONG'}: expected {expected.old_events:,} events and "
        f"{expected.old_detections:,} detections deleted; left {events_left:,} events "
        f"({expected.kept_events:,} old ones kept), {detections_left:,} detections",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the options."""
    parser = argparse.ArgumentParser(prog="scripts/bench_retention", description=__doc__)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--events", type=int, default=100_000, help="events (100,000)")
    parser.add_argument("--detections-per-event", type=int, default=10, help="(10)")
    parser.add_argument("--uploads-per-event", type=int, default=3, help="(3)")
    parser.add_argument("--cameras", type=int, default=8, help="(8)")
    parser.add_argument("--keep-fraction", type=float, default=0.01, help="events kept (0.01)")
    parser.add_argument(
        "--chunk", type=int, default=DEFAULT_CHUNK, help=f"rows a transaction ({DEFAULT_CHUNK})"
    )
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between chunks (0)")
    parser.add_argument(
        "--upload-every", type=int, default=15, help="write one upload file in N (15; 0: none)"
    )
    parser.add_argument(
        "--no-files", dest="files", action="store_false", help="no derived folders or uploads"
    )
    parser.add_argument(
        "--link-index",
        choices=("add", "as-is"),
        default="add",
        help="add the links' detection_id index when the schema lacks it (default), or not",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.events, args.detections_per_event, args.uploads_per_event, args.cameras) < 1:
        parser.error("--events, --detections-per-event, --uploads-per-event and --cameras >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="ai_security_bench_retention_")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if args.database == "postgresql":
            try:
                url = stack.enter_context(postgres_server()).url
            except (OSError, RuntimeError) as err:
                say(f"cannot start PostgreSQL: {err}")
                return 1
        else:
            url = f"sqlite:///{workdir}/ai_security.db"
        report = asyncio.run(run(url, args, workdir))
    sys.stdout.write("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
