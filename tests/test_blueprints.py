"""The shipped blueprints: copied into the configuration, valid, and working as automations.

The notification blueprint runs end to end: a real entry (camera device, event and image
entities), an automation made from the copied blueprint by Home Assistant's blueprint
integration, and two notify targets: a companion-app phone (a notify action of the name the
app registers) and a notify entity. Events are announced through the hub's signal, at frozen
times, so the schedule and the cooldown are exact.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
import uuid

from freezegun import freeze_time
from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint import models as blueprint_models
from homeassistant.components.notify import NotifyEntity
from homeassistant.components.notify.const import DATA_COMPONENT as NOTIFY_COMPONENT
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.yaml import load_yaml_dict
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.ai_security.blueprint_install import (
    BLUEPRINTS,
    async_install_blueprints,
    copy_missing_blueprints,
)
from custom_components.ai_security.core.jobs import JobKind, JobState
from custom_components.ai_security.core.models import EventSource, RiskLevel, SecurityEvent
from custom_components.ai_security.core.monitor import ServiceKind, endpoint_key
from custom_components.ai_security.hub import SIGNAL_EVENT

from .detector_server import DetectorServer, Reply, detections
from .pipeline_helpers import jpeg, wait_for_jobs, write
from .servers import ModelServer
from .test_entities import entity_id
from .test_pipeline_ha import detector_server, entry  # noqa: F401

NOTIFY = "ai_security/notify_security_event.yaml"
RESTART = "ai_security/restart_model_server.yaml"
SOURCE = (
    "https://github.com/ai-security-ha/ai_security/blob/main/"
    "custom_components/ai_security/blueprints/automation/{}"
)


@pytest.fixture
def hass_config_dir(tmp_path: Path) -> str:
    """Give each test its own configuration folder, for the blueprints copied into it."""
    config = tmp_path / "config"
    config.mkdir()
    return str(config)


# --- the files ------------------------------------------------------------------------------------


def test_blueprints_are_valid_and_importable_by_url() -> None:
    """Each shipped blueprint passes Home Assistant's schema and names its raw GitHub source."""
    found = sorted(path.relative_to(BLUEPRINTS / "automation") for path in BLUEPRINTS.rglob("*"))
    assert [str(path) for path in found if path.suffix] == [NOTIFY, RESTART]
    for name in (NOTIFY, RESTART):
        data = load_yaml_dict(str(BLUEPRINTS / "automation" / name))
        blueprint = blueprint_models.Blueprint(
            data, expected_domain="automation", path=name, schema=AUTOMATION_BLUEPRINT_SCHEMA
        )
        assert blueprint.metadata["source_url"] == SOURCE.format(name)
        assert blueprint.metadata["homeassistant"]["min_version"] == "2026.10.0"
        assert blueprint.validate() is None
        for spec in blueprint.inputs.values():
            assert spec["name"]
    notify = blueprint_models.Blueprint(
        load_yaml_dict(str(BLUEPRINTS / "automation" / NOTIFY)),
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )
    assert set(notify.inputs) == {
        "cameras",
        "min_level",
        "object_types",
        "zones",
        "schedule",
        "active_from",
        "active_to",
        "weekdays",
        "cooldown",
        "notify_devices",
        "notify_entities",
        "attach_picture",
        "critical_interruption",
        "tap_url",
    }
    # Only the cameras must be chosen: everything else has a default.
    assert [name for name, spec in notify.inputs.items() if "default" not in spec] == ["cameras"]


def test_copy_adds_missing_blueprints_and_never_overwrites(tmp_path: Path) -> None:
    """A copy the user edited stays as it is; a deleted one comes back."""
    target = tmp_path / "blueprints"
    copied = copy_missing_blueprints(BLUEPRINTS, target)
    assert sorted(path.relative_to(target / "automation") for path in copied) == [
        Path(NOTIFY),
        Path(RESTART),
    ]
    notify = target / "automation" / NOTIFY
    restart = target / "automation" / RESTART
    assert notify.read_bytes() == (BLUEPRINTS / "automation" / NOTIFY).read_bytes()

    notify.write_text("# my own version\n")
    restart.unlink()
    assert copy_missing_blueprints(BLUEPRINTS, target) == [restart]
    assert notify.read_text() == "# my own version\n"
    assert copy_missing_blueprints(BLUEPRINTS, target) == []


