"""Opening camera uploads safely: nothing outside the camera root is ever read, by any route.

The watcher refuses links, but uploads are also reached by the start-up scan, the reprocess
action, detection, the event pictures and the cameras' pictures, with paths taken from the
database or typed by a user. A folder link on the way (`Cam/sub -> /etc`) would carry any of them
outside. Every route therefore opens the file first and then asks the kernel where the opened
file really is (`/proc/self/fd`): that is the file that will be read, whatever links were on the
way or were swapped in meanwhile, and it costs one system call instead of a look-up per folder
of the path. The upload is read only when that place lies inside the real camera root. Where
there is no `/proc` (not Linux), the path is resolved with os.path.realpath before opening.

Synchronous file work: run it in an executor.
"""

from collections.abc import Iterator
import contextlib
import errno
import functools
import os
import stat
from typing import BinaryIO, Final

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
"""O_NONBLOCK: a FIFO named like an upload must not hang the thread opening it (it has no
effect on reading a regular file)."""
_FD_LINKS: Final = "/proc/self/fd"
_HAS_FD_LINKS: Final = os.path.isdir(_FD_LINKS)


class OutsideRootError(PermissionError):
    """The path leads outside the camera root (through a link, or `..`): it is not read.

    A PermissionError, so every caller that already handles an unreadable file (logging it and
    going on) handles this one the same way.
    """


@functools.lru_cache(maxsize=16)
def _real_root(root: str) -> str:
    """Return the camera root with its links resolved (the administrator may link it elsewhere).

    Cached: it is asked for every upload, and a camera root does not move while it is watched.
    """
    return os.path.realpath(root)


def _check_inside(root: str, real: str) -> None:
    """Raise OutsideRootError unless real (a resolved path) lies below the real camera root."""
    real_root = _real_root(root)
    if not real.startswith(real_root + os.sep) and real_root != os.sep:
        raise OutsideRootError("it leads outside the camera folder (a link or '..' on the way)")


def _check_regular(fd: int) -> None:
    """Raise OSError unless the opened file is a regular file (not a FIFO, device or folder)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")


def _opened_path(fd: int, path: str) -> str:
    """Return where an opened file really is: the kernel's name for it, or the resolved path."""
    if _HAS_FD_LINKS:
        return os.readlink(f"{_FD_LINKS}/{fd}")
    return os.path.realpath(path)


@contextlib.contextmanager
def open_upload(root: str, path: str) -> Iterator[BinaryIO]:
    """Open an upload for reading once it is known to lie inside the camera root.

    Raises OutsideRootError when the opened file is not below the real camera root, and
    FileNotFoundError (or another OSError) as opening it would.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        _check_inside(root, _opened_path(fd, path))
        _check_regular(fd)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file


def real_upload_path(root: str, path: str) -> str:
    """Return path with every link resolved, once it is known to lie inside the camera root.

    For programs that open the file themselves (ffprobe, ffmpeg). Raises OutsideRootError or
    FileNotFoundError as open_upload does.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        real = _opened_path(fd, path)
        _check_regular(fd)
    finally:
        os.close(fd)
    _check_inside(root, real)
    return real


def read_upload(root: str, path: str) -> bytes:
    """Return the content of an upload that lies inside the camera root (see open_upload)."""
    with open_upload(root, path) as file:
        return file.read()


def shown(name: str) -> str:
    """Return a file or folder name fit for logs, entity states and bus events.

    Bytes that are not UTF-8 (Python's lone surrogates) become U+FFFD, and control characters
    (a newline in a file name) become their escaped form, so a name can neither break a JSON
    encoder nor forge a log line.
    """
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
