"""Each camera's state as the hub keeps it: what its entities show.

Apart from the hub so that the entity platforms read a camera's state without the machinery
that fills it (bus events, devices, the pipeline's callbacks); also here are how a state takes
back today's figures from the database after a restart, and the name entity ids are made from.
When the entities write it is the cameras' coordinator's business (camera_coordinator.py).
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
import re
from typing import Final

from .core.derived import DerivedMedia
from .core.models import Camera, Detection, SecurityEvent
from .core.stats import CameraActivity

RISK_HOLD: Final = timedelta(minutes=10)
"""How long after an event ended the risk sensors keep showing it (then: clear, score 0)."""

_LETTER_OR_DIGIT: Final = re.compile(r"[^\W_]")


@dataclass(kw_only=True, slots=True)
class CameraState:
    """What a camera's entities show, kept by the hub so late-added entities start right."""

    camera: Camera
    latest_event: SecurityEvent | None = None
    detections_today: int = 0
    suppressed_today: int = 0
    """Detections taken for a learned spot today: stored and counted, no incident."""
    last_detections: list[Detection] = field(default_factory=list)
    last_detection_at: datetime | None = None
    active: bool = False
    """Whether the camera has an open batch."""
    event_image: Path | None = None
    """The annotated key frame of the latest event that has one."""
    event_image_at: datetime | None = None
    """When event_image was written (the image entity's image_last_updated)."""
    event_image_event_id: str | None = None

    def current_event(self, now: datetime) -> SecurityEvent | None:
        """Return the latest event while it is current (up to RISK_HOLD after it ended)."""
        event = self.latest_event
        if event is None or (not event.ongoing and event.ended_at + RISK_HOLD <= now):
            return None
        return event


def readable_camera(camera: Camera) -> Camera:
    """Return the camera with a name entity ids can be made from.

    The name is the folder's. A folder named without any letter or digit ("!!!") would give its
    device a name Home Assistant cannot slugify, and its entities ids such as
    `sensor.unknown_risk_score`; such a camera is named after its id instead ("Camera 1a2b3c"),
    which is as stable as the id.
    """
    if _LETTER_OR_DIGIT.search(camera.name):
        return camera
    return replace(camera, name=camera.camera_id.replace("_", " ").capitalize())


def restore_today(state: CameraState, stored: CameraActivity, media: DerivedMedia | None) -> None:
    """Add what the database holds of today to a camera's state.

    media is where the pipeline draws events' pictures (None: it draws none); an event
    announced since the start is newer than the stored one and stays.
    """
    camera_id = state.camera.camera_id
    state.detections_today += stored.detections_since
    state.suppressed_today += stored.suppressed_since
    if stored.last_detections and not state.last_detections:
        state.last_detections = stored.last_detections
        state.last_detection_at = stored.last_detections[-1].detected_at
    current = state.latest_event
    if stored.latest_event is None or (
        current is not None and current.started_at >= stored.latest_event.started_at
    ):
        return  # an event announced meanwhile is newer
    state.latest_event = stored.latest_event
    if media is not None:
        event = stored.latest_event
        state.event_image = media.key_frame_path(camera_id, event.event_id, event.started_at)
        state.event_image_at = event.ended_at
        state.event_image_event_id = event.event_id