async def test_install_copies_into_the_configuration_folder(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """async_install_blueprints puts them where the blueprint integration lists them."""
    await async_install_blueprints(hass)
    blueprints = await async_get_blueprints(hass).async_get_blueprints()
    # Home Assistant's own examples are there too: the folder did not exist before.
    assert {NOTIFY, RESTART, "homeassistant/motion_light.yaml"} <= set(blueprints)
    assert all(isinstance(found, blueprint_models.Blueprint) for found in blueprints.values())
    assert "Added the blueprint automation/ai_security/notify_security_event.yaml" in caplog.text


async def test_install_survives_a_read_only_configuration(
    hass: HomeAssistant, hass_config_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder that cannot be written is logged; setup goes on."""
    blocker = Path(hass_config_dir, "blueprints")
    await hass.async_add_executor_job(blocker.write_text, "a file where the folder should be")
    await async_install_blueprints(hass)
    assert "Cannot copy the AI Security blueprints" in caplog.text


# --- notify on security event ---------------------------------------------------------------------


class RecordingNotifyEntity(NotifyEntity):
    """A notify entity keeping what it was asked to send."""

    _attr_name = "Family chat"
    _attr_unique_id = "family_chat"

    def __init__(self) -> None:
        """Start with nothing sent."""
        self.messages: list[tuple[str | None, str]] = []

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Record the message."""
        self.messages.append((title, message))


async def add_notify_entity(hass: HomeAssistant) -> RecordingNotifyEntity:
    """Add a notify entity to Home Assistant's notify component (its default platform)."""
    entity = RecordingNotifyEntity()
    assert await async_setup_component(hass, "notify", {})
    await hass.data[NOTIFY_COMPONENT].async_add_entities([entity])
    await hass.async_block_till_done()
    return entity


def add_phone(hass: HomeAssistant) -> tuple[str, list[ServiceCall]]:
    """Return a companion-app phone's device id and the calls of its notify action."""
    app_entry = MockConfigEntry(domain="mobile_app", title="Test Phone")
    app_entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=app_entry.entry_id,
        identifiers={("mobile_app", "test-phone")},
        name="Test Phone",
    )
    return device.id, async_mock_service(hass, "notify", "mobile_app_test_phone")


async def add_front_door(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    camera_root: Path,
    detector: DetectorServer,
) -> None:
    """Set the entry up and make camera Front Door known with an upload that shows nothing."""
    detector.answer(Reply(body=detections()))
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "empty.jpg", jpeg(1))
    pipeline = config_entry.runtime_data.pipeline
    await wait_for_jobs(pipeline, JobKind.DETECT, JobState.DONE, 1, seconds=20)
    await hass.async_block_till_done()


def announce(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    level: RiskLevel,
    objects: tuple[str, ...] = ("person",),
    summary: str = "A person at the front door",
) -> SecurityEvent:
    """Announce a new event of Front Door now, as the pipeline does."""
    hub = config_entry.runtime_data.hub
    now = dt_util.utcnow()
    event = SecurityEvent(
        event_id=uuid.uuid4().hex,
        camera_id="front_door",
        started_at=now - timedelta(seconds=30),
        ended_at=now,
        risk_score={"low": 10, "medium": 40, "high": 70, "critical": 95}[level.value],
        risk_level=level,
        summary=summary,
        reasoning="Test.",
        object_types=objects,
        detection_count=1,
        is_fast_path=False,
        source=EventSource.LLM,
    )
    async_dispatcher_send(
        hass, SIGNAL_EVENT.format(config_entry.entry_id), hub.cameras["front_door"].camera, event
    )
    return event


def next_local(hour: int) -> datetime:
    """Return the next local time at hour:00, at least 5 minutes from now."""
    now = dt_util.now()
    moment = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if moment <= now + timedelta(minutes=5):
        moment += timedelta(days=1)
    return moment


