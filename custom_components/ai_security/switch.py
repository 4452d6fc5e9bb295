"""Switches per camera: "Alerts" (off pauses its notifications) and "Detection" (off pauses it).

Both are the user's settings, not readings: they stay available while the camera folder is
missing, survive restarts (restore entities, read back before the pipeline detects anything, see
CameraControlsKeeper.restore in camera_controls.py), and every change is written to the audit
trail with the user who made it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, override

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import ExtraStoredData, RestoreEntity

from .camera_controls import CONTROL_ALERTS, CONTROL_DETECTION, CameraControls
from .coordinator import AiSecurityConfigEntry
from .core.models import Camera
from .entity import AiSecurityCameraEntity, add_camera_entities
from .hub import AiSecurityHub

PARALLEL_UPDATES = 0

ATTR_SNOOZED_UNTIL = "snoozed_until"


@dataclass(frozen=True, kw_only=True)
class AiSecuritySwitchEntityDescription(SwitchEntityDescription):
    """A camera control: how to read it, how to set it, and what it shows besides on/off."""

    is_on_fn: Callable[[CameraControls], bool]
    set_fn: Callable[[AiSecurityHub, str, bool], None]
    attributes_fn: Callable[[CameraControls], Mapping[str, Any]] = lambda _controls: {}


def _snoozed_until(controls: CameraControls) -> Mapping[str, Any]:
    """Return until when the alerts are snoozed (ISO 8601), None when on or paused for good."""
    until = controls.snoozed_until
    return {ATTR_SNOOZED_UNTIL: None if until is None else until.isoformat()}


def _set_alerts(hub: AiSecurityHub, camera_id: str, on: bool) -> None:
    hub.controls.set_alerts(camera_id, on)


def _set_detection(hub: AiSecurityHub, camera_id: str, on: bool) -> None:
    hub.controls.set_detection(camera_id, on)


SWITCHES: tuple[AiSecuritySwitchEntityDescription, ...] = (
    AiSecuritySwitchEntityDescription(
        key=CONTROL_ALERTS,
        translation_key=CONTROL_ALERTS,
        is_on_fn=lambda controls: controls.alerts,
        set_fn=_set_alerts,
        attributes_fn=_snoozed_until,
    ),
    AiSecuritySwitchEntityDescription(
        key=CONTROL_DETECTION,
        translation_key=CONTROL_DETECTION,
        is_on_fn=lambda controls: controls.detection,
        set_fn=_set_detection,
    ),
)


@dataclass(frozen=True, kw_only=True)
class ControlStoredData(ExtraStoredData):
    """What a control switch saves for the next start: on or off, and until when snoozed.

    Saved apart from the state, which reads "unavailable" when Home Assistant stops while the
    entry is not loaded.
    """

    on: bool
    snoozed_until: datetime | None

    @override
    def as_dict(self) -> dict[str, Any]:
        """Return the data as JSON-ready values (the hub parses snoozed_until back)."""
        until = self.snoozed_until
        return {"on": self.on, ATTR_SNOOZED_UNTIL: None if until is None else until.isoformat()}


class AiSecuritySwitch(AiSecurityCameraEntity, SwitchEntity, RestoreEntity):
    """One of a camera's controls, kept by the hub (which restored it before this was added)."""

    entity_description: AiSecuritySwitchEntityDescription

    @property
    def controls(self) -> CameraControls:
        """Return the camera's controls as the hub keeps them."""
        return self.hub.controls.controls_of(self.camera.camera_id)

    @property
    @override
    def available(self) -> bool:
        """Return True: a pause is the user's setting, changeable while the folder is missing."""
        return True

    @property
    @override
    def is_on(self) -> bool:
        """Return whether the control is on (alerts allowed, uploads detected)."""
        return self.entity_description.is_on_fn(self.controls)

    @property
    @override
    def extra_state_attributes(self) -> Mapping[str, Any]:
        """Return what the control shows besides its state (the Alerts switch: snoozed until)."""
        return self.entity_description.attributes_fn(self.controls)

    @property
    @override
    def extra_restore_state_data(self) -> ControlStoredData:
        """Return what the hub reads back at the next start (a snooze is the Alerts switch's)."""
        alerts = self.entity_description.key == CONTROL_ALERTS
        return ControlStoredData(
            on=self.is_on, snoozed_until=self.controls.snoozed_until if alerts else None
        )

    @override
    async def async_turn_on(self, **kwargs: Any) -> None:
        """Turn the control on (ending a snooze) and record who did."""
        await self._async_set(True)

    @override
    async def async_turn_off(self, **kwargs: Any) -> None:
        """Turn the control off until turned on again, and record who did."""
        await self._async_set(False)

    async def _async_set(self, on: bool) -> None:
        camera_id = self.camera.camera_id
        self.entity_description.set_fn(self.hub, camera_id, on)
        action = f"{self.entity_description.key}_{'on' if on else 'off'}"
        await self.hub.controls.async_audit(action, self._context, {"camera": camera_id})


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the control switches of every camera, now and for cameras found later."""
    hub = entry.runtime_data.hub

    def make(camera: Camera) -> list[Entity]:
        return [AiSecuritySwitch(hub, camera, description) for description in SWITCHES]

    entry.async_on_unload(add_camera_entities(hass, hub, async_add_entities, make))
