"""Entry point: python -m scripts.bench_recorder_lib [options] (scripts/bench_recorder runs it).

How much does the integration make Home Assistant's recorder write? Each run brings up a real
Home Assistant in this process (scripts.bench_lib.hass) with the recorder on SQLite in a fresh
configuration folder, and the integration's entry on a detector stub that finds one person in
every image and an LLM stub (scripts.bench_lib.stubs, separate processes). A thread writes N
camera uploads (1920x1080 JPEGs, each unique) round-robin into the camera folders at a set rate;
the run waits until every upload's detection is stored and every batch is judged, lets the
recorder commit, and counts the rows of its tables: events by event type, event_data, states by
integration, state_attributes, and the database's size.

--detection-events both (the default) runs twice, each time from nothing: with the per-detection
`ai_security_detection` bus event off (the option's default) and on (what every hub did before it
was an option), and prints the two side by side with the rows per 1,000 uploads.
"""

import argparse
import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
import io
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time

from homeassistant import runner
from homeassistant.components.recorder import get_instance
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.recorder import async_initialize_recorder
from homeassistant.setup import async_setup_component
import numpy as np
from PIL import Image

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.models import Camera, Detection
from custom_components.ai_security.core.settings import (
    BATCH_IDLE_TIMEOUT,
    BATCH_WINDOW,
    DEBOUNCE,
    DETECTION_EVENTS,
    PipelineOptions,
)
from custom_components.ai_security.hub import SIGNAL_DETECTIONS
from scripts.bench_lib.cli import Child
from scripts.bench_lib.hass import (
    BenchSetupError,
    add_entry,
    start_home_assistant,
    stop_home_assistant,
)
from scripts.bench_lib.images import unique_copy


def say(message: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_recorder", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--uploads", type=int, default=1000, help="uploads to feed (1000)")
    parser.add_argument("--cameras", type=int, default=2, help="camera folders (2)")
    parser.add_argument("--rate", type=float, default=50.0, help="uploads a second (50)")
    parser.add_argument(
        "--detection-events",
        choices=("off", "on", "both"),
        default="both",
        help="the per-detection bus event option: off, on, or a run with each (both)",
    )
    parser.add_argument(
        "--batch-idle", type=float, default=2.0, help="seconds a batch waits for more (2)"
    )
    return parser.parse_args(argv)


@dataclass(slots=True)
class Counts:
    """What the recorder holds after one run."""

    detection_events: bool
    detections: int = 0
    seconds: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    tables: dict[str, int] = field(default_factory=dict)
    database_bytes: int = 0


def _base_image() -> bytes:
    """Return a 1920x1080 JPEG (the stub's person box lies inside a frame of this size)."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(135, 240, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((1920, 1080), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def _feed(root: str, cameras: int, uploads: int, rate: float, stop: threading.Event) -> None:
    """Write the uploads round-robin into the camera folders, on time (runs in a thread)."""
    base = _base_image()
    for camera in range(cameras):
        os.makedirs(os.path.join(root, f"Camera {camera + 1}"), exist_ok=True)
    began = time.monotonic()
    for index in range(uploads):
        if stop.is_set():
            return
        delay = began + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        path = os.path.join(root, f"Camera {index % cameras + 1}", f"img_{index:06d}.jpg")
        with open(path, "wb") as file:
            file.write(unique_copy(base, str(index).encode()))


def _count_rows(
    database: str, ours: Collection[str]
) -> tuple[Counter[str], Counter[str], dict[str, int]]:
    """Return the recorder's events by type, states (ours: these entities) and rows per table."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        events: Counter[str] = Counter(
            dict(
                connection.execute(
                    "SELECT t.event_type, COUNT(*) FROM events e "
                    "JOIN event_types t ON e.event_type_id = t.event_type_id GROUP BY 1"
                ).fetchall()
            )
        )
        states: Counter[str] = Counter()
        for entity_id, count in connection.execute(
            "SELECT m.entity_id, COUNT(*) FROM states s "
            "JOIN states_meta m ON s.metadata_id = m.metadata_id GROUP BY 1"
        ):
            states["ai_security" if entity_id in ours else "other"] += count
        tables = {
            table: connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("events", "event_data", "states", "state_attributes")
        }
    finally:
        connection.close()
    return events, states, tables


