"""The benchmark's orchestration: options, processes, the measured run, the report.

One run: start the detector and LLM stubs and the feeder (which makes its images meanwhile), bring
up Home Assistant with the entry, then start the probes and tell the feeder to go. The run ends
when every upload's detection is stored (or nothing moved for --stall seconds); CPU and lag stop
being counted there. Then the last batches are let close, so every detection is judged, and
everything is taken down: the entry unloaded, Home Assistant stopped, the processes ended, the
temporary folder removed, also on Ctrl-C.
"""

import argparse
import array
import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Any
import uuid

import aiohttp
from homeassistant import block_async_io, runner
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import __version__ as ha_version
from homeassistant.core import Event, HomeAssistant, callback

from custom_components.ai_security.const import CONF_DATABASE_URL
from custom_components.ai_security.core.settings import (
    BATCH_IDLE_TIMEOUT,
    BATCH_WINDOW,
    DEBOUNCE,
    DETECTION_EVENTS,
    POLLING_OBSERVER,
    PipelineOptions,
)
from custom_components.ai_security.hub import EVENT_DETECTION, EVENT_SECURITY

from .board import Board
from .feeder import index_of
from .hass import BenchSetupError, add_entry, start_home_assistant, stop_home_assistant
from .postgres import postgres_server
from .probes import (
    GcProbe,
    LagProbe,
    Sampler,
    StackSampler,
    cpu_seconds,
    machine_busy_seconds,
    peak_rss_bytes,
    thread_cpu,
    thread_cpu_delta as cpu_by_thread,
)
from .report import Run, as_json, render
from .sqlstats import SqlStats


def say(text: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report or the JSON)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _rate(text: str) -> float:
    if text.lower() in {"max", "0", "unlimited"}:
        return 0.0
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive, or 'max'")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Return the command line's options."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Throughput benchmark of ai_security inside a real Home Assistant.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--cameras", type=int, default=4, help="camera folders")
    parser.add_argument("--images", type=int, default=2000, help="images per camera")
    parser.add_argument(
        "--rate", type=_rate, default=250.0, help="images/s over all cameras, or 'max'"
    )
    parser.add_argument("--debounce", type=float, default=0.5, help="upload debounce option, s")
    parser.add_argument("--polling", action="store_true", help="use the polling observer")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--batch-window", type=float, default=10.0, help="batch window option, s")
    parser.add_argument("--batch-idle", type=float, default=5.0, help="batch idle option, s")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.8,
        help="the detector's answer; >= 0.9 makes every image a fast-path LLM call",
    )
    parser.add_argument("--llm-api", choices=("llama_cpp", "openai"), default="llama_cpp")
    parser.add_argument(
        "--write",
        choices=("direct", "rename"),
        default="direct",
        help="direct: write the final name in chunks and close (FTP-like); rename: .part, rename",
    )
    parser.add_argument("--chunk", type=int, default=64 * 1024, help="bytes per write() call")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other entry option (VALUE read as JSON), e.g. detector_concurrency=4",
    )
    parser.add_argument("--keep-files", action="store_true", help="never delete uploads")
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up after s without progress"
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        help="also write the figures as JSON ('-': stdout; paths as seen inside the lab, where "
        "the repository has its own path)",
    )
    parser.add_argument("--profile", action="store_true", help="sample all threads' stacks")
    parser.add_argument(
        "--sql-stats", action="store_true", help="count the pipeline's SQL statements and commits"
    )
    parser.add_argument("--verbose", action="store_true", help="log the integration at INFO")
    args = parser.parse_args(argv)
    if args.cameras < 1 or args.images < 1:
        parser.error("--cameras and --images must be at least 1")
    return args


