"""core.watcher with real watchdog observers (inotify and polling) on a temporary camera root."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import os
from pathlib import Path
import threading

import pytest

from custom_components.ai_security.core.watcher import FolderWatcher, find_uploads


class Uploads:
    """Collects what the watcher hands on, with the file's size at that moment."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.changed = asyncio.Event()

    def __call__(self, path: str) -> None:
        self.seen.append((path, os.path.getsize(path) if os.path.exists(path) else -1))
        self.changed.set()

    async def wait_for(self, count: int, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture(params=["native", "polling"])
async def watch(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[float], tuple[FolderWatcher, Uploads]]]:
    """Return a factory for a started watcher over tmp_path/"root"; all are stopped afterwards."""
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
        watchers.append(watcher)
        return watcher, uploads

    yield make
    for watcher in watchers:
        await watcher.stop()


async def test_file_written_in_chunks_is_handed_on_once(
    watch: Callable[[float], tuple[FolderWatcher, Uploads]],
) -> None:
    """A file written over 2 s is handed on once, after its last write, complete."""
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


async def test_ignored_files_and_renames(
    watch: Callable[[float], tuple[FolderWatcher, Uploads]],
) -> None:
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


async def test_many_files_at_once(
    watch: Callable[[float], tuple[FolderWatcher, Uploads]],
) -> None:
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


async def test_stop_joins_the_observer_and_forgets_pending(
    watch: Callable[[float], tuple[FolderWatcher, Uploads]],
) -> None:
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
    await asyncio.to_thread((Path(watcher.root) / "Cam" / "a.jpg").write_bytes, b"x")
    async with asyncio.timeout(5):
        while watcher.pending == 0:
            await asyncio.sleep(0.02)
    await watcher.stop()
    assert watcher.pending == 0
    assert watcher_threads() - before == set()
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


async def test_a_touched_upload_waits_alone(
    watch: Callable[[float], tuple[FolderWatcher, Uploads]],
) -> None:
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
