"""The hub's bus events: their names, their data, and the signed URLs of their pictures.

Automations, the blueprint, device triggers and the logbook read these fields; built here, in one
place, so that a new security event, an update of one and a detection carry the same names.
"""

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from homeassistant.core import HomeAssistant

from .camera_state import readable_camera
from .const import DOMAIN
from .core.derived import DerivedMedia
from .core.eventmedia import EventMedia
from .core.models import Camera, Detection, SecurityEvent
from .core.uploads import shown
from .media_paths import async_sign_notification_url

EVENT_SECURITY: Final = f"{DOMAIN}_event"
EVENT_DETECTION: Final = f"{DOMAIN}_detection"
EVENT_UPDATED: Final = f"{DOMAIN}_event_updated"
"""Fired when an announced event gains pictures (its clip is made after it is announced)."""
EVENT_SERVICE_STATUS: Final = f"{DOMAIN}_service_status"
"""Fired when a model server's status changes (service_status.py announces it)."""
ATTR_ALERTS_PAUSED: Final = "alerts_paused"
"""In every ai_security_event and ai_security_detection: whether the camera's alerts are paused
(its Alerts switch is off), so that what notifies (the blueprint, device triggers, the user's own
automations) holds back while the event is still detected, stored and shown."""
MEDIA_REMEMBERED: Final = 200
"""Events whose pictures the hub remembers for their bus events' URLs (the latest ones)."""


def verdict_data(event: SecurityEvent) -> dict[str, Any]:
    """Return what an LLM verdict says beyond its score, and the verifier's marks on it.

    The same names in the bus events, the event entities and the actions' responses: title and
    observations (the model's words), confidence (0-1, None when not given), other_concerns,
    unverified_objects (named by the model, seen by no detector) and contradiction (why the
    verdict denies what a detector saw for certain; empty when it does not). A heuristic
    verdict has them empty. raw_score and calibration say how the user's reviews of similar
    incidents moved the score (None and "" when they did not).
    """
    calibrated = {"raw_score": event.raw_score, "calibration": event.calibration}
    details = event.details
    if details is None:
        return {
            **calibrated,
            "title": "",
            "observations": "",
            "confidence": None,
            "other_concerns": [],
            "unverified_objects": [],
            "contradiction": "",
        }
    return {
        **calibrated,
        "title": details.title,
        "observations": details.observations,
        "confidence": details.confidence,
        "other_concerns": list(details.concerns),
        "unverified_objects": list(details.unverified),
        "contradiction": details.contradiction,
    }


def security_event_data(
    entry_id: str,
    camera: Camera,
    event: SecurityEvent,
    *,
    device_id: str | None,
    alerts_paused: bool,
    urls: dict[str, str | None],
) -> dict[str, Any]:
    """Return the data of the ai_security_event bus event (times in ISO 8601, UTC).

    entry_id tells hubs apart: two hubs may each have a camera called front_door.
    """
    return {
        "entry_id": entry_id,
        "event_id": event.event_id,
        "camera_id": camera.camera_id,
        "camera_name": readable_camera(camera).name,
        "device_id": device_id,
        "risk_score": event.risk_score,
        "risk_level": event.risk_level.value,
        "summary": event.summary,
        "reasoning": event.reasoning,
        "object_types": list(event.object_types),
        "zones": list(event.zones),
        "detection_count": event.detection_count,
        "started_at": event.started_at.isoformat(),
        "ended_at": event.ended_at.isoformat(),
        "is_fast_path": event.is_fast_path,
        "source": event.source.value,
        "ongoing": event.ongoing,
        **verdict_data(event),
        ATTR_ALERTS_PAUSED: alerts_paused,
        **urls,
    }


def updated_data(
    data: dict[str, Any], *, changed: Sequence[str], level_rose: bool, previous: SecurityEvent
) -> dict[str, Any]:
    """Return the data of ai_security_event_updated: the event's data, what changed, and from what.

    Every update has the same fields, a new clip's too (its previous verdict is its current one):
    a notification sent when the event opened is replaced in place from them.
    """
    return {
        **data,
        "changed": list(changed),
        "level_rose": level_rose,
        "previous_risk_score": previous.risk_score,
        "previous_risk_level": previous.risk_level.value,
        "previous_summary": previous.summary,
        "previous_source": previous.source.value,
    }


def detection_data(
    entry_id: str,
    camera: Camera,
    detections: Sequence[Detection],
    *,
    device_id: str | None,
    alerts_paused: bool,
) -> list[dict[str, Any]]:
    """Return the data of one ai_security_detection bus event per detection."""
    camera_name = readable_camera(camera).name
    return [
        {
            "entry_id": entry_id,
            "camera_id": camera.camera_id,
            "camera_name": camera_name,
            "device_id": device_id,
            "class": detection.label,
            "confidence": round(detection.confidence, 4),
            "bbox": detection.bbox.as_list(),
            "file": shown(detection.path),  # JSON-safe even for names that are not UTF-8
            "frame_time": detection.frame_time,
            "zone": detection.zone,
            ATTR_ALERTS_PAUSED: alerts_paused,
        }
        for detection in detections
    ]


class EventPictures:
    """What was drawn for the latest events, by event id: their bus events' picture URLs."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        """Remember nothing yet; URLs are signed for entry_id's media."""
        self._hass = hass
        self._entry_id = entry_id
        self._media: OrderedDict[str, EventMedia] = OrderedDict()

    def remember(self, event_id: str, media: EventMedia) -> tuple[EventMedia, EventMedia | None]:
        """Note what was made for an event; return it as remembered, and what was known before.

        A closed incident's clip comes without a key frame: the one known (the phone's picture)
        stays as it was. Only the latest MEDIA_REMEMBERED events are kept.
        """
        known = self._media.get(event_id)
        if known is not None and media.key_frame is None:
            media = replace(media, key_frame=known.key_frame)
        self._media[event_id] = media
        self._media.move_to_end(event_id)
        while len(self._media) > MEDIA_REMEMBERED:
            self._media.popitem(last=False)
        return media, known

    def urls(self, event: SecurityEvent, root: DerivedMedia | None) -> dict[str, str | None]:
        """Return signed URLs of the event's own key frame and clip (None until they exist).

        They name this event's files, so a notification sent for it shows its picture however
        many events follow; the phone loads them without a token.
        """
        made = self._media.get(event.event_id)
        urls: dict[str, str | None] = {"image_url": None, "clip_url": None}
        if made is None or root is None:
            return urls
        for key, path in (("image_url", made.key_frame), ("clip_url", made.clip)):
            if path is not None:
                urls[key] = async_sign_notification_url(
                    self._hass, self._entry_id, root.relative(path)
                )
        return urls
