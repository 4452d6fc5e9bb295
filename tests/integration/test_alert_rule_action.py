"""The action test_alert_rule: an alert rule replayed over the hub's stored events."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.const import DOMAIN
from tests.detector_server import DetectorServer
from tests.translations import STRINGS

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import add_camera, call, refused, set_up, stored_event

# Friday 27 November 2026, 22:00 UTC is 23:00 in Paris.
NIGHT = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)


async def rule(hass: HomeAssistant, config_entry: MockConfigEntry, **fields: Any) -> Any:
    """Return test_alert_rule's response for these fields."""
    response = await call(
        hass, "test_alert_rule", {"config_entry_id": config_entry.entry_id, **fields}
    )
    assert isinstance(response, dict)
    assert set(response) == {"fired", "suppressed_by_cooldown", "matched", "evaluated"}
    return response


async def prepare(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    camera_root: Path,
    detector: DetectorServer,
) -> dict[str, str]:
    """Set up the hub in Paris time with cameras Porch and Garden and a night of events.

    Returns the events' ids by name.
    """
    await hass.config.async_set_time_zone("Europe/Paris")
    await set_up(hass, config_entry)
    porch = await add_camera(hass, config_entry, camera_root, detector, "Porch", 1)
    garden = await add_camera(hass, config_entry, camera_root, detector, "Garden", 2)
    db = config_entry.runtime_data.pipeline.db
    person = {"risk_level": "high", "risk_score": 70, "object_types": ["person"]}
    events = {
        # Local times: 23:00, 23:05 and 23:20 at the porch, 23:02 in the garden.
        "first": stored_event(porch, NIGHT, summary="Person at the porch", **person),
        "again": stored_event(porch, NIGHT + timedelta(minutes=5), **person),
        "garden": stored_event(garden, NIGHT + timedelta(minutes=2), **person),
        "cat": stored_event(porch, NIGHT + timedelta(minutes=12)),  # low, a cat
        "later": stored_event(porch, NIGHT + timedelta(minutes=20), zones=["porch"], **person),
        # 13:00 local the next day: outside night hours.
        "noon": stored_event(porch, NIGHT + timedelta(hours=14), risk_level="critical"),
    }
    return {name: await db.run(add) for name, add in events.items()}


async def test_replays_a_rule_with_the_cooldown_per_camera(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """Night hours, high risk, a person, 10 minutes of cooldown: what would have been sent."""
    ids = await prepare(hass, entry, camera_root, detector_server)
    response = await rule(
        hass,
        entry,
        start="2026-11-27 00:00:00",  # local time
        end="2026-11-29 00:00:00",
        min_level="high",
        object_types=["person"],
        active_from="22:00:00",
        active_to="06:00:00",
        cooldown=10,
    )
    assert response["fired"] == [
        {
            "event_id": ids["first"],
            "camera_id": "porch",
            "started_at": "2026-11-27T22:00:00+00:00",
            "risk_level": "high",
            "summary": "Person at the porch",
        },
        {
            "event_id": ids["garden"],
            "camera_id": "garden",
            "started_at": "2026-11-27T22:02:00+00:00",
            "risk_level": "high",
            "summary": "A cat crosses the lawn",
        },
        {
            "event_id": ids["later"],
            "camera_id": "porch",
            "started_at": "2026-11-27T22:20:00+00:00",
            "risk_level": "high",
            "summary": "A cat crosses the lawn",
        },
    ]
    assert response["suppressed_by_cooldown"] == 1  # "again", 5 minutes after "first"
    assert response["matched"] == 4
    assert response["evaluated"] == 6

    # Each condition narrows it down; zones come from the stored events.
    week = {"start": "2026-11-27 00:00:00", "end": "2026-12-01 00:00:00"}
    porch_zone = await rule(hass, entry, **week, zones=["Porch"])
    assert [event["event_id"] for event in porch_zone["fired"]] == [ids["later"]]
    garden_only = await rule(hass, entry, **week, cameras=["garden", "garden"])
    assert [event["event_id"] for event in garden_only["fired"]] == [ids["garden"]]
    assert garden_only["evaluated"] == 1
    fridays = await rule(hass, entry, **week, weekdays=["fri"], cooldown=0)
    assert fridays["matched"] == 5  # all but the Saturday one
    assert fridays["suppressed_by_cooldown"] == 0


async def test_cooldown_zero_and_equal_times(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """Cooldown 0 holds nothing back; active from and until the same time is all day."""
    ids = await prepare(hass, entry, camera_root, detector_server)
    response = await rule(
        hass,
        entry,
        start="2026-11-27T00:00:00+01:00",
        end="2026-12-01T00:00:00+01:00",
        active_from="23:00:00",
        active_to="23:00:00",
        cooldown=0,
    )
    assert [event["event_id"] for event in response["fired"]] == [
        ids["first"],
        ids["garden"],
        ids["again"],
        ids["cat"],
        ids["later"],
        ids["noon"],
    ]
    assert (response["suppressed_by_cooldown"], response["matched"]) == (0, 6)
    # The default cooldown is 10 minutes.
    default = await rule(
        hass, entry, start="2026-11-27T00:00:00+01:00", end="2026-12-01T00:00:00+01:00"
    )
    assert default["suppressed_by_cooldown"] == 3  # again, cat and later (each < 10 min)


async def test_an_empty_range_returns_zeros(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    await prepare(hass, entry, camera_root, detector_server)
    response = await rule(hass, entry, start="2026-01-01 00:00:00", end="2026-01-02 00:00:00")
    assert response == {"fired": [], "suppressed_by_cooldown": 0, "matched": 0, "evaluated": 0}
    # A range of no length at all is empty too.
    same = await rule(hass, entry, start="2026-11-27 23:00:00", end="2026-11-27 23:00:00")
    assert same["evaluated"] == 0
    # Without an end, the range ends now.
    now = dt_util.utcnow()
    recent = await entry.runtime_data.pipeline.db.run(
        stored_event("porch", now - timedelta(minutes=30))
    )
    await entry.runtime_data.pipeline.db.run(stored_event("porch", now + timedelta(hours=1)))
    response = await rule(hass, entry, start=(now - timedelta(hours=1)).isoformat())
    assert [event["event_id"] for event in response["fired"]] == [recent]
    assert response["evaluated"] == 1


async def test_bad_input_is_refused_with_translated_errors(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    await prepare(hass, entry, camera_root, detector_server)
    base = {
        "config_entry_id": entry.entry_id,
        "start": "2026-11-27 00:00:00",
        "end": "2026-12-01 00:00:00",
    }
    err = await refused(hass, "test_alert_rule", {**base, "cooldown": -1})
    assert err.translation_key == "invalid_cooldown"
    assert str(err) == "The cooldown must be from 0 to 1440 minutes, not -1"
    err = await refused(hass, "test_alert_rule", {**base, "cooldown": 2000})
    assert err.translation_key == "invalid_cooldown"
    err = await refused(hass, "test_alert_rule", {**base, "end": "2026-11-26 00:00:00"})
    assert err.translation_key == "invalid_date_range"
    err = await refused(hass, "test_alert_rule", {**base, "cameras": ["attic"]})
    assert err.translation_key == "unknown_camera"


async def test_the_action_is_described(hass: HomeAssistant, init_integration: Any) -> None:
    """Its fields, name and description come from services.yaml and the translations."""
    descriptions = await async_get_all_descriptions(hass)
    fields = descriptions[DOMAIN]["test_alert_rule"]["fields"]
    assert set(fields) == set(STRINGS["services"]["test_alert_rule"]["fields"])
    assert fields["cooldown"]["default"] == 10
