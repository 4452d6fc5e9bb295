"""What the benchmark watches inside Home Assistant's process: loop lag, RSS, CPU, threads.

All of it is cheap on purpose, so watching does not change what is watched: the lag probe is one
timer on the loop every 10 ms; the sampler is a thread that reads /proc twice a second; per-thread
CPU comes from /proc/self/task at the start and the end only. The optional profiler (--profile)
is the exception: it samples every thread's Python stack about 100 times a second and costs a
few percent of a core, so figures from a profiled run are not the benchmark's figures.
"""

import array
import asyncio
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
import gc
import os
import re
import sys
import threading
import time
from types import FrameType

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    """Return the process's resident set size now."""
    with open("/proc/self/statm", "rb") as file:
        return int(file.read().split()[1]) * _PAGE


def peak_rss_bytes() -> int:
    """Return the process's peak resident set size (VmHWM) so far."""
    with open("/proc/self/status", "rb") as file:
        for line in file:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds() -> float:
    """Return the CPU time (user and system, all threads) the process has used so far."""
    times = os.times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """Return the CPU seconds all processes on the machine have used since boot (/proc/stat)."""
    with open("/proc/stat", "rb") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and iowait
    return (sum(fields[:8]) - idle) / _TICK


class GcProbe:
    """Times the garbage collector's passes (all threads stop for them, the loop included)."""

    def __init__(self) -> None:
        """Record once attach() is called."""
        self.pauses: list[tuple[int, float, float]] = []
        """(generation, seconds, monotonic time at the end) per collection."""
        self._started = 0.0
        self.heap_objects = 0
        """Objects the collector tracked at GO."""
        self.full_pass = 0.0
        """Seconds the full collection at GO took: what any full pass during the run costs."""

    def settle(self) -> None:
        """Run one full collection now, before the measured run, and time it.

        Home Assistant's start-up leaves a few hundred thousand objects queued for the oldest
        generation; the collector examines them in one full pass at a moment of its choosing,
        which would otherwise land inside the run and be charged to the pipeline. Benchmark
        harnesses (pyperf among them) collect before measuring for the same reason. Full passes
        the run itself causes are still recorded (attach()).
        """
        self.heap_objects = len(gc.get_objects())
        started = time.perf_counter()
        gc.collect()
        self.full_pass = time.perf_counter() - started

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._started = now
        else:
            self.pauses.append((info.get("generation", -1), now - self._started, now))

    def attach(self) -> None:
        """Start recording."""
        gc.callbacks.append(self._callback)

    def detach(self) -> None:
        """Stop recording."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)


class LagProbe:
    """How late the event loop wakes a task that sleeps `interval` seconds over and over.

    A late wake-up is time the loop spent on something else (a callback that ran long, a blocking
    call) or waiting for the GIL, which every Home Assistant task and timer suffers alike.
    """

    def __init__(self, interval: float = 0.010) -> None:
        """Probe every interval seconds once run() is started as a task."""
        self.interval = interval
        self.lags = array.array("d")
        self.woke_at = array.array("d")
        """When each lag was measured (monotonic), to tell when the worst ones happened."""
        self.last_wake = time.monotonic()
        """When the probe last ran; the profiler reads it from its thread to catch stalls."""
        self.running = False

    async def run(self) -> None:
        """Sleep and measure until cancelled or stopped."""
        loop = asyncio.get_running_loop()
        self.running = True
        while self.running:
            start = loop.time()
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.lags.append(max(0.0, now - start - self.interval))
            self.woke_at.append(now)
            self.last_wake = now


@dataclass(slots=True)
class Sample:
    """One look at the process: when, how big, how much CPU, how far the run was."""

    at: float
    rss: int
    cpu: float
    written: int
    detected: int


class Sampler(threading.Thread):
    """Samples RSS and CPU every interval seconds and prints progress every `report` seconds."""

    def __init__(
        self,
        progress: Callable[[], tuple[int, int]],
        *,
        interval: float = 0.5,
        report: float = 5.0,
        say: Callable[[str], None] | None = None,
    ) -> None:
        """progress() returns (written, detected) uploads; say prints a progress line."""
        super().__init__(name="bench sampler", daemon=True)
        self._progress = progress
        self._interval = interval
        self._report = report
        self._say = say
        self._stop = threading.Event()
        self.samples: list[Sample] = []

    def take(self) -> Sample:
        """Take and keep one sample now."""
        written, detected = self._progress()
        sample = Sample(time.monotonic(), rss_bytes(), cpu_seconds(), written, detected)
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        """Sample until stop()."""
        first = self.take()
        last_report = first
        while not self._stop.wait(self._interval):
            sample = self.take()
            if self._say is not None and sample.at - last_report.at >= self._report:
                span = sample.at - last_report.at
                self._say(
                    f"  t={sample.at - first.at:5.0f} s  written {sample.written:6d}  "
                    f"detected {sample.detected:6d} "
                    f"({(sample.detected - last_report.detected) / span:5.0f}/s)  "
                    f"backlog {sample.written - sample.detected:5d}  "
                    f"RSS {sample.rss / 2**20:6.1f} MiB  "
                    f"CPU {(sample.cpu - last_report.cpu) / span * 100:3.0f}%"
                )
                last_report = sample

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self.join()


def _thread_name(thread: threading.Thread) -> str:
    """Return a thread's name, or its class for the unnamed ones (watchdog's emitter, buffer)."""
    if thread.name.startswith("Thread-") and type(thread) is not threading.Thread:
        return type(thread).__name__
    return thread.name


def thread_cpu() -> dict[str, float]:
    """Return CPU seconds per live thread, keyed by its Python name (or the kernel's)."""
    names = {thread.native_id: _thread_name(thread) for thread in threading.enumerate()}
    result: dict[str, float] = {}
    for tid_text in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid_text}/stat", "rb") as file:
                stat = file.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        comm_end = stat.rindex(b")")
        fields = stat[comm_end + 2 :].split()
        # Fields 14 and 15 of stat (utime, stime), counted after the ")" that ends the name.
        seconds = (int(fields[11]) + int(fields[12])) / _TICK
        tid = int(tid_text)
        name = names.get(tid) or stat[stat.index(b"(") + 1 : comm_end].decode(errors="replace")
        result[f"{name} [{tid}]"] = seconds
    return result


