"""Removing a file under a root without ever following a symbolic link, and what removal frees.

Each folder below the root is opened relative to its parent with O_NOFOLLOW, so neither a link
nor one swapped in meanwhile can lead a removal outside the root. Kept apart from retention,
which only decides what is old: this is a file-system rule of its own, free of the database and
of the pipeline, for any module that deletes inside a folder others can write to (the camera
root, the derived-media folder of derived.py).
"""

from collections.abc import Sequence
import contextlib
from enum import Enum, auto
import os
import stat


class Removal(Enum):
    """What remove_old_file found."""

    REMOVED = auto()
    ABSENT = auto()
    """Missing, outside the root, or rewritten after the cutoff: nothing of ours to remove."""
    UNSAFE = auto()
    """Reachable only through a symbolic link, or not a regular file or link."""


def tree_bytes(folder: os.PathLike[str]) -> int:
    """Return the bytes of the regular files under folder that only it holds.

    Links are not followed (rmtree removes a link, not what it points to) and files with other
    hard links free nothing.
    """
    if os.path.islink(folder) or not os.path.isdir(folder):
        return 0
    total = 0
    for parent, _dirs, files in os.walk(folder, followlinks=False):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(parent, name))
                if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
                    total += info.st_size
    return total


class _UnsafePathError(Exception):
    """A symbolic link, or a file, where a folder of the path should be."""


def remove_old_file(root: str, path: str, cutoff_ts: float) -> tuple[Removal, int]:
    """Remove one file under root, unless changed since cutoff_ts, following no link; blocking.

    path is absolute or relative to root; a path that leads outside root is ABSENT (not ours).

    Returns the outcome and the bytes freed (none for a link, or a file with other hard links).
    Each folder below the root is opened with O_NOFOLLOW relative to its parent, so no link, nor
    one swapped in meanwhile, can lead the removal elsewhere; only the root itself is resolved,
    as the user may have configured a link to it. Raises OSError when the removal fails.
    """
    root = os.path.abspath(root)
    relative = os.path.relpath(os.path.abspath(os.path.join(root, path)), root)
    parts = relative.split(os.sep)
    if relative == os.curdir or parts[0] == os.pardir:
        return Removal.ABSENT, 0
    try:
        folder = _descend(os.open(root, os.O_RDONLY | os.O_DIRECTORY), parts[:-1])
    except FileNotFoundError:
        return Removal.ABSENT, 0
    except _UnsafePathError:
        return Removal.UNSAFE, 0
    try:
        info = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
        outcome = _judge(info, cutoff_ts)
        if outcome is Removal.REMOVED:
            os.unlink(parts[-1], dir_fd=folder)
    except FileNotFoundError:
        return Removal.ABSENT, 0
    finally:
        os.close(folder)
    alone = stat.S_ISREG(info.st_mode) and info.st_nlink == 1
    return outcome, info.st_size if outcome is Removal.REMOVED and alone else 0


def _judge(info: os.stat_result, cutoff_ts: float) -> Removal:
    """Return whether a file's directory entry may be removed (REMOVED) or why not.

    The newer of its modification and change times counts: a client can set the first (FTP's
    MFMT) but not the second, so a file rewritten after the cutoff is never taken for old.
    """
    if max(info.st_mtime, info.st_ctime) >= cutoff_ts:
        return Removal.ABSENT
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        return Removal.UNSAFE
    return Removal.REMOVED


def _descend(folder: int, names: Sequence[str]) -> int:
    """Open the folders names below the open folder, never through a link; return the last.

    Takes over folder: it is closed, or returned for no names, or closed on error. Raises
    FileNotFoundError for a missing folder, _UnsafePathError for a link or file in the way.
    """
    for name in names:
        try:
            below = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
        except FileNotFoundError:
            os.close(folder)
            raise
        except OSError as err:  # ELOOP (a link) or ENOTDIR (a file)
            os.close(folder)
            raise _UnsafePathError(name) from err
        os.close(folder)
        folder = below
    return folder
