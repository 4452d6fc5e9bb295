"""Reading the uploads an event's pictures are made from, inside the camera root when it is known.

An event's frames and its incident's clip both start from upload paths taken from the database,
where a link put on the way since (`Cam/sub -> /etc`) must not carry the pictures outside. It is
separate so that eventmedia and incident_clip share one rule for it without importing each
other; the safe opening itself is uploads.py's.
"""

from .storage import BlockingRunner
from .uploads import read_upload, real_upload_path


def read_file(path: str) -> bytes:
    """Return a file's content as it is, for tests of the pictures without a camera root."""
    with open(path, "rb") as file:
        return file.read()


def read_event_upload(camera_root: str | None, path: str) -> bytes:
    """Return an upload's content, only where it lies inside camera_root when there is one.

    Blocking: run it in the executor. Raises OSError (OutsideRootError included) as reading it
    would.
    """
    return read_upload(camera_root, path) if camera_root is not None else read_file(path)


async def upload_source(path: str, camera_root: str | None, run_blocking: BlockingRunner) -> str:
    """Return the upload's real path once it is known to lie inside the camera root.

    For ffmpeg, which opens the file itself. Without a camera root (tests of the pictures alone)
    the path is taken as it is.
    """
    if camera_root is None:
        return path
    real: str = await run_blocking(real_upload_path, camera_root, path)
    return real
