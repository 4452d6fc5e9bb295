"""The names of the dispatcher signals the hub sends to the entity platforms and device triggers.

Apart from the hub so that what listens (entities, device triggers) names a signal without
importing what sends it. They carry what happens (a camera appears, an event, detections); what
the cameras' entities show is their coordinator's data (camera_coordinator.py), not a signal.
"""

from typing import Final

from .const import DOMAIN

SIGNAL_CAMERA_ADDED: Final = f"{DOMAIN}_camera_added_{{}}"
SIGNAL_EVENT: Final = f"{DOMAIN}_event_{{}}"
"""Sent (camera, event) for each new security event."""
SIGNAL_EVENT_UPDATED: Final = f"{DOMAIN}_event_updated_{{}}"
"""Sent (camera, EventUpdate) per hub when an incident is judged again or closes."""
SIGNAL_DETECTIONS: Final = f"{DOMAIN}_detections_{{}}"
SIGNAL_DEVICE_DETECTIONS: Final = f"{DOMAIN}_device_detections_{{}}"
"""Sent (list of detection data, as in the ai_security_detection event) per camera device id,
whether or not the bus event is on: the "person detected" device trigger listens to it."""
SIGNAL_BATCH: Final = f"{DOMAIN}_batch_{{}}"
