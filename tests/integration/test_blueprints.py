"""The shipped blueprints: copied into the configuration, valid, and working as automations.

The notification blueprint runs end to end: a real entry (camera device, event and image
entities), an automation made from the copied blueprint by Home Assistant's blueprint
integration, and two notify targets: a companion-app phone (a notify action of the name the
app registers) and a notify entity. Incidents are announced on the bus with the data the hub
gives them (opening, then updates), at start times the test chooses, and stored as the pipeline
stores them, so the schedule and the cooldown are exact.
"""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
import uuid

from homeassistant.components.automation.config import AUTOMATION_BLUEPRINT_SCHEMA
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint import models as blueprint_models
from homeassistant.components.notify import NotifyEntity
from homeassistant.components.notify.const import DATA_COMPONENT as NOTIFY_COMPONENT
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
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
from custom_components.ai_security.core.monitor import ServiceKind, endpoint_key
from tests.detector_server import DetectorServer, Reply, detections
from tests.pipeline_helpers import jpeg, wait_for_jobs, write
from tests.servers import LlmStub, ModelServer

from .test_entities import entity_id
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import stored_event

NOTIFY = "ai_security/notify_security_event.yaml"
RESTART = "ai_security/restart_model_server.yaml"
DIGEST = "ai_security/digest_when_home.yaml"
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
    assert [str(path) for path in found if path.suffix] == [DIGEST, NOTIFY, RESTART]
    for name in (DIGEST, NOTIFY, RESTART):
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
        Path(DIGEST),
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

SCORES: Final = {"low": 10, "medium": 40, "high": 70, "critical": 95}


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


def incident(
    config_entry: MockConfigEntry,
    level: str,
    *,
    started: datetime | None = None,
    objects: tuple[str, ...] = ("person",),
    zones: tuple[str, ...] = (),
    summary: str = "A person at the front door",
    alerts_paused: bool = False,
    picture: bool = True,
) -> dict[str, Any]:
    """Return the data of ai_security_event for a new incident of Front Door (the bus contract)."""
    event_id = uuid.uuid4().hex
    start = dt_util.as_utc(started or dt_util.utcnow() - timedelta(seconds=5))
    picture_url = (
        f"/api/ai_security/media/{config_entry.entry_id}/front_door/{event_id}.jpg?authSig=t"
    )
    return {
        "entry_id": config_entry.entry_id,
        "event_id": event_id,
        "camera_id": "front_door",
        "camera_name": "Front Door",
        "device_id": config_entry.runtime_data.hub.device_ids["front_door"],
        "risk_score": SCORES[level],
        "risk_level": level,
        "summary": summary,
        "reasoning": "Test.",
        "object_types": list(objects),
        "zones": list(zones),
        "detection_count": 1,
        "started_at": start.isoformat(),
        "ended_at": start.isoformat(),
        "is_fast_path": True,
        "source": "heuristic",
        "alerts_paused": alerts_paused,
        "image_url": picture_url if picture else None,
        "clip_url": None,
        "ongoing": True,
    }


def judged(
    before: dict[str, Any],
    level: str,
    summary: str,
    *,
    level_rose: bool = False,
    changed: tuple[str, ...] = ("verdict",),
    title: str = "",
) -> dict[str, Any]:
    """Return the data of ai_security_event_updated: the incident judged again."""
    return {
        **before,
        "risk_level": level,
        "risk_score": SCORES[level],
        "summary": summary,
        "title": title,
        "source": "llm",
        "changed": list(changed),
        "previous_risk_score": before["risk_score"],
        "previous_risk_level": before["risk_level"],
        "previous_summary": before["summary"],
        "previous_source": before["source"],
        "level_rose": level_rose,
    }


async def opens(hass: HomeAssistant, data: dict[str, Any]) -> None:
    """Announce an incident opening, as the hub does."""
    hass.bus.async_fire("ai_security_event", data)
    await hass.async_block_till_done()