_GROUPS: tuple[tuple[str, str], ...] = (
    (r"^MainThread", "event loop (MainThread)"),
    (r"^ai_security_db", "database thread (ai_security_db)"),
    (r"^SyncWorker", "executor (SyncWorker_*)"),
    (r"^ai_security watcher", "watchdog observer (dispatch)"),
    (r"^bench ", "benchmark probes"),
)


def thread_group(name: str) -> str:
    """Return the group a thread's CPU is reported under."""
    for pattern, group in _GROUPS:
        if re.search(pattern, name):
            return group
    return re.sub(r"[_-]?\d+$", "", name.split(" [", maxsplit=1)[0]) or "other"


def thread_cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Return CPU seconds per thread group between two thread_cpu() readings."""
    groups: dict[str, float] = defaultdict(float)
    for key, seconds in after.items():
        groups[thread_group(key)] += seconds - before.get(key, 0.0)
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


# Leaf frames where a thread waits instead of working: not counted as busy samples.
_IDLE_LEAVES = frozenset(
    {
        ("selectors.py", "select"),
        ("thread.py", "_worker"),
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("queue.py", "get"),
        ("probes.py", "run"),
        ("inotify_c.py", "do_poll"),
        ("__init__.py", "_run_safe_shutdown_loop"),
    }
)

# Frames every busy sample of a thread has (thread start-up, the loop's dispatch): left out of the
# inclusive counts, where they would only push the informative ones off the list.
_PLUMBING = re.compile(
    r"\((threading\.py|concurrent/futures/thread\.py|asyncio/(events|base_events|runners)\.py"
    r"|<frozen runpy>|/work/.*/scripts/bench_lib/.*|.*__main__\.py):"
)


@dataclass
class Profile:
    """Busy stack samples per thread group: by leaf function and by any function on the stack."""

    samples: Counter[str] = field(default_factory=Counter)
    leaf: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    inclusive: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Functions on the stack (each counted once per sample), plumbing left out."""
    ours: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """The integration's own functions on the stack (each counted once per sample)."""
    stalls: Counter[str] = field(default_factory=Counter)
    """The event loop's stack (innermost first) in samples taken while the loop was stalled."""
    stall_ticks: int = 0
    ticks: int = 0


def _where(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    for marker in ("site-packages/", "custom_components/", "lib/python3.14/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{code.co_qualname} ({path}:{code.co_firstlineno})"


def _stack(top: FrameType, depth: int = 8) -> str:
    """Return the innermost depth frames of a stack, plumbing left out, innermost first."""
    frames: list[str] = []
    frame: FrameType | None = top
    while frame is not None and len(frames) < depth:
        where = _where(frame)
        if not _PLUMBING.search(where):
            frames.append(where)
        frame = frame.f_back
    return " <- ".join(frames)


class StackSampler(threading.Thread):
    """A sampling profiler over every thread, for where the time goes (see the module docstring).

    A sample counts as busy unless the thread's innermost Python frame is one where threads wait
    (the selector, an idle executor worker, a lock). A thread inside a C call that released the GIL
    (reading a file, decoding a JPEG, sending on a socket) shows the Python function that called it.
    """

    def __init__(self, hz: float = 100.0, probe: LagProbe | None = None) -> None:
        """Sample hz times a second once started; with probe, also record the loop's stalls.

        A stall is a sample taken when the lag probe has not run for 5 of its intervals: the
        loop thread's stack then shows what kept it (a long callback, or a wait for the GIL).
        """
        super().__init__(name="bench profiler", daemon=True)
        self._probe = probe
        self._period = 1.0 / hz
        self._stop = threading.Event()
        self.profile = Profile()

    def run(self) -> None:
        """Sample until stop()."""
        me, main = threading.get_ident(), threading.main_thread().ident
        names = {thread.ident: _thread_name(thread) for thread in threading.enumerate()}
        while not self._stop.wait(self._period):
            self.profile.ticks += 1
            stalled = (
                self._probe is not None
                and self._probe.running
                and time.monotonic() - self._probe.last_wake > 5 * self._probe.interval
            )
            if stalled:
                self.profile.stall_ticks += 1
            for ident, top in sys._current_frames().items():  # noqa: SLF001 - the profiler's input
                if ident == me:
                    continue
                if stalled and ident == main:
                    self.profile.stalls[_stack(top)] += 1
                if ident not in names:
                    names = {t.ident: _thread_name(t) for t in threading.enumerate()}
                group = thread_group(names.get(ident, "other"))
                leaf = (os.path.basename(top.f_code.co_filename), top.f_code.co_name)
                if leaf in _IDLE_LEAVES:
                    continue
                self.profile.samples[group] += 1
                self.profile.leaf[group][_where(top)] += 1
                seen: set[str] = set()
                frame: FrameType | None = top
                while frame is not None:
                    where = _where(frame)
                    if where not in seen and not _PLUMBING.search(where):
                        seen.add(where)
                        self.profile.inclusive[group][where] += 1
                        if "custom_components" in frame.f_code.co_filename:
                            self.profile.ours[group][where] += 1
                    frame = frame.f_back

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop.set()
        self.join()
