"""Entry point: python -m scripts.bench_intake_lib [options] (scripts/bench_intake runs it).

How long after a camera closes its upload does the integration hand it on, next to Home
Assistant's own folder_watcher on the same folder? One run brings up a real Home Assistant in
this process (scripts.bench_lib.hass, its own event loop and executor) and sets up on one camera
folder both Home Assistant's folder_watcher integration (a config entry, as its config flow makes
it: pattern "*", its watchdog observer and event entity) and this integration's FolderWatcher
(native observer, the debounce option's default), each on its own observer thread, sharing the
loop as they would in one Home Assistant. The benchmark's feeder (scripts.bench_lib.feeder, a
separate process, as an FTP server is) writes N camera JPEGs round-robin into the camera folders,
each written in --chunk sized pieces and closed; it takes the close time (CLOCK_MONOTONIC, which
every process shares) just after close() into a shared board. With --mode rename each is written
under name.part and renamed into place, and the time is taken just after the rename.

Handed on means: FolderWatcher calls its callback (the pipeline's intake in the integration), and
folder_watcher fires its "closed" event ("moved" for a rename) on Home Assistant's bus, where a
listener (an automation) would see it. Both moments are taken on the loop. The report gives p50,
p99 and max of close -> handed on in ms for each, and how many uploads each handed on (a
repeat would be counted in "again").
"""

import argparse
import asyncio
from collections import defaultdict
from collections.abc import Iterator
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from types import MappingProxyType

from homeassistant import config_entries, runner
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import Event, HomeAssistant, callback
import watchdog.version

from custom_components.ai_security.core.settings import DEBOUNCE, PipelineOptions
from custom_components.ai_security.core.watcher import FolderWatcher
from scripts.bench_lib.board import Board
from scripts.bench_lib.cli import Child
from scripts.bench_lib.feeder import index_of
from scripts.bench_lib.hass import BenchSetupError, start_home_assistant, stop_home_assistant

FOLDER_WATCHER = "folder_watcher"
"""Home Assistant's integration (and the event type it fires)."""
MODES = {"direct": "closed", "rename": "moved"}
"""Feeder mode -> the folder_watcher event that says the upload is there."""


def say(message: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_intake", description=__doc__.split("\n\n")[1]
    )
    parser.add_argument("--files", type=int, default=200, help="uploads per mode (200)")
    parser.add_argument("--cameras", type=int, default=2, help="camera folders (2)")
    parser.add_argument("--rate", type=float, default=50.0, help="uploads a second, 0: flat out")
    parser.add_argument(
        "--chunk", type=int, default=128 * 1024, help="bytes per write (128 KiB: 2-3 a file)"
    )
    parser.add_argument(
        "--debounce",
        type=float,
        default=PipelineOptions().debounce,
        help=f"FolderWatcher's {DEBOUNCE} option, s (its default)",
    )
    parser.add_argument("--mode", choices=("direct", "rename", "both"), default="both")
    args = parser.parse_args(argv)
    if args.files < 1 or args.cameras < 1 or args.files % args.cameras:
        parser.error("--files must be a positive multiple of --cameras")
    return args


