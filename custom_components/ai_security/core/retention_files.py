"""Retention's file work: removing old uploads and the derived-media folders of deleted events.

Blocking, run in the executor by retention.py once a chunk's rows are known: it decides, per
upload or folder, whether the row may go and what is left alone, and adds up the bytes freed.
The removal itself is safe_remove.py's (never through a symbolic link); this module is only
retention's use of it, apart from the database work so neither waits on the other's details.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
import logging
import os

from .derived import DerivedMedia
from .safe_remove import Removal, remove_old_file, tree_bytes

_LOGGER = logging.getLogger(__name__)


def delete_event_folders(
    media: DerivedMedia, events: Sequence[tuple[str, str, datetime]]
) -> tuple[int, int, list[str]]:
    """Remove the events' derived-media folders; blocking.

    Returns how many went, the bytes freed and the folders left. A folder that cannot be
    removed (reached through a symbolic link, a permission) is left: its rows are gone already,
    and one bad folder must not stop the others.
    """
    removed = freed = 0
    left: list[str] = []
    for camera_id, event_id, started_at in events:
        try:
            folder = media.event_dir(camera_id, event_id, started_at)
        except ValueError:  # an id no folder could have been made for
            continue
        try:
            size = tree_bytes(folder)
            if media.delete_event(camera_id, event_id, started_at):
                removed += 1
                freed += size
        except (OSError, ValueError) as err:
            _LOGGER.debug("Retention could not remove %s: %s", folder, err)
            left.append(str(folder))
    return removed, freed, left


@dataclass(frozen=True, slots=True)
class Settled:
    """What settle_uploads did with a chunk of uploads."""

    gone: list[int]
    """Media ids whose rows may go: the upload was removed, is missing, or is none of ours."""
    removed: int
    freed: int
    left_alone: list[str]
    """Old uploads under the root that stay: a link on the way, not a file, no permission."""


def settle_uploads(
    rows: Sequence[tuple[int, str]], camera_root: str | None, cutoff_ts: float
) -> Settled:
    """Remove the uploads (with camera_root) or only look whether they are gone; blocking.

    A row may go when its upload is gone or removed now; when it lies outside the root or behind
    a symbolic link (the start-up scan never looks there, so it is not taken in again); or when
    the file was rewritten after the cutoff (the newer upload has its own row). A removal that
    fails (permission, busy) keeps the row, and the next run tries again.
    """
    gone: list[int] = []
    removed = freed = 0
    left_alone: list[str] = []
    for media_id, path in rows:
        try:
            if camera_root is None:
                if not os.path.lexists(path):
                    gone.append(media_id)
                continue
            outcome, size = remove_old_file(camera_root, path, cutoff_ts)
        except ValueError:  # a NUL byte: no file could ever have that path
            gone.append(media_id)
            continue
        except OSError as err:
            _LOGGER.debug("Retention could not remove upload %s: %s", path, err)
            left_alone.append(path)
            continue
        gone.append(media_id)
        if outcome is Removal.REMOVED:
            removed += 1
            freed += size
        elif outcome is Removal.UNSAFE:
            left_alone.append(path)
    return Settled(gone=gone, removed=removed, freed=freed, left_alone=left_alone)
