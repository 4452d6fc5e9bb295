"""Latency: from a camera closing its upload to the phone's notify action, for a fast-path person.

One run brings up Home Assistant (home.py) with Home Assistant's own folder_watcher integration
on the camera folder (as scripts/bench_intake sets it up) and the integration's entry on the same
folder: the detector stub (scripts.bench_lib.stubs, its own process) answers one person at 0.95,
a fast-path object, and the LLM is none (llm_url "": the heuristic only) or a real llama-server
on the tiny random-weight model the tests write (tests/llama.py), which judges every incident at
once (and again when it ends) while the phone is being notified. The benchmark's feeder
(scripts.bench_lib.feeder, a separate process) writes camera JPEGs of about 300 KB round-robin
into the camera folders and puts each close time (CLOCK_MONOTONIC) on the shared board.

Each upload must be an incident of its own, so a camera's uploads come further apart than the
idle timeout (set in the entry's options, below the options flow's minimum: the flow is not
involved). Each camera is made known first with one warm-up upload, whose incident opens and
closes before the automation is made and anything is measured.

Per upload: close -> folder_watcher's "closed" bus event, close -> ai_security_event (the
incident opened by that upload, its picture already drawn), close -> the phone's first
notification of that incident (the blueprint's stage 1, with sound).
"""

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
import os
import time

from homeassistant.core import Event, HomeAssistant, callback

from custom_components.ai_security.core.settings import BATCH_IDLE_TIMEOUT, PipelineOptions
from scripts.bench_intake_lib.__main__ import FOLDER_WATCHER, add_folder_watcher
from scripts.bench_lib.board import Board
from scripts.bench_lib.cli import Child
from scripts.bench_lib.feeder import CAMERA_FOLDER, index_of
from scripts.bench_lib.probes import LagProbe, cpu_seconds, machine_busy_seconds

from .home import LLMS, Home, home, say
from .pictures import colour_of, flat_jpeg
from .record import Record

CONFIDENCE = 0.95
"""The detector stub's person: above the fast-path confidence (0.9)."""
SPACING = 2.0
"""A camera's uploads come this many idle timeouts apart."""


@dataclass(slots=True)
class LatencyRun:
    """What one latency run measured (milliseconds)."""

    llm: str
    files: int
    cameras: int
    rate: float
    idle: float
    watcher_ms: list[float] = field(default_factory=list)
    detected_ms: list[float] = field(default_factory=list)
    event_ms: list[float] = field(default_factory=list)
    notify_ms: list[float] = field(default_factory=list)
    notify_after_go: list[float] = field(default_factory=list)
    """When each upload of notify_ms was closed, seconds after the feeder began."""
    incidents: int = 0
    """Incidents the measured uploads opened (one each is the goal)."""
    sound: int = 0
    """Notifications with sound of those incidents (one each is the goal)."""
    silent: int = 0
    """Silent replacements of those incidents' notifications."""
    llm_verdicts: int = 0
    lag_ms: list[float] = field(default_factory=list)
    """The event loop's lag (a 10 ms sleep's lateness) over the measured run."""
    process_cores: float = 0.0
    """CPU Home Assistant's process used over the measured run, in cores."""
    machine_cores: float = 0.0
    """CPU every process on the machine used over the measured run, in cores."""
    llm_cores: float | None = None
    """CPU llama-server used over the measured run, in cores (None without it)."""
    go_at: float = 0.0
    notes: list[str] = field(default_factory=list)


def _follow_folder_watcher(hass: HomeAssistant) -> dict[int, float]:
    """Return upload index -> when folder_watcher's first "closed" event for it was fired."""
    closed: dict[int, float] = {}

    @callback
    def on_event(event: Event) -> None:
        if event.data.get("event_type") == "closed":
            index = index_of(str(event.data.get("path", "")))
            if index is not None:
                closed.setdefault(index, time.monotonic())

    hass.bus.async_listen(FOLDER_WATCHER, on_event)
    return closed


