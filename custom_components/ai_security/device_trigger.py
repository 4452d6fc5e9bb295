"""Device triggers of a camera: a security event at or above a level, a person, any event.

The security event triggers are event triggers on `ai_security_event` (an incident opened),
filtered on the camera's device id; one with a level also fires when an incident's verdict rises
to that level from below (`ai_security_event_updated` with `level_rose`), so a visit judged
Medium at first and High by the LLM moments later fires "High or above" once, when it gets there.
"Person detected" listens to the hub's per-device detection signal instead of the
`ai_security_detection` bus event, which is off unless the user turns it on (it would fill the
recorder). Either way an automation made from the device page gets the same trigger data as one
listening to the bus event itself: `trigger.event.event_type` and `trigger.event.data`.

None of them fires for what a camera sees while its alerts are paused (its Alerts switch is off,
or snoozed): the event or detection says so in `alerts_paused`.
"""

import inspect
from typing import Any, Final

from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import (
    ATTR_DEVICE_ID,
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, Context, Event, HassJob, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType
import probatio

from .bus_events import ATTR_ALERTS_PAUSED, EVENT_DETECTION, EVENT_SECURITY, EVENT_UPDATED
from .const import DOMAIN
from .core.events import levels_at_least
from .core.models import RiskLevel
from .signals import SIGNAL_DEVICE_DETECTIONS

TRIGGER_SECURITY_EVENT: Final = "security_event"
TRIGGER_PERSON_DETECTED: Final = "person_detected"
TRIGGER_ANY_EVENT: Final = "any_event"
TRIGGER_TYPES: Final = (TRIGGER_SECURITY_EVENT, TRIGGER_PERSON_DETECTED, TRIGGER_ANY_EVENT)
CONF_LEVEL: Final = "level"

LEVELS: Final = [level.value for level in RiskLevel]


def _level_when_needed(config: ConfigType) -> ConfigType:
    """Require the level of a security_event trigger (the others have none)."""
    if config[CONF_TYPE] == TRIGGER_SECURITY_EVENT and CONF_LEVEL not in config:
        raise probatio.Invalid(f"a {TRIGGER_SECURITY_EVENT} trigger needs a {CONF_LEVEL}")
    return config


TRIGGER_SCHEMA: Final = probatio.All(
    DEVICE_TRIGGER_BASE_SCHEMA.extend(
        {
            probatio.Required(CONF_TYPE): probatio.In(TRIGGER_TYPES),
            probatio.Optional(CONF_LEVEL): probatio.In(LEVELS),
        }
    ),
    _level_when_needed,
)

LEVEL_CAPABILITIES: Final = probatio.Schema(
    {probatio.Required(CONF_LEVEL, default=RiskLevel.HIGH.value): probatio.In(LEVELS)}
)


@callback
def _is_camera(device: dr.DeviceEntry) -> bool:
    """Return whether a device is one of this integration's cameras (not a hub)."""
    return any(
        domain == DOMAIN and identifier != device.config_entry_id
        for domain, identifier in device.identifiers
    )


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, Any]]:
    """Return the triggers of a camera device (a hub's device has none)."""
    device = dr.async_get(hass).async_get(device_id, include_child_devices=False)
    if device is None or not _is_camera(device):
        return []
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
        }
        for trigger_type in TRIGGER_TYPES
    ]


