"""Calibration in a real Home Assistant: the user's reviews move the next similar verdict.

Three incidents of the same camera are reviewed as false alarms through review_event; the next
one's verdict is lowered, its own score kept and the reason given, on the bus and in search.
Each upload's person stands somewhere else: at one place, its false alarms would make a learned
spot (test_learned_spots_ha.py), and the detections there would open no incident at all.
"""

from pathlib import Path
from typing import Any

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import Unauthorized
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from tests.detector_server import DetectorServer, Reply, detection, detections

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call, search, set_up, upload_event


def elsewhere(server: DetectorServer, place: int) -> None:
    """Have the next upload's person stand at place (0-5), 45 px apart: no two boxes overlap."""
    server.queue(Reply(body=detections(detection("person", 0.8, [10 + 45 * place, 20, 30, 60]))))


async def test_false_alarms_lower_the_next_similar_incident(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """Three false alarms: the fourth incident is lowered by 30 points, and says why."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    judged: list[dict[str, Any]] = []
    for seed in range(3):
        elsewhere(detector_server, seed)
        judged.append(await upload_event(hass, camera_root, f"Porch/{seed}.jpg", seed + 1, events))
        await call(
            hass,
            "review_event",
            {
                "config_entry_id": entry.entry_id,
                "event_id": judged[-1]["event_id"],
                "dismissed": True,
            },
        )
    # The LLM says 72 each time. No review, then one: not moved (two are needed); after two
    # false alarms of two: 40 * -2 / 3 = -27.
    assert [(item["risk_score"], item["raw_score"]) for item in judged] == [
        (72, None),
        (72, None),
        (45, 72),
    ]
    assert judged[0]["calibration"] == ""
    elsewhere(detector_server, 3)
    fourth = await upload_event(hass, camera_root, "Porch/3.jpg", 9, events)
    # 3 false alarms of 3 reviews: 40 * -3 / 4 = -30.
    assert (fourth["risk_score"], fourth["raw_score"]) == (42, 72)
    assert fourth["risk_level"] == "medium"
    assert fourth["calibration"].startswith("lowered by 30: 3 of the last 3 similar ")
    assert fourth["calibration"].endswith(" person events in Porch were false alarms")
    (found,) = [
        item
        for item in (await search(hass, entry))["events"]
        if item["event_id"] == fourth["event_id"]
    ]
    assert (found["risk_score"], found["raw_score"]) == (42, 72)
    assert found["calibration"] == fourth["calibration"]

    # Reset: the reviews so far stop counting; the next verdict is the LLM's own again.
    reset = await call(
        hass, "reset_learning", {"config_entry_id": entry.entry_id, "camera": "porch"}
    )
    assert isinstance(reset, dict)
    assert reset["camera"] == "porch"
    elsewhere(detector_server, 4)
    fifth = await upload_event(hass, camera_root, "Porch/4.jpg", 10, events)
    assert (fifth["risk_score"], fifth["raw_score"], fifth["calibration"]) == (72, None, "")
    # New reviews teach it again (two are needed, as at first).
    for item in (fourth, fifth):
        await call(
            hass,
            "review_event",
            {"config_entry_id": entry.entry_id, "event_id": item["event_id"], "dismissed": True},
        )
    elsewhere(detector_server, 5)
    sixth = await upload_event(hass, camera_root, "Porch/5.jpg", 11, events)
    assert (sixth["risk_score"], sixth["raw_score"]) == (45, 72)


async def test_only_an_administrator_resets_learning(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_read_only_user: User,
) -> None:
    """Resetting changes how every later verdict is scored: not for every user."""
    await set_up(hass, entry)
    with pytest.raises(Unauthorized):
        await hass.services.async_call(
            "ai_security",
            "reset_learning",
            {"config_entry_id": entry.entry_id, "camera": "porch"},
            blocking=True,
            context=Context(user_id=hass_read_only_user.id),
        )
