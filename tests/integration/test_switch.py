"""A camera's Alerts and Detection switches and the snooze action, in a real Home Assistant.

Alerts off: events are still detected, stored and shown, but say alerts_paused and fire no
device trigger. Detection off: uploads are registered, the detector is not asked. A snooze ends
by itself; both switches come back after a restart; every change is in the audit trail.
"""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from freezegun import freeze_time
from homeassistant.auth.models import User
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Context, HomeAssistant, State
from homeassistant.exceptions import ServiceValidationError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
    async_mock_restore_state_shutdown_restart,
    mock_restore_cache_with_extra_data,
)
from sqlalchemy import select

from custom_components.ai_security.core.jobs import JobKind, JobState
from custom_components.ai_security.core.storage import MediaRow
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import Incidents, hub_entry
from tests.pipeline_helpers import jpeg, wait_for_jobs, wait_until, write
from tests.servers import LlmStub

from .test_blueprints import add_front_door
from .test_device_trigger import camera_device, set_up_automations
from .test_entities import entity_id
from .test_services import call

PERSON = Reply(body=detections(detection("person", 0.8, [10, 20, 30, 60])))


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=PERSON)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def entry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    return hub_entry(hass, camera_root, detector_server.url, llm_stub.url)


def switch(hass: HomeAssistant, config_entry: MockConfigEntry, key: str) -> str:
    """Return the entity id of Front Door's switch key (alerts or detection)."""
    return entity_id(hass, config_entry, "switch", f"front_door_{key}")


def state_of(hass: HomeAssistant, entity: str) -> State:
    found = hass.states.get(entity)
    assert found is not None, entity
    return found


async def turn(hass: HomeAssistant, entity: str, on: bool, user: User | None = None) -> None:
    await hass.services.async_call(
        "switch",
        "turn_on" if on else "turn_off",
        {"entity_id": entity},
        blocking=True,
        context=Context(user_id=None if user is None else user.id),
    )
    await hass.async_block_till_done()


async def audit_records(hass: HomeAssistant, config_entry: MockConfigEntry) -> list[dict[str, Any]]:
    """Return the audit trail, newest first."""
    response = await call(hass, "get_audit_log", {"config_entry_id": config_entry.entry_id})
    assert isinstance(response, dict)
    records: list[dict[str, Any]] = response["records"]
    return records


async def upload(
    hass: HomeAssistant, camera_root: Path, name: str, seed: int, events: list[Any], count: int
) -> None:
    """Write an upload of Front Door and wait for the count-th security event."""
    await hass.async_add_executor_job(write, camera_root / "Front Door" / name, jpeg(seed))
    await wait_until(lambda: len(events) == count, seconds=20, what=f"event {count}")
    await hass.async_block_till_done()


async def test_switches_turn_off_and_on_and_are_audited(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
    hass_admin_user: User,
) -> None:
    """Both switches start on, turn off and on, and each change names who made it."""
    await add_front_door(hass, entry, camera_root, detector_server)
    hub = entry.runtime_data.hub
    alerts, detection_switch = switch(hass, entry, "alerts"), switch(hass, entry, "detection")
    state = state_of(hass, alerts)
    assert (state.state, state.name) == (STATE_ON, "Front Door Alerts")
    assert state.attributes["snoozed_until"] is None
    state = state_of(hass, detection_switch)
    assert (state.state, state.name) == (STATE_ON, "Front Door Detection")
    assert "snoozed_until" not in state.attributes

    await turn(hass, alerts, False, hass_admin_user)
    assert state_of(hass, alerts).state == STATE_OFF
    assert state_of(hass, alerts).attributes["snoozed_until"] is None  # paused until turned on
    assert hub.alerts_paused("front_door")
    await turn(hass, detection_switch, False, hass_admin_user)
    assert state_of(hass, detection_switch).state == STATE_OFF
    await turn(hass, alerts, True, hass_admin_user)
    await turn(hass, detection_switch, True)
    assert state_of(hass, alerts).state == STATE_ON
    assert state_of(hass, detection_switch).state == STATE_ON
    assert not hub.alerts_paused("front_door")

    records = await audit_records(hass, entry)
    assert [(r["action"], r["user_id"], r["arguments"]) for r in records] == [
        ("detection_on", None, {"camera": "front_door"}),
        ("alerts_on", hass_admin_user.id, {"camera": "front_door"}),
        ("detection_off", hass_admin_user.id, {"camera": "front_door"}),
        ("alerts_off", hass_admin_user.id, {"camera": "front_door"}),
    ]
    assert records[1]["user_name"] == hass_admin_user.name