async def _wait(what: str, done: Callable[[], Awaitable[bool]], seconds: float) -> None:
    """Poll done() every 0.2 s; raise BenchSetupError naming what did not happen in time."""
    deadline = time.monotonic() + seconds
    while not await done():
        if time.monotonic() > deadline:
            raise BenchSetupError(f"{what} did not happen within {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def _settled(entry: ConfigEntry) -> bool:
    """Return whether every job is finished and no camera has an open batch."""
    data = entry.runtime_data
    queue = await data.pipeline.queue_depths()
    busy = sum(count for name, count in queue.items() if name.endswith(("_queued", "_running")))
    return busy == 0 and not any(state.active for state in data.hub.cameras.values())


async def run_once(args: argparse.Namespace, detection_events: bool) -> Counts:
    """Run Home Assistant with the recorder from nothing and count what it wrote."""
    counts = Counts(detection_events=detection_events)
    workdir = tempfile.mkdtemp(prefix="ai_security_bench_recorder_")
    config_dir = os.path.join(workdir, "config")
    camera_root = os.path.join(workdir, "cameras")
    os.mkdir(config_dir)
    os.mkdir(camera_root)
    database = os.path.join(config_dir, "home-assistant_v2.db")
    children: list[Child] = []
    hass: HomeAssistant | None = None
    entry: ConfigEntry | None = None
    try:
        detector = await Child.start("detector stub", "scripts.bench_lib.stubs", "detector")
        children.append(detector)
        llm = await Child.start("LLM stub", "scripts.bench_lib.stubs", "llm")
        children.append(llm)
        detector_url = f"http://127.0.0.1:{await detector.expect('PORT')}"
        llm_url = f"http://127.0.0.1:{await llm.expect('PORT')}"
        hass = await start_home_assistant(config_dir, [workdir])
        async_initialize_recorder(hass)  # what bootstrap does before it sets the recorder up
        if not await async_setup_component(
            hass, "recorder", {"recorder": {"db_url": f"sqlite:///{database}"}}
        ):
            raise BenchSetupError("the recorder did not set up")
        options = PipelineOptions().as_mapping() | {
            DEBOUNCE: 0.1,
            BATCH_WINDOW: 10.0,
            BATCH_IDLE_TIMEOUT: args.batch_idle,
            DETECTION_EVENTS: detection_events,
        }
        entry = await add_entry(
            hass,
            camera_root=camera_root,
            detector_url=detector_url,
            llm_url=llm_url,
            llm_api="llama_cpp",
            options=options,
        )
        # Setting Home Assistant and the entry up writes rows too (registries, services,
        # the entities' first states): only what the uploads add is counted.
        await hass.async_block_till_done()
        await get_instance(hass).async_block_till_done()
        before = await hass.async_add_executor_job(_count_rows, database, _ours(hass, entry))
        await _measure(hass, entry, args, counts, camera_root)
        await get_instance(hass).async_block_till_done()
        after = await hass.async_add_executor_job(_count_rows, database, _ours(hass, entry))
        counts.events = after[0] - before[0]
        counts.states = after[1] - before[1]
        counts.tables = {table: after[2][table] - before[2][table] for table in after[2]}
    finally:
        if hass is not None:
            await stop_home_assistant(hass, entry)
        for child in reversed(children):
            await child.stop()
        counts.database_bytes = await asyncio.get_running_loop().run_in_executor(
            None, _size_and_clean_up, database, workdir
        )
    return counts


def _ours(hass: HomeAssistant, entry: ConfigEntry) -> set[str]:
    """Return the entity ids of the entry's entities (the cameras' appear with them)."""
    registry = er.async_get(hass)
    return {
        registered.entity_id
        for registered in er.async_entries_for_config_entry(registry, entry.entry_id)
        if registered.platform == DOMAIN
    }


async def _measure(
    hass: HomeAssistant,
    entry: ConfigEntry,
    args: argparse.Namespace,
    counts: Counts,
    camera_root: str,
) -> None:
    """Feed the uploads; return once each is detected and every batch judged."""

    @callback
    def _detected(_camera: Camera, detections: list[Detection]) -> None:
        counts.detections += len(detections)

    async def all_detected() -> bool:
        return counts.detections >= args.uploads

    async def all_judged() -> bool:
        return await _settled(entry)

    unsubscribe = async_dispatcher_connect(
        hass, SIGNAL_DETECTIONS.format(entry.entry_id), _detected
    )
    state = "on" if counts.detection_events else "off"
    say(f"detection events {state}: feeding {args.uploads} uploads at {args.rate:g}/s ...")
    began = time.monotonic()
    stop = threading.Event()
    feeder = threading.Thread(
        target=_feed,
        args=(camera_root, args.cameras, args.uploads, args.rate, stop),
        name="bench feeder",
    )
    feeder.start()
    try:
        await _wait("every upload's detection", all_detected, args.uploads / args.rate + 120)
        await _wait("every batch judged", all_judged, args.batch_idle + 60)
    finally:
        stop.set()
        await hass.async_add_executor_job(feeder.join)
        unsubscribe()
    counts.seconds = time.monotonic() - began
    await hass.async_block_till_done()


def _size_and_clean_up(database: str, workdir: str) -> int:
    """Return the recorder database's size (closed, so all of it is in the file); remove all."""
    size = sum(
        os.path.getsize(path) for path in (database, f"{database}-wal") if os.path.exists(path)
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return size


def render(runs: list[Counts], uploads: int) -> str:
    """Return the report: rows by table and event type, per run and per 1,000 uploads."""
    per = 1000 / uploads
    event_types = sorted({name for run in runs for name in run.events})
    rows: list[tuple[str, list[int]]] = [
        (f"events: {name}", [run.events.get(name, 0) for run in runs]) for name in event_types
    ]
    rows += [
        ("events (all)", [run.tables["events"] for run in runs]),
        ("event_data", [run.tables["event_data"] for run in runs]),
        ("states: ai_security entities", [run.states.get("ai_security", 0) for run in runs]),
        ("states: others", [run.states.get("other", 0) for run in runs]),
        ("state_attributes", [run.tables["state_attributes"] for run in runs]),
    ]
    heads = [f"detection events {'on' if run.detection_events else 'off'}" for run in runs]
    width = max(len(name) for name, _ in rows) + 2
    lines = [
        f"Recorder rows written while {uploads} uploads were processed (one person detected "
        "in each; after setup), SQLite; per 1,000 uploads in brackets",
        "",
        "".ljust(width) + "".join(head.rjust(26) for head in heads),
    ]
    for name, values in rows:
        cells = "".join(f"{value:>14,} ({value * per:>8,.0f})" for value in values)
        lines.append(name.ljust(width) + cells)
    lines.append(
        "database size (MiB)".ljust(width)
        + "".join(f"{run.database_bytes / 1048576:>26.2f}" for run in runs)
    )
    lines.append(
        "detections / run time (s)".ljust(width)
        + "".join(f"{f'{run.detections:,} / {run.seconds:.1f}':>26}" for run in runs)
    )
    return "\n".join(lines)


async def bench(args: argparse.Namespace) -> list[Counts]:
    """Run with the option off, on, or both (each from nothing)."""
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.detection_events]
    return [await run_once(args, mode) for mode in modes]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    args = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=runner.create_event_loop) as bench_runner:
            runs = bench_runner.run(bench(args))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchSetupError as err:
        say(f"error: {err}")
        return 1
    sys.stdout.write(render(runs, args.uploads) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
