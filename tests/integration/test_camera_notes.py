"""A camera's notes (what is normal there) in a real Home Assistant: the form, and the prompts."""

from collections.abc import AsyncIterator
from pathlib import Path

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.core.prompts import MAX_NOTES
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import Incidents, hub_entry
from tests.pipeline_helpers import jpeg, write
from tests.servers import LlmStub
from tests.translations import STRINGS

PERSON = detection("person", 0.8, [140, 100, 40, 100])
NOTES = "camera_notes"


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(PERSON)))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def entry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    """Return a loaded entry that knows the cameras "Drive" and "Garden"."""
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    incidents = Incidents(hass)
    await hass.async_add_executor_job(write, camera_root / "Drive" / "first.jpg", jpeg(1))
    await hass.async_add_executor_job(write, camera_root / "Garden" / "first.jpg", jpeg(2))
    await incidents.wait_ended(2)
    return entry


async def add_notes(hass: HomeAssistant, entry: MockConfigEntry, **fields: object) -> dict:  # type: ignore[type-arg]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, NOTES), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["description_placeholders"] == {"maximum": str(MAX_NOTES)}
    return await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"camera": "drive", "notes": "Parcels come 10-12.", **fields}
    )


async def test_notes_reach_the_prompts_at_once(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, llm_stub: LlmStub
) -> None:
    """Saved notes go into that camera's next prompt, without a reload; changed ones too."""
    runtime = entry.runtime_data
    result = await add_notes(hass, entry, notes="  Parcels come\n10-12.  ")
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Drive"
    assert result["data"] == {"camera": "drive", "notes": "Parcels come 10-12."}
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime  # no reload

    incidents = Incidents(hass)
    await hass.async_add_executor_job(write, camera_root / "Drive" / "second.jpg", jpeg(3))
    await incidents.wait_ended(1)
    assert "Owner's notes (what is normal here): Parcels come 10-12." in llm_stub.prompts[-1]
    await hass.async_add_executor_job(write, camera_root / "Garden" / "second.jpg", jpeg(4))
    await incidents.wait_ended(2)
    assert "Owner's notes" not in llm_stub.prompts[-1]

    (subentry,) = entry.subentries.values()
    flow = await hass.config_entries.subentries.async_init(
        (entry.entry_id, NOTES),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert flow["type"] is FlowResultType.FORM
    done = await hass.config_entries.subentries.async_configure(
        flow["flow_id"], {"camera": "drive", "notes": "A grey van is always parked here."}
    )
    assert done["type"] is FlowResultType.ABORT
    assert done["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Drive" / "third.jpg", jpeg(5))
    await incidents.wait_ended(3)
    assert "Owner's notes (what is normal here): A grey van" in llm_stub.prompts[-1]

    hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Drive" / "fourth.jpg", jpeg(6))
    await incidents.wait_ended(4)
    assert "Owner's notes" not in llm_stub.prompts[-1]


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"notes": " \n "}, {"notes": "notes_empty"}),
        ({"notes": "x" * (MAX_NOTES + 1)}, {"notes": "notes_too_long"}),
    ],
)
async def test_bad_notes_are_refused_on_the_field(
    hass: HomeAssistant, entry: MockConfigEntry, fields: dict[str, str], errors: dict[str, str]
) -> None:
    """Empty or too long: the field says so, nothing is stored; every message is translated."""
    result = await add_notes(hass, entry, **fields)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert not entry.subentries
    for key in errors.values():
        assert STRINGS["config_subentries"][NOTES]["error"][key]


async def test_one_set_of_notes_per_camera(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A second set for the same camera is refused; another camera's is fine."""
    assert (await add_notes(hass, entry))["type"] is FlowResultType.CREATE_ENTRY
    again = await add_notes(hass, entry)
    assert again["errors"] == {"camera": "notes_duplicate_camera"}
    other = await add_notes(hass, entry, camera="garden")
    assert other["type"] is FlowResultType.CREATE_ENTRY
    assert len(entry.subentries) == 2


async def test_notes_need_a_running_hub_with_cameras(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> None:
    """No camera yet: nothing to write notes about; unloaded: the form is not offered."""
    entry = hub_entry(hass, camera_root, detector_server.url, llm_stub.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, NOTES), context={"source": SOURCE_USER}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "no_cameras")
    assert await hass.config_entries.async_unload(entry.entry_id)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, NOTES), context={"source": SOURCE_USER}
    )
    assert (result["type"], result["reason"]) == (FlowResultType.ABORT, "entry_not_loaded")
