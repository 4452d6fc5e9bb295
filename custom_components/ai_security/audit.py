"""The audit trail in Home Assistant: who called which action, changed which setting, and how.

Reads are not audited, changes are. Every action that changes something (reviewing an event,
judging or reprocessing uploads, requeueing jobs) is recorded with the calling user (from the
call's context), its arguments (paths and credentials redacted by core.audit) and a short form
of its result; option and reconfigure changes, and each daily clean-up, are recorded too.
Searches, rule replays and listings, including the card's reads over the websocket, are not:
a dashboard reads every camera's events every minute, and rows of who looked would bury the
rows of who changed what. Recording never makes the recorded thing fail: a database that
cannot take the record is logged and passed over.
"""

from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse

from .audit_record import async_record
from .const import DOMAIN, LOGGER

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry
    from .core.storage import Database

type ActionHandler = Callable[[ServiceCall], Coroutine[Any, Any, ServiceResponse | None]]


async def async_record_change(
    hass: HomeAssistant,
    entry: ConfigEntry,
    *,
    action: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
) -> None:
    """Record which settings a flow changed (old and new value), if the entry is running.

    Flows carry no user, so the record names none; an entry that is not running has no
    database to write to, and its change is only logged.
    """
    changed = {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
    if entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
        LOGGER.info("%s of %s (not running, not in the audit trail)", action, entry.title)
        return
    loaded: AiSecurityConfigEntry = entry
    await async_record(
        hass,
        lambda: loaded.runtime_data.pipeline.db,
        action=action,
        context=None,
        arguments=changed,
    )


def audited(action: str, handler: ActionHandler) -> ActionHandler:
    """Wrap a changing action's handler so that each call is recorded, succeeded or not."""

    async def _audited(call: ServiceCall) -> ServiceResponse | None:
        entry = _loaded_entry(call)
        arguments = dict(call.data)
        try:
            result = await handler(call)
        except Exception as err:
            if entry is not None:
                await async_record(
                    call.hass,
                    _database(entry),
                    action=action,
                    context=call.context,
                    arguments=arguments,
                    error=str(err) or type(err).__name__,
                )
            raise
        if entry is not None:
            await async_record(
                call.hass,
                _database(entry),
                action=action,
                context=call.context,
                arguments=arguments,
                result=result,
            )
        return result

    return _audited


def _loaded_entry(call: ServiceCall) -> AiSecurityConfigEntry | None:
    """Return the loaded entry the call names, whose database takes the record, if any."""
    entry_id = call.data.get(ATTR_CONFIG_ENTRY_ID)
    entry = call.hass.config_entries.async_get_entry(entry_id) if entry_id else None
    if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
        return None
    loaded: AiSecurityConfigEntry = entry
    return loaded


def _database(entry: AiSecurityConfigEntry) -> Callable[[], Database]:
    """Return where entry's records go, looked up only as one is written (see async_record)."""
    return lambda: entry.runtime_data.pipeline.db