@dataclass
class Watch:
    """Listens to the integration's bus events and records when each upload was stored."""

    board: Board
    debounce: float
    total: int
    detect_at: array.array[float] = field(default_factory=lambda: array.array("d"))
    latencies: array.array[float] = field(default_factory=lambda: array.array("d"))
    event_at: array.array[float] = field(default_factory=lambda: array.array("d"))
    events: int = 0
    event_detections: int = 0
    duplicates: int = 0
    foreign: int = 0

    @property
    def detected(self) -> int:
        """Return how many uploads have their detection stored."""
        return len(self.detect_at)

    @callback
    def on_detection(self, event: Event) -> None:
        """Record an upload's detection (runs on the loop, so it must stay tiny)."""
        now = time.monotonic()
        index = index_of(str(event.data.get("file", "")))
        if index is None or index >= self.total:
            self.foreign += 1
            return
        if self.board.done[index]:
            self.duplicates += 1
            return
        self.board.done[index] = 1
        self.detect_at.append(now)
        self.latencies.append(now - self.board.close_times[index] - self.debounce)

    @callback
    def on_event(self, event: Event) -> None:
        """Record a security event and how many detections it judged."""
        self.event_at.append(time.monotonic())
        self.events += 1
        self.event_detections += int(event.data.get("detection_count", 0))


class Child:
    """A process of the benchmark (stub or feeder) speaking line by line on stdout."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        """Wrap a started process."""
        self.name = name
        self.process = process

    @classmethod
    async def start(cls, name: str, *args: str, stdin: bool = False) -> Child:
        """Start python -m scripts.bench_lib.<args...> from the repository root."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(name, process)

    async def expect(self, word: str, seconds: float = 120.0) -> str:
        """Return the rest of the next line, which must start with word (within seconds)."""
        assert self.process.stdout is not None  # noqa: S101 - started with a pipe
        async with asyncio.timeout(seconds):
            line = (await self.process.stdout.readline()).decode().strip()
        if not line.startswith(word):
            raise BenchSetupError(f"{self.name} said {line!r} instead of {word} (see its stderr)")
        return line[len(word) :].strip()

    async def send(self, line: str) -> None:
        """Write a command line to the process."""
        assert self.process.stdin is not None  # noqa: S101 - started with a pipe
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        """End the process: SIGTERM, then SIGKILL after 10 s."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()


async def _stub_stats(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/stats") as response:
        stats: dict[str, Any] = await response.json()
    return stats


def _stub_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    counts = {
        route: count - before["counts"].get(route, 0)
        for route, count in after["counts"].items()
        if count - before["counts"].get(route, 0)
    }
    cpu = (after["cpu_user"] + after["cpu_system"]) - (before["cpu_user"] + before["cpu_system"])
    return {"counts": counts, "cpu_seconds": cpu, "rss_kib": after["rss_kib"]}


def _environment() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as file:
        for line in file:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "machine": f"{os.cpu_count()} CPUs ({model})",
        "software": f"Python {platform.python_version()}, Home Assistant {ha_version}",
        "load": "load average at start {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    }


def _options(args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    options = PipelineOptions().as_mapping() | {
        DEBOUNCE: args.debounce,
        BATCH_WINDOW: args.batch_window,
        BATCH_IDLE_TIMEOUT: args.batch_idle,
        POLLING_OBSERVER: args.polling,
        DETECTION_EVENTS: True,  # latency is measured from each detection's bus event
    }
    for item in args.option:
        key, _, text = item.partition("=")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    if database_url:
        options[CONF_DATABASE_URL] = database_url
    return options


@contextlib.asynccontextmanager
async def _database(kind: str) -> AsyncIterator[str | None]:
    """Yield the database URL option: None for SQLite, a throw-away server's URL for PostgreSQL."""
    if kind == "sqlite":
        yield None
        return
    loop = asyncio.get_running_loop()
    server = postgres_server()
    say("starting PostgreSQL ...")
    info = await loop.run_in_executor(None, server.__enter__)
    try:
        yield info.url
    finally:
        await loop.run_in_executor(None, server.__exit__, None, None, None)


