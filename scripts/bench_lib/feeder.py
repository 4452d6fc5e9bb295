"""The uploading cameras: a process that writes N cameras x M images into the camera folders.

It runs apart from Home Assistant (python -m scripts.bench_lib.feeder), so encoding and writing
cost the benchmarked process nothing. Protocol on stdin/stdout: it makes its base images and the
camera folders, prints "READY <json>", waits for "GO", writes, prints "DONE <json>" when the last
file is closed, keeps deleting processed files until "STOP" (or end of input), then prints
"BYE <json>" with its own CPU time and exits.

Uploads go round-robin over the cameras (upload i to camera i mod N, named img_<i>.jpg) at a fixed
total rate, or as fast as the disk takes them with --rate 0. Two ways to write, both real:

- direct (default), as FTP servers and camera firmwares do: the final name is created, the content
  written in --chunk sized pieces (one inotify "modified" per piece) and the file closed; the close
  time is taken just after close().
- rename: written under name.part (a name the pipeline ignores), then renamed to its final name in
  one step; the close time is taken just after the rename.

Deleting: a file is deleted --keep seconds after its detection is stored (its done flag on the
board); files never processed stay, so nothing is ever deleted before the pipeline read it.
"""

import argparse
from collections import deque
import contextlib
import json
import os
import queue
import resource
import sys
import threading
import time
from typing import Any

from .board import Board
from .images import make_base, unique_copy

CAMERA_FOLDER = "Camera {}"
"""Folder name of camera number n (1-based)."""
FILE_NAME = "img_{:07d}.jpg"
"""File name of upload i; the benchmark reads i back from the detection's path."""


def upload_path(root: str, cameras: int, index: int) -> str:
    """Return where upload index goes: camera index mod cameras, numbered by index."""
    return os.path.join(root, CAMERA_FOLDER.format(index % cameras + 1), FILE_NAME.format(index))


def index_of(path: str) -> int | None:
    """Return the upload number in a path made by upload_path, or None for any other path."""
    name = os.path.basename(path)
    if not (name.startswith("img_") and name.endswith(".jpg")):
        return None
    try:
        return int(name[4:-4])
    except ValueError:
        return None


def _say(word: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{word} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _cpu() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_user": usage.ru_utime, "cpu_system": usage.ru_stime}


class Feeder:
    """Writes the uploads on time and deletes processed ones."""

    def __init__(self, args: argparse.Namespace, board: Board) -> None:
        """Prepare from the command line; nothing is written before run()."""
        self.root: str = args.root
        self.cameras: int = args.cameras
        self.total: int = args.cameras * args.images
        self.rate: float = args.rate
        self.mode: str = args.mode
        self.chunk: int = args.chunk
        self.keep: float = args.keep
        self.delete: bool = not args.keep_files
        self.tag: bytes = args.tag.encode()
        self.board = board
        self.bases: list[bytes] = []
        self.pending: deque[int] = deque()
        self.deleted = 0
        self.late = 0
        """Uploads written more than 50 ms after their due time (the disk or the CPU was busy)."""

    def prepare(self, bases: int) -> dict[str, Any]:
        """Make the base images and the camera folders; return what they are like."""
        started = time.monotonic()
        made = [make_base(seed) for seed in range(bases)]
        self.bases = [base.jpeg for base in made]
        for number in range(1, self.cameras + 1):
            os.makedirs(os.path.join(self.root, CAMERA_FOLDER.format(number)), exist_ok=True)
        sizes = [len(base) for base in self.bases]
        return {
            "bases": len(sizes),
            "sizes": sizes,
            "mean_bytes": sum(sizes) / len(sizes),
            "seconds": round(time.monotonic() - started, 2),
            **_cpu(),
        }

    def _write(self, index: int) -> None:
        content = unique_copy(self.bases[index % len(self.bases)], self.tag + b" %d" % index)
        path = upload_path(self.root, self.cameras, index)
        target = path + ".part" if self.mode == "rename" else path
        with open(target, "wb", buffering=0) as file:
            view = memoryview(content)
            for start in range(0, len(content), self.chunk):
                file.write(view[start : start + self.chunk])
        if self.mode == "rename":
            os.rename(target, path)
        self.board.close_times[index] = time.monotonic()
        self.board.set_written(index + 1)
        if self.delete:
            self.pending.append(index)

    def _sweep(self, now: float, *, until: int | None = None) -> None:
        """Delete the files processed more than keep seconds ago (at most until checks)."""
        checks = len(self.pending) if until is None else min(until, len(self.pending))
        for _ in range(checks):
            index = self.pending.popleft()
            if self.board.done[index] and now - self.board.close_times[index] >= self.keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(upload_path(self.root, self.cameras, index))
                self.deleted += 1
            else:
                self.pending.append(index)

    def run(self) -> dict[str, Any]:
        """Write every upload on schedule; return the write phase's figures."""
        started = time.monotonic()
        last_sweep = started
        for index in range(self.total):
            if self.rate > 0:
                due = started + index / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.05:
                    self.late += 1
            self._write(index)
            now = time.monotonic()
            if self.delete and now - last_sweep >= 0.5:
                # Bounded work per sweep, so deleting never holds the schedule up for long.
                self._sweep(now, until=2000)
                last_sweep = now
        seconds = time.monotonic() - started
        return {
            "written": self.total,
            "seconds": round(seconds, 3),
            "rate": round(self.total / seconds, 1) if seconds > 0 else None,
            "late": self.late,
        }

    def linger(self, stop: threading.Event) -> None:
        """Keep deleting processed files until stop is set."""
        while not stop.wait(0.5):
            if self.delete:
                self._sweep(time.monotonic())


def _read_commands(commands: queue.Queue[str]) -> None:
    for line in sys.stdin:
        commands.put(line.strip())
    commands.put("STOP")


def main() -> None:
    """Run the feeder protocol (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--board", required=True)
    parser.add_argument("--cameras", type=int, required=True)
    parser.add_argument("--images", type=int, required=True, help="per camera")
    parser.add_argument("--rate", type=float, required=True, help="images/s in all; 0: no limit")
    parser.add_argument("--mode", choices=("direct", "rename"), default="direct")
    parser.add_argument("--chunk", type=int, default=64 * 1024)
    parser.add_argument("--keep", type=float, default=2.0)
    parser.add_argument("--keep-files", action="store_true")
    parser.add_argument("--bases", type=int, default=6)
    parser.add_argument("--tag", required=True, help="makes this run's contents unique")
    args = parser.parse_args()

    commands: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_read_commands, args=(commands,), daemon=True).start()
    with Board(args.board, args.cameras * args.images) as board:
        feeder = Feeder(args, board)
        _say("READY", feeder.prepare(args.bases))
        if commands.get() != "GO":
            _say("BYE", {**_cpu(), "deleted": 0, "aborted": True})
            return
        _say("DONE", feeder.run())
        stop = threading.Event()

        def wait_for_stop() -> None:
            commands.get()
            stop.set()

        threading.Thread(target=wait_for_stop, daemon=True).start()
        feeder.linger(stop)
        _say("BYE", {**_cpu(), "deleted": feeder.deleted})


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
