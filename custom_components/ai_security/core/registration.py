"""The one transaction that registers an upload: its camera, media row and detect job.

Written once for the intake stage's two callers: a new upload (its content known already: no
row, nothing to do) and an upload queued again on request (its content known: the same row, a
new job). A new folder becomes a new camera, with an id no other folder has.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .jobs import Job, JobKind, JobState, add_job
from .media import Intake, camera_id_for
from .models import Camera
from .payloads import DetectPayload
from .records import camera_of
from .storage import CameraRow, MediaRow
from .uploads import shown

# Run for every upload, built once (building a statement costs more than running it).
_INSERT_NEW_MEDIA = {
    "sqlite": sqlite_insert(MediaRow)
    .on_conflict_do_nothing(index_elements=[MediaRow.sha256])
    .returning(MediaRow.media_id),
    "postgresql": postgresql_insert(MediaRow)
    .on_conflict_do_nothing(index_elements=[MediaRow.sha256])
    .returning(MediaRow.media_id),
}

MAX_CAMERA_ID: Final = 100
"""Characters of a camera id made from its folder's name (a folder name may have 255)."""
MAX_CAMERA_NAME: Final = 255
"""Characters of a camera's shown name (its column's size)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Registered:
    """What registering an upload stored."""

    camera: Camera
    new_camera: bool
    media_id: int | None
    """None when the content was known (nothing to do for a new upload)."""
    job: Job | None = None
    """The detect job, when it was stored as running for the detect worker to take directly."""
    job_id: int | None = None


def register_upload(
    session: Session,
    folder: str,
    path: str,
    intake: Intake,
    *,
    known: Camera | None,
    now: datetime,
    again: bool,
    running: bool,
) -> Registered:
    """Store an upload's camera (if new), media row (unless known) and detect job.

    again: queue a job even when the content is known (its existing row). running: the job is
    stored as running, for the detect worker to take straight away (it reserved room for it).
    """
    if known is None:
        camera, new_camera = _camera_for_folder(session, folder, now)
    else:
        camera, new_camera = known, False
    connection = session.connection()
    # One statement inserts the upload unless its content is known (then no row).
    media_id = connection.execute(
        _INSERT_NEW_MEDIA[connection.dialect.name],
        {
            "camera_id": camera.camera_id,
            "path": path,
            "sha256": intake.sha256,
            "media_type": intake.media_type.value,
            "size": intake.size,
            "width": intake.width,
            "height": intake.height,
            "received_at": now,
        },
    ).scalar()
    if media_id is None and again:
        media_id = session.scalar(select(MediaRow.media_id).where(MediaRow.sha256 == intake.sha256))
    if media_id is None:
        return Registered(camera=camera, new_camera=new_camera, media_id=None)
    # Everything the detect job needs travels in its payload: no look-up later.
    payload = DetectPayload(
        media_id=media_id,
        camera_id=camera.camera_id,
        path=path,
        media_type=intake.media_type,
        width=intake.width,
        height=intake.height,
    ).to_json()
    job_id = add_job(session, JobKind.DETECT, payload, now, running=running)
    job = None
    if running:
        job = Job(
            job_id=job_id,
            kind=JobKind.DETECT,
            payload=payload,
            state=JobState.RUNNING,
            attempts=0,
            next_attempt_at=now,
            last_error=None,
        )
    return Registered(
        camera=camera, new_camera=new_camera, media_id=media_id, job=job, job_id=job_id
    )


def _camera_for_folder(session: Session, folder: str, now: datetime) -> tuple[Camera, bool]:
    """Return the camera of folder, creating it (with an id no other folder has) if new."""
    row = session.scalar(select(CameraRow).where(CameraRow.folder == folder))
    if row is not None:
        return camera_of(row), False
    # Bounded to fit the 128-character id column with a "_N" suffix, on every database.
    base = camera_id_for(folder)[:MAX_CAMERA_ID].rstrip("_")
    candidate, number = base, 2
    while session.get(CameraRow, candidate) is not None:
        candidate = f"{base}_{number}"
        number += 1
    row = CameraRow(
        camera_id=candidate, folder=folder, name=shown(folder)[:MAX_CAMERA_NAME], created_at=now
    )
    session.add(row)
    session.flush()  # the media row that follows is written with Core, past the ORM
    return camera_of(row), True
