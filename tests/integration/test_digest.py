"""The digest action in a real Home Assistant: written by the LLM, or by the template without one.

The hub's LLM (the protocol-speaking stub, answering the digest's schema) writes it; asked not
to, failing, or absent, the template does, and the action still answers. The notable incidents
link to their day in the media browser, which really lists them. Bad input: unknown cameras,
reversed periods.
"""

from datetime import timedelta
from pathlib import Path

from homeassistant.components import media_source
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from tests.detector_server import DetectorServer
from tests.hub_helpers import hub_entry
from tests.servers import LlmStub

from .test_assist_api import incident
from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call, set_up, upload_event


async def digest(hass: HomeAssistant, **fields: object) -> dict[str, object]:
    response = await call(hass, "digest", dict(fields))
    assert isinstance(response, dict)
    return response


async def test_the_llm_writes_it_and_the_links_open_the_incidents(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    llm_stub: LlmStub,
) -> None:
    """The LLM's words, the counts, the notable incidents with links that the browser lists."""
    assert await async_setup_component(hass, "media_source", {})
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    upload = await upload_event(hass, camera_root, "Front Door/a.jpg", 1, events)
    _id, add = incident(
        "front_door",
        dt_util.utcnow() - timedelta(hours=2),
        score=20,
        level="low",
        summary="A cat",
    )
    await entry.runtime_data.pipeline.db.run(add)
    llm_stub.verdict = {"digest": "One person came to the front door at night; check it."}
    written = await digest(hass)
    assert written["written_by"] == "llm"
    assert written["text"] == "One person came to the front door at night; check it."
    assert (written["incidents"], written["alerts"]) == (2, 1)
    notable = written["notable"]
    assert isinstance(notable, list)
    first = notable[0]
    assert first["id"] == upload["event_id"]
    assert first["link"].startswith(
        "/media-browser/browser/app%2Cmedia-source%3A%2F%2Fai_security%2F"
    )
    day = first["media_id"].rsplit("/", 1)[0]
    listed = await media_source.async_browse_media(hass, day)
    assert any(child.media_content_id == first["media_id"] for child in listed.children or [])
    # The facts went to the LLM, as data.
    assert "Incidents: 2" in llm_stub.prompts[-1]

    # Asked not to: the template, with the same facts.
    plain = await digest(hass, use_llm=False, cameras=["front door"], period="today")
    assert plain["written_by"] == "template"
    assert "2 incidents (1 high, 1 low), by camera: Front Door 2." in str(plain["text"])
    assert "1 alert: " in str(plain["text"])

    # The LLM fails or answers something else: the template, never an error.
    llm_stub.completion_status = 500
    assert (await digest(hass))["written_by"] == "template"
    llm_stub.completion_status = 200
    llm_stub.verdict = {"risk_score": 3}
    assert (await digest(hass))["written_by"] == "template"


async def test_without_an_llm_and_bad_input(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """No LLM set: the template; unknown cameras and reversed periods are refused, translated."""
    plain_hub = hub_entry(hass, camera_root, detector_server.url, "")
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, plain_hub)
    await upload_event(hass, camera_root, "Garden/a.jpg", 1, events)
    plain = await digest(hass, config_entry_id=plain_hub.entry_id, period="last_hour")
    assert plain["written_by"] == "template"
    assert str(plain["text"]).startswith("From ")
    assert (await digest(hass, period="yesterday"))["text"] == (
        await digest(hass, period="yesterday")
    )["text"]
    with pytest.raises(ServiceValidationError) as unknown:
        await digest(hass, cameras=["attic"])
    assert unknown.value.translation_key == "unknown_camera"
    now = dt_util.now()
    with pytest.raises(ServiceValidationError) as reversed_period:
        await digest(hass, start=now.isoformat(), end=(now - timedelta(hours=1)).isoformat())
    assert reversed_period.value.translation_key == "invalid_date_range"