async def _wait_for_detections(
    watch: Watch, board: Board, feeder: Child, total: int, stall: float
) -> list[str]:
    """Wait until every upload is detected or nothing moves for stall seconds; return notes."""
    notes: list[str] = []
    last_count, last_change = -1, time.monotonic()
    while watch.detected < total:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        progress = watch.detected + board.written
        if progress != last_count:
            last_count, last_change = progress, now
        elif now - last_change > stall:
            notes.append(
                f"gave up: {total - watch.detected} upload(s) without a detection after "
                f"{stall:.0f} s without progress"
            )
            break
        if feeder.process.returncode is not None and board.written < total:
            notes.append(f"the feeder ended early (exit status {feeder.process.returncode})")
            break
    return notes


async def _drain_events(watch: Watch, hass_entry: ConfigEntry, seconds: float) -> None:
    """Wait (up to seconds) until the last batches closed and every detection was judged."""
    pipeline = hass_entry.runtime_data.pipeline
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if watch.event_detections >= watch.detected and not pipeline.batcher.open_cameras:
            return
        await asyncio.sleep(0.1)


class Measurement:
    """The probes of one measured run, started together at GO and stopped together at the end."""

    def __init__(self, args: argparse.Namespace, watch: Watch, entry: ConfigEntry) -> None:
        """Prepare the probes; --profile and --sql-stats add theirs."""
        self.watch = watch
        self.probe = LagProbe()
        self.gc = GcProbe()
        self.sampler = Sampler(lambda: (watch.board.written, watch.detected), say=say)
        self.profiler = StackSampler(probe=self.probe) if args.profile else None
        self.sql: SqlStats | None = None
        if args.sql_stats:
            engine = entry.runtime_data.pipeline.db._engine  # noqa: SLF001 - diagnostics only
            self.sql = SqlStats(engine)
        self._task: asyncio.Task[None] | None = None
        self._threads: dict[str, float] = {}
        self._cpu = self._machine = 0.0
        self.go_at = self.end_at = 0.0
        self.cpu_used = self.machine_used = 0.0
        self.threads: dict[str, float] = {}
        self.peak_rss = 0

    async def start(self) -> None:
        """Start every probe and take the starting readings."""
        loop = asyncio.get_running_loop()
        if self.sql is not None:
            self.sql.attach()
        self._threads = await loop.run_in_executor(None, thread_cpu)
        self.gc.settle()
        self.gc.attach()
        self._task = loop.create_task(self.probe.run(), name="bench lag probe")
        self.sampler.start()
        if self.profiler is not None:
            self.profiler.start()
        self._cpu, self._machine = cpu_seconds(), machine_busy_seconds()
        self.go_at = time.monotonic()

    async def stop(self) -> None:
        """Take the closing readings and stop every probe."""
        loop = asyncio.get_running_loop()
        watch = self.watch
        self.end_at = watch.detect_at[-1] if watch.detected else time.monotonic()
        self.cpu_used = cpu_seconds() - self._cpu
        self.machine_used = machine_busy_seconds() - self._machine
        self.threads = cpu_by_thread(self._threads, await loop.run_in_executor(None, thread_cpu))
        self.probe.running = False
        self.gc.detach()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.profiler is not None:
            self.profiler.stop()
        if self.sql is not None:
            self.sql.detach()
        self.sampler.stop()
        self.peak_rss = peak_rss_bytes()


@dataclass
class Children:
    """The benchmark's other processes and where the stubs listen."""

    detector: Child
    llm: Child
    feeder: Child
    detector_url: str
    llm_url: str

    async def stub_stats(self, session: aiohttp.ClientSession) -> dict[str, dict[str, Any]]:
        """Return both stubs' counters now."""
        return {
            "detector": await _stub_stats(session, self.detector_url),
            "llm": await _stub_stats(session, self.llm_url),
        }


