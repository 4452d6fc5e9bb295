"""Each camera's state as the hub keeps it: what its entities show, and when they write it.

Apart from the hub so that the entity platforms read a camera's state without the machinery
that fills it (bus events, devices, the pipeline's callbacks); also here are how a state takes
back today's figures from the database after a restart, and the name entity ids are made from.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
import re
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_call_later

from .core.derived import DerivedMedia
from .core.models import Camera, Detection, SecurityEvent
from .core.stats import CameraActivity
from .signals import SIGNAL_CAMERA_STATE

RISK_HOLD: Final = timedelta(minutes=10)
"""How long after an event ended the risk sensors keep showing it (then: clear, score 0)."""

_LETTER_OR_DIGIT: Final = re.compile(r"[^\W_]")

STATE_FLUSH_DELAY: Final = 1.0
"""Seconds detection counters are gathered before entities write them: a busy camera then
writes its state once a second, not once per image, sparing the recorder and the bus."""


@dataclass(kw_only=True, slots=True)
class CameraState:
    """What a camera's entities show, kept by the hub so late-added entities start right."""

    camera: Camera
    latest_event: SecurityEvent | None = None
    detections_today: int = 0
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


class CameraStateWrites:
    """When one hub's cameras' entities write their state: at once, or a second later at most."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Write nothing yet; the signals name entry_id's cameras."""
        self._hass = hass
        self._entry_id = entry_id
        self._dirty: set[str] = set()
        self._flush_cancel: CALLBACK_TYPE | None = None

    @callback
    def changed(self, camera_id: str, *, at_once: bool = False) -> None:
        """Have camera_id's entities write their state: now, or with the next flush."""
        if at_once:
            self._dirty.discard(camera_id)
            self._send(camera_id)
            return
        self._dirty.add(camera_id)
        if self._flush_cancel is None:
            self._flush_cancel = async_call_later(self._hass, STATE_FLUSH_DELAY, self._flush)

    @callback
    def forget(self, camera_id: str) -> None:
        """Write nothing more for a camera that is gone."""
        self._dirty.discard(camera_id)

    @callback
    def stop(self) -> None:
        """Cancel the pending flush (the entry unloads)."""
        if self._flush_cancel is not None:
            self._flush_cancel()
            self._flush_cancel = None

    @callback
    def _flush(self, _now: datetime) -> None:
        self._flush_cancel = None
        dirty, self._dirty = self._dirty, set()
        for camera_id in dirty:
            self._send(camera_id)

    @callback
    def _send(self, camera_id: str) -> None:
        async_dispatcher_send(self._hass, SIGNAL_CAMERA_STATE.format(self._entry_id, camera_id))
