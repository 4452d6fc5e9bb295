"""Notice uploads in the camera folders, and hand each one on once it has stopped changing.

A watchdog observer (inotify, or polling for NFS/SMB/container mounts) watches the camera root
recursively on its own thread. Its events hop onto the event loop with call_soon_threadsafe,
where each path gets a debounce timer that every new event restarts: a camera writing a file over
several seconds is read once, when it is complete. Creating, starting and stopping the observer
touch the file system, so they run in the executor.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
import contextlib
import logging
import os

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

# With inotify, a file closed after writing (or renamed into place) is an upload that may be
# complete: forwarding those, and not the many "modified" events of every write, spares the
# loop. Creations are forwarded too: for files that land in a folder before its watch exists,
# watchdog reports only a creation. The polling observer sees no closes, so it forwards changes.
_NATIVE_EVENTS = frozenset({"created", "closed", "moved"})
_POLLING_EVENTS = frozenset({"created", "modified", "moved"})
# The same as watchdog event filters, so the others are dropped early (inotify is not even
# asked for them); folder events keep the recursive watch following new camera folders.
_NATIVE_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileClosedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]
_POLLING_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirMovedEvent,
]


class _Forwarder(FileSystemEventHandler):
    """Runs on the observer's thread: forwards interesting paths to the loop, nothing else."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        touch: Callable[[str], None],
        events: frozenset[str],
    ) -> None:
        self._loop = loop
        self._touch = touch
        self._events = events

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in self._events:
            return
        path = event.dest_path if event.event_type == "moved" else event.src_path
        if not path:
            return
        path = os.fsdecode(path)
        # RuntimeError: the loop closed while the observer was stopping.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._touch, path)


class FolderWatcher:
    """Watches root; calls on_file(path) on the loop for each upload once it has settled."""

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
        """Watch root; uploads settle after debounce seconds without a new event on their path."""
        self.root = root
        self._on_file = on_file
        self.debounce = debounce
        self.polling = polling
        self._run_blocking = run_blocking
        self._polling_interval = polling_interval
        self._observer: BaseObserver | None = None
        self._settling: OrderedDict[str, float] = OrderedDict()
        """Uploads waiting for their debounce to pass: path -> loop time it settles at. All
        share one delay, so insertion order (a touched path moves to the end) is deadline order,
        and one timer for the first deadline serves them all. A timer per path would leave two
        handles per upload alive for the debounce, long enough for the garbage collector to
        promote them to its oldest generation, whose full passes stall Home Assistant's loop."""
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> int:
        """Return how many uploads are waiting for their debounce to pass."""
        return len(self._settling)

    async def start(self) -> None:
        """Start the observer (in the executor: it walks the tree to set up its watches)."""
        self._loop = asyncio.get_running_loop()
        self._observer = await self._run_blocking(self._start_observer, self._loop)
        _LOGGER.debug(
            "Watching %s (%s, debounce %.2f s)",
            self.root,
            "polling" if self.polling else "native events",
            self.debounce,
        )

    def _start_observer(self, loop: asyncio.AbstractEventLoop) -> BaseObserver:
        observer: BaseObserver = (
            PollingObserver(timeout=self._polling_interval) if self.polling else Observer()
        )
        observer.name = f"ai_security watcher {self.root}"
        events = _POLLING_EVENTS if self.polling else _NATIVE_EVENTS
        observer.schedule(
            _Forwarder(loop, self._touch, events),
            self.root,
            recursive=True,
            event_filter=_POLLING_FILTER if self.polling else _NATIVE_FILTER,
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
        self._settling.clear()

    def _touch(self, path: str) -> None:
        """(Re)start path's debounce; runs on the loop."""
        loop = self._loop
        if loop is None or classify(self.root, path) is None:
            return
        settling = self._settling
        deadline = loop.time() + self.debounce
        if path in settling:
            settling.move_to_end(path)
        settling[path] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._sweep)

    def _sweep(self) -> None:
        """Hand on every upload whose debounce has passed; wait for the next one's."""
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        settling = self._settling
        while settling:
            path = next(iter(settling))
            deadline = settling[path]
            if deadline > now:
                self._timer = loop.call_at(deadline, self._sweep)
                return
            del settling[path]
            try:
                self._on_file(path)
            except Exception:
                _LOGGER.exception("Handling the upload %s failed", path)


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
