"""Sensors: each camera's risk, level, detections today and last objects; the hub's diagnostics.

The platform only adds them: the camera sensors are described in sensor_camera.py, the hub's in
sensor_hub.py.
"""

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import AiSecurityConfigEntry
from .core.monitor import ServiceKind
from .entity import add_camera_entities, remove_stale_hub_entities
from .sensor_camera import CAMERA_SENSORS, CameraSensor
from .sensor_hub import FIGURE_GROUPS, HUB_SENSORS, HubSensor

PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the camera sensors (now and for cameras found later) and the hub's sensors.

    The hub's load sensors (GPU, the detector server's queue, the LLM's slots) are added with the
    first refresh that has their figures: at once when setup's refresh had them, later when a
    server that was down at start answers.
    """
    data = entry.runtime_data
    hub = data.hub
    coordinator = data.coordinator
    hub_sensors = [
        HubSensor(coordinator, description)
        for description in HUB_SENSORS
        # Without an LLM server (heuristic scoring only) there is no LLM latency to show.
        if description.source is not ServiceKind.LLM or data.llm_urls or data.llm_entity
    ]
    # A reconfigure that removed the LLM server leaves no LLM latency sensor behind.
    added = {sensor.entity_description.key for sensor in hub_sensors}
    served = {d.key for d in HUB_SENSORS if d.source is not None}
    remove_stale_hub_entities(
        hass, entry.entry_id, Platform.SENSOR, lambda key: key in served and key not in added
    )
    async_add_entities(hub_sensors)
    pending = list(FIGURE_GROUPS)

    @callback
    def add_seen_groups() -> None:
        figures = coordinator.data
        seen = [group for group in pending if figures is not None and group.seen(figures)]
        for group in seen:
            pending.remove(group)
        if seen:
            async_add_entities(
                HubSensor(coordinator, description)
                for group in seen
                for description in group.descriptions
            )

    add_seen_groups()
    if pending:
        entry.async_on_unload(coordinator.async_add_listener(add_seen_groups))
    entry.async_on_unload(
        add_camera_entities(
            hass,
            hub,
            async_add_entities,
            lambda camera: [CameraSensor(hub, camera, d) for d in CAMERA_SENSORS],
        )
    )
