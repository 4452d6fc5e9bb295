"""A small file both the benchmark and the feeder map into memory: close times and done flags.

The feeder writes each upload's close time (CLOCK_MONOTONIC, which every process on the machine
shares) into its slot the moment the file is closed; the benchmark reads it when the upload's
detection arrives, so latency needs no messages on the event loop. The benchmark sets an upload's
done flag once its detection is stored; the feeder deletes done files after a grace period, which
keeps the disk bounded on long runs without ever deleting a file the pipeline has yet to read.
"""

import mmap
import os
from typing import Self

_HEADER_SLOTS = 8
_WRITTEN = 0
"""Header slot: how many uploads the feeder has closed so far."""


class Board:
    """The shared file: a header of int64 counters, one float64 per upload, one byte per upload."""

    def __init__(self, path: str, count: int, *, create: bool = False) -> None:
        """Map path (made zero-filled with room for count uploads when create is True)."""
        self.path = path
        self.count = count
        size = _HEADER_SLOTS * 8 + count * 8 + count
        if create:
            with open(path, "wb") as file:
                file.truncate(size)
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, size)
        view = memoryview(self._map)
        self._header = view[: _HEADER_SLOTS * 8].cast("q")
        times_end = _HEADER_SLOTS * 8 + count * 8
        self.close_times = view[_HEADER_SLOTS * 8 : times_end].cast("d")
        """Monotonic time each upload was closed (0.0: not written yet)."""
        self.done = view[times_end:].cast("B")
        """1 once the upload's detection is stored."""
        self._view = view

    @property
    def written(self) -> int:
        """Return how many uploads the feeder has closed."""
        return int(self._header[_WRITTEN])

    def set_written(self, value: int) -> None:
        """Publish the feeder's progress (after the close time of the last one is in place)."""
        self._header[_WRITTEN] = value

    def close(self) -> None:
        """Unmap the file (views first, or mmap refuses)."""
        for view in (self._header, self.close_times, self.done, self._view):
            view.release()
        self._map.close()
        os.close(self._fd)

    def __enter__(self) -> Self:
        """Use the board for a with block."""
        return self

    def __exit__(self, *_: object) -> None:
        """Unmap at the end of the block."""
        self.close()
