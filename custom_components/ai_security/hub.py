"""The bridge between the pipeline and Home Assistant: devices, bus events and dispatcher signals.

The pipeline (core/) knows nothing of Home Assistant; this module turns what it reports into what
users automate on: an `ai_security_event` per security event, an `ai_security_detection` per
detected object (when the user turned that option on), a device per camera, and dispatcher signals
the entity platforms and device triggers listen to. It also keeps what the user paused of each
camera (its Alerts and Detection switches), restored before the pipeline detects anything.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
import os
from pathlib import Path
import re
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er, restore_state
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import (
    async_call_later,
    async_track_point_in_utc_time,
    async_track_time_change,
)
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .core import operations
from .core.audit import AuditRecord
from .core.eventmedia import EventMedia
from .core.models import Camera, Detection, SecurityEvent
from .core.pipeline import EventUpdate, Pipeline, PipelineCallbacks
from .core.retention import RetentionStats

if TYPE_CHECKING:
    from .cleanup import DailyCleanup
from .core.stats import CameraActivity
from .core.uploads import shown
from .media_paths import async_sign_notification_url

EVENT_SECURITY: Final = f"{DOMAIN}_event"
EVENT_DETECTION: Final = f"{DOMAIN}_detection"
EVENT_UPDATED: Final = f"{DOMAIN}_event_updated"
"""Fired when an announced event gains pictures (its clip is made after it is announced)."""
MEDIA_REMEMBERED: Final = 200
"""Events whose pictures the hub remembers for their bus events' URLs (the latest ones)."""
SIGNAL_CAMERA_ADDED: Final = f"{DOMAIN}_camera_added_{{}}"
SIGNAL_EVENT: Final = f"{DOMAIN}_event_{{}}"
"""Sent (camera, event) for each new security event."""
SIGNAL_EVENT_UPDATED: Final = f"{DOMAIN}_event_updated_{{}}"
"""Sent (camera, EventUpdate) per hub when an incident is judged again or closes."""
"""Sent (camera, event) when the LLM re-judged an event the heuristic had scored."""
SIGNAL_DETECTIONS: Final = f"{DOMAIN}_detections_{{}}"
SIGNAL_DEVICE_DETECTIONS: Final = f"{DOMAIN}_device_detections_{{}}"
"""Sent (list of detection data, as in the ai_security_detection event) per camera device id,
whether or not the bus event is on: the "person detected" device trigger listens to it."""
SIGNAL_BATCH: Final = f"{DOMAIN}_batch_{{}}"
SIGNAL_CAMERA_STATE: Final = f"{DOMAIN}_camera_state_{{}}_{{}}"
"""Sent (entry id, camera id) when a camera's entities should write their state."""

CONTROL_ALERTS: Final = "alerts"
CONTROL_DETECTION: Final = "detection"
"""The keys of a camera's two switches (unique id <entry id>_<camera id>_<key>)."""
ATTR_ALERTS_PAUSED: Final = "alerts_paused"
"""In every ai_security_event and ai_security_detection: whether the camera's alerts are paused
(its Alerts switch is off), so that what notifies (the blueprint, device triggers, the user's own
automations) holds back while the event is still detected, stored and shown."""

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


@dataclass(kw_only=True, slots=True)
class CameraControls:
    """What the user paused of a camera: its switches and the snooze action set it."""

    alerts: bool = True
    """Whether the camera's events may notify; see ATTR_ALERTS_PAUSED."""
    snoozed_until: datetime | None = None
    """When paused alerts come back on by themselves; None when on, or paused until turned on."""
    detection: bool = True
    """Whether the camera's new uploads are sent to the detector."""


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


def _folders_present(root: str, folders: Sequence[str]) -> list[bool]:
    """Return whether each camera folder is there (blocking: run it in the executor)."""
    return [os.path.isdir(os.path.join(root, folder)) for folder in folders]


