"""The notification's buttons pressed on a phone: False alarm and Snooze camera 1 h.

The companion app fires `mobile_app_notification_action` in the context of the phone's user;
the entry answers the ids of its own buttons as its actions review_event and snooze_camera do,
audited with that user, and leaves every other id alone.
"""

from datetime import timedelta
import logging
from pathlib import Path
from typing import Any

from freezegun import freeze_time
from homeassistant.auth.models import User
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, EventOrigin, HomeAssistant
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ai_security.notify_actions import (
    ACTION_FALSE_ALARM,
    ACTION_SNOOZE,
    NotificationAction,
    parse_action,
)
from tests.detector_server import DetectorServer

from .test_blueprints import (  # noqa: F401
    add_front_door,
    add_phone,
    hass_config_dir,
    incident,
    opens,
    set_up_notify,
)
from .test_entities import entity_id
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import search, stored_event
from .test_switch import audit_records, state_of


def test_action_ids_are_parsed_strictly() -> None:
    """Three parts, one of our two kinds, nothing empty; camera ids keep their underscores."""
    assert parse_action(f"{ACTION_SNOOZE}|01ENTRY|front_door_2") == NotificationAction(
        kind=ACTION_SNOOZE, entry_id="01ENTRY", target="front_door_2"
    )
    assert parse_action(f"{ACTION_FALSE_ALARM}|01ENTRY|{'a' * 32}") == NotificationAction(
        kind=ACTION_FALSE_ALARM, entry_id="01ENTRY", target="a" * 32
    )
    for malformed in (
        None,
        42,
        "",
        ACTION_SNOOZE,
        f"{ACTION_SNOOZE}|01ENTRY",
        f"{ACTION_SNOOZE}|01ENTRY|front_door|extra",
        f"{ACTION_SNOOZE}||front_door",
        f"{ACTION_FALSE_ALARM}|01ENTRY|",
        "AI_SECURITY_DELETE|01ENTRY|front_door",
        "OPEN_GARAGE|01ENTRY|front_door",
    ):
        assert parse_action(malformed) is None, malformed


async def press(hass: HomeAssistant, action: Any, user: User | None = None, **extra: Any) -> None:
    """Fire what the companion app fires when a notification's button is pressed."""
    hass.bus.async_fire(
        "mobile_app_notification_action",
        {"action": action, "sourceDeviceName": "Test Phone", **extra},
        EventOrigin.remote,
        context=Context(user_id=None if user is None else user.id),
    )
    await hass.async_block_till_done()


async def test_false_alarm_dismisses_the_incident(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    hass_read_only_user: User,
) -> None:
    """The button sent with an incident marks that incident reviewed and dismissed, audited."""
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(hass, Alerts={"cameras": [camera_event], "notify_devices": [phone]})
    data = incident(entry, "high")
    started = dt_util.parse_datetime(data["started_at"])
    assert started is not None
    kept = await entry.runtime_data.pipeline.db.run(stored_event("front_door", started))
    await entry.runtime_data.pipeline.db.run(
        stored_event("front_door", started, event_id=data["event_id"], risk_level="high")
    )
    await opens(hass, data)
    (push,) = pushes
    false_alarm = push.data["data"]["actions"][0]
    assert false_alarm["title"] == "False alarm"

    await press(hass, false_alarm["action"], hass_read_only_user)
    (dismissed,) = (await search(hass, entry, dismissed=True))["events"]
    assert dismissed["event_id"] == data["event_id"]
    assert (dismissed["reviewed"], dismissed["dismissed"]) == (True, True)
    (untouched,) = (await search(hass, entry, reviewed=False))["events"]
    assert untouched["event_id"] == kept

    (record,) = await audit_records(hass, entry)
    assert record["action"] == "review_event"
    assert (record["user_id"], record["user_name"]) == (
        hass_read_only_user.id,
        hass_read_only_user.name,
    )
    assert record["arguments"] == {
        "config_entry_id": entry.entry_id,
        "event_id": data["event_id"],
        "reviewed": True,
        "dismissed": True,
        "missed": False,
    }
    assert record["success"] is True