async def updates(hass: HomeAssistant, data: dict[str, Any]) -> None:
    """Announce an incident's update, as the hub does."""
    hass.bus.async_fire("ai_security_event_updated", data)
    await hass.async_block_till_done()


async def store(config_entry: MockConfigEntry, data: dict[str, Any]) -> None:
    """Store an incident as the pipeline does before announcing it (the cooldown reads it)."""
    started = dt_util.parse_datetime(data["started_at"])
    assert started is not None
    await config_entry.runtime_data.pipeline.db.run(
        stored_event(
            data["camera_id"],
            started,
            event_id=data["event_id"],
            risk_level=data["risk_level"],
            risk_score=data["risk_score"],
            summary=data["summary"],
            object_types=data["object_types"],
            zones=data["zones"],
        )
    )


async def set_up_notify(hass: HomeAssistant, **automations: dict[str, Any]) -> None:
    """Make automations (alias: inputs) from the copied notification blueprint."""
    await async_install_blueprints(hass)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {"alias": alias, "use_blueprint": {"path": NOTIFY, "input": inputs}}
                for alias, inputs in automations.items()
            ]
        },
    )
    await hass.async_block_till_done()


def media_browser(config_entry: MockConfigEntry) -> str:
    """Return the URL of Front Door's events in the media browser."""
    return (
        "/media-browser/browser/app%2Cmedia-source%3A%2F%2Fai_security%2F"
        f"{config_entry.entry_id}%2Ffront_door"
    )


def assert_clean_run(caplog: pytest.LogCaptureFixture) -> None:
    """No template or script of the blueprint failed or read a missing value."""
    for problem in (
        "Error evaluating condition",
        "Error executing script",
        "Error rendering",
        "Template variable",
        "Error in 'variables'",
    ):
        assert problem not in caplog.text