async def _start_children(
    args: argparse.Namespace, camera_root: str, board: Board, started: list[Child]
) -> Children:
    """Start the stubs and the feeder (appending each to started, for the clean-up)."""
    detector = await Child.start(
        "detector stub", "scripts.bench_lib.stubs", "detector", f"--confidence={args.confidence}"
    )
    started.append(detector)
    llm = await Child.start("LLM stub", "scripts.bench_lib.stubs", "llm")
    started.append(llm)
    detector_url = f"http://127.0.0.1:{await detector.expect('PORT', 30)}"
    llm_url = f"http://127.0.0.1:{await llm.expect('PORT', 30)}"
    feeder_args = [
        "scripts.bench_lib.feeder",
        f"--root={camera_root}",
        f"--board={board.path}",
        f"--cameras={args.cameras}",
        f"--images={args.images}",
        f"--rate={args.rate}",
        f"--mode={args.write}",
        f"--chunk={args.chunk}",
        f"--tag=ai_security bench {uuid.uuid4().hex}",
    ]
    if args.keep_files:
        feeder_args.append("--keep-files")
    feeder = await Child.start("feeder", *feeder_args, stdin=True)
    started.append(feeder)
    return Children(detector, llm, feeder, detector_url, llm_url)


async def bench(args: argparse.Namespace, command: str) -> Run:  # noqa: PLR0915 - one story
    """Run the benchmark once and return what it measured."""
    total = args.cameras * args.images
    loop = asyncio.get_running_loop()
    # SIGTERM (kill, a CI runner's timeout) ends a run as cleanly as Ctrl-C does.
    main_task = asyncio.current_task()
    if main_task is not None:
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    workdir = tempfile.mkdtemp(prefix="ai_security_bench_")
    config_dir = os.path.join(workdir, "config")
    camera_root = os.path.join(workdir, "cameras")
    for folder in (config_dir, camera_root):
        os.mkdir(folder)
    board = Board(os.path.join(workdir, "board"), total, create=True)
    started: list[Child] = []
    hass: HomeAssistant | None = None
    entry: ConfigEntry | None = None
    try:
        async with _database(args.database) as database_url, aiohttp.ClientSession() as session:
            children = await _start_children(args, camera_root, board, started)
            say("starting Home Assistant ...")
            began = time.monotonic()
            hass = await start_home_assistant(config_dir, [workdir])
            block_async_io.enable()  # as bootstrap does: blocking calls in the loop are reported
            entry = await add_entry(
                hass,
                camera_root=camera_root,
                detector_url=children.detector_url,
                llm_url=children.llm_url,
                llm_api=args.llm_api,
                options=_options(args, database_url),
            )
            say(f"Home Assistant and the entry are up in {time.monotonic() - began:.1f} s")
            ready = json.loads(await children.feeder.expect("READY", 300))
            say(
                f"feeder ready: {ready['bases']} base images of "
                f"{ready['mean_bytes'] / 1000:.0f} KB on average"
            )

            # With inotify an upload is taken in when its writer closes it; only polling waits
            # the debounce, which latency then leaves out.
            watch = Watch(board=board, debounce=_waited(args), total=total)
            unsubscribe = [
                hass.bus.async_listen(EVENT_DETECTION, watch.on_detection),
                hass.bus.async_listen(EVENT_SECURITY, watch.on_event),
            ]
            stubs_before = await children.stub_stats(session)
            measurement = Measurement(args, watch, entry)
            await measurement.start()
            rate = "as fast as possible" if not args.rate else f"at {args.rate:g} images/s"
            say(f"feeding {total} images from {args.cameras} cameras {rate} ...")
            await children.feeder.send("GO")
            notes = await _wait_for_detections(watch, board, children.feeder, total, args.stall)
            await measurement.stop()
            stubs_after = await children.stub_stats(session)
            done = json.loads(await children.feeder.expect("DONE", 30)) if not notes else {}

            say("letting the last batches close ...")
            await _drain_events(watch, entry, args.batch_window + args.batch_idle + 30)
            queue = await entry.runtime_data.pipeline.queue_depths()
            stubs_final = await children.stub_stats(session)
            await children.feeder.send("STOP")
            bye = json.loads(await children.feeder.expect("BYE", 30))
            for remove in unsubscribe:
                remove()
            if watch.duplicates:
                notes.append(f"{watch.duplicates} upload(s) were announced twice")
            if watch.foreign:
                notes.append(f"{watch.foreign} detection(s) of unknown files")
            return Run(
                command=command,
                config=_config_summary(args),
                environment=_environment(),
                total=total,
                detect_at=watch.detect_at,
                latencies=watch.latencies,
                event_at=watch.event_at,
                lags=measurement.probe.lags,
                lag_at=measurement.probe.woke_at,
                gc_pauses=measurement.gc.pauses,
                gc_heap=(measurement.gc.heap_objects, measurement.gc.full_pass),
                last_close=max(board.close_times) if board.written else measurement.go_at,
                samples=measurement.sampler.samples,
                go_at=measurement.go_at,
                end_at=measurement.end_at,
                cpu_seconds=measurement.cpu_used,
                machine_seconds=measurement.machine_used,
                peak_rss=measurement.peak_rss,
                thread_cpu=measurement.threads,
                # CPU over the measured run; request counts until every batch was judged.
                stubs={
                    kind: _stub_delta(stubs_before[kind], stubs_after[kind])
                    | {"counts": _stub_delta(stubs_before[kind], stubs_final[kind])["counts"]}
                    for kind in stubs_before
                },
                feeder={
                    **done,
                    "cpu_seconds": (bye["cpu_user"] + bye["cpu_system"])
                    - (ready["cpu_user"] + ready["cpu_system"]),
                    "deleted": bye.get("deleted"),
                    "mean_bytes": ready["mean_bytes"],
                },
                events_total=watch.events,
                event_detections=watch.event_detections,
                queue=queue,
                duplicates=watch.duplicates,
                notes=notes,
                profile=measurement.profiler.profile if measurement.profiler else None,
                extra=measurement.sql.summary(watch.detected) if measurement.sql else [],
            )
    finally:
        say("shutting down ...")
        if hass is not None:
            await stop_home_assistant(hass, entry)
        for child in reversed(started):
            await child.stop()
        board.close()
        await loop.run_in_executor(None, shutil.rmtree, workdir, True)