async def run(args: argparse.Namespace, llm: str) -> LatencyRun:
    """Run once with llm ("none" or "llama"); return what was measured."""
    files, cameras, idle = args.files, args.cameras, args.idle
    result = LatencyRun(
        llm=LLMS[llm], files=files, cameras=cameras, rate=cameras / (SPACING * idle), idle=idle
    )
    async with home(llm, confidence=CONFIDENCE) as bench:
        root = os.path.join(bench.work, "cameras")
        os.makedirs(root)
        await add_folder_watcher(bench.hass, root)
        closed = _follow_folder_watcher(bench.hass)
        entry = await bench.add_hub(
            root, PipelineOptions().as_mapping() | {BATCH_IDLE_TIMEOUT: idle}
        )
        board_path = os.path.join(bench.work, "board")
        with Board(board_path, files, create=True) as board:
            feeder = await Child.start(
                "feeder",
                "scripts.bench_lib.feeder",
                f"--root={root}",
                f"--board={board_path}",
                f"--cameras={cameras}",
                f"--images={files // cameras}",
                f"--rate={result.rate}",
                "--keep-files",
                "--bases=2",
                f"--tag=bench_alerts {llm} {time.time()}",
                stdin=True,
            )
            try:
                await feeder.expect("READY", 300)
                warm = [
                    (
                        os.path.join(root, CAMERA_FOLDER.format(n), "warmup.jpg"),
                        flat_jpeg(colour_of(n), f"warm-up {n} {time.time()}"),
                    )
                    for n in range(1, cameras + 1)
                ]
                say(f"warm-up: one upload per camera ({cameras})")
                camera_ids = await bench.warm_up(entry, warm, idle)
                await bench.alert_phone([(entry, camera) for camera in camera_ids])
                await _feed(bench, result, feeder, board, closed)
            finally:
                with contextlib.suppress(Exception):
                    await feeder.send("STOP")
                await feeder.stop()
    return result


async def _feed(
    bench: Home, result: LatencyRun, feeder: Child, board: Board, closed: dict[int, float]
) -> None:
    """Have the feeder write the uploads; measure once each was notified (or 30 s passed)."""
    record = bench.record
    warm_ids = set(record.incidents)
    say(f"{result.llm}: writing {result.files} uploads at {result.rate:g}/s")
    probe = LagProbe()
    lag = asyncio.get_running_loop().create_task(probe.run(), name="bench_alerts lag probe")
    began, process, machine = time.monotonic(), cpu_seconds(), machine_busy_seconds()
    llm = bench.llama_cpu_seconds()
    result.go_at = began
    try:
        await _go(result, record, feeder, warm_ids)
    finally:
        probe.running = False
        lag.cancel()
        await asyncio.gather(lag, return_exceptions=True)
    seconds = time.monotonic() - began
    result.process_cores = (cpu_seconds() - process) / seconds
    result.machine_cores = (machine_busy_seconds() - machine) / seconds
    if llm is not None and (llm_now := bench.llama_cpu_seconds()) is not None:
        result.llm_cores = (llm_now - llm) / seconds
    result.lag_ms = [value * 1000 for value in probe.lags]
    opened = _opened(record, warm_ids)
    _measure(result, record, board=board, closed=closed, opened=opened, warm_ids=warm_ids)


def _opened(record: Record, warm_ids: set[str]) -> dict[int, str]:
    """Return upload index -> the incident it opened."""
    found: dict[int, str] = {}
    for incident in record.incidents.values():
        index = index_of(incident.upload or "")
        if incident.event_id not in warm_ids and index is not None:
            found.setdefault(index, incident.event_id)
    return found


async def _go(result: LatencyRun, record: Record, feeder: Child, warm_ids: set[str]) -> None:
    """Have the feeder write; return once each upload was notified (or 30 s after the last)."""
    await feeder.send("GO")
    await feeder.expect("DONE", result.files / result.rate + 60)

    def all_notified() -> bool:
        first = record.first_sound()
        opened = _opened(record, warm_ids).values()
        return sum(1 for event_id in opened if event_id in first) >= result.files

    if not await record.wait(all_notified, 3 * result.idle + 30):
        result.notes.append("not every upload was notified within 30 s of the last")


def _measure(
    result: LatencyRun,
    record: Record,
    *,
    board: Board,
    closed: dict[int, float],
    opened: dict[int, str],
    warm_ids: set[str],
) -> None:
    """Fill result from the record and the feeder's close times."""
    first = record.first_sound()
    for index in range(result.files):
        close = board.close_times[index]
        if not close:
            continue
        if index in closed:
            result.watcher_ms.append((closed[index] - close) * 1000)
        event_id = opened.get(index)
        if event_id is None:
            continue
        incident = record.incidents[event_id]
        if (detected := record.detected_at.get(incident.upload or "")) is not None:
            result.detected_ms.append((detected - close) * 1000)
        result.event_ms.append((incident.opened_at - close) * 1000)
        if (sent := first.get(event_id)) is not None:
            result.notify_ms.append((sent.at - close) * 1000)
            result.notify_after_go.append(close - result.go_at)
    ours = [i for i in record.incidents.values() if i.event_id not in warm_ids]
    result.incidents = len(ours)
    notifications = [n for n in record.notifications if n.event_id not in warm_ids]
    result.sound = sum(1 for notification in notifications if notification.sound)
    result.silent = len(notifications) - result.sound
    result.llm_verdicts = sum(incident.llm_verdicts for incident in ours)
    if missing := result.files - len(opened):
        result.notes.append(f"{missing} upload(s) opened no incident of their own")
