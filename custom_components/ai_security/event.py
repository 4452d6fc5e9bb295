"""Event entity "Security event" per camera: fires when an incident opens, and when its level rises.

A visit is one incident: judged again as it goes, it fires again only when its level climbs above
any it had (a person at the door at night, first judged Medium, then High), never for a verdict
that stays or falls, so an automation on the entity alerts once per visit and once per escalation.
"""

from typing import override

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .bus_events import verdict_data
from .coordinator import AiSecurityConfigEntry
from .core.models import Camera, RiskLevel, SecurityEvent
from .core.pipeline import EventUpdate
from .entity import AiSecurityCameraEntity, add_camera_entities
from .signals import SIGNAL_EVENT, SIGNAL_EVENT_UPDATED

PARALLEL_UPDATES = 0

SECURITY_EVENT = EventEntityDescription(
    key="security_event",
    translation_key="security_event",
    event_types=[level.value for level in RiskLevel],
)


class SecurityEventEntity(AiSecurityCameraEntity, EventEntity):
    """Fires when an incident of its camera opens, and again only when its level rises."""

    @override
    async def async_added_to_hass(self) -> None:
        """Listen for the camera's new incidents and their updates."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_EVENT.format(self.hub.entry_id), self._handle_event
            )
        )
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass, SIGNAL_EVENT_UPDATED.format(self.hub.entry_id), self._handle_update
            )
        )

    @callback
    def _handle_update(self, camera: Camera, update: EventUpdate) -> None:
        if update.level_rose:
            self._handle_event(camera, update.event)

    @callback
    @override
    def _handle_camera_update(self) -> None:
        """Counters and activity are not this entity's business: it changes only on events."""

    @callback
    def _handle_event(self, camera: Camera, event: SecurityEvent) -> None:
        if camera.camera_id != self.camera.camera_id:
            return
        self._trigger_event(
            event.risk_level.value,
            {
                "event_id": event.event_id,
                "risk_score": event.risk_score,
                "summary": event.summary,
                "reasoning": event.reasoning,
                "object_types": list(event.object_types),
                "zones": list(event.zones),
                "detection_count": event.detection_count,
                "is_fast_path": event.is_fast_path,
                "source": event.source.value,
                "ongoing": event.ongoing,
                **verdict_data(event),
            },
        )
        self.async_write_ha_state()


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the event entity of every camera, now and for cameras found later."""
    hub = entry.runtime_data.hub
    entry.async_on_unload(
        add_camera_entities(
            hass,
            hub,
            async_add_entities,
            lambda camera: [SecurityEventEntity(hub, camera, SECURITY_EVENT)],
        )
    )
