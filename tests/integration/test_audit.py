"""The audit trail in a real Home Assistant: changes are recorded, reads are not.

Actions that change something, and settings changes, are recorded with who, what and how it
ended. Reads (search_events, test_alert_rule, list_dead_jobs, get_audit_log, and the card's
ai_security/search_events over the websocket) leave no row: a dashboard reads every minute.
"""

from datetime import timedelta

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import ServiceValidationError, Unauthorized
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call, set_up, stored_event


async def audit(hass: HomeAssistant, config_entry: MockConfigEntry, **fields: object) -> dict:  # type: ignore[type-arg]
    response = await call(
        hass, "get_audit_log", {"config_entry_id": config_entry.entry_id, **fields}
    )
    assert isinstance(response, dict)
    return response


async def add_event(config_entry: MockConfigEntry) -> str:
    """Store an event of the Porch camera an hour ago; return its id."""
    started = dt_util.utcnow() - timedelta(hours=1)
    pipeline = config_entry.runtime_data.pipeline
    return await pipeline.db.run(stored_event("porch", started))


async def test_changes_are_recorded_with_user_and_redacted_arguments(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_admin_user: User,
) -> None:
    """Who changed what, with which arguments (paths removed) and how it ended, newest first."""
    await set_up(hass, entry)
    event_id = await add_event(entry)
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
        "review_event",
        {"config_entry_id": entry.entry_id, "event_id": event_id, "note": "The postman."},
        context=admin,
    )
    log = await audit(hass, entry)
    assert log["total"] == 2
    review, reprocess = log["records"]
    assert review["action"] == "review_event"
    assert review["success"] is True
    assert review["user_id"] == hass_admin_user.id
    assert review["user_name"] == hass_admin_user.name
    assert review["arguments"]["note"] == "The postman."
    assert review["result"]["event_id"] == event_id
    assert review["result"]["object_types"] == 1  # lists kept as their length
    assert reprocess["action"] == "reprocess_file"
    assert reprocess["success"] is False
    assert reprocess["error"]
    assert "secrets.yaml" not in str(reprocess["arguments"])
    # Paging and the action filter work; reading the log is not itself recorded.
    assert (await audit(hass, entry, action="reprocess_file"))["total"] == 1
    page = await audit(hass, entry, page=2, page_size=1)
    assert page["total"] == 2
    assert page["records"] == [reprocess]


async def test_reads_are_not_recorded_changes_are(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_admin_user: User,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """Searching, replaying a rule, listing dead jobs, the card's read: no row; a review: one."""
    await set_up(hass, entry)
    event_id = await add_event(entry)
    admin = Context(user_id=hass_admin_user.id)
    base = {"config_entry_id": entry.entry_id}
    found = await call(hass, "search_events", {**base, "text": "cat"}, context=admin)
    assert isinstance(found, dict)
    assert found["total"] == 1
    since = (dt_util.utcnow() - timedelta(days=1)).isoformat()
    replay = await call(hass, "test_alert_rule", {**base, "start": since}, context=admin)
    assert isinstance(replay, dict)
    assert replay["matched"] == 1
    assert await call(hass, "list_dead_jobs", base, context=admin) == {"jobs": []}
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "ai_security/search_events", **base})
    reply = await client.receive_json()
    assert reply["success"], reply
    assert reply["result"]["total"] == 1
    assert (await audit(hass, entry))["total"] == 0

    await call(hass, "review_event", {**base, "event_id": event_id}, context=admin)
    (record,) = (await audit(hass, entry))["records"]
    assert (record["action"], record["user_id"]) == ("review_event", hass_admin_user.id)


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
