"""The bridge between the pipeline and Home Assistant: devices, bus events and dispatcher signals.

The pipeline (core/) knows nothing of Home Assistant; this module turns what it reports into what
users automate on: an `ai_security_event` per security event, an `ai_security_detection` per
detected object (when the user turned that option on), a device per camera, and dispatcher signals
the entity platforms and device triggers listen to (named in signals.py). The events' data is
built in bus_events.py, the devices are registered by devices.py, what each camera shows is a
CameraState (camera_state.py) the hub keeps and feeds to the cameras' coordinator
(camera_coordinator.py), which has their entities write it, and what the user paused of each
camera is kept by camera_controls.py.
"""

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from .bus_events import (
    EVENT_DETECTION,
    EVENT_SECURITY,
    EVENT_UPDATED,
    EventPictures,
    detection_data,
    security_event_data,
    updated_data,
)
from .camera_controls import CameraControlsKeeper
from .camera_coordinator import AiSecurityCameraCoordinator
from .camera_state import CameraState, readable_camera, restore_today
from .const import DOMAIN, LOGGER
from .core.derived import DerivedMedia
from .core.eventmedia import EventMedia
from .core.models import Camera, Detection, SecurityEvent
from .core.pipeline import EventUpdate, Pipeline, PipelineCallbacks
from .core.retention import RetentionStats
from .core.stats import CameraActivity
from .devices import (
    async_has_camera_device,
    async_register_camera_device,
    async_register_hub_device,
    camera_of_device,
    folders_present,
)
from .signals import (
    SIGNAL_BATCH,
    SIGNAL_CAMERA_ADDED,
    SIGNAL_DETECTIONS,
    SIGNAL_DEVICE_DETECTIONS,
    SIGNAL_EVENT,
    SIGNAL_EVENT_UPDATED,
)

if TYPE_CHECKING:
    from .cleanup import DailyCleanup