async def test_notify_blueprint_end_to_end(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At night a person at the door notifies once; the cooldown and a low level hold back.

    Active from 23:00 to 06:00, high risk or above, a person, 10 minutes of cooldown.
    """
    await add_front_door(hass, entry, camera_root, detector_server)
    chat = await add_notify_entity(hass)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    picture = entity_id(hass, entry, "image", "front_door_event_snapshot")
    await async_install_blueprints(hass)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "alias": "Night alerts",
                    "use_blueprint": {
                        "path": NOTIFY,
                        "input": {
                            "cameras": [camera_event],
                            "min_level": "high",
                            "object_types": ["Person"],
                            "active_from": "23:00:00",
                            "active_to": "06:00:00",
                            "cooldown": 10,
                            "notify_devices": [phone],
                            "notify_entities": ["notify.family_chat"],
                        },
                    },
                }
            ]
        },
    )
    await hass.async_block_till_done()
    automation = hass.states.get("automation.night_alerts")
    assert automation is not None
    assert automation.state == STATE_ON

    night = next_local(23)
    with freeze_time(night - timedelta(minutes=2)) as clock:
        # 22:58 is before the active hours: nothing, and no cooldown for what comes next.
        announce(hass, entry, RiskLevel.HIGH)
        await hass.async_block_till_done()
        assert pushes == []

        clock.move_to(night)
        announce(hass, entry, RiskLevel.HIGH)
        await hass.async_block_till_done()
        assert len(pushes) == 1
        push = pushes[0].data
        assert push["title"] == "Front Door: High risk"
        assert push["message"] == "A person at the front door"
        assert push["data"]["image"] == f"/api/image_proxy/{picture}"
        assert push["data"]["push"] == {"interruption-level": "active"}
        assert push["data"]["url"] == push["data"]["clickAction"]
        assert push["data"]["url"] == (
            "/media-browser/browser/app%2Cmedia-source%3A%2F%2Fai_security%2F"
            f"{entry.entry_id}%2Ffront_door"
        )
        assert chat.messages == [("Front Door: High risk", "A person at the front door")]

        # Five minutes later, the same camera: inside the cooldown.
        clock.move_to(night + timedelta(minutes=5))
        announce(hass, entry, RiskLevel.HIGH)
        await hass.async_block_till_done()
        assert len(pushes) == 1

        # A low-risk event: below the level.
        clock.move_to(night + timedelta(minutes=20))
        announce(hass, entry, RiskLevel.LOW, ("cat",), "A cat on the lawn")
        await hass.async_block_till_done()
        assert len(pushes) == 1
        assert len(chat.messages) == 1

        # Critical, 3 minutes after the low one and 18 after the last alert: sent, breaking
        # through focus modes (the low one did not start a cooldown).
        clock.move_to(night + timedelta(minutes=23))
        announce(hass, entry, RiskLevel.CRITICAL, ("person", "knife"), "Armed person")
        await hass.async_block_till_done()
        assert len(pushes) == 2
        critical = pushes[1].data
        assert critical["title"] == "Front Door: Critical risk"
        assert critical["data"]["push"] == {"interruption-level": "time-sensitive"}
        assert (critical["data"]["priority"], critical["data"]["ttl"]) == ("high", 0)
        assert len(chat.messages) == 2

        # A car is not one of the object types.
        clock.move_to(night + timedelta(minutes=40))
        announce(hass, entry, RiskLevel.HIGH, ("car",), "A car in the driveway")
        await hass.async_block_till_done()
        assert len(pushes) == 2

        # At noon nothing is sent, whatever the level.
        clock.move_to(night + timedelta(hours=13))
        announce(hass, entry, RiskLevel.CRITICAL)
        await hass.async_block_till_done()
        assert len(pushes) == 2
        assert len(chat.messages) == 2
    assert "Error evaluating condition" not in caplog.text
    assert "Error executing script" not in caplog.text


async def test_notify_blueprint_ignores_a_restart_and_respects_zones(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Reloading the entry restores the last event without a notification; zones filter.

    Events carry no zones yet: a zone asked for matches nothing, no zone matches all.
    """
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await async_install_blueprints(hass)

    def automation(alias: str, **inputs: Any) -> dict[str, Any]:
        return {
            "alias": alias,
            "use_blueprint": {
                "path": NOTIFY,
                "input": {
                    "cameras": [camera_event],
                    "notify_devices": [phone],
                    "cooldown": 0,
                    "attach_picture": False,
                    "critical_interruption": "critical",
                    "tap_url": "/lovelace/security",
                    **inputs,
                },
            },
        }

    assert await async_setup_component(
        hass,
        "automation",
        {"automation": [automation("Anywhere"), automation("Porch only", zones=["porch"])]},
    )
    await hass.async_block_till_done()

    announce(hass, entry, RiskLevel.CRITICAL)
    await hass.async_block_till_done()
    assert len(pushes) == 1  # "Porch only" stays silent
    data = pushes[0].data["data"]
    assert "image" not in data
    assert data["url"] == "/lovelace/security"
    assert data["push"]["interruption-level"] == "critical"
    assert data["push"]["sound"] == {"name": "default", "critical": 1, "volume": 1.0}
    assert data["channel"] == "alarm_stream"

    # The event entity comes back with its last event: that is no new event, whether it was
    # unavailable meanwhile (a reload) or not there at all (added while Home Assistant starts).
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    restored = hass.states.get(camera_event)
    assert restored is not None
    assert restored.state not in ("unknown", "unavailable")
    hass.states.async_remove(camera_event)
    hass.states.async_set(camera_event, restored.state, restored.attributes)
    await hass.async_block_till_done()
    assert len(pushes) == 1
    assert "Error evaluating condition" not in caplog.text

    # Cooldown 0: the next event, moments later, is sent.
    announce(hass, entry, RiskLevel.HIGH)
    await hass.async_block_till_done()
    assert len(pushes) == 2


async def test_notify_blueprint_holds_back_a_paused_camera(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing is sent while the camera's Alerts switch is off or snoozed; again once it is on."""
    await add_front_door(hass, entry, camera_root, detector_server)
    chat = await add_notify_entity(hass)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    alerts = entity_id(hass, entry, "switch", "front_door_alerts")
    await async_install_blueprints(hass)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "alias": "Alerts",
                    "use_blueprint": {
                        "path": NOTIFY,
                        "input": {
                            "cameras": [camera_event],
                            "min_level": "low",
                            "cooldown": 0,
                            "notify_devices": [phone],
                            "notify_entities": ["notify.family_chat"],
                        },
                    },
                }
            ]
        },
    )
    await hass.async_block_till_done()

    async def alerts_switch(on: bool) -> None:
        await hass.services.async_call(
            "switch", "turn_on" if on else "turn_off", {"entity_id": alerts}, blocking=True
        )
        await hass.async_block_till_done()

    await alerts_switch(False)
    held = announce(hass, entry, RiskLevel.CRITICAL)
    await hass.async_block_till_done()
    assert pushes == []
    assert chat.messages == []
    fired = hass.states.get(camera_event)
    assert fired is not None
    assert fired.attributes["event_id"] == held.event_id  # shown all the same

    await alerts_switch(True)
    announce(hass, entry, RiskLevel.HIGH)
    await hass.async_block_till_done()
    assert len(pushes) == 1
    assert len(chat.messages) == 1

    await hass.services.async_call(
        "ai_security",
        "snooze_camera",
        {"config_entry_id": entry.entry_id, "camera": "front_door", "duration": 15},
        blocking=True,
    )
    announce(hass, entry, RiskLevel.HIGH)
    await hass.async_block_till_done()
    assert len(pushes) == 1

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=16))
    await hass.async_block_till_done()
    announce(hass, entry, RiskLevel.HIGH)
    await hass.async_block_till_done()
    assert len(pushes) == 2
    assert len(chat.messages) == 2
    assert "Error evaluating condition" not in caplog.text
    assert "Error executing script" not in caplog.text