class AiSecurityHub:
    """One config entry's pipeline as Home Assistant sees it."""

    def __init__(self, hass: HomeAssistant, entry_id: str, title: str) -> None:
        """Prepare the hub; the pipeline is attached by attach() before it starts."""
        self.hass = hass
        self.entry_id = entry_id
        self.title = title
        self.pipeline: Pipeline | None = None
        self.device_ids: dict[str, str] = {}
        self.hub_device_id: str | None = None
        self.cameras: dict[str, CameraState] = {}
        self.cleanup: DailyCleanup | None = None
        """The entry's daily clean-up, once set up."""
        self.camera_root_ok = True
        """False while the camera folder is missing: camera entities are then unavailable."""
        self.events_today = 0
        self._dirty: set[str] = set()
        self._flush_cancel: CALLBACK_TYPE | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._early_detections: list[tuple[str, int, datetime]] | None = []
        """What the pipeline announced before start(): (camera, detections, when)."""
        self._early_events: list[datetime] | None = []
        self._unconfirmed: list[Camera] | None = []
        """Cameras announced before start() that have no device; see _camera_added."""
        self._confirming: asyncio.Task[None] | None = None
        self.controls: dict[str, CameraControls] = {}
        """Each camera's pauses, restored before the pipeline detects anything."""
        self._snooze_ends: dict[str, CALLBACK_TYPE] = {}
        self._media: OrderedDict[str, EventMedia] = OrderedDict()
        """What was drawn for the latest events, by event id: their bus events' picture URLs."""

    @callback
    def start(self, activity: dict[str, CameraActivity], cutoff: datetime) -> None:
        """Fill the cameras' state from the database and start the daily reset at midnight.

        activity counts what was stored before cutoff; what the pipeline announced since it
        started (it runs while the database is read) is added when it happened from cutoff on.
        """
        early_detections, self._early_detections = self._early_detections, None
        early_events, self._early_events = self._early_events, None
        for camera_id, camera_state in self.cameras.items():
            camera_state.detections_today = sum(
                count
                for camera, count, at in early_detections or ()
                if camera == camera_id and at >= cutoff
            )
        for camera_id, stored in activity.items():
            state = self.cameras.get(camera_id)
            if state is None:
                continue  # detections of a camera whose folder row is gone: nothing to show
            self._restore(state, stored)
        self.events_today = sum(stored.events_since for stored in activity.values()) + sum(
            1 for at in early_events or () if at >= cutoff
        )
        self._unsubscribe.append(
            async_track_time_change(self.hass, self._midnight, hour=0, minute=0, second=0)
        )
        unconfirmed, self._unconfirmed = self._unconfirmed, None
        if unconfirmed:
            self._confirming = self.hass.async_create_task(
                self._confirm(unconfirmed, activity), f"{DOMAIN} camera folders", eager_start=False
            )

    def _restore(self, state: CameraState, stored: CameraActivity) -> None:
        """Add what the database holds of today to a camera's state."""
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
        if self.pipeline is not None:
            media = self.pipeline.media
            if media is not None:
                event = stored.latest_event
                state.event_image = media.key_frame_path(
                    camera_id, event.event_id, event.started_at
                )
                state.event_image_at = event.ended_at
                state.event_image_event_id = event.event_id

    async def _confirm(self, cameras: list[Camera], activity: dict[str, CameraActivity]) -> None:
        """Give the cameras announced without a device theirs if their folder is there.

        One whose folder is gone is a camera whose device the user removed: the pipeline forgets
        it again, until an upload in its folder brings it back.
        """
        pipeline = self.pipeline
        if pipeline is None:
            return
        present = await self.hass.async_add_executor_job(
            _folders_present, pipeline.config.camera_root, [camera.folder for camera in cameras]
        )
        for camera, here in zip(cameras, present, strict=True):
            if not here:
                LOGGER.debug("Camera %s stays removed: its folder is gone", camera.camera_id)
                pipeline.forget_camera(camera.camera_id)
                continue
            self._add_camera(camera)
            if (stored := activity.get(camera.camera_id)) is not None:
                self._restore(self.cameras[camera.camera_id], stored)
                self._changed(camera.camera_id, at_once=True)

    @callback
    def stop(self) -> None:
        """Cancel the hub's timers (the entry unloads)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._flush_cancel is not None:
            self._flush_cancel()
            self._flush_cancel = None
        if self._confirming is not None:
            self._confirming.cancel()
            self._confirming = None
        for cancel in self._snooze_ends.values():
            cancel()
        self._snooze_ends.clear()

    @property
    def last_cleanup(self) -> RetentionStats | None:
        """Return the figures of the latest daily clean-up since the start, if any."""
        return None if self.cleanup is None else self.cleanup.last

    @callback
    def refresh_cameras(self) -> None:
        """Have every camera's entities write their state now (their zones changed)."""
        for camera_id in self.cameras:
            self._changed(camera_id, at_once=True)

    @callback
    def set_camera_root_ok(self, ok: bool) -> None:
        """Note whether the camera folder is there; the cameras' entities follow it."""
        if ok == self.camera_root_ok:
            return
        self.camera_root_ok = ok
        self.refresh_cameras()

    @callback
    def _midnight(self, _now: datetime) -> None:
        """Start the daily counts over at local midnight."""
        self.events_today = 0
        for camera_id, state in self.cameras.items():
            state.detections_today = 0
            self._changed(camera_id, at_once=True)

    @callback
    def _changed(self, camera_id: str, *, at_once: bool = False) -> None:
        """Have camera_id's entities write their state: now, or with the next flush."""
        if at_once:
            self._dirty.discard(camera_id)
            async_dispatcher_send(self.hass, SIGNAL_CAMERA_STATE.format(self.entry_id, camera_id))
            return
        self._dirty.add(camera_id)
        if self._flush_cancel is None:
            self._flush_cancel = async_call_later(self.hass, STATE_FLUSH_DELAY, self._flush)

    @callback
    def _flush(self, _now: datetime) -> None:
        self._flush_cancel = None
        dirty, self._dirty = self._dirty, set()
        for camera_id in dirty:
            async_dispatcher_send(self.hass, SIGNAL_CAMERA_STATE.format(self.entry_id, camera_id))

    def callbacks(self) -> PipelineCallbacks:
        """Return the callbacks the pipeline reports through."""
        return PipelineCallbacks(
            camera_added=self._camera_added,
            detections=self._detections,
            event=self._event,
            batch_changed=self._batch_changed,
            event_updated=self._event_updated,
            event_media=self._event_media,
        )

    @callback
    def register_hub_device(self) -> None:
        """Create the hub's device, which every camera's device hangs off."""
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry_id,
            identifiers={(DOMAIN, self.entry_id)},
            name=self.title,
            manufacturer="AI Security",
            model="Detection hub",
        )
        self.hub_device_id = device.id

    def _identifier(self, camera_id: str) -> tuple[str, str]:
        """Return the device registry identifier of a camera of this hub."""
        return (DOMAIN, f"{self.entry_id}_{camera_id}")

    @callback
    def _camera_added(self, camera: Camera) -> None:
        """Give a camera its device and entities.

        Before start() the pipeline announces the cameras of its database. One of those without
        a device had it removed by the user (only allowed once its folder is gone): whether its
        folder is back is found out in the executor by start(), not here on the loop.
        """
        camera = readable_camera(camera)
        self._restore_controls(camera.camera_id)
        if (
            self._unconfirmed is not None
            and dr.async_get(self.hass).async_get_device_by_identifier(
                self._identifier(camera.camera_id), self.entry_id
            )
            is None
        ):
            self._unconfirmed.append(camera)
            return
        self._add_camera(camera)

    @callback
    def _add_camera(self, camera: Camera) -> None:
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.entry_id,
            identifiers={self._identifier(camera.camera_id)},
            name=camera.name,
            manufacturer="AI Security",
            model="Upload folder",
            via_device_id=self.hub_device_id,
        )
        self.device_ids[camera.camera_id] = device.id
        self.cameras.setdefault(camera.camera_id, CameraState(camera=camera))
        async_dispatcher_send(self.hass, SIGNAL_CAMERA_ADDED.format(self.entry_id), camera)

    def camera_of_device(self, device: dr.DeviceEntry) -> str | None:
        """Return the camera id of one of this hub's camera devices; None for any other device."""
        prefix = f"{self.entry_id}_"
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier.startswith(prefix):
                return identifier.removeprefix(prefix)
        return None

    async def async_remove_camera_device(self, device: dr.DeviceEntry) -> bool:
        """Forget a camera whose device the user deletes; refuse while its folder is there.

        A camera whose folder still exists is still watched (its next upload would bring the
        device straight back), and the hub's own device is not a camera. A removed camera stays
        in the database with its history; it comes back with the next upload in its folder.
        """
        camera_id = self.camera_of_device(device)
        if camera_id is None:
            return False
        pipeline = self.pipeline
        camera = None if pipeline is None else pipeline.cameras.get(camera_id)
        if pipeline is not None and camera is not None:
            present = await self.hass.async_add_executor_job(
                _folders_present, pipeline.config.camera_root, [camera.folder]
            )
            if present[0]:
                return False
            pipeline.forget_camera(camera_id)
        self.cameras.pop(camera_id, None)
        self.device_ids.pop(camera_id, None)
        self._dirty.discard(camera_id)
        return True

    @callback
    def _detections(self, camera: Camera, detections: list[Detection]) -> None:
        device_id = self.device_ids.get(camera.camera_id)
        camera_name = readable_camera(camera).name
        alerts_paused = self.alerts_paused(camera.camera_id)
        payloads = [
            {
                "entry_id": self.entry_id,
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
        # Every bus event is a row in the recorder's database: a busy camera's detections are
        # on the bus only when the user asked for them.
        if self.pipeline is not None and self.pipeline.config.options.detection_events:
            for payload in payloads:
                self.hass.bus.async_fire(EVENT_DETECTION, payload)
        if device_id is not None and payloads:
            async_dispatcher_send(self.hass, SIGNAL_DEVICE_DETECTIONS.format(device_id), payloads)
        async_dispatcher_send(
            self.hass, SIGNAL_DETECTIONS.format(self.entry_id), camera, detections
        )
        state = self.cameras.get(camera.camera_id)
        if state is not None and detections:
            if self._early_detections is not None:
                self._early_detections.append((camera.camera_id, len(detections), dt_util.utcnow()))
            state.detections_today += len(detections)
            state.last_detections = list(detections)
            state.last_detection_at = detections[-1].detected_at or dt_util.utcnow()
            self._changed(camera.camera_id)

    @callback
    def _event(self, camera: Camera, event: SecurityEvent) -> None:
        self.hass.bus.async_fire(EVENT_SECURITY, self.event_data(camera, event))
        self.events_today += 1
        if self._early_events is not None:
            self._early_events.append(dt_util.utcnow())
        self._new_event(camera, event)
        async_dispatcher_send(self.hass, SIGNAL_EVENT.format(self.entry_id), camera, event)

    @callback
    def _new_event(self, camera: Camera, event: SecurityEvent) -> None:
        """Make event the camera's latest unless a later one is already shown."""
        state = self.cameras.get(camera.camera_id)
        if state is None:
            return
        latest = state.latest_event
        if (
            latest is None
            or latest.event_id == event.event_id
            or (event.started_at >= latest.started_at)
        ):
            state.latest_event = event
            self._changed(camera.camera_id, at_once=True)

    @callback
    def _event_updated(self, camera: Camera, update: EventUpdate) -> None:
        """Announce an incident judged again or closed (not a new ai_security_event).

        The data is the incident as it is now, with its previous verdict and what changed; a
        notification sent when it opened is replaced in place from it.
        """
        previous = update.previous
        self.hass.bus.async_fire(
            EVENT_UPDATED,
            {
                **self.event_data(camera, update.event),
                "changed": list(update.changed),
                "level_rose": update.level_rose,
                "previous_risk_score": previous.risk_score,
                "previous_risk_level": previous.risk_level.value,
                "previous_summary": previous.summary,
                "previous_source": previous.source.value,
            },
        )
        self._new_event(camera, update.event)
        async_dispatcher_send(self.hass, SIGNAL_EVENT_UPDATED.format(self.entry_id), camera, update)

    def event_data(self, camera: Camera, event: SecurityEvent) -> dict[str, Any]:
        """Return the data of the ai_security_event bus event (times in ISO 8601, UTC).

        entry_id tells hubs apart: two hubs may each have a camera called front_door.
        """
        return {
            "entry_id": self.entry_id,
            "event_id": event.event_id,
            "camera_id": camera.camera_id,
            "camera_name": readable_camera(camera).name,
            "device_id": self.device_ids.get(camera.camera_id),
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
            ATTR_ALERTS_PAUSED: self.alerts_paused(camera.camera_id),
            **self._media_urls(event),
        }

    def _media_urls(self, event: SecurityEvent) -> dict[str, str | None]:
        """Return signed URLs of the event's own key frame and clip (None until they exist).

        They name this event's files, so a notification sent for it shows its picture however
        many events follow; the phone loads them without a token.
        """
        made = self._media.get(event.event_id)
        root = self.pipeline.media if self.pipeline is not None else None
        urls: dict[str, str | None] = {"image_url": None, "clip_url": None}
        if made is None or root is None:
            return urls
        for key, path in (("image_url", made.key_frame), ("clip_url", made.clip)):
            if path is not None:
                urls[key] = async_sign_notification_url(
                    self.hass, self.entry_id, root.relative(path)
                )
        return urls

    @callback
    def _event_media(self, camera: Camera, event: SecurityEvent, media: EventMedia) -> None:
        """Show an event's annotated key frame once it is written (unless a later one is).

        The key frame comes before the event is announced; a clip made afterwards is announced
        with ai_security_event_updated, carrying its URL.
        """
        known = self._media.get(event.event_id)
        if known is not None and media.key_frame is None:
            # A closed incident's clip: its key frame (the phone's picture) stays as it was.
            media = replace(media, key_frame=known.key_frame)
        self._media[event.event_id] = media
        self._media.move_to_end(event.event_id)
        while len(self._media) > MEDIA_REMEMBERED:
            self._media.popitem(last=False)
        if media.clip is not None and (known is None or known.clip is None):
            current = self._latest_of(camera, event)
            self.hass.bus.async_fire(
                EVENT_UPDATED,
                {
                    **self.event_data(camera, current),
                    "changed": ["clip"],
                    "level_rose": False,
                    # Every update has the same fields; the verdict did not change.
                    "previous_risk_score": current.risk_score,
                    "previous_risk_level": current.risk_level.value,
                    "previous_summary": current.summary,
                    "previous_source": current.source.value,
                },
            )
        state = self.cameras.get(camera.camera_id)
        if state is None or media.key_frame is None:
            return
        if known is not None and known.key_frame == media.key_frame:
            return  # the picture shown already
        latest = state.latest_event
        if latest is not None and latest.started_at > event.started_at:
            return
        state.event_image = media.key_frame
        state.event_image_at = dt_util.utcnow()
        state.event_image_event_id = event.event_id
        self._changed(camera.camera_id, at_once=True)

    def _latest_of(self, camera: Camera, event: SecurityEvent) -> SecurityEvent:
        """Return the camera's latest known state of event (its verdict may have changed)."""
        state = self.cameras.get(camera.camera_id)
        latest = state.latest_event if state is not None else None
        return latest if latest is not None and latest.event_id == event.event_id else event

    @callback
    def _batch_changed(self, camera_id: str, is_open: bool) -> None:
        async_dispatcher_send(self.hass, SIGNAL_BATCH.format(self.entry_id), camera_id, is_open)
        state = self.cameras.get(camera_id)
        if state is None:
            return
        latest = state.latest_event
        if not is_open and latest is not None and latest.ongoing:
            # Its incident closed: the risk sensors hold it from its end on, whether or not its
            # final verdict (ai_security_event_updated) ever comes.
            state.latest_event = replace(latest, ongoing=False)
            self._changed(camera_id, at_once=True)
        if state.active != is_open:
            state.active = is_open
            self._changed(camera_id, at_once=True)

    # --- the cameras' controls: their Alerts and Detection switches, the snooze action --------

    def controls_of(self, camera_id: str) -> CameraControls:
        """Return a camera's controls (everything on for a camera never paused)."""
        return self.controls.setdefault(camera_id, CameraControls())

    def alerts_paused(self, camera_id: str) -> bool:
        """Return whether the camera's events and detections are to notify nobody now."""
        controls = self.controls.get(camera_id)
        return controls is not None and not controls.alerts

    @callback
    def set_alerts(self, camera_id: str, on: bool, *, until: datetime | None = None) -> None:
        """Allow or pause a camera's alerts; paused until a time, they come back on by then.

        Turning them on or off by hand ends a running snooze (off: paused until turned on).
        """
        controls = self.controls_of(camera_id)
        if (cancel := self._snooze_ends.pop(camera_id, None)) is not None:
            cancel()
        controls.alerts = on
        controls.snoozed_until = None if on else until
        if not on and until is not None:

            @callback
            def _over(_now: datetime) -> None:
                self._snooze_ends.pop(camera_id, None)
                self.set_alerts(camera_id, True)
                self._record_later("snooze_ended", camera=camera_id, snoozed_until=until)

            self._snooze_ends[camera_id] = async_track_point_in_utc_time(self.hass, _over, until)
        self._changed(camera_id, at_once=True)

    @callback
    def snooze(self, camera_id: str, minutes: float) -> datetime:
        """Pause a camera's alerts for minutes from now; return when they come back on."""
        until = dt_util.utcnow() + timedelta(minutes=minutes)
        self.set_alerts(camera_id, False, until=until)
        return until

    @callback
    def set_detection(self, camera_id: str, on: bool) -> None:
        """Have the pipeline detect a camera's new uploads, or only register them."""
        self.controls_of(camera_id).detection = on
        if self.pipeline is not None:
            self.pipeline.set_detection_paused(camera_id, not on)
        self._changed(camera_id, at_once=True)

    @callback
    def _restore_controls(self, camera_id: str) -> None:
        """Pause again what the camera's switches had paused before the restart (or reload).

        Done when the pipeline announces the camera, before it detects anything: the switches
        are added only after the pipeline has started, and a paused camera's backlog must not be
        detected, nor its first events notify, in between. The switches are restore entities;
        their saved state is read back here through their unique ids. A snooze that ended while
        Home Assistant was down ends now.
        """
        if camera_id in self.controls:
            return
        self.controls_of(camera_id)
        detection = self._last_control(camera_id, CONTROL_DETECTION)
        if detection is not None and not detection[0]:
            self.set_detection(camera_id, False)
        alerts = self._last_control(camera_id, CONTROL_ALERTS)
        if alerts is None or alerts[0]:
            return
        until = alerts[1]
        if until is not None and until <= dt_util.utcnow():
            LOGGER.info("The snooze of camera %s ended while Home Assistant was down", camera_id)
            self._record_later("snooze_ended", camera=camera_id, snoozed_until=until)
            return
        self.set_alerts(camera_id, False, until=until)

    def _last_control(self, camera_id: str, key: str) -> tuple[bool, datetime | None] | None:
        """Return (on, snoozed until) as a camera's switch saved it; None when it saved nothing.

        The switch's own saved data (ControlStoredData) is read first: its state may have been
        saved while unavailable.
        """
        entity_id = er.async_get(self.hass).async_get_entity_id(
            Platform.SWITCH, DOMAIN, f"{self.entry_id}_{camera_id}_{key}"
        )
        if entity_id is None:
            return None
        stored = restore_state.async_get(self.hass).last_states.get(entity_id)
        if stored is None:
            return None
        saved = stored.extra_data.as_dict() if stored.extra_data is not None else {}
        on = saved.get("on")
        if not isinstance(on, bool):
            if stored.state.state not in (STATE_ON, STATE_OFF):
                return None
            on = stored.state.state == STATE_ON
        until = saved.get("snoozed_until")
        moment = dt_util.parse_datetime(until) if isinstance(until, str) else None
        return on, None if moment is None else dt_util.as_utc(moment)

    async def async_audit(
        self, action: str, context: Context | None, arguments: Mapping[str, Any]
    ) -> None:
        """Record a change of a camera's controls in the audit trail (logged, never raised).

        Written through the pipeline's database itself: a snooze that ended while Home
        Assistant was down is recorded while the entry is still starting.
        """
        pipeline = self.pipeline
        if pipeline is None:
            return
        user_id = context.user_id if context is not None else None
        user_name = None
        if user_id is not None and (user := await self.hass.auth.async_get_user(user_id)):
            user_name = user.name
        item = AuditRecord(
            at=dt_util.utcnow(),
            user_id=user_id,
            user_name=user_name,
            action=action,
            arguments=dict(arguments),
        )
        try:
            await operations.record_audit(pipeline.db, item)
        except Exception:  # noqa: BLE001 - the change happened; its record is secondary
            LOGGER.exception("Could not record %s in the audit trail", action)

    @callback
    def _record_later(self, action: str, **arguments: Any) -> None:
        """Record a change the hub made by itself (no user), without holding up the caller."""
        self.hass.async_create_task(
            self.async_audit(action, None, arguments), f"{DOMAIN} audit {action}", eager_start=False
        )
