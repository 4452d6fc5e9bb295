"""Notice uploads in the camera folders, and hand each one on as soon as it is complete.

A watchdog observer watches the camera root recursively on its own thread; its events hop onto
the event loop with call_soon_threadsafe. Creating, starting and stopping the observer touch the
file system, so they run in the executor.

With inotify (Linux's native observer) the writer tells when an upload is complete: a file closed
after writing, or renamed into place (from inside the root or from elsewhere), is handed on in
the loop iteration its event reaches, about a millisecond after the close, with no timer. A file
seen only created (one that landed in a new camera folder before its watch existed, or a hard
link) has no close to wait for, so it waits the debounce; when that passes, its modification
time is read off the loop, and a file written to within the debounce, or still empty, waits
another round: a writer that is still at work is not cut short. A close that comes while the
file waits hands it on at once and ends the wait, so an upload is handed on once. A file written
again after its close (reopened, written, closed) is handed on again at that close; intake's
SHA-256 dedupe drops it when the content did not change.

Polling (NFS, SMB, container mounts) and the native observers of other systems report no
closes: there every event restarts the path's debounce, and an upload is handed on once it has
not changed for the debounce time.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Callable
import contextlib
import logging
import os
import time
from typing import Final, override

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from .media import classify
from .storage import BlockingRunner

_LOGGER = logging.getLogger(__name__)

_NATIVE_REPORTS_CLOSES: Final = Observer.__module__ == "watchdog.observers.inotify"
"""Whether watchdog's native observer here is inotify's, the one that reports closed files."""

# Watchdog event filters, so other events are dropped early (inotify is not even asked for
# them); folder events keep the recursive watch following new camera folders. With closes,
# "modified" (one per write) is left out: the close says when writing ended.
_CLOSES_FILTER: Final[list[type[FileSystemEvent]]] = [
    FileCreatedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]
_CHANGES_FILTER: Final[list[type[FileSystemEvent]]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]

_EMPTY_PATIENCE: Final = 30.0
"""Seconds an upload seen only created may stay empty before it is handed on anyway: a writer
that created its file (an FTP server at STOR) may wait for its data connection first."""

type _Route = Callable[[str, str], None]
"""A loop callback taking (path, gone): the upload's path and, for a rename, its old path."""


class _Forwarder(FileSystemEventHandler):
    """Runs on the observer's thread: forwards file events to their loop callback, nothing else."""

    def __init__(self, loop: asyncio.AbstractEventLoop, routes: dict[str, _Route]) -> None:
        self._loop = loop
        self._routes = routes

    @override
    def on_any_event(self, event: FileSystemEvent) -> None:
        route = self._routes.get(event.event_type)
        if route is None or event.is_directory:
            return
        if event.event_type == "moved":
            # dest_path is empty for a file moved out of the root, src_path for one moved in
            # from outside it.
            path, gone = event.dest_path, event.src_path
        else:
            path, gone = event.src_path, ""
        if not path:
            return
        # RuntimeError: the loop closed while the observer was stopping.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(route, os.fsdecode(path), os.fsdecode(gone))