def _waited(args: argparse.Namespace) -> float:
    """Return the debounce every upload waits: none with inotify (close events), all polling."""
    return args.debounce if args.polling else 0.0


def _config_summary(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cameras": args.cameras,
        "images/camera": args.images,
        "rate": "max" if not args.rate else args.rate,
        "debounce": _waited(args),
        "observer": "polling" if args.polling else "inotify",
        "database": args.database,
        "batch": f"{args.batch_window:g}/{args.batch_idle:g} s",
        "write": args.write,
        "detection confidence": args.confidence,
        "llm_api": args.llm_api,
        **({"options": " ".join(args.option)} if args.option else {}),
    }


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if verbose:
        logging.getLogger("custom_components.ai_security").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; return the exit status."""
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_args(arguments)
    command = shlex.join(["scripts/bench", *arguments])
    _setup_logging(args.verbose)
    problems = PipelineOptions.from_mapping(_options(args, None)).problems()
    if problems:
        say(f"note: the options flow would refuse {problems}; running with them anyway")
    factory: Callable[[], asyncio.AbstractEventLoop] = runner.create_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as bench_runner:
            run = bench_runner.run(bench(args, command))
    except KeyboardInterrupt, asyncio.CancelledError:
        say("interrupted")
        return 130
    except BenchSetupError as err:
        say(f"error: {err}")
        return 1
    sys.stdout.write(render(run) + "\n")
    if args.json == "-":
        sys.stdout.write(as_json(run) + "\n")
    elif args.json:
        # Home Assistant's blocking-I/O guard stays on in this thread (the loop's): write elsewhere.
        writer = threading.Thread(target=_write_text, args=(args.json, as_json(run) + "\n"))
        writer.start()
        writer.join()
    return 0


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
