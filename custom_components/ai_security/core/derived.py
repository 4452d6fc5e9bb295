"""Where derived media (annotated frames, thumbnails, clips) live, and the only way to reach them.

One folder per event: <root>/<camera_id>/<YYYY-MM-DD>/<event_id>/, holding key.jpg (the annotated
key frame), frame_<detection_id>.jpg (each detection's annotated frame), thumb_<detection_id>.jpg
and clip.mp4. Camera uploads are never written here or modified. Paths that come from outside
(a media-source id, an HTTP request) go through resolve(), which refuses anything that would
leave the root. Building a path is pure and may run on the event loop; resolve, write_file and
delete_event touch the disk and run in an executor.
"""

import contextlib
from datetime import UTC, datetime
import os
from pathlib import Path, PurePosixPath
import re
import secrets
import shutil
from typing import Final

KEY_FRAME: Final = "key.jpg"
CLIP: Final = "clip.mp4"

_COMPONENT: Final = re.compile(r"\w[\w.-]*")
"""A camera or event id: letters (any script), digits, "_", "." and "-"; never starts with "."."""
_MAX_COMPONENT: Final = 128
_MAX_COMPONENT_BYTES: Final = 255
"""Linux's NAME_MAX, in bytes of the UTF-8 name."""


def safe_component(value: str, what: str = "name") -> str:
    """Return value when it can be one folder name under the root, else raise ValueError.

    Ids come from folder names and the database; a "/", "..", a leading "." or a NUL byte in one
    must never turn into a path elsewhere, so anything unusual is refused, not cleaned.
    """
    if (
        not isinstance(value, str)
        or len(value) > _MAX_COMPONENT
        or len(value.encode("utf-8", errors="replace")) > _MAX_COMPONENT_BYTES
        or not _COMPONENT.fullmatch(value)
    ):
        raise ValueError(f"unsafe {what} for a media folder: {value!r}")
    return value


def event_day(started_at: datetime) -> str:
    """Return the event's day folder, "YYYY-MM-DD" in UTC (a naive time is taken as UTC).

    UTC, not local time: the same event must map to the same folder whoever computes it, or
    delete_event would miss what was written, and a DST change or time-zone setting never moves it.
    """
    if started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=UTC)
    return started_at.astimezone(UTC).strftime("%Y-%m-%d")


class DerivedMedia:
    """The integration's own media folder for one config entry."""

    def __init__(self, root: str | Path) -> None:
        """Root the media at root (absolute; made so against the current folder otherwise)."""
        self._root = Path(os.path.abspath(root))

    @property
    def root(self) -> Path:
        """Return the folder all derived media live under."""
        return self._root

    def event_dir(self, camera_id: str, event_id: str, started_at: datetime) -> Path:
        """Return <root>/<camera_id>/<YYYY-MM-DD>/<event_id>; pure, creates nothing."""
        return (
            self._root
            / safe_component(camera_id, "camera id")
            / event_day(started_at)
            / safe_component(event_id, "event id")
        )

    def key_frame_path(self, camera_id: str, event_id: str, started_at: datetime) -> Path:
        """Return the path of the event's annotated key frame."""
        return self.event_dir(camera_id, event_id, started_at) / KEY_FRAME

    def clip_path(self, camera_id: str, event_id: str, started_at: datetime) -> Path:
        """Return the path of the event's clip."""
        return self.event_dir(camera_id, event_id, started_at) / CLIP

    def frame_path(
        self, camera_id: str, event_id: str, started_at: datetime, detection_id: int
    ) -> Path:
        """Return the path of a detection's annotated full frame."""
        folder = self.event_dir(camera_id, event_id, started_at)
        return folder / f"frame_{_detection_id(detection_id)}.jpg"

    def thumbnail_path(
        self, camera_id: str, event_id: str, started_at: datetime, detection_id: int
    ) -> Path:
        """Return the path of a detection's thumbnail."""
        folder = self.event_dir(camera_id, event_id, started_at)
        return folder / f"thumb_{_detection_id(detection_id)}.jpg"

    def relative(self, path: str | Path) -> str:
        """Return path relative to the root with "/" separators, the form resolve() takes back.

        Pure (no links followed): for turning a path built here into a media-source id. Raises
        ValueError for a path that is not under the root.
        """
        relative = Path(os.path.abspath(path)).relative_to(self._root)
        if not relative.parts:
            raise ValueError("the media root itself is not a media file")
        return relative.as_posix()

    def resolve(self, relative: str) -> Path:
        """Return the real path of a media file given relative to the root; blocking.

        Raises ValueError for anything that could reach outside the root: a NUL byte, an absolute
        path, a ".." part, the root itself, or a symbolic link (anywhere on the way) that points
        outside. The file need not exist; links are resolved as far as they do.
        """
        if not isinstance(relative, str) or "\x00" in relative:
            raise ValueError("media path with a NUL byte")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or relative.startswith("~"):
            raise ValueError(f"media path must be relative to the media folder: {relative!r}")
        if ".." in pure.parts:
            raise ValueError(f"media path must not contain '..': {relative!r}")
        if not pure.parts or pure.parts == (".",):
            raise ValueError("empty media path")
        real_root = os.path.realpath(self._root)
        real = os.path.realpath(os.path.join(real_root, *pure.parts))
        if not real.startswith(real_root + os.sep):
            raise ValueError(f"media path leads outside the media folder: {relative!r}")
        return Path(real)

    def write_file(self, path: Path, data: bytes) -> Path:
        """Write data to path under the root, atomically; blocking. Return path.

        The bytes go to a hidden temporary name first and are renamed into place, so a reader
        never sees half a file; parent folders are created. Raises ValueError for a path that is
        not under the root (symbolic links included), OSError when the disk refuses.
        """
        target = self.resolve(self.relative(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            with open(temporary, "xb") as file:
                file.write(data)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return target

    def delete_event(self, camera_id: str, event_id: str, started_at: datetime) -> bool:
        """Remove the event's folder with everything in it, and its day folder once empty.

        Blocking. Return whether there was a folder to remove. Raises ValueError when a folder on
        the way is a symbolic link: deleting through it could remove files outside the root.
        """
        folder = self.event_dir(camera_id, event_id, started_at)
        if not os.path.lexists(folder):
            return False
        expected = os.path.join(os.path.realpath(self._root), self.relative(folder))
        if os.path.realpath(folder) != expected:
            raise ValueError(f"refusing to delete through a symbolic link: {folder}")
        shutil.rmtree(folder)
        # Other events of that day may remain (or another worker removed the folder first).
        with contextlib.suppress(OSError):
            folder.parent.rmdir()
        return True


def _detection_id(detection_id: int) -> int:
    """Return the detection id when it is a non-negative int (it becomes part of a file name)."""
    if isinstance(detection_id, bool) or not isinstance(detection_id, int) or detection_id < 0:
        raise ValueError(f"not a detection id: {detection_id!r}")
    return detection_id