async def test_false_alarm_of_a_deleted_incident_only_warns(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An incident deleted since the notification (the daily clean-up): a warning, no change."""
    await add_front_door(hass, entry, camera_root, detector_server)
    started = dt_util.utcnow()
    kept = await entry.runtime_data.pipeline.db.run(stored_event("front_door", started))
    gone = "0" * 32
    await press(hass, f"{ACTION_FALSE_ALARM}|{entry.entry_id}|{gone}")
    assert f"A notification's False alarm button did nothing: There is no event {gone}" in (
        caplog.text
    )
    (event,) = (await search(hass, entry))["events"]
    assert (event["event_id"], event["reviewed"], event["dismissed"]) == (kept, False, False)
    assert state_of(hass, entity_id(hass, entry, "switch", "front_door_alerts")).state == STATE_ON
    assert "Error doing job" not in caplog.text


async def test_snooze_pauses_the_camera_for_an_hour(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    hass_read_only_user: User,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Snooze turns the camera's Alerts switch off for 60 minutes; it comes back on by itself."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = entity_id(hass, entry, "switch", "front_door_alerts")
    with freeze_time(dt_util.utcnow()) as clock:
        until = dt_util.utcnow() + timedelta(hours=1)
        await press(hass, f"{ACTION_SNOOZE}|{entry.entry_id}|front_door", hass_read_only_user)
        assert state_of(hass, alerts).state == STATE_OFF
        assert state_of(hass, alerts).attributes["snoozed_until"] == until.isoformat()
        assert entry.runtime_data.hub.alerts_paused("front_door")
        (record,) = await audit_records(hass, entry)
        assert (record["action"], record["user_id"]) == ("snooze_camera", hass_read_only_user.id)
        assert record["arguments"] == {
            "config_entry_id": entry.entry_id,
            "camera": "front_door",
            "duration": 60,
        }
        assert record["result"]["snoozed_until"] == until.isoformat()

        clock.tick(timedelta(minutes=59))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert state_of(hass, alerts).state == STATE_OFF

        clock.tick(timedelta(minutes=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert state_of(hass, alerts).state == STATE_ON
        assert state_of(hass, alerts).attributes["snoozed_until"] is None
    assert "Error doing job" not in caplog.text


async def test_other_ids_are_left_alone(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Malformed ids, another hub's, another automation's: nothing changes, nothing is recorded.

    Ours that cannot be read are logged at debug level; an unknown camera is a warning; other
    automations' buttons are none of our business and are not logged at all.
    """
    caplog.set_level(logging.DEBUG, logger="custom_components.ai_security")
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = entity_id(hass, entry, "switch", "front_door_alerts")
    mine = entry.entry_id
    for action in (
        f"{ACTION_SNOOZE}|{mine}",
        f"{ACTION_SNOOZE}|{mine}|front_door|60",
        f"AI_SECURITY_DELETE|{mine}|front_door",
        f"{ACTION_SNOOZE}|01OTHERHUB|front_door",
        f"{ACTION_FALSE_ALARM}|01OTHERHUB|{'a' * 32}",
    ):
        await press(hass, action)
        assert f"Ignoring the notification action {action!r}" in caplog.text
    await press(hass, "OPEN_GARAGE")
    await press(hass, None)
    await press(hass, ["AI_SECURITY_SNOOZE", mine, "front_door"])
    assert "OPEN_GARAGE" not in caplog.text

    await press(hass, f"{ACTION_SNOOZE}|{mine}|garage")
    assert "A notification's Snooze button did nothing: This hub has no camera garage" in (
        caplog.text
    )
    assert state_of(hass, alerts).state == STATE_ON
    # Only the refused snooze of an unknown camera is in the trail, as the action's would be.
    records = await audit_records(hass, entry)
    assert [(record["action"], record["success"]) for record in records] == [
        ("snooze_camera", False)
    ]
    assert "Error doing job" not in caplog.text


async def test_buttons_stop_with_the_entry(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Unloaded, the entry no longer listens; loaded again, it answers once, not twice."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = entity_id(hass, entry, "switch", "front_door_alerts")
    snooze = f"{ACTION_SNOOZE}|{entry.entry_id}|front_door"
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await press(hass, snooze)
    assert "notification's" not in caplog.text

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await press(hass, snooze)
    assert state_of(hass, alerts).state == STATE_OFF
    records = await audit_records(hass, entry)
    assert [record["action"] for record in records] == ["snooze_camera"]