class FolderWatcher:
    """Watches root; calls on_file(path) on the loop for each upload once it is complete."""

    def __init__(
        self,
        root: str,
        on_file: Callable[[str], None],
        *,
        debounce: float,
        polling: bool,
        run_blocking: BlockingRunner,
        polling_interval: float = 1.0,
    ) -> None:
        """Watch root; without a close event, uploads settle after debounce quiet seconds."""
        self.root = root
        self._on_file = on_file
        self.debounce = debounce
        self.polling = polling
        self.closes = not polling and _NATIVE_REPORTS_CLOSES
        """Whether closes and renames hand uploads on at once (inotify, not polling)."""
        self._run_blocking = run_blocking
        self._polling_interval = polling_interval
        self._observer: BaseObserver | None = None
        self._settling: OrderedDict[str, float] = OrderedDict()
        """Uploads waiting for their debounce to pass: path -> loop time it settles at. All
        share one delay, so insertion order (a touched path moves to the end) is deadline order,
        and one timer for the first deadline serves them all. A timer per path would leave two
        handles per upload alive for the debounce, long enough for the garbage collector to
        promote them to its oldest generation, whose full passes stall Home Assistant's loop.
        A close that hands an upload on removes it here and leaves the timer be: when it fires
        it finds nothing due and re-arms for the next deadline, if any."""
        self._timer: asyncio.TimerHandle | None = None
        self._checking: set[str] = set()
        """With closes: uploads whose debounce passed, their modification time being read."""
        self._check_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> int:
        """Return how many uploads are waiting for their debounce (or its check) to pass."""
        return len(self._settling) + len(self._checking)

    async def start(self) -> None:
        """Start the observer (in the executor: it walks the tree to set up its watches)."""
        self._loop = asyncio.get_running_loop()
        self._observer = await self._run_blocking(self._start_observer, self._loop)
        _LOGGER.debug(
            "Watching %s (%s, debounce %.2f s)",
            self.root,
            "polling"
            if self.polling
            else "native events, closes at once"
            if self.closes
            else "native events",
            self.debounce,
        )

    def _start_observer(self, loop: asyncio.AbstractEventLoop) -> BaseObserver:
        observer: BaseObserver
        if self.polling:
            observer = PollingObserver(timeout=self._polling_interval)
        elif self.closes:
            # Already imported by watchdog.observers, which picked it for this platform.
            from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415

            # Full events: a file moved in from outside the root is a move (at once), not a
            # creation (the debounce).
            observer = InotifyObserver(generate_full_events=True)
        else:
            observer = Observer()
        observer.name = f"ai_security watcher {self.root}"
        routes: dict[str, _Route]
        if self.closes:
            routes = {"created": self._touch, "closed": self._arrived, "moved": self._arrived}
        else:
            routes = {"created": self._touch, "modified": self._touch, "moved": self._touch}
        observer.schedule(
            _Forwarder(loop, routes),
            self.root,
            recursive=True,
            event_filter=_CLOSES_FILTER if self.closes else _CHANGES_FILTER,
        )
        observer.start()
        return observer

    async def stop(self) -> None:
        """Stop the observer and join its thread; forget uploads still settling."""
        self._loop = None  # events still in flight from the observer are ignored from now on
        observer, self._observer = self._observer, None
        if observer is not None:
            await self._run_blocking(_stop_observer, observer)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self._check_task = self._check_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._settling.clear()
        self._checking.clear()

    def _touch(self, path: str, gone: str) -> None:
        """(Re)start path's debounce; runs on the loop."""
        loop = self._loop
        if loop is None:
            return
        settling = self._settling
        if gone:
            settling.pop(gone, None)
        if classify(self.root, path) is None:
            return
        deadline = loop.time() + self.debounce
        if path in settling:
            settling.move_to_end(path)
        settling[path] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._sweep)

    def _arrived(self, path: str, gone: str) -> None:
        """Hand path on now: its writer closed it, or it was renamed into place (loop)."""
        if self._loop is None:
            return
        if gone:
            self._settling.pop(gone, None)
            self._checking.discard(gone)
        # A path that was waiting was classified when it was touched.
        waiting = self._settling.pop(path, None) is not None
        if self._checking and path in self._checking:
            self._checking.discard(path)
            waiting = True
        if waiting or classify(self.root, path) is not None:
            self._hand_on(path)

    def _sweep(self) -> None:
        """Take every upload whose debounce has passed; wait for the next one's."""
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        settling = self._settling
        due: list[str] = []
        while settling:
            path = next(iter(settling))
            deadline = settling[path]
            if deadline > now:
                self._timer = loop.call_at(deadline, self._sweep)
                break
            del settling[path]
            due.append(path)
        if not self.closes:
            for path in due:
                self._hand_on(path)
        elif due:
            self._checking.update(due)
            if self._check_task is None:
                self._check_task = loop.create_task(self._check(), name="ai_security watcher check")

    async def _check(self) -> None:
        """Hand on the settled uploads that nobody is writing to; give the others another round.

        Only uploads seen without a close get here; with inotify that is rare, so reading their
        modification times in the executor costs nothing on the loop for ordinary uploads.
        """
        try:
            while self._checking:
                batch = list(self._checking)
                busy, gone = await self._run_blocking(
                    _being_written, batch, self.debounce, _EMPTY_PATIENCE
                )
                if self._loop is None:
                    return
                for path in batch:
                    if path not in self._checking:
                        continue  # closed or renamed meanwhile: already handed on
                    self._checking.discard(path)
                    if path in busy:
                        self._touch(path, "")
                    elif path not in gone:
                        self._hand_on(path)
        except Exception:
            # Unexpected; hand them on as the debounce alone would have (intake checks them).
            _LOGGER.exception("Checking uploads under %s failed", self.root)
            left, self._checking = self._checking, set()
            if self._loop is not None:
                for path in left:
                    self._hand_on(path)
        finally:
            self._check_task = None

    def _hand_on(self, path: str) -> None:
        try:
            self._on_file(path)
        except Exception:
            _LOGGER.exception("Handling the upload %s failed", path)


def _being_written(
    paths: list[str], window: float, empty_patience: float
) -> tuple[set[str], set[str]]:
    """Return (paths written to within window or still empty, paths gone); blocking.

    A modification time in the future is somebody's clock (a copy that kept its camera's time),
    not a write in progress.
    """
    busy: set[str] = set()
    gone: set[str] = set()
    now = time.time()
    for path in paths:
        try:
            stat = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            gone.add(path)
            continue
        except OSError:
            continue  # intake reports what is wrong with it
        age = now - stat.st_mtime
        if 0 <= age < (empty_patience if stat.st_size == 0 else window):
            busy.add(path)
    return busy, gone


def _stop_observer(observer: BaseObserver) -> None:
    observer.stop()
    observer.join()


def find_uploads(root: str) -> list[str]:
    """Return every upload path under root, oldest first (blocking: run it in the executor)."""
    return [path for _mtime, path in scan_uploads(root)]


def scan_uploads(root: str) -> list[tuple[float, str]]:
    """Return (modification time, path) of every upload under root, oldest first (blocking).

    Used at start to pick up files that arrived while Home Assistant was not running. Symbolic
    links to folders are not followed, so a link cannot pull a foreign tree into the scan.
    """
    found: list[tuple[float, str]] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in files:
            path = os.path.join(folder, name)
            if classify(root, path) is None:
                continue
            try:
                found.append((os.stat(path).st_mtime, path))
            except OSError:  # vanished meanwhile, or a dangling link
                continue
    found.sort()
    return found