class AiSecurityHub:
    """One config entry's pipeline as Home Assistant sees it."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        """Prepare the hub; the pipeline is attached by attach() before it starts."""
        self.hass = hass
        self.entry_id = entry.entry_id
        self.title = entry.title
        self.pipeline: Pipeline | None = None
        self.device_ids: dict[str, str] = {}
        self.hub_device_id: str | None = None
        self.cameras: dict[str, CameraState] = {}
        self.camera_coordinator = AiSecurityCameraCoordinator(hass, entry, self.cameras)
        """What the cameras' entities read: fed with each change of a camera's state."""
        self.cleanup: DailyCleanup | None = None
        """The entry's daily clean-up, once set up."""
        self.events_today = 0
        self._unsubscribe: list[Callable[[], None]] = []
        self._early_detections: list[tuple[str, int, datetime]] | None = []
        """What the pipeline announced before start(): (camera, detections, when)."""
        self._early_events: list[datetime] | None = []
        self._unconfirmed: list[Camera] | None = []
        """Cameras announced before start() that have no device; see _camera_added."""
        self._confirming: asyncio.Task[None] | None = None
        self.controls = CameraControlsKeeper(
            hass,
            self.entry_id,
            pipeline=lambda: self.pipeline,
            changed=lambda camera_id: self.camera_coordinator.changed(camera_id, at_once=True),
        )
        """What the user paused of each camera (its switches, the snooze action)."""
        self._pictures = EventPictures(hass, self.entry_id)

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
            restore_today(state, stored, self._media_root())
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

    async def _confirm(self, cameras: list[Camera], activity: dict[str, CameraActivity]) -> None:
        """Give the cameras announced without a device theirs if their folder is there.

        One whose folder is gone is a camera whose device the user removed: the pipeline forgets
        it again, until an upload in its folder brings it back.
        """
        pipeline = self.pipeline
        if pipeline is None:
            return
        present = await self.hass.async_add_executor_job(
            folders_present, pipeline.config.camera_root, [camera.folder for camera in cameras]
        )
        for camera, here in zip(cameras, present, strict=True):
            if not here:
                LOGGER.debug("Camera %s stays removed: its folder is gone", camera.camera_id)
                pipeline.forget_camera(camera.camera_id)
                continue
            self._add_camera(camera)
            if (stored := activity.get(camera.camera_id)) is not None:
                restore_today(self.cameras[camera.camera_id], stored, self._media_root())
                self.camera_coordinator.changed(camera.camera_id, at_once=True)

    @callback
    def stop(self) -> None:
        """Cancel the hub's timers, the pending flush of the cameras' states too (it unloads)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        self.camera_coordinator.stop()
        if self._confirming is not None:
            self._confirming.cancel()
            self._confirming = None
        self.controls.stop()

    def _media_root(self) -> DerivedMedia | None:
        """Return where the pipeline draws events' pictures (None: it draws none, or none yet)."""
        return None if self.pipeline is None else self.pipeline.media

    @property
    def last_cleanup(self) -> RetentionStats | None:
        """Return the figures of the latest daily clean-up since the start, if any."""
        return None if self.cleanup is None else self.cleanup.last

    @callback
    def refresh_cameras(self) -> None:
        """Have every camera's entities write their state now (their zones changed)."""
        self.camera_coordinator.changed(*self.cameras, at_once=True)

    @callback
    def set_camera_root_ok(self, ok: bool) -> None:
        """Note whether the camera folder is there; the cameras' entities follow it."""
        self.camera_coordinator.set_camera_root_ok(ok)

    @callback
    def _midnight(self, _now: datetime) -> None:
        """Start the daily counts over at local midnight."""
        self.events_today = 0
        for state in self.cameras.values():
            state.detections_today = 0
            state.suppressed_today = 0
        self.camera_coordinator.changed(*self.cameras, at_once=True)

    def callbacks(self) -> PipelineCallbacks:
        """Return the callbacks the pipeline reports through."""
        return PipelineCallbacks(
            camera_added=self._camera_added,
            detections=self._detections,
            event=self._event,
            batch_changed=self._batch_changed,
            event_updated=self._event_updated,
            event_media=self._event_media,
            suppressed=self._suppressed,
        )

    @callback
    def _suppressed(self, camera: Camera, detections: list[Detection]) -> None:
        """Count detections taken for a learned spot: they open no incident, but are seen."""
        state = self.cameras.get(camera.camera_id)
        if state is not None:
            state.suppressed_today += len(detections)
            self.camera_coordinator.changed(camera.camera_id)

    @callback
    def register_hub_device(self) -> None:
        """Create the hub's device, which every camera's device hangs off."""
        self.hub_device_id = async_register_hub_device(self.hass, self.entry_id, self.title)

    @callback
    def _camera_added(self, camera: Camera) -> None:
        """Give a camera its device and entities.

        Before start() the pipeline announces the cameras of its database. One of those without
        a device had it removed by the user (only allowed once its folder is gone): whether its
        folder is back is found out in the executor by start(), not here on the loop.
        """
        camera = readable_camera(camera)
        self.controls.restore(camera.camera_id)
        if self._unconfirmed is not None and not async_has_camera_device(
            self.hass, self.entry_id, camera.camera_id
        ):
            self._unconfirmed.append(camera)
            return
        self._add_camera(camera)

    @callback
    def _add_camera(self, camera: Camera) -> None:
        self.device_ids[camera.camera_id] = async_register_camera_device(
            self.hass, self.entry_id, camera, self.hub_device_id
        )
        self.cameras.setdefault(camera.camera_id, CameraState(camera=camera))
        async_dispatcher_send(self.hass, SIGNAL_CAMERA_ADDED.format(self.entry_id), camera)

    async def async_remove_camera_device(self, device: dr.DeviceEntry) -> bool:
        """Forget a camera whose device the user deletes; refuse while its folder is there.

        A camera whose folder still exists is still watched (its next upload would bring the
        device straight back), and the hub's own device is not a camera. A removed camera stays
        in the database with its history; it comes back with the next upload in its folder.
        """
        camera_id = camera_of_device(self.entry_id, device)
        if camera_id is None:
            return False
        pipeline = self.pipeline
        camera = None if pipeline is None else pipeline.cameras.get(camera_id)
        if pipeline is not None and camera is not None:
            present = await self.hass.async_add_executor_job(
                folders_present, pipeline.config.camera_root, [camera.folder]
            )
            if present[0]:
                return False
            pipeline.forget_camera(camera_id)
        self.cameras.pop(camera_id, None)
        self.device_ids.pop(camera_id, None)
        self.camera_coordinator.forget(camera_id)
        return True

    @callback
    def _detections(self, camera: Camera, detections: list[Detection]) -> None:
        device_id = self.device_ids.get(camera.camera_id)
        payloads = detection_data(
            self.entry_id,
            camera,
            detections,
            device_id=device_id,
            alerts_paused=self.alerts_paused(camera.camera_id),
        )
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
            self.camera_coordinator.changed(camera.camera_id)

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
            self.camera_coordinator.changed(camera.camera_id, at_once=True)

    @callback
    def _event_updated(self, camera: Camera, update: EventUpdate) -> None:
        """Announce an incident judged again or closed (not a new ai_security_event).

        The data is the incident as it is now, with its previous verdict and what changed; a
        notification sent when it opened is replaced in place from it.
        """
        data = updated_data(
            self.event_data(camera, update.event),
            changed=update.changed,
            level_rose=update.level_rose,
            previous=update.previous,
        )
        self.hass.bus.async_fire(EVENT_UPDATED, data)
        self._new_event(camera, update.event)
        async_dispatcher_send(self.hass, SIGNAL_EVENT_UPDATED.format(self.entry_id), camera, update)

    def event_data(self, camera: Camera, event: SecurityEvent) -> dict[str, Any]:
        """Return the data of the ai_security_event bus event, with this hub's own parts."""
        return security_event_data(
            self.entry_id,
            camera,
            event,
            device_id=self.device_ids.get(camera.camera_id),
            alerts_paused=self.alerts_paused(camera.camera_id),
            urls=self._pictures.urls(event, self._media_root()),
        )

    @callback
    def _event_media(self, camera: Camera, event: SecurityEvent, media: EventMedia) -> None:
        """Show an event's annotated key frame once it is written (unless a later one is).

        The key frame comes before the event is announced; a clip made afterwards is announced
        with ai_security_event_updated, carrying its URL.
        """
        media, known = self._pictures.remember(event.event_id, media)
        if media.clip is not None and (known is None or known.clip is None):
            current = self._latest_of(camera, event)
            data = updated_data(
                self.event_data(camera, current),
                changed=["clip"],
                level_rose=False,
                previous=current,
            )
            self.hass.bus.async_fire(EVENT_UPDATED, data)
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
        self.camera_coordinator.changed(camera.camera_id, at_once=True)

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
            self.camera_coordinator.changed(camera_id, at_once=True)
        if state.active != is_open:
            state.active = is_open
            self.camera_coordinator.changed(camera_id, at_once=True)

    def alerts_paused(self, camera_id: str) -> bool:
        """Return whether the camera's events and detections are to notify nobody now."""
        return self.controls.alerts_paused(camera_id)
