"""Opening camera uploads safely: nothing outside the camera root is ever read, by any route.

The watcher refuses links, but uploads are also reached by the start-up scan, the reprocess
action, detection, the event pictures and the cameras' pictures, with paths taken from the
database or typed by a user. A folder link on the way (`Cam/sub -> /etc`) would carry any of them
outside. Every route therefore resolves the path (links included) and checks that the real file
lies in a camera folder under the real camera root before it opens it; the file itself is opened
with O_NOFOLLOW, so a link swapped in for it after the check is refused too.

Synchronous file work: run it in an executor.
"""

import os
from typing import Final

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class OutsideRootError(PermissionError):
    """The path leads outside the camera root (through a link, or `..`): it is not read.

    A PermissionError, so every caller that already handles an unreadable file (logging it and
    going on) handles this one the same way.
    """


def real_upload_path(root: str, path: str) -> str:
    """Return path with every link resolved, once it is known to lie inside the camera root.

    Raises OutsideRootError when the real file is not below the real camera root
    (the root itself may be a link: the administrator chose it). Raises FileNotFoundError when
    the path does not exist, as opening it would.
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(path)
    relative = os.path.relpath(real, real_root)
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        raise OutsideRootError("it leads outside the camera folder (a link or '..' on the way)")
    return real


def read_upload(root: str, path: str) -> bytes:
    """Return the content of an upload that lies inside the camera root (see real_upload_path)."""
    real = real_upload_path(root, path)
    try:
        fd = os.open(real, _OPEN_FLAGS)
    except OSError as err:
        if os.path.islink(real):  # swapped for a link since the check
            raise OutsideRootError("it was replaced by a link while it was read") from err
        raise
    with os.fdopen(fd, "rb") as file:
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
