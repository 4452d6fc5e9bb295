"""Storing one record of the audit trail in a hub's database; audit.py chooses what is recorded.

Apart from audit.py because the daily clean-up records its runs too, and the clean-up is part of
an entry's runtime data: what it imports must not need the config entry type, which audit.py's
action and flow wrappers do (they find the database of the entry a call names).
"""

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.core import Context, HomeAssistant
from homeassistant.util import dt as dt_util

from .const import LOGGER
from .core import operations
from .core.audit import AuditRecord

if TYPE_CHECKING:
    from .core.storage import Database


def _short(result: Any) -> Any:
    """Return what of an action's result is worth keeping: lists as their length.

    A result may hold many items (say, the jobs requeued); the trail needs to know that the
    action ran and how much it touched, not a second copy of what it returned.
    """
    if isinstance(result, Mapping):
        return {
            key: len(value) if isinstance(value, list | tuple) else value
            for key, value in result.items()
        }
    return result


async def async_record(
    hass: HomeAssistant,
    database: Callable[[], Database],
    *,
    action: str,
    context: Context | None,
    arguments: Mapping[str, Any],
    result: Any = None,
    error: str | None = None,
) -> None:
    """Store one audit record in an entry's database (logged, never raised, when it fails).

    database is looked up only when the record is written, inside the guard: an entry unloaded
    while its action ran has no database any more, and that is one more record that could not
    be written, not an error of the action.
    """
    user_id = context.user_id if context is not None else None
    user_name = None
    if user_id is not None and (user := await hass.auth.async_get_user(user_id)) is not None:
        user_name = user.name
    item = AuditRecord(
        at=dt_util.utcnow(),
        user_id=user_id,
        user_name=user_name,
        action=action,
        arguments=dict(arguments),
        result=_short(result),
        success=error is None,
        error=error,
    )
    try:
        await operations.record_audit(database(), item)
    except Exception:  # noqa: BLE001 - the audited thing happened; its record is secondary
        LOGGER.exception("Could not record %s in the audit trail", action)
