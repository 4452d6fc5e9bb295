"""Websocket commands for the dashboard card: its cameras, their entities, and their events.

The card needs, per camera, its latest annotated picture and its risk: those are entities, but
their ids are whatever the user renamed them to. The entity registry knows them by unique id;
the frontend's copy of the registries does not say which integration key an entity has. So the
integration answers the question itself, in one round trip, for every loaded hub the user may see.

The card's timelines are read with ai_security/search_events, the search_events action's
search without the action: every open dashboard reads each camera's events once a minute, and
such reads change nothing, so they belong neither in the audit trail nor on the event bus
(each action call is a call_service event the recorder stores).
"""

from typing import TYPE_CHECKING, Any, Final

from homeassistant.components import websocket_api
from homeassistant.components.websocket_api import const as ws_const
from homeassistant.components.websocket_api.connection import ActiveConnection
from homeassistant.components.websocket_api.decorators import async_response, websocket_command
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, ServiceCall, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import device_registry as dr, entity_registry as er
import probatio

from .const import DOMAIN
from .service_handlers import handle_search_events
from .service_schemas import SEARCH_SCHEMA, SERVICE_SEARCH_EVENTS

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

CAMERA_ENTITIES: Final[dict[str, tuple[Platform, str]]] = {
    "latest_detection": (Platform.CAMERA, "latest_detection"),
    "last_event": (Platform.IMAGE, "event_snapshot"),
    "risk_level": (Platform.SENSOR, "risk_level"),
    "risk_score": (Platform.SENSOR, "risk_score"),
    "activity": (Platform.BINARY_SENSOR, "activity"),
    "suppressed_today": (Platform.SENSOR, "suppressed_today"),
}
"""The card's name for an entity -> its platform and the key in its unique id."""


@callback
def async_register_commands(hass: HomeAssistant) -> None:
    """Register the card's commands (once; Home Assistant ignores a second registration)."""
    websocket_api.async_register_command(hass, ws_cameras)
    websocket_api.async_register_command(hass, ws_search_events)


@websocket_command({"type": f"{DOMAIN}/cameras"})
@callback
def ws_cameras(hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]) -> None:
    """Return every camera of every loaded hub, with the entity ids the card shows."""
    entities = er.async_get(hass)
    devices = dr.async_get(hass)
    cameras: list[dict[str, Any]] = []
    entry: AiSecurityConfigEntry
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is not ConfigEntryState.LOADED:
            continue
        hub = entry.runtime_data.hub
        for camera_id, state in sorted(
            hub.cameras.items(), key=lambda item: item[1].camera.name.casefold()
        ):
            device = devices.async_get_device_by_identifier(
                (DOMAIN, f"{entry.entry_id}_{camera_id}"), entry.entry_id
            )
            found: dict[str, str | None] = {}
            for name, (platform, key) in CAMERA_ENTITIES.items():
                entity_id = entities.async_get_entity_id(
                    platform, DOMAIN, f"{entry.entry_id}_{camera_id}_{key}"
                )
                registered = entities.async_get(entity_id) if entity_id else None
                found[name] = entity_id if registered and not registered.disabled else None
            cameras.append(
                {
                    "config_entry_id": entry.entry_id,
                    "hub_name": entry.title,
                    "camera_id": camera_id,
                    "name": state.camera.name,
                    "device_id": device.id if device is not None else None,
                    "entities": found,
                }
            )
    connection.send_result(msg["id"], {"cameras": cameras})


@websocket_command({probatio.Required("type"): f"{DOMAIN}/search_events", **SEARCH_SCHEMA.schema})
@async_response
async def ws_search_events(
    hass: HomeAssistant, connection: ActiveConnection, msg: dict[str, Any]
) -> None:
    """Search a hub's events like the search_events action: same fields, checks and answer.

    It runs the action's own handler (not the action), so the validation, the translated
    errors and the signed image and clip URLs cannot drift apart, while nothing is audited.
    """
    data = {key: value for key, value in msg.items() if key not in ("id", "type")}
    call = ServiceCall(
        hass,
        DOMAIN,
        SERVICE_SEARCH_EVENTS,
        data,
        connection.context(msg),
        return_response=True,
    )
    try:
        result = await handle_search_events(call)
    except ServiceValidationError as err:
        # The request was wrong, not the integration: answered like call_service answers it.
        connection.send_error(
            msg["id"],
            ws_const.ERR_SERVICE_VALIDATION_ERROR,
            str(err),
            translation_key=err.translation_key,
            translation_domain=err.translation_domain,
            translation_placeholders=err.translation_placeholders,
        )
        return
    connection.send_result(msg["id"], result)