class Seen:
    """When each watcher handed each upload on: name -> upload index -> monotonic times."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.times: dict[str, defaultdict[int, list[float]]] = {}
        self.changed = asyncio.Event()

    def add(self, watcher: str, index: int) -> None:
        """Record that watcher handed upload index on now."""
        self.times.setdefault(watcher, defaultdict(list))[index].append(time.monotonic())
        self.changed.set()

    async def wait_for(self, watchers: list[str], count: int) -> None:
        """Return once every one of watchers has handed count uploads on."""
        while min(self.count(watcher) for watcher in watchers) < count:
            self.changed.clear()
            await self.changed.wait()

    def count(self, watcher: str) -> int:
        """Return how many uploads watcher handed on."""
        return len(self.times.get(watcher, {}))


def percentile(values: list[float], share: float) -> float:
    """Return the value at share (0..1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


async def add_folder_watcher(hass: HomeAssistant, folder: str) -> ConfigEntry:
    """Set up Home Assistant's folder_watcher on folder, as its config flow stores the entry."""
    entry = ConfigEntry(
        data={},
        discovery_keys=MappingProxyType({}),
        domain=FOLDER_WATCHER,
        minor_version=1,
        options={"folder": folder, "patterns": ["*"]},
        source=config_entries.SOURCE_USER,
        subentries_data=None,
        title=f"Folder Watcher {folder}",
        unique_id=None,
        version=1,
    )
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    if entry.state is not ConfigEntryState.LOADED:
        raise BenchSetupError(f"folder_watcher did not load: {entry.state.value}")
    return entry


@contextlib.contextmanager
def workspace() -> Iterator[str]:
    """Yield a temporary folder that is removed afterwards."""
    folder = tempfile.mkdtemp(prefix="bench_intake_")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def feed(args: argparse.Namespace, root: str, mode: str, board_path: str, seen: Seen) -> None:
    """Write one mode's uploads under root/<mode>/ and wait until both watchers handed them on."""
    feeder = await Child.start(
        "feeder",
        "scripts.bench_lib.feeder",
        "--root",
        os.path.join(root, mode),
        "--board",
        board_path,
        "--cameras",
        str(args.cameras),
        "--images",
        str(args.files // args.cameras),
        "--rate",
        str(args.rate),
        "--mode",
        mode,
        "--chunk",
        str(args.chunk),
        "--keep-files",
        "--bases",
        "2",
        "--tag",
        f"bench_intake {mode} {time.time()}",
        stdin=True,
    )
    try:
        await feeder.expect("READY")
        await asyncio.sleep(0.5)  # the watches on the new camera folders are in place
        await feeder.send("GO")
        await feeder.expect("DONE", seconds=args.files + 60)
        async with asyncio.timeout(args.debounce + 30):
            await seen.wait_for([f"{mode} ours", f"{mode} ha"], args.files)
        await asyncio.sleep(args.debounce + 0.5)  # a repeat would come by now
    finally:
        with contextlib.suppress(Exception):
            await feeder.send("STOP")
        await feeder.stop()


async def bench(args: argparse.Namespace) -> str:
    """Run the benchmark; return the report."""
    modes = ["direct", "rename"] if args.mode == "both" else [args.mode]
    seen = Seen()
    results: list[str] = []
    with workspace() as work:
        root = os.path.join(work, "cameras")
        config_dir = os.path.join(work, "config")
        os.makedirs(root)
        os.makedirs(config_dir)
        say("starting Home Assistant")
        hass = await start_home_assistant(config_dir, [root])
        watcher: FolderWatcher | None = None
        try:
            await add_folder_watcher(hass, root)
            mode_of = {os.path.join(root, mode) + os.sep: mode for mode in modes}

            def mode_for(path: str) -> str | None:
                return next((m for prefix, m in mode_of.items() if path.startswith(prefix)), None)

            @callback
            def on_bus(event: Event) -> None:
                data = event.data
                kind = data.get("event_type")
                path = data.get("dest_path") if kind == "moved" else data.get("path")
                if not isinstance(path, str):
                    return
                mode = mode_for(path)
                index = index_of(path)
                if mode is not None and index is not None and kind == MODES[mode]:
                    seen.add(f"{mode} ha", index)

            def on_file(path: str) -> None:
                mode = mode_for(path)
                index = index_of(path)
                if mode is not None and index is not None:
                    seen.add(f"{mode} ours", index)

            hass.bus.async_listen(FOLDER_WATCHER, on_bus)
            watcher = FolderWatcher(
                root,
                on_file,
                debounce=args.debounce,
                polling=False,
                run_blocking=hass.async_add_executor_job,
            )
            await watcher.start()
            for mode in modes:
                say(f"{mode}: writing {args.files} uploads")
                board_path = os.path.join(work, f"board_{mode}")
                with Board(board_path, args.files, create=True) as board:
                    await feed(args, root, mode, board_path, seen)
                    closed = list(board.close_times)
                for who, label in (("ours", "ai_security FolderWatcher"), ("ha", "folder_watcher")):
                    times = seen.times.get(f"{mode} {who}", defaultdict(list))
                    late = [(t[0] - closed[i]) * 1000 for i, t in times.items() if closed[i]]
                    again = sum(len(t) - 1 for t in times.values())
                    results.append(row(mode, label, late, args.files, again))
        finally:
            if watcher is not None:
                await watcher.stop()
            await stop_home_assistant(hass, None)
    return render(args, results)


def row(mode: str, label: str, late: list[float], files: int, again: int) -> str:
    """Return one line of the table."""
    if not late:
        return f"{mode:<7} {label:<26} {'-':>8} {'-':>8} {'-':>8} {0:>5}/{files} {again:>5}"
    return (
        f"{mode:<7} {label:<26} {percentile(late, 0.5):8.1f} {percentile(late, 0.99):8.1f}"
        f" {max(late):8.1f} {len(late):>5}/{files} {again:>5}"
    )


def render(args: argparse.Namespace, rows: list[str]) -> str:
    """Return the report."""
    rate = "flat out" if args.rate <= 0 else f"{args.rate:g}/s"
    return (
        f"{args.files} camera JPEGs per mode into {args.cameras} camera folders at {rate}, written"
        f" in {args.chunk // 1024} KiB chunks; FolderWatcher debounce {args.debounce:g} s\n"
        f"Python {platform.python_version()}, watchdog {watchdog.version.VERSION_STRING},"
        f" {platform.machine()}, {os.cpu_count()} CPUs; both watchers in one Home Assistant\n\n"
        f"{'close -> handed on, ms':<34} {'p50':>8} {'p99':>8} {'max':>8}"
        f" {'seen':>11} {'again':>5}\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its report; return the exit status."""
    args = parse_args(argv)
    try:
        with asyncio.Runner(loop_factory=runner.create_event_loop) as bench_runner:
            report = bench_runner.run(bench(args))
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except BenchSetupError as err:
        say(f"error: {err}")
        return 1
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