async def test_notify_blueprint_two_stages(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An incident notifies at once with its own picture; its new verdict replaces it silently."""
    await add_front_door(hass, entry, camera_root, detector_server)
    chat = await add_notify_entity(hass)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(
        hass,
        Alerts={
            "cameras": [camera_event],
            "cooldown": 0,
            "notify_devices": [phone],
            "notify_entities": ["notify.family_chat"],
        },
    )

    first = incident(entry, "high", summary="A person at the door")
    await opens(hass, first)
    (push,) = pushes
    assert push.data["title"] == "Front Door: High risk"
    assert push.data["message"] == "A person at the door"
    tag = f"ai_security_{first['event_id']}"
    browser = media_browser(entry)
    assert push.data["data"] == {
        "tag": tag,
        "group": "ai_security_front_door",
        "image": first["image_url"],
        "url": browser,
        "clickAction": browser,
        "push": {"interruption-level": "active"},
        "actions": [
            {
                "action": f"AI_SECURITY_FALSE_ALARM|{entry.entry_id}|{first['event_id']}",
                "title": "False alarm",
                "destructive": True,
            },
            {
                "action": f"AI_SECURITY_SNOOZE|{entry.entry_id}|front_door",
                "title": "Snooze camera 1 h",
                "authenticationRequired": True,
            },
            {"action": "URI", "title": "Open", "uri": browser},
        ],
    }
    assert chat.messages == [("Front Door: High risk", "A person at the door")]

    # The LLM's verdict: the same notification (same tag, same picture), without a sound,
    # titled with the model's few words.
    second = judged(first, "high", "A stranger tries the door handle", title="Door handle tried")
    await updates(hass, second)
    assert len(pushes) == 2
    replaced = pushes[1].data
    assert replaced["title"] == "Front Door: High risk · Door handle tried"
    assert replaced["message"] == "A stranger tries the door handle"
    assert replaced["data"]["tag"] == tag
    assert replaced["data"]["image"] == first["image_url"]
    assert replaced["data"]["alert_once"] is True
    assert replaced["data"]["push"] == {"interruption-level": "active", "sound": "none"}
    assert replaced["data"]["actions"] == push.data["data"]["actions"]
    assert len(chat.messages) == 1  # a silent update is for phones only

    # Its clip and its end change nothing on the phone.
    await updates(
        hass, {**second, "changed": ["clip"], "clip_url": "/clip.mp4", "level_rose": False}
    )
    await updates(hass, {**second, "changed": ["ended"], "ongoing": False, "level_rose": False})
    assert len(pushes) == 2

    # The camera's next incident is a notification of its own, with its own picture.
    other = incident(entry, "critical", summary="Two people at the door")
    await opens(hass, other)
    assert len(pushes) == 3
    assert pushes[2].data["data"]["tag"] == f"ai_security_{other['event_id']}"
    assert pushes[2].data["data"]["image"] == other["image_url"]
    assert len(chat.messages) == 2

    # Another camera's incident (a device not chosen), and one without a device: nothing.
    await opens(hass, {**incident(entry, "critical"), "device_id": phone, "camera_id": "garage"})
    await opens(hass, {**incident(entry, "critical"), "device_id": None})
    assert len(pushes) == 3
    assert_clean_run(caplog)


async def test_notify_blueprint_sends_an_incident_when_its_level_rises(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A low first look notifies when the level reaches the minimum; a fall is shown silently."""
    await add_front_door(hass, entry, camera_root, detector_server)
    chat = await add_notify_entity(hass)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(
        hass,
        Alerts={
            "cameras": [camera_event],
            "min_level": "high",
            "cooldown": 0,
            "notify_devices": [phone],
            "notify_entities": ["notify.family_chat"],
        },
    )

    low = incident(entry, "low", summary="Someone on the pavement")
    await opens(hass, low)
    medium = judged(low, "medium", "Someone stops at the gate", level_rose=True)
    await updates(hass, medium)
    assert pushes == []

    # High: the first notification of this incident, so it sounds (no silencing flags).
    high = judged(medium, "high", "Someone walks up to the door", level_rose=True)
    await updates(hass, high)
    (push,) = pushes
    assert push.data["title"] == "Front Door: High risk"
    assert push.data["data"]["tag"] == f"ai_security_{low['event_id']}"
    assert push.data["data"]["push"] == {"interruption-level": "active"}
    assert "alert_once" not in push.data["data"]
    assert chat.messages == [("Front Door: High risk", "Someone walks up to the door")]

    # Judged lower: the phone is told, silently, so that it no longer says high.
    lower = judged(high, "medium", "A parcel delivery")
    await updates(hass, lower)
    assert len(pushes) == 2
    assert pushes[1].data["title"] == "Front Door: Medium risk"
    assert pushes[1].data["data"]["alert_once"] is True
    assert pushes[1].data["data"]["push"]["sound"] == "none"
    # Still lower: it was not sent at that level, nothing more to say.
    await updates(hass, judged(lower, "low", "A parcel delivery, gone"))
    assert len(pushes) == 2

    # High again is no rise (it was high before): silent.
    again = judged(lower, "high", "The courier comes back")
    await updates(hass, again)
    assert len(pushes) == 3
    assert pushes[2].data["data"]["alert_once"] is True

    # Critical is a rise that sounds, through focus modes.
    critical = judged(again, "critical", "The courier forces the door", level_rose=True)
    await updates(hass, critical)
    assert len(pushes) == 4
    data = pushes[3].data["data"]
    assert data["tag"] == f"ai_security_{low['event_id']}"
    assert data["push"] == {"interruption-level": "time-sensitive"}
    assert (data["priority"], data["ttl"]) == ("high", 0)
    assert "alert_once" not in data
    assert "channel" not in data
    assert chat.messages[-1] == ("Front Door: Critical risk", "The courier forces the door")
    assert len(chat.messages) == 2
    assert_clean_run(caplog)


async def test_notify_blueprint_uses_the_critical_channel_for_critical_incidents(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Critical alerts sound through a muted phone (iOS) and on the alarm stream (Android)."""
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(
        hass,
        Alerts={
            "cameras": [camera_event],
            "min_level": "medium",
            "cooldown": 0,
            "critical_interruption": "critical",
            "notify_devices": [phone],
        },
    )

    critical = incident(entry, "critical", summary="Armed person")
    await opens(hass, critical)
    (push,) = pushes
    data = push.data["data"]
    assert data["push"] == {
        "interruption-level": "critical",
        "sound": {"name": "default", "critical": 1, "volume": 1.0},
    }
    assert (data["channel"], data["priority"], data["ttl"]) == ("alarm_stream", "high", 0)

    high = incident(entry, "high")
    await opens(hass, high)
    data = pushes[1].data["data"]
    assert data["push"] == {"interruption-level": "active"}
    assert not {"channel", "priority", "ttl", "alert_once"} & set(data)

    # The critical incident judged again: still through focus modes, but silent and not on
    # the alarm stream.
    await updates(hass, judged(critical, "critical", "Armed person at the window"))
    data = pushes[2].data["data"]
    assert data["tag"] == f"ai_security_{critical['event_id']}"
    assert data["push"] == {"interruption-level": "time-sensitive", "sound": "none"}
    assert data["alert_once"] is True
    assert "channel" not in data
    assert_clean_run(caplog)


async def test_notify_blueprint_holds_back_a_paused_camera(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing is sent for an incident announced with alerts_paused, opening or updated."""
    await add_front_door(hass, entry, camera_root, detector_server)
    chat = await add_notify_entity(hass)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(
        hass,
        Alerts={
            "cameras": [camera_event],
            "min_level": "low",
            "cooldown": 0,
            "notify_devices": [phone],
            "notify_entities": ["notify.family_chat"],
        },
    )

    held = incident(entry, "critical", alerts_paused=True)
    await opens(hass, held)
    await updates(hass, judged(held, "critical", "Still there"))
    await updates(hass, {**judged(held, "high", "Still there"), "alerts_paused": True})
    assert pushes == []
    assert chat.messages == []

    await opens(hass, incident(entry, "high"))
    assert len(pushes) == 1
    assert len(chat.messages) == 1
    assert_clean_run(caplog)


async def test_notify_blueprint_cooldown_hours_and_objects(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At night a person notifies once per quiet spell; a camera's next incident waits.

    Active from 23:00 to 06:00 (by the incident's start), high risk or above, a person, 10
    minutes of cooldown between the starts of a camera's matching incidents.
    """
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    await set_up_notify(
        hass,
        Night={
            "cameras": [camera_event],
            "min_level": "high",
            "object_types": ["Person"],
            "active_from": "23:00:00",
            "active_to": "06:00:00",
            "cooldown": 10,
            "notify_devices": [phone],
        },
    )
    night = dt_util.start_of_local_day() + timedelta(hours=23)

    async def happens(data: dict[str, Any]) -> None:
        await store(entry, data)
        await opens(hass, data)

    # 22:58 is before the active hours: nothing, and no cooldown for what comes next.
    await happens(incident(entry, "high", started=night - timedelta(minutes=2)))
    assert pushes == []

    first = incident(entry, "high", started=night)
    await happens(first)
    assert len(pushes) == 1

    # Five minutes later, the same camera: inside the cooldown, also when judged again.
    second = incident(entry, "high", started=night + timedelta(minutes=5))
    await happens(second)
    await updates(hass, judged(second, "critical", "Two people", level_rose=True))
    assert len(pushes) == 1

    # The first incident's new verdict is still sent: it was sent before.
    await updates(hass, judged(first, "high", "A person tries the door"))
    assert len(pushes) == 2
    assert pushes[1].data["data"]["tag"] == f"ai_security_{first['event_id']}"

    # A low-risk cat is below the level and holds nothing back: a person 18 minutes after the
    # last matching incident (the one held back) is sent.
    await happens(incident(entry, "low", started=night + timedelta(minutes=20), objects=("cat",)))
    assert len(pushes) == 2
    armed = incident(
        entry, "critical", started=night + timedelta(minutes=23), objects=("person", "knife")
    )
    await happens(armed)
    assert len(pushes) == 3
    assert pushes[2].data["data"]["tag"] == f"ai_security_{armed['event_id']}"

    # A car is not one of the object types; at noon nothing is sent, whatever the level.
    await happens(incident(entry, "high", started=night + timedelta(minutes=40), objects=("car",)))
    await happens(incident(entry, "critical", started=night + timedelta(hours=13)))
    assert len(pushes) == 3
    assert_clean_run(caplog)


async def test_notify_blueprint_zones_tap_url_and_picture(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Zones filter; the page to open is the one given; no picture when none is wanted or made."""
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    camera_event = entity_id(hass, entry, "event", "front_door_security_event")
    common = {
        "cameras": [camera_event],
        "notify_devices": [phone],
        "cooldown": 0,
        "tap_url": "/lovelace/security",
    }
    await set_up_notify(
        hass,
        Anywhere={**common, "attach_picture": False},
        Porch={**common, "zones": ["porch"]},
    )

    await opens(hass, incident(entry, "critical"))
    (push,) = pushes  # the porch's automation stays silent
    data = push.data["data"]
    assert "image" not in data
    assert data["url"] == data["clickAction"] == "/lovelace/security"
    assert data["actions"][2] == {"action": "URI", "title": "Open", "uri": "/lovelace/security"}

    await opens(hass, incident(entry, "high", zones=("Porch",), picture=False))
    assert len(pushes) == 3
    assert all("image" not in call.data["data"] for call in pushes)
    assert_clean_run(caplog)


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


async def test_digest_blueprint_when_the_household_comes_home(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    llm_stub: LlmStub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Back after being away: one digest of the time away, opening the media browser.

    Two automations from the blueprint: one for any absence, one for an hour or more. The
    absence lasts moments: only the first sends. The morning digest is sent at its time.
    """
    for component in ("zone", "person", "media_source"):
        assert await async_setup_component(hass, component, {})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    device_id, phone = add_phone(hass)
    await async_install_blueprints(hass)

    def automation(alias: str, **inputs: Any) -> dict[str, Any]:
        return {
            "alias": alias,
            "use_blueprint": {
                "path": DIGEST,
                "input": {"notify_devices": [device_id], **inputs},
            },
        }

    # Someone is home before the automations exist (as after a restart, when the home zone
    # fills as the people's trackers report).
    home = {"in_zones": ["zone.home"]}
    hass.states.async_set("person.alex", "home", home)
    await hass.async_block_till_done()
    morning = (dt_util.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                automation(
                    "Any absence",
                    away_for={"hours": 0, "minutes": 0, "seconds": 0},
                    morning=True,
                    morning_time=f"{morning:%H:%M:%S}",
                ),
                automation("An hour away", away_for={"hours": 1, "minutes": 0, "seconds": 0}),
            ]
        },
    )
    await hass.async_block_till_done()

    hass.states.async_set("person.alex", "not_home", {"in_zones": []})
    await hass.async_block_till_done()
    assert hass.states.get("zone.home").state == "0"
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "a.jpg", jpeg(1))
    await wait_for_jobs(entry.runtime_data.pipeline, JobKind.ANALYZE, JobState.DONE, 1, 20)
    llm_stub.verdict = {"digest": "Someone came to the front door while you were out."}
    assert phone == []
    hass.states.async_set("person.alex", "home", home)
    await hass.async_block_till_done()

    (sent,) = phone
    assert sent.data["title"] == "While you were away: 1 alert, 1 incident"
    assert sent.data["message"] == "Someone came to the front door while you were out."
    assert sent.data["data"]["url"].startswith("/media-browser/browser/app%2Cmedia-source")
    assert sent.data["data"]["tag"] == "ai_security_digest"

    # The morning digest, of the night.
    async_fire_time_changed(hass, dt_util.as_utc(morning))
    await hass.async_block_till_done()
    assert len(phone) == 2
    assert phone[-1].data["title"].startswith("Last night: ")
    assert_clean_run(caplog)
    # Turned off, the automations let go of their time trigger.
    await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)
