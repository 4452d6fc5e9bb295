"""One visit, one buzz, its own picture: the real pipeline, the bundled blueprint, a phone.

A person at the door in three uploads is one incident: the phone is notified once, at once, with
the incident's own annotated picture, and the notification is replaced in place (same tag, no
sound) when the LLM's verdict comes. The next visit is a notification of its own.
"""

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import FAST_OPTIONS, Incidents, hub_entry
from tests.integration.test_blueprints import (
    add_front_door,
    add_phone,
    set_up_notify,
)
from tests.integration.test_entities import entity_id
from tests.integration.test_event_pictures import COLORS, close, corner_color, picture
from tests.integration.test_pipeline_ha import detector_server  # noqa: F401
from tests.pipeline_helpers import wait_until, write
from tests.servers import LlmStub

LLM_SUMMARY = "A stranger lingers at the front door"


def sound(push: Any) -> bool:
    """Return whether a companion-app notification makes a sound (not a silent replacement)."""
    data = push.data["data"]
    return not data.get("alert_once") and data.get("push", {}).get("sound") != "none"


async def test_one_visit_one_buzz_with_its_picture_then_the_verdict_in_place(
    hass: HomeAssistant,
    hass_client_no_auth: ClientSessionGenerator,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> None:
    """Two visits of three uploads each: two notifications with sound, each updated silently."""
    assert await async_setup_component(hass, "http", {})  # served: the phone loads the picture
    llm_stub.verdict = {
        "risk_score": 72,
        "risk_level": "high",
        "summary": LLM_SUMMARY,
        "reasoning": "Someone stays at the door.",
    }
    llm_stub.completion_delay = 0.3
    options: dict[str, Any] = {**FAST_OPTIONS, "batch_idle_timeout": 1.0, "batch_window": 10}
    entry: MockConfigEntry = hub_entry(
        hass, camera_root, detector_server.url, llm_stub.url, options=options
    )
    await add_front_door(hass, entry, camera_root, detector_server)
    phone, pushes = add_phone(hass)
    await set_up_notify(
        hass,
        Alerts={
            "cameras": [entity_id(hass, entry, "event", "front_door_security_event")],
            "min_level": "medium",
            "cooldown": 0,
            "notify_devices": [phone],
        },
    )
    detector_server.answer(Reply(body=detections(detection("person", 0.95, [120, 60, 80, 150]))))
    incidents = Incidents(hass)
    http = await hass_client_no_auth()
    for visit in range(2):
        # Three uploads 0.2 s apart: one visit (the incident ends after 1 s of quiet).
        for shot in range(3):
            color = COLORS[visit * 3 + shot]
            name = f"visit{visit}-{shot}.jpg"
            await hass.async_add_executor_job(
                write, camera_root / "Front Door" / name, picture(color)
            )
            await hass.async_block_till_done()
        await incidents.wait_ended(visit + 1)
        await hass.async_block_till_done()
        await wait_until(
            lambda n=visit: len({p.data["data"]["tag"] for p in pushes}) == n + 1,
            10,
            f"visit {visit}'s notification",
        )
    assert len(incidents.opened) == 2  # one incident per visit

    for visit, opened in enumerate(incidents.opened):
        tag = f"ai_security_{opened.data['event_id']}"
        mine = [push for push in pushes if push.data["data"]["tag"] == tag]
        # Exactly one notification with a sound per visit, sent when it opened...
        assert [sound(push) for push in mine][:1] == [True]
        assert sum(sound(push) for push in mine) == 1, [p.data for p in mine]
        first = mine[0].data
        assert first["data"]["image"] == opened.data["image_url"]
        assert opened.data["event_id"] in first["data"]["image"]
        # ...showing an upload of this visit (the first one detected), never another visit's.
        loaded = await http.get(first["data"]["image"])
        assert loaded.status == 200
        shown = corner_color(await loaded.read())
        assert any(close(shown, color) for color in COLORS[visit * 3 : visit * 3 + 3]), shown
        # ...then replaced in place, silently, with the LLM's verdict.
        assert len(mine) >= 2
        assert mine[-1].data["message"] == LLM_SUMMARY
        assert mine[-1].data["title"] == "Front Door: High risk"
        # The same picture (its signature is made anew for each message).
        assert {push.data["data"]["image"].split("?")[0] for push in mine} == {
            first["data"]["image"].split("?")[0]
        }
    assert await hass.config_entries.async_unload(entry.entry_id)