async def test_paused_alerts_mark_events_and_hold_device_triggers(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """Alerts off: the event is made, stored and shown, says alerts_paused, fires no trigger."""
    await add_front_door(hass, entry, camera_root, detector_server)
    detector_server.answer(PERSON)
    calls = await set_up_automations(hass, camera_device(hass, entry))
    events = async_capture_events(hass, "ai_security_event")
    incidents = Incidents(hass)
    found = async_capture_events(hass, "ai_security_detection")
    alerts = switch(hass, entry, "alerts")
    fired = entity_id(hass, entry, "event", "front_door_security_event")
    before = state_of(hass, fired).state

    await turn(hass, alerts, False)
    await upload(hass, camera_root, "paused.jpg", 11, events, 1)
    assert events[0].data["alerts_paused"] is True
    assert [d.data["alerts_paused"] for d in found] == [True]
    assert calls == []
    # Still detected, stored and shown.
    assert state_of(hass, fired).state != before
    assert state_of(hass, fired).attributes["event_id"] == events[0].data["event_id"]
    stored = await call(
        hass, "search_events", {"config_entry_id": entry.entry_id, "cameras": ["front_door"]}
    )
    assert isinstance(stored, dict)
    assert stored["total"] == 1

    await incidents.wait_ended(1)  # the next upload is another visit
    await hass.async_block_till_done()
    assert calls == []  # its rise to High was paused too
    await turn(hass, alerts, True)
    await upload(hass, camera_root, "allowed.jpg", 12, events, 2)
    assert events[1].data["alerts_paused"] is False
    assert found[-1].data["alerts_paused"] is False
    await incidents.wait_ended(2)
    await hass.async_block_till_done()
    assert sorted(c.data["name"] for c in calls) == ["any", "high_or_above", "person"]


async def test_paused_detection_registers_uploads_without_asking_the_detector(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """Detection off: uploads are stored, no request, no event; on again: new uploads only."""
    await add_front_door(hass, entry, camera_root, detector_server)
    detector_server.answer(PERSON)
    pipeline = entry.runtime_data.pipeline
    events = async_capture_events(hass, "ai_security_event")
    asked = len(detector_server.requests)
    today = entity_id(hass, entry, "sensor", "front_door_detections_today")
    counted = state_of(hass, today).state

    await turn(hass, switch(hass, entry, "detection"), False)
    for name, seed in (("p1.jpg", 21), ("p2.jpg", 22)):
        await hass.async_add_executor_job(write, camera_root / "Front Door" / name, jpeg(seed))
    await wait_for_jobs(pipeline, JobKind.DETECT, JobState.DONE, 3, seconds=20)
    await hass.async_block_till_done()
    paths = await pipeline.db.run(lambda s: list(s.scalars(select(MediaRow.path)).all()))
    assert {Path(path).name for path in paths} == {"empty.jpg", "p1.jpg", "p2.jpg"}
    assert len(detector_server.requests) == asked
    assert events == []
    assert state_of(hass, today).state == counted

    await turn(hass, switch(hass, entry, "detection"), True)
    await upload(hass, camera_root, "after.jpg", 23, events, 1)
    # Only the new upload was sent: the paused period's are not gone back over.
    assert len(detector_server.requests) == asked + 1
    await wait_for_jobs(pipeline, JobKind.DETECT, JobState.DONE, 4, seconds=5)
    assert len(detector_server.requests) == asked + 1


async def test_snooze_ends_by_itself(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
    hass_admin_user: User,
) -> None:
    """Snoozed for 30 minutes: off, showing until when; on again at that time, recorded."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = switch(hass, entry, "alerts")
    with freeze_time(dt_util.utcnow()) as clock:
        until = dt_util.utcnow() + timedelta(minutes=30)
        response = await call(
            hass,
            "snooze_camera",
            {"config_entry_id": entry.entry_id, "camera": "front_door", "duration": 30},
            context=Context(user_id=hass_admin_user.id),
        )
        assert response == {"camera": "front_door", "snoozed_until": until.isoformat()}
        await hass.async_block_till_done()
        assert state_of(hass, alerts).state == STATE_OFF
        assert state_of(hass, alerts).attributes["snoozed_until"] == until.isoformat()
        assert entry.runtime_data.hub.alerts_paused("front_door")

        clock.tick(timedelta(minutes=29))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert state_of(hass, alerts).state == STATE_OFF

        clock.tick(timedelta(minutes=1))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        assert state_of(hass, alerts).state == STATE_ON
        assert state_of(hass, alerts).attributes["snoozed_until"] is None
        assert not entry.runtime_data.hub.alerts_paused("front_door")

    ended, snoozed = await audit_records(hass, entry)
    assert (ended["action"], ended["user_id"]) == ("snooze_ended", None)
    assert ended["arguments"] == {"camera": "front_door", "snoozed_until": until.isoformat()}
    assert (snoozed["action"], snoozed["user_id"]) == ("snooze_camera", hass_admin_user.id)
    assert snoozed["arguments"]["duration"] == 30
    assert snoozed["result"]["snoozed_until"] == until.isoformat()


async def test_switching_by_hand_ends_a_snooze(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """On during a snooze: on for good. Off during a snooze: off until turned on, no end."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = switch(hass, entry, "alerts")
    data = {"config_entry_id": entry.entry_id, "camera": "front_door", "duration": 10}
    await call(hass, "snooze_camera", data)
    await turn(hass, alerts, True)
    assert state_of(hass, alerts).attributes["snoozed_until"] is None
    await call(hass, "snooze_camera", data)
    await turn(hass, alerts, False)
    assert state_of(hass, alerts).attributes["snoozed_until"] is None

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=11))
    await hass.async_block_till_done()
    assert state_of(hass, alerts).state == STATE_OFF
    actions = [record["action"] for record in await audit_records(hass, entry)]
    assert actions == ["alerts_off", "snooze_camera", "alerts_on", "snooze_camera"]