async def async_get_trigger_capabilities(
    hass: HomeAssistant, config: ConfigType
) -> dict[str, probatio.Schema]:
    """Return the level field of the security_event trigger."""
    if config[CONF_TYPE] == TRIGGER_SECURITY_EVENT:
        return {"extra_fields": LEVEL_CAPABILITIES}
    return {}


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for the camera's events of the trigger's kind.

    A level is matched by one event trigger per level at or above it (low < medium < high <
    critical), so every trigger filters on exact event data.
    """
    device_id: str = config[CONF_DEVICE_ID]
    trigger_type: str = config[CONF_TYPE]
    if trigger_type == TRIGGER_PERSON_DETECTED:
        return _attach_person_detected(hass, device_id, action, trigger_info)
    filters: list[tuple[str, dict[str, Any]]]
    unless_paused = _unless_alerts_paused(action)
    if trigger_type == TRIGGER_SECURITY_EVENT:
        levels = levels_at_least(RiskLevel(config[CONF_LEVEL]))
        filters = [
            (EVENT_SECURITY, {ATTR_DEVICE_ID: device_id, "risk_level": level.value})
            for level in levels
        ]
        filters.extend(
            (
                EVENT_UPDATED,
                {ATTR_DEVICE_ID: device_id, "risk_level": level.value, "level_rose": True},
            )
            for level in levels
        )
        unless_paused = _unless_reached_before(unless_paused, {level.value for level in levels})
    else:
        filters = [(EVENT_SECURITY, {ATTR_DEVICE_ID: device_id})]
    removes = []
    for event_type, event_data in filters:
        event_config = event_trigger.TRIGGER_SCHEMA(
            {
                CONF_PLATFORM: "event",
                event_trigger.CONF_EVENT_TYPE: event_type,
                CONF_EVENT_DATA: event_data,
            }
        )
        removes.append(
            await event_trigger.async_attach_trigger(
                hass, event_config, unless_paused, trigger_info, platform_type="device"
            )
        )

    @callback
    def remove() -> None:
        for remove_one in removes:
            remove_one()

    return remove


def _unless_reached_before(action: TriggerActionType, levels: set[str]) -> TriggerActionType:
    """Return action, skipped for an incident's rise from a level the trigger fired for already.

    A rise from High to Critical does not fire "High or above" again: it fired at High.
    """

    async def _run(run_variables: dict[str, Any], context: Context | None = None) -> Any:
        event = run_variables["trigger"]["event"]
        if event.event_type == EVENT_UPDATED and event.data.get("previous_risk_level") in levels:
            return None
        result = action(run_variables, context)
        return await result if inspect.isawaitable(result) else result

    return _run


def _unless_alerts_paused(action: TriggerActionType) -> TriggerActionType:
    """Return action, skipped for events of a camera whose alerts are paused.

    An event trigger matches event data by equality only; "alerts_paused is not true" (events
    fired before the field existed lack it) is checked here instead.
    """

    async def _run(run_variables: dict[str, Any], context: Context | None = None) -> Any:
        event = run_variables["trigger"]["event"]
        if event.data.get(ATTR_ALERTS_PAUSED) is True:
            return None
        result = action(run_variables, context)
        return await result if inspect.isawaitable(result) else result

    return _run


@callback
def _attach_person_detected(
    hass: HomeAssistant, device_id: str, action: TriggerActionType, trigger_info: TriggerInfo
) -> CALLBACK_TYPE:
    """Run action for each person the camera detects, from the hub's signal, not the bus.

    The trigger data is what an event trigger on ai_security_detection would give (the same
    event type and data, as an Event that is not fired), so automations read it the same way.
    """
    job = HassJob(action, f"{DOMAIN} person detected trigger {trigger_info}")
    trigger_data = trigger_info["trigger_data"]

    @callback
    def _detected(payloads: list[dict[str, Any]]) -> None:
        for payload in payloads:
            if payload.get("class") != "person" or payload.get(ATTR_ALERTS_PAUSED) is True:
                continue
            event = Event(EVENT_DETECTION, payload)
            hass.loop.call_soon(
                hass.async_run_hass_job,
                job,
                {
                    "trigger": {
                        **trigger_data,
                        "platform": "device",
                        "event": event,
                        "description": f"person detected by {payload.get('camera_name')}",
                    }
                },
                event.context,
            )

    return async_dispatcher_connect(hass, SIGNAL_DEVICE_DETECTIONS.format(device_id), _detected)
