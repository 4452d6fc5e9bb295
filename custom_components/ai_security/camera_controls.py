"""What the user paused of each camera: its Alerts and Detection switches and the snooze action.

Kept per hub, apart from what the cameras show: a pause is the user's setting, restored from the
switches' saved state before the pipeline detects anything, and each change it makes by itself
(a snooze running out) is written to the audit trail like the user's own.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from homeassistant.const import STATE_OFF, STATE_ON, Platform
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er, restore_state
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.util import dt as dt_util

from .audit_record import async_record
from .const import DOMAIN, LOGGER
from .core.pipeline import Pipeline

CONTROL_ALERTS: Final = "alerts"
CONTROL_DETECTION: Final = "detection"
"""The keys of a camera's two switches (unique id <entry id>_<camera id>_<key>)."""


@dataclass(kw_only=True, slots=True)
class CameraControls:
    """What the user paused of a camera: its switches and the snooze action set it."""

    alerts: bool = True
    """Whether the camera's events may notify; see bus_events.ATTR_ALERTS_PAUSED."""
    snoozed_until: datetime | None = None
    """When paused alerts come back on by themselves; None when on, or paused until turned on."""
    detection: bool = True
    """Whether the camera's new uploads are sent to the detector."""


class CameraControlsKeeper:
    """One hub's cameras' controls, their snoozes' timers and the audit of their changes."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        *,
        pipeline: Callable[[], Pipeline | None],
        changed: Callable[[str], None],
    ) -> None:
        """Keep the controls of entry_id's cameras.

        pipeline returns the hub's pipeline once attached (it pauses a camera's detection);
        changed has a camera's entities write their state at once.
        """
        self._hass = hass
        self._entry_id = entry_id
        self._pipeline = pipeline
        self._changed = changed
        self._controls: dict[str, CameraControls] = {}
        """Each camera's pauses, restored before the pipeline detects anything."""
        self._snooze_ends: dict[str, CALLBACK_TYPE] = {}

    @callback
    def stop(self) -> None:
        """Cancel the snoozes' timers (the entry unloads; the switches saved them)."""
        for cancel in self._snooze_ends.values():
            cancel()
        self._snooze_ends.clear()

    def controls_of(self, camera_id: str) -> CameraControls:
        """Return a camera's controls (everything on for a camera never paused)."""
        return self._controls.setdefault(camera_id, CameraControls())

    def alerts_paused(self, camera_id: str) -> bool:
        """Return whether the camera's events and detections are to notify nobody now."""
        controls = self._controls.get(camera_id)
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

            self._snooze_ends[camera_id] = async_track_point_in_utc_time(self._hass, _over, until)
        self._changed(camera_id)

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
        if (pipeline := self._pipeline()) is not None:
            pipeline.set_detection_paused(camera_id, not on)
        self._changed(camera_id)

    @callback
    def restore(self, camera_id: str) -> None:
        """Pause again what the camera's switches had paused before the restart (or reload).

        Done when the pipeline announces the camera, before it detects anything: the switches
        are added only after the pipeline has started, and a paused camera's backlog must not be
        detected, nor its first events notify, in between. The switches are restore entities;
        their saved state is read back here through their unique ids. A snooze that ended while
        Home Assistant was down ends now.
        """
        if camera_id in self._controls:
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
        entity_id = er.async_get(self._hass).async_get_entity_id(
            Platform.SWITCH, DOMAIN, f"{self._entry_id}_{camera_id}_{key}"
        )
        if entity_id is None:
            return None
        stored = restore_state.async_get(self._hass).last_states.get(entity_id)
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
        pipeline = self._pipeline()
        if pipeline is None:
            return
        await async_record(
            self._hass, lambda: pipeline.db, action=action, context=context, arguments=arguments
        )

    @callback
    def _record_later(self, action: str, **arguments: Any) -> None:
        """Record a change made without a user, without holding up the caller."""
        self._hass.async_create_task(
            self.async_audit(action, None, arguments), f"{DOMAIN} audit {action}", eager_start=False
        )
