"""core.watcher with real watchdog observers (inotify and polling) on a temporary camera root."""

import asyncio
from collections.abc import AsyncIterator, Callable
import io
import os
from pathlib import Path
import threading
import time

import pytest

from custom_components.ai_security.core.watcher import FolderWatcher, find_uploads


class Uploads:
    """Collects what the watcher hands on, with the file's size and the time at that moment."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.times: list[float] = []
        """time.monotonic() of each hand-on, the clock the tests take write times from."""
        self.changed = asyncio.Event()

    def __call__(self, path: str) -> None:
        self.times.append(time.monotonic())
        self.seen.append((path, os.path.getsize(path) if os.path.exists(path) else -1))
        self.changed.set()

    async def wait_for(self, count: int, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


type Watch = Callable[[float], tuple[FolderWatcher, Uploads]]

native_only = pytest.mark.parametrize("watch", ["native"], indirect=True)
"""inotify: closes and renames hand uploads on at once."""
polling_only = pytest.mark.parametrize("watch", ["polling"], indirect=True)
"""No close events: every upload waits the debounce."""


@pytest.fixture(params=["native", "polling"])
async def watch(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Watch]:
    """Return a factory for a watcher over tmp_path/"root" (not started); all are stopped after."""
    root = tmp_path / "root"
    root.mkdir()
    watchers: list[FolderWatcher] = []

    async def to_thread(fn: Callable[..., object], *args: object) -> object:
        return await asyncio.to_thread(fn, *args)

    def make(debounce: float) -> tuple[FolderWatcher, Uploads]:
        uploads = Uploads()
        watcher = FolderWatcher(
            str(root),
            uploads,
            debounce=debounce,
            polling=request.param == "polling",
            run_blocking=to_thread,
            polling_interval=0.05,
        )
        # The lab is Linux: its native observer is inotify, which reports closes.
        assert watcher.closes is (request.param == "native")
        watchers.append(watcher)
        return watcher, uploads

    yield make
    for watcher in watchers:
        await watcher.stop()


async def _open(path: Path) -> io.FileIO:
    """Open path for writing, unbuffered: each write() is one system call the watcher can see."""
    return await asyncio.to_thread(io.FileIO, path, "w")


@native_only
async def test_native_hands_on_a_file_at_its_close_not_before(watch: Watch) -> None:
    """A file created empty, then written in chunks over about 1 s, is handed on once, complete.

    The writer keeps it open throughout: it stays empty for twice the debounce (an FTP server
    waiting for its data connection), then gets a chunk every 0.2 s. Only its close may hand it
    on, at once; each debounce that passes on the way finds it empty or just written to.
    """
    watcher, uploads = watch(0.3)
    await watcher.start()
    camera = Path(watcher.root) / "Front Door"
    await asyncio.to_thread(camera.mkdir)
    path = camera / "snap.jpg"
    file = await _open(path)
    try:
        await asyncio.sleep(0.6)
        for n in range(5):
            await asyncio.to_thread(file.write, bytes([n]) * 10_000)
            await asyncio.sleep(0.2)
        assert uploads.seen == []
        assert watcher.pending == 1
    finally:
        closing_at = time.monotonic()
        await asyncio.to_thread(file.close)
    closed_at = time.monotonic()
    await uploads.wait_for(1)
    assert uploads.seen == [(str(path), 50_000)]
    assert closing_at <= uploads.times[0] < closed_at + watcher.debounce / 2
    assert watcher.pending == 0
    await asyncio.sleep(2 * watcher.debounce)  # nothing more may come
    assert len(uploads.seen) == 1


@native_only
async def test_native_hands_on_closed_and_renamed_files_at_once(
    watch: Watch, tmp_path: Path
) -> None:
    """Closed after writing, renamed into place, or moved in from elsewhere: no debounce (2 s).

    The bound (half the debounce) only tells "at once" from "after the debounce".
    """
    watcher, uploads = watch(2.0)
    await watcher.start()
    camera = Path(watcher.root) / "Garage"
    elsewhere = tmp_path / "incoming"  # outside the root, on the same file system
    await asyncio.to_thread(camera.mkdir)
    await asyncio.to_thread(elsewhere.mkdir)

    def write(path: Path) -> float:
        path.write_bytes(b"w" * 3000)
        return time.monotonic()

    def renamed(source: Path, target: Path) -> float:
        source.write_bytes(b"r" * 4000)
        source.rename(target)
        return time.monotonic()

    steps = [
        (camera / "written.jpg", lambda: write(camera / "written.jpg"), 3000),
        (
            camera / "renamed.jpg",
            lambda: renamed(camera / "renamed.jpg.part", camera / "renamed.jpg"),
            4000,
        ),
        (
            camera / "moved_in.jpg",
            lambda: renamed(elsewhere / "moved_in.jpg", camera / "moved_in.jpg"),
            4000,
        ),
    ]
    for count, (path, act, size) in enumerate(steps, start=1):
        done_at = await asyncio.to_thread(act)
        await uploads.wait_for(count)
        assert uploads.seen[-1] == (str(path), size)
        assert uploads.times[-1] - done_at < watcher.debounce / 2
    assert watcher.pending == 0
    await asyncio.sleep(watcher.debounce + 0.5)  # no debounce hands any of them on again
    assert len(uploads.seen) == 3


@native_only
async def test_native_waiting_upload_closed_is_handed_on_once(watch: Watch) -> None:
    """Created (its debounce started), then closed: handed on at the close, the wait dropped."""
    watcher, uploads = watch(0.5)
    await watcher.start()
    camera = Path(watcher.root) / "Porch"
    await asyncio.to_thread(camera.mkdir)
    path = camera / "clip.mp4"
    file = await _open(path)
    await asyncio.to_thread(file.write, b"v" * 5000)
    async with asyncio.timeout(5):
        while watcher.pending == 0:
            await asyncio.sleep(0.01)
    await asyncio.to_thread(file.close)
    closed_at = time.monotonic()
    await uploads.wait_for(1)
    assert uploads.times[0] - closed_at < watcher.debounce / 2
    assert watcher.pending == 0
    await asyncio.sleep(2 * watcher.debounce)
    assert uploads.seen == [(str(path), 5000)]


@native_only
async def test_native_created_only_upload_waits_the_debounce(watch: Watch, tmp_path: Path) -> None:
    """A file that only reports its creation (a hard link: no close) arrives after the debounce."""
    watcher, uploads = watch(0.5)
    await watcher.start()
    camera = Path(watcher.root) / "Yard"
    original = tmp_path / "original.jpg"

    def prepare() -> None:
        camera.mkdir()
        original.write_bytes(b"l" * 2000)
        os.utime(original, (time.time() - 3600, time.time() - 3600))  # written long ago

    await asyncio.to_thread(prepare)
    linked = camera / "linked.jpg"
    await asyncio.to_thread(os.link, original, linked)
    linked_at = time.monotonic()
    await asyncio.sleep(watcher.debounce / 2)
    assert uploads.seen == []
    assert watcher.pending == 1
    await uploads.wait_for(1)
    assert uploads.seen == [(str(linked), 2000)]
    assert uploads.times[0] - linked_at >= watcher.debounce
    await asyncio.sleep(2 * watcher.debounce)
    assert len(uploads.seen) == 1


@polling_only
async def test_polling_waits_the_debounce_for_every_upload(watch: Watch) -> None:
    """Polling sees no closes: a written file and a renamed one both wait the debounce."""
    watcher, uploads = watch(0.5)
    await watcher.start()
    camera = Path(watcher.root) / "Shed"
    await asyncio.to_thread(camera.mkdir)

    def write_both() -> float:
        (camera / "a.jpg").write_bytes(b"a" * 100)
        (camera / "b.jpg.part").write_bytes(b"b" * 200)
        (camera / "b.jpg.part").rename(camera / "b.jpg")
        return time.monotonic()

    written_at = await asyncio.to_thread(write_both)
    await uploads.wait_for(2)
    assert sorted(uploads.seen) == [(str(camera / "a.jpg"), 100), (str(camera / "b.jpg"), 200)]
    assert min(uploads.times) - written_at >= watcher.debounce
    await asyncio.sleep(2 * watcher.debounce)
    assert len(uploads.seen) == 2


@polling_only
async def test_polling_hands_on_a_file_written_in_chunks_once(watch: Watch) -> None:
    """A file written over 2 s (opened, appended to, closed each time) is handed on once, complete.

    With inotify each of those closes would hand it on (intake's dedupe drops repeats); polling
    only sees the changes, and the debounce waits for them to stop.
    """
    watcher, uploads = watch(0.5)
    await watcher.start()
    camera = Path(watcher.root) / "Front Door" / "2026-11-26"
    await asyncio.to_thread(camera.mkdir, parents=True)
    path = camera / "snap.jpg"
    chunk = b"x" * 10_000
    for _ in range(10):
        await asyncio.to_thread(_append, path, chunk)
        await asyncio.sleep(0.2)
    await uploads.wait_for(1)
    await asyncio.sleep(1.0)  # nothing more may come
    assert uploads.seen == [(str(path), 100_000)]


def _append(path: Path, data: bytes) -> None:
    with path.open("ab") as file:
        file.write(data)


async def test_ignored_files_and_renames(watch: Watch) -> None:
    """Temporary, hidden, root-level and non-media files are ignored; a rename to .jpg counts."""
    watcher, uploads = watch(0.1)
    root = Path(watcher.root)
    await asyncio.to_thread((root / "Garage" / ".thumbs").mkdir, parents=True)
    await watcher.start()

    def write_all() -> None:
        (root / "loose.jpg").write_bytes(b"x")
        (root / "Garage" / ".hidden.jpg").write_bytes(b"x")
        (root / "Garage" / ".thumbs" / "t.jpg").write_bytes(b"x")
        (root / "Garage" / "notes.txt").write_bytes(b"x")
        (root / "Garage" / "clip.mp4.part").write_bytes(b"x" * 2000)
        (root / "Garage" / "clip.mp4.part").rename(root / "Garage" / "clip.mp4")

    await asyncio.to_thread(write_all)
    await uploads.wait_for(1)
    await asyncio.sleep(0.5)
    assert uploads.seen == [(str(root / "Garage" / "clip.mp4"), 2000)]


async def test_many_files_at_once(watch: Watch) -> None:
    """A burst of 300 files across new camera folders hands on every one exactly once."""
    watcher, uploads = watch(0.2)
    await watcher.start()
    root = Path(watcher.root)

    def burst() -> list[str]:
        paths = []
        for camera in ("Cam A", "Caméra Jardin", "Cam C"):
            (root / camera).mkdir()
            for n in range(100):
                path = root / camera / f"{n:03}.jpg"
                path.write_bytes(b"y" * 100)
                paths.append(str(path))
        return paths

    paths = await asyncio.to_thread(burst)
    await uploads.wait_for(300, seconds=30)
    await asyncio.sleep(0.5)
    assert sorted(path for path, _size in uploads.seen) == sorted(paths)


async def test_stop_joins_the_observer_and_forgets_pending(watch: Watch) -> None:
    """After stop() the observer's threads are gone and settling uploads are dropped."""

    def watcher_threads() -> set[threading.Thread]:
        # The loop's default executor (asyncio_N, or Home Assistant's SyncWorker_N threads in
        # this harness) comes and goes on its own.
        return {
            t for t in threading.enumerate() if not t.name.startswith(("asyncio", "SyncWorker"))
        }

    before = watcher_threads()
    watcher, uploads = watch(5.0)
    await watcher.start()
    assert watcher_threads() - before
    await asyncio.to_thread((Path(watcher.root) / "Cam").mkdir)
    file = await _open(Path(watcher.root) / "Cam" / "a.jpg")  # still open: no close yet
    try:
        await asyncio.to_thread(file.write, b"x")
        async with asyncio.timeout(5):
            while watcher.pending == 0:
                await asyncio.sleep(0.02)
        await watcher.stop()
    finally:
        await asyncio.to_thread(file.close)
    assert watcher.pending == 0
    assert watcher_threads() - before == set()
    await asyncio.sleep(0.2)  # the close comes after stop(): nothing is handed on
    assert uploads.seen == []


def test_find_uploads(tmp_path: Path) -> None:
    """The start-up scan finds uploads oldest first, skipping hidden folders and linked trees."""
    root = tmp_path / "root"
    (root / "Cam" / "2026").mkdir(parents=True)
    (root / ".trash" / "Cam").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "foreign.jpg").write_bytes(b"x")
    (root / "Linked").symlink_to(outside, target_is_directory=True)
    new = root / "Cam" / "new.jpg"
    old = root / "Cam" / "2026" / "old.mp4"
    for path in (
        new,
        old,
        root / ".trash" / "Cam" / "x.jpg",
        root / "top.jpg",
        root / "Cam" / "a.txt",
    ):
        path.write_bytes(b"x")
    os.utime(old, (1_000_000, 1_000_000))
    assert find_uploads(str(root)) == [str(old), str(new)]


@polling_only
async def test_a_touched_upload_waits_alone(watch: Watch) -> None:
    """Writing to an upload again restarts its debounce only: one written later settles first."""
    watcher, uploads = watch(0.6)
    await watcher.start()
    camera = Path(watcher.root) / "Yard"
    await asyncio.to_thread(camera.mkdir)
    first, second = camera / "first.jpg", camera / "second.jpg"
    await asyncio.to_thread(_append, first, b"a" * 100)
    await asyncio.sleep(0.15)
    await asyncio.to_thread(_append, second, b"b" * 100)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(_append, first, b"a" * 100)  # first's debounce starts over
    await uploads.wait_for(2)
    assert uploads.seen == [(str(second), 100), (str(first), 200)]
    assert watcher.pending == 0
