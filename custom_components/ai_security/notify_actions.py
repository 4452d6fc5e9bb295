"""The buttons of the notification blueprint, pressed on a phone: False alarm and Snooze.

The companion app fires `mobile_app_notification_action` with the id of the button pressed,
in the context of the phone's user. The ids are `AI_SECURITY_FALSE_ALARM|<entry>|<event>` and
`AI_SECURITY_SNOOZE|<entry>|<camera>` (camera ids may hold underscores, never a `|`). Each entry
answers its own ids by calling its own actions, review_event and snooze_camera, as the user:
the same checks, the same audit record with that user's name. Ids of other entries, of other
automations, or malformed are left alone.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .const import DOMAIN, LOGGER
from .service_schemas import (
    ATTR_CAMERA,
    ATTR_DISMISSED,
    ATTR_DURATION,
    ATTR_EVENT_ID,
    ATTR_REVIEWED,
    SERVICE_REVIEW_EVENT,
    SERVICE_SNOOZE_CAMERA,
)

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

EVENT_NOTIFICATION_ACTION: Final = "mobile_app_notification_action"
"""Fired by the companion app (through its webhook) when a notification's button is pressed."""
ACTION_PREFIX: Final = "AI_SECURITY_"
ACTION_FALSE_ALARM: Final = f"{ACTION_PREFIX}FALSE_ALARM"
ACTION_SNOOZE: Final = f"{ACTION_PREFIX}SNOOZE"
SEPARATOR: Final = "|"
SNOOZE_MINUTES: Final = 60


@dataclass(frozen=True, kw_only=True, slots=True)
class NotificationAction:
    """A button of ours: what it does, for which entry, on which event or camera."""

    kind: str
    entry_id: str
    target: str


def parse_action(action: Any) -> NotificationAction | None:
    """Return the button an action id names, or None when it is not a well-formed one of ours."""
    if not isinstance(action, str):
        return None
    parts = action.split(SEPARATOR)
    if len(parts) != 3:
        return None
    kind, entry_id, target = parts
    if kind not in (ACTION_FALSE_ALARM, ACTION_SNOOZE) or not entry_id or not target:
        return None
    return NotificationAction(kind=kind, entry_id=entry_id, target=target)


@callback
def _ours(data: dict[str, Any]) -> bool:
    """Return whether a pressed button may be one of ours (the rest are not even logged)."""
    action = data.get("action")
    return isinstance(action, str) and action.startswith(ACTION_PREFIX)


@callback
def async_setup_notification_actions(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> None:
    """Answer the entry's buttons until the entry unloads."""

    async def _pressed(event: Event[dict[str, Any]]) -> None:
        raw = event.data.get("action")
        pressed = parse_action(raw)
        if pressed is None:
            LOGGER.debug("Ignoring the notification action %r: not a well-formed id", raw)
            return
        if pressed.entry_id != entry.entry_id:
            LOGGER.debug("Ignoring the notification action %r: not for %s", raw, entry.title)
            return
        if pressed.kind == ACTION_FALSE_ALARM:
            button, service = "False alarm", SERVICE_REVIEW_EVENT
            data: dict[str, Any] = {
                ATTR_EVENT_ID: pressed.target,
                ATTR_REVIEWED: True,
                ATTR_DISMISSED: True,
            }
        else:
            button, service = "Snooze", SERVICE_SNOOZE_CAMERA
            data = {ATTR_CAMERA: pressed.target, ATTR_DURATION: SNOOZE_MINUTES}
        try:
            await hass.services.async_call(
                DOMAIN,
                service,
                {ATTR_CONFIG_ENTRY_ID: entry.entry_id, **data},
                blocking=True,
                context=event.context,
            )
        except ServiceValidationError as err:
            # The event was deleted meanwhile, the camera forgotten, or the entry not running.
            LOGGER.warning("A notification's %s button did nothing: %s", button, err)
        except HomeAssistantError as err:
            LOGGER.error("A notification's %s button failed: %s", button, err)
        else:
            LOGGER.info("A notification's %s button was pressed for %s", button, pressed.target)

    entry.async_on_unload(
        hass.bus.async_listen(EVENT_NOTIFICATION_ACTION, _pressed, event_filter=_ours)
    )
