"""The audit trail in a real Home Assistant: actions, settings changes, and reading it back."""

from __future__ import annotations

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call, set_up


async def audit(hass: HomeAssistant, config_entry: MockConfigEntry, **fields: object) -> dict:  # type: ignore[type-arg]
    response = await call(
        hass, "get_audit_log", {"config_entry_id": config_entry.entry_id, **fields}
    )
    assert isinstance(response, dict)
    return response


async def test_actions_are_recorded_with_user_and_redacted_arguments(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_admin_user: User,
) -> None:
    """Who called what, with which arguments (paths removed) and how it ended, newest first."""
    await set_up(hass, entry)
    admin = Context(user_id=hass_admin_user.id)
    with pytest.raises(ServiceValidationError):
        await call(
            hass,
            "reprocess_file",
            {"config_entry_id": entry.entry_id, "path": "../../secrets.yaml"},
            context=admin,
        )
    await call(
        hass,
        "search_events",
        {"config_entry_id": entry.entry_id, "text": "door"},
        context=admin,
    )
    log = await audit(hass, entry)
    assert log["total"] == 2
    search, reprocess = log["records"]
    assert search["action"] == "search_events"
    assert search["success"] is True
    assert search["user_id"] == hass_admin_user.id
    assert search["user_name"] == hass_admin_user.name
    assert search["arguments"]["text"] == "door"
    assert search["result"]["events"] == 0  # the count, not a copy of the events
    assert reprocess["action"] == "reprocess_file"
    assert reprocess["success"] is False
    assert reprocess["error"]
    assert "secrets.yaml" not in str(reprocess["arguments"])
    # Reading the log is itself recorded; paging and the action filter work.
    assert (await audit(hass, entry, action="reprocess_file"))["total"] == 1
    page = await audit(hass, entry, page=2, page_size=1)
    assert page["total"] == 4  # the two actions and two earlier readings of the log
    assert len(page["records"]) == 1


async def test_bad_paging_and_non_admins_are_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_read_only_user: User,
) -> None:
    """Page sizes outside 1-500 are refused with a message; only administrators read the log."""
    await set_up(hass, entry)
    with pytest.raises(ServiceValidationError) as err:
        await audit(hass, entry, page_size=0)
    assert err.value.translation_key == "invalid_page_size"
    with pytest.raises(Unauthorized):
        await call(
            hass,
            "get_audit_log",
            {"config_entry_id": entry.entry_id},
            context=Context(user_id=hass_read_only_user.id),
        )


async def test_options_changes_are_recorded(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """Saving the options records which ones changed, from what to what."""
    await set_up(hass, entry)
    flow = await hass.config_entries.options.async_init(entry.entry_id)
    options = {key.schema: key.description["suggested_value"] for key in flow["data_schema"].schema}
    options.update(retention_days=45, batch_window=20, batch_idle_timeout=5)
    saved = await hass.config_entries.options.async_configure(flow["flow_id"], options)
    assert saved["type"] == "create_entry"
    await hass.async_block_till_done()
    log = await audit(hass, entry, action="options_changed")
    (record,) = log["records"]
    assert record["arguments"]["retention_days"] == {"from": None, "to": 45}
    assert record["arguments"]["batch_window"] == {"from": 1.5, "to": 20}
    assert "debounce" not in record["arguments"]  # unchanged: 0.1 before and after
    assert record["user_id"] is None
