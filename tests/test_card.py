"""What the dashboard card needs from the integration: its file, its commands, its media URLs.

The card itself runs in a browser (tests/test_card_browser.py); here a real Home Assistant
checks the server side: the card is served and registered with the frontend under a versioned
URL, ai_security/cameras names each camera's entities, and ai_security/search_events answers
like the search_events action, with signed URLs that load without a token and stop loading when
tampered with, refuses bad input with the action's translated errors, and audits nothing. The
harness's check that fails a test on Home Assistant's reports of a deprecated call is shown
to catch one here, where the card's command used to make such a call.
"""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator
from yarl import URL

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.frontend import CARD_FILE, CARD_FOLDER, URL_BASE

from .conftest import FrameReports
from .pipeline_helpers import jpeg, wait_until, write
from .test_metadata import STRINGS
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call


async def set_up_with_event(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> dict[str, Any]:
    """Set the entry up and upload one image; return its ai_security_event's data."""
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "a.jpg", jpeg(5))
    await wait_until(lambda: len(events) == 1, seconds=20, what="ai_security_event")
    return dict(events[0].data)


async def test_card_is_served_and_registered_with_a_versioned_url(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """With the frontend loaded, the card's module URL carries its hash and serves the file."""
    assert await async_setup_component(hass, "frontend", {})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    modules = hass.data["frontend_extra_module_url"].urls
    (url,) = [url for url in modules if CARD_FILE in url]
    assert re.fullmatch(rf"{URL_BASE}/{CARD_FILE}\?v=[0-9a-f]{{12}}", url), url
    client = await hass_client_no_auth()
    response = await client.get(url)
    assert response.status == 200
    body = await response.read()
    assert body == (CARD_FOLDER / CARD_FILE).read_bytes()
    assert b'registry.define("ai-security-card", AiSecurityCard)' in body
    # Only the card's folder is served, not the integration's code beside it.
    for path in (f"{URL_BASE}/%2e%2e/manifest.json", f"{URL_BASE}/..%2fmanifest.json"):
        response = await client.get(URL(path, encoded=True))
        assert 400 <= response.status < 500, path
        assert b'"domain"' not in await response.read()

    # A second entry (or a reload) registers nothing twice.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert [u for u in hass.data["frontend_extra_module_url"].urls if CARD_FILE in u] == [url]


async def test_cameras_command_names_each_cameras_entities(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """ai_security/cameras lists the camera with the entity ids the card shows, as renamed."""
    await set_up_with_event(hass, entry, camera_root)
    registry = er.async_get(hass)
    risk_id = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_front_door_risk_level"
    )
    assert risk_id is not None
    registry.async_update_entity(risk_id, new_entity_id="sensor.porch_risk")
    await hass.async_block_till_done()

    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": f"{DOMAIN}/cameras"})
    reply = await client.receive_json()
    assert reply["success"], reply
    (camera,) = reply["result"]["cameras"]
    assert camera["config_entry_id"] == entry.entry_id
    assert camera["hub_name"] == entry.title
    assert (camera["camera_id"], camera["name"]) == ("front_door", "Front Door")
    assert camera["device_id"] is not None
    entities = camera["entities"]
    assert entities["risk_level"] == "sensor.porch_risk"
    assert set(entities) == {
        "latest_detection",
        "last_event",
        "risk_level",
        "risk_score",
        "activity",
    }
    for entity_id in entities.values():
        assert entity_id is not None
        assert hass.states.get(entity_id) is not None, entity_id
    assert entities["latest_detection"].startswith("camera.")
    assert entities["last_event"].startswith("image.")

    # A disabled entity is left out rather than pointing the card at nothing.
    registry.async_update_entity(entities["activity"], disabled_by=er.RegistryEntryDisabler.USER)
    await client.send_json_auto_id({"type": f"{DOMAIN}/cameras"})
    reply = await client.receive_json()
    assert reply["result"]["cameras"][0]["entities"]["activity"] is None


async def test_search_command_answers_like_the_action_with_signed_media_urls(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    hass_client_no_auth: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The card's read gives the action's answer; its image URL loads without a token."""
    data = await set_up_with_event(hass, entry, camera_root)
    # The event's pictures are made after it is announced.
    await entry.runtime_data.pipeline.wait_for_media()
    query = {"config_entry_id": entry.entry_id, "cameras": ["front_door"], "page_size": 5}
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": f"{DOMAIN}/search_events", **query})
    reply = await client.receive_json()
    assert reply["success"], reply
    found = reply["result"]
    (event,) = found["events"]
    assert (found["total"], found["page"], found["page_size"]) == (1, 1, 5)
    assert event["event_id"] == data["event_id"]
    assert event["clip_url"] is None  # a still image makes no clip
    image_url = event["image_url"]
    assert image_url.startswith(f"/api/{DOMAIN}/media/{entry.entry_id}/")
    assert "authSig=" in image_url
    # The same answer as the action's, field for field (the signatures differ in time).
    action = await call(hass, "search_events", query)
    assert isinstance(action, dict)
    unsigned = {key: value for key, value in event.items() if not key.endswith("_url")}
    (expected,) = action["events"]
    assert unsigned == {key: value for key, value in expected.items() if not key.endswith("_url")}
    assert set(event) == set(expected)

    http = await hass_client_no_auth()
    loaded = await http.get(image_url)
    assert loaded.status == 200
    assert loaded.headers["Content-Type"] == "image/jpeg"
    assert (await loaded.read())[:2] == b"\xff\xd8"
    forged = re.sub(r"authSig=[^&]+", "authSig=forged", image_url)
    assert (await http.get(forged)).status == 401
    assert (await http.get(image_url.split("?")[0])).status == 401


@pytest.mark.parametrize(
    ("fields", "code", "key"),
    [
        ({"page_size": 0}, "service_validation_error", "invalid_page_size"),
        ({"cameras": ["garage"]}, "service_validation_error", "unknown_camera"),
        ({"start": "2026-05-02T10:00:00", "end": "2026-05-01T10:00:00"}, None, None),
        ({"min_level": "apocalyptic"}, "invalid_format", None),
        ({"config_entry_id": "not-an-entry"}, "service_validation_error", None),
    ],
)
async def test_search_command_refuses_bad_input_like_the_action(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_ws_client: WebSocketGenerator,
    fields: dict[str, Any],
    code: str | None,
    key: str | None,
) -> None:
    """Bad fields get the action's own checks and translated messages, as errors, not results."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": f"{DOMAIN}/search_events", "config_entry_id": entry.entry_id, **fields}
    )
    reply = await client.receive_json()
    assert not reply["success"], reply
    error = reply["error"]
    assert error["message"]
    if code is None:  # a reversed range: the library's check, translated
        assert error["code"] == "service_validation_error"
        assert error["translation_key"] in STRINGS["exceptions"]
        return
    assert error["code"] == code
    if key is not None:
        assert (error["translation_domain"], error["translation_key"]) == (DOMAIN, key)
        assert error["message"] != key  # the English text, not the bare key


@pytest.mark.parametrize("integration_frame_path", ["custom_components/ai_security"])
async def test_a_deprecated_call_fails_the_test(
    hass: HomeAssistant,
    mock_integration_frame: Any,
    fail_on_frame_reports: FrameReports,
) -> None:
    """The harness's check catches Home Assistant's report of a deprecated call.

    The call is the one ai_security/cameras made before (device_registry.async_get_device,
    which stops working in 2027.8), made as if from the integration's own code.
    """
    dr.async_get(hass).async_get_device(identifiers={(DOMAIN, "front_door")})
    (report,) = fail_on_frame_reports.reports
    assert report.startswith("Detected that custom integration 'ai_security' calls")
    assert "async_get_device" in report
    with pytest.raises(pytest.fail.Exception, match="async_get_device"):
        fail_on_frame_reports.check()
    # Caught on purpose here: this test passes only because the check did its job.
    fail_on_frame_reports.reports.clear()
