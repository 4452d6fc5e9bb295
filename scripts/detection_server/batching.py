"""Dynamic batching: images from concurrent requests share one forward pass.

A GPU runs a batch of 8 images in little more time than one, so requests that arrive together
should be computed together. Each request puts its image in a queue and awaits a future; a
worker takes the first waiting image, waits at most max_wait seconds for up to max_batch - 1
more, runs them in one backend call on its own thread, and resolves every future.

The wait is skipped when nothing else is on its way: the server counts the requests whose
images are still being decoded (incoming), and when none are and the queue is empty, the batch
goes at once. So a lone request never pays max_wait, while under load the requests that arrive
during a forward pass are all in the queue when it ends and form the next batch.
max_batch=1 turns batching off (every image is its own pass).

The queue has a bound: past it, submit() raises QueueFullError at once, and the server answers
503 with Retry-After, instead of letting latency grow without limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import time
from typing import Any

from .backends import Backend, Detection, Prepared


class QueueFullError(Exception):
    """The server already holds as many images as it may; the client should come back later."""


@dataclass(slots=True)
class _Item:
    image: Prepared
    threshold: float
    future: asyncio.Future[tuple[list[Detection], float]]
    queued_at: float = field(default_factory=time.perf_counter)


BatchObserver = Callable[[int, float], None]
"""Called after every backend call with the batch size and the seconds the call took."""


class DynamicBatcher:
    """Group queued images into backend calls of at most max_batch, waiting at most max_wait s."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_batch: int,
        max_wait: float,
        workers: int = 1,
        max_queue: int = 256,
        observe: BatchObserver | None = None,
        incoming: Callable[[], int] | None = None,
    ) -> None:
        """Set up the queue; start() launches the workers.

        incoming() returns how many images are on their way to submit() (being decoded).
        """
        self._backend = backend
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait)
        self.workers = max(1, workers)
        self.max_queue = max(1, max_queue)
        self._observe = observe
        self._incoming = incoming or (lambda: 0)
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.busy = 0
        """Images inside a backend call right now."""

    @property
    def depth(self) -> int:
        """Return how many images wait for a worker (not counting those being computed)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the workers and their threads (one thread per worker)."""
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="inference")
        self._tasks = [
            asyncio.create_task(self._work(), name=f"detection worker {index}")
            for index in range(self.workers)
        ]

    async def stop(self) -> None:
        """Stop the workers, fail what is still queued, and let running backend calls finish."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        while not self._queue.empty():
            _fail([self._queue.get_nowait()], QueueFullError("the server is shutting down"))
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
            self._executor = None

    async def submit(self, image: Prepared, threshold: float) -> tuple[list[Detection], float]:
        """Queue one image; return its detections and the milliseconds its backend call took."""
        if self._queue.qsize() >= self.max_queue:
            raise QueueFullError(f"{self._queue.qsize()} images are already waiting")
        future: asyncio.Future[tuple[list[Detection], float]] = (
            asyncio.get_running_loop().create_future()
        )
        self._queue.put_nowait(_Item(image=image, threshold=threshold, future=future))
        return await future

    async def _take_batch(self) -> list[_Item]:
        """Wait for one image, then collect more until max_batch or max_wait has passed."""
        batch = [await self._queue.get()]
        if self.max_batch == 1:
            return batch
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            if self._incoming() == 0:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [item for item in await self._take_batch() if not item.future.cancelled()]
            if not batch:
                continue
            self.busy += len(batch)
            images = [item.image for item in batch]
            threshold = min(item.threshold for item in batch)
            started = time.perf_counter()
            try:
                results: list[list[Detection]] = await loop.run_in_executor(
                    self._executor, self._backend.detect, images, threshold
                )
            except asyncio.CancelledError:
                _fail(batch, QueueFullError("the server is shutting down"))
                raise
            except Exception as err:  # noqa: BLE001 - every waiter must hear about it
                _fail(batch, err)
                continue
            finally:
                self.busy -= len(batch)
            elapsed = time.perf_counter() - started
            if self._observe is not None:
                self._observe(len(batch), elapsed)
            for item, found in zip(batch, results, strict=True):
                if not item.future.done():
                    mine = [det for det in found if det.confidence >= item.threshold]
                    item.future.set_result((mine, elapsed * 1000.0))


def _fail(batch: list[_Item], error: BaseException) -> None:
    """Hand error to every request of batch that still waits."""
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)


def describe(batcher: DynamicBatcher) -> dict[str, Any]:
    """Return the batching settings for /health."""
    return {
        "max_batch": batcher.max_batch,
        "max_wait_ms": round(batcher.max_wait * 1000.0, 3),
        "workers": batcher.workers,
        "max_queue": batcher.max_queue,
    }
