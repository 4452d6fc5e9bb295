"""Logbook lines for security events: "High risk at Front Door: a person near the entrance"."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.components.logbook.models import LazyEventPartialState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_registry as er

from .const import DEFAULT_NAME, DOMAIN
from .hub import EVENT_SECURITY

SECURITY_EVENT_KEY: Final = "security_event"
"""The key of a camera's event entity (unique id `<entry_id>_<camera_id>_security_event`)."""

type Describe = Callable[[LazyEventPartialState], dict[str, str]]


@callback
def async_describe_events(
    hass: HomeAssistant, async_describe_event: Callable[[str, str, Describe], None]
) -> None:
    """Describe ai_security_event for the logbook: one line per incident, when it opens.

    Its later verdicts (ai_security_event_updated) add no lines: a visit judged four times is
    still one visit; the event entity's own line marks a level that rose.
    """

    @callback
    def describe_event(event: LazyEventPartialState) -> dict[str, str]:
        return _describe(hass, event.data, "")

    async_describe_event(DOMAIN, EVENT_SECURITY, describe_event)


def _describe(hass: HomeAssistant, data: Mapping[str, Any], prefix: str) -> dict[str, str]:
    level = str(data.get("risk_level") or "unknown").title()
    camera_name = str(data.get("camera_name") or data.get("camera_id") or "a camera")
    message = f"{prefix}{level} risk at {camera_name}"
    if summary := " ".join(str(data.get("summary") or "").split()):
        message = f"{message}: {summary}"
    described = {LOGBOOK_ENTRY_NAME: DEFAULT_NAME, LOGBOOK_ENTRY_MESSAGE: message}
    camera_id = data.get("camera_id")
    if isinstance(camera_id, str) and camera_id:
        entity_id = security_event_entity(
            hass, camera_id, data.get("device_id"), data.get("entry_id")
        )
        if entity_id is not None:
            described[LOGBOOK_ENTRY_ENTITY_ID] = entity_id
    return described


@callback
def security_event_entity(
    hass: HomeAssistant, camera_id: str, device_id: object, entry_id: object = None
) -> str | None:
    """Return the event entity of camera_id, or None when it cannot be told for sure.

    The bus event names the camera and its hub (entry_id). Events recorded before they carried
    entry_id name only the camera: each hub's entity of that camera is looked up then, and when
    several hubs have a camera of that id, the one on the event's device is taken.
    """
    registry = er.async_get(hass)
    if isinstance(entry_id, str) and entry_id:
        return registry.async_get_entity_id(
            Platform.EVENT, DOMAIN, f"{entry_id}_{camera_id}_{SECURITY_EVENT_KEY}"
        )
    found: list[str] = []
    for entry in hass.config_entries.async_entries(DOMAIN):
        entity_id = registry.async_get_entity_id(
            Platform.EVENT, DOMAIN, f"{entry.entry_id}_{camera_id}_{SECURITY_EVENT_KEY}"
        )
        if entity_id is None:
            continue
        if device_id is not None:
            registered = registry.async_get(entity_id)
            if registered is not None and registered.device_id == device_id:
                return entity_id
        found.append(entity_id)
    return found[0] if len(found) == 1 else None