# --- restart a model server -----------------------------------------------------------------------


async def test_restart_blueprint_runs_the_action_after_minutes_down(
    hass: HomeAssistant, init_integration: MockConfigEntry, detector: ModelServer
) -> None:
    """The action runs once the detector has been down for the minutes set, not before."""
    connectivity = entity_id(
        hass, init_integration, "binary_sensor", endpoint_key(ServiceKind.DETECTOR, detector.url)
    )
    restarts = async_mock_service(hass, "test", "restart")
    await async_install_blueprints(hass)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "alias": "Restart detector",
                    "use_blueprint": {
                        "path": RESTART,
                        "input": {
                            "servers": [connectivity],
                            "minutes": 5,
                            "restart_action": [
                                {
                                    "action": "test.restart",
                                    "data": {
                                        "url": "{{ server_url }}",
                                        "entity": "{{ server_entity }}",
                                        "error": "{{ last_error }}",
                                    },
                                }
                            ],
                        },
                    },
                }
            ]
        },
    )
    await hass.async_block_till_done()
    coordinator = init_integration.runtime_data.coordinator
    start = dt_util.utcnow()

    async def health(status: int, after: timedelta | None = None) -> None:
        detector.health_status = status
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        if after is not None:
            async_fire_time_changed(hass, start + after)
            await hass.async_block_till_done()

    # Down for 2 minutes, then back: nothing runs, not even later.
    await health(500, after=timedelta(minutes=2))
    assert hass.states.get(connectivity).state == STATE_OFF
    await health(200, after=timedelta(minutes=8))
    assert hass.states.get(connectivity).state == STATE_ON
    assert restarts == []

    # Down again, for good: the action runs once, 5 minutes later.
    await health(500, after=timedelta(minutes=12))
    (restart,) = restarts
    assert restart.data["url"] == detector.url
    assert restart.data["entity"] == connectivity
    assert "HTTP 500" in restart.data["error"]
    async_fire_time_changed(hass, start + timedelta(minutes=30))
    await hass.async_block_till_done()
    assert len(restarts) == 1