async def test_snooze_refuses_bad_input(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """An unknown camera or a duration outside 1 minute to a week is refused, translated."""
    await add_front_door(hass, entry, camera_root, detector_server)
    base = {"config_entry_id": entry.entry_id, "camera": "front_door"}
    for data, key in (
        ({**base, "camera": "garage", "duration": 5}, "unknown_camera"),
        ({**base, "duration": 0}, "invalid_snooze_duration"),
        ({**base, "duration": 7 * 24 * 60 + 1}, "invalid_snooze_duration"),
    ):
        with pytest.raises(ServiceValidationError) as err:
            await call(hass, "snooze_camera", data)
        assert err.value.translation_key == key
    assert state_of(hass, switch(hass, entry, "alerts")).state == STATE_ON


async def test_switches_survive_a_restart(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """Saved through Home Assistant's restore storage: a running snooze and detection off.

    An upload made while Home Assistant was down is registered at the start but not detected:
    the pause is back before the pipeline's workers begin.
    """
    await add_front_door(hass, entry, camera_root, detector_server)
    detector_server.answer(PERSON)
    alerts, detection_switch = switch(hass, entry, "alerts"), switch(hass, entry, "detection")
    response = await call(
        hass,
        "snooze_camera",
        {"config_entry_id": entry.entry_id, "camera": "front_door", "duration": 60},
    )
    assert isinstance(response, dict)
    await turn(hass, detection_switch, False)
    asked = len(detector_server.requests)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await async_mock_restore_state_shutdown_restart(hass)  # written as JSON and read back
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "down.jpg", jpeg(31))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert state_of(hass, alerts).state == STATE_OFF
    assert state_of(hass, alerts).attributes["snoozed_until"] == response["snoozed_until"]
    assert state_of(hass, detection_switch).state == STATE_OFF
    pipeline = entry.runtime_data.pipeline
    await wait_for_jobs(pipeline, JobKind.DETECT, JobState.DONE, 2, seconds=20)
    assert len(detector_server.requests) == asked

    # The snooze still ends at its time.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=61))
    await hass.async_block_till_done()
    assert state_of(hass, alerts).state == STATE_ON


async def test_a_snooze_that_ended_while_down_ends_at_start(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """Restored from the cache: a snooze already over is on at start, and recorded."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts, detection_switch = switch(hass, entry, "alerts"), switch(hass, entry, "detection")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    ended = dt_util.utcnow() - timedelta(minutes=5)
    mock_restore_cache_with_extra_data(
        hass,
        (
            (
                State(alerts, STATE_OFF, {"snoozed_until": ended.isoformat()}),
                {"on": False, "snoozed_until": ended.isoformat()},
            ),
            # Saved while unavailable: the saved data still says off.
            (State(detection_switch, "unavailable"), {"on": False, "snoozed_until": None}),
        ),
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert state_of(hass, alerts).state == STATE_ON
    assert state_of(hass, alerts).attributes["snoozed_until"] is None
    assert state_of(hass, detection_switch).state == STATE_OFF
    (record,) = await audit_records(hass, entry)
    assert (record["action"], record["user_id"]) == ("snooze_ended", None)
    assert record["arguments"] == {"camera": "front_door", "snoozed_until": ended.isoformat()}


async def test_a_plain_saved_state_is_restored(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """A state saved without the switch's own data (off) is restored from the state alone."""
    await add_front_door(hass, entry, camera_root, detector_server)
    alerts = switch(hass, entry, "alerts")
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    mock_restore_cache_with_extra_data(hass, ((State(alerts, STATE_OFF), {}),))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert state_of(hass, alerts).state == STATE_OFF
    assert state_of(hass, alerts).attributes["snoozed_until"] is None
    assert entry.runtime_data.hub.alerts_paused("front_door")
    assert state_of(hass, switch(hass, entry, "detection")).state == STATE_ON


async def test_switches_stay_usable_while_the_folder_is_missing(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,
) -> None:
    """The camera's sensors go unavailable without the folder; its pauses can still be set."""
    await add_front_door(hass, entry, camera_root, detector_server)
    hub = entry.runtime_data.hub
    hub.set_camera_root_ok(False)
    await hass.async_block_till_done()
    assert state_of(hass, entity_id(hass, entry, "sensor", "front_door_risk_level")).state == (
        "unavailable"
    )
    alerts = switch(hass, entry, "alerts")
    assert state_of(hass, alerts).state == STATE_ON
    await turn(hass, alerts, False)
    assert state_of(hass, alerts).state == STATE_OFF
