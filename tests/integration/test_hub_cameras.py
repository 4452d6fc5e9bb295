"""Cameras and servers as Home Assistant sees them: readable ids, hub ids, removal, clean-up.

A folder named without a letter gets readable entity ids; every bus event names its hub; a
camera whose folder is gone can be deleted from its device page and stays deleted (across a
restart) until an upload in its folder brings it back; the entities of a model server that
reconfigure removed are deleted at setup.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
import re
import shutil
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.media import camera_id_for
from custom_components.ai_security.core.models import (
    Camera,
    EventSource,
    RiskLevel,
    SecurityEvent,
)
from custom_components.ai_security.core.monitor import ServiceKind, endpoint_key
from custom_components.ai_security.core.pipeline import EventUpdate
from custom_components.ai_security.hub import readable_camera
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import FAST_OPTIONS, hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub

from .test_pipeline_ha import detector_server  # noqa: F401

type RemoveDevice = Callable[[str], Awaitable[bool]]


@pytest.fixture
def entry(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> MockConfigEntry:
    """Return a hub with every bus event on (the per-detection one included)."""
    return hub_entry(
        hass,
        camera_root,
        detector_server.url,
        llm_stub.url,
        options={**FAST_OPTIONS, "detection_events": True},
    )


def registered(hass: HomeAssistant, entry: MockConfigEntry, domain: str, key: str) -> str | None:
    """Return the entity id registered for unique id <entry>_<key>, if any."""
    return er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{key}")


async def upload(
    hass: HomeAssistant, camera_root: Path, folder: str, name: str, seed: int
) -> list[Any]:
    """Write an upload and wait for its security event; return the events captured."""
    events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / folder / name, jpeg(seed))
    await wait_until(lambda: len(events) == 1, seconds=20, what=f"the event of {folder}/{name}")
    await hass.async_block_till_done()
    return events


# --- cameras named without letters ------------------------------------------------------------


def test_camera_ids_of_folders_without_letters() -> None:
    """Such a folder gets "camera_" and a short hash: stable, distinct, clear of "Camera"."""
    names = ("!!!", "???", "📷", "-_-", "", "\udcff")  # the last: a folder name not valid UTF-8
    ids = [camera_id_for(name) for name in names]
    assert all(re.fullmatch(r"camera_[0-9a-f]{6}", camera_id) for camera_id in ids), ids
    assert ids == [camera_id_for(name) for name in names]
    assert len(set(ids)) == len(names)
    assert camera_id_for("Camera") == "camera"
    assert camera_id_for("Дверь") == "дверь"


def test_readable_camera_names() -> None:
    """A name without a letter or digit is replaced by one made from the id; others stay."""
    nameless = Camera(camera_id="camera_1a2b3c", name="!!!", folder="!!!")
    assert readable_camera(nameless).name == "Camera 1a2b3c"
    assert readable_camera(nameless).folder == "!!!"
    assert readable_camera(Camera(camera_id="camera_2", name="📷", folder="📷")).name == "Camera 2"
    for name in ("Дверь", "玄関", "Cam 7", "7"):
        camera = Camera(camera_id="x", name=name, folder=name)
        assert readable_camera(camera) is camera


async def test_a_folder_without_letters_gets_readable_entity_ids(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """Folder "!!!": device "Camera <hash>", entities sensor.camera_<hash>_..., after a restart."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    (event,) = await upload(hass, camera_root, "!!!", "a.jpg", 1)
    camera_id = camera_id_for("!!!")
    name = f"Camera {camera_id.removeprefix('camera_')}"
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_{camera_id}"), entry.entry_id
    )
    assert device is not None
    assert device.name == name
    assert (event.data["camera_id"], event.data["camera_name"]) == (camera_id, name)
    expected = {
        ("sensor", "risk_score"): f"sensor.{camera_id}_risk_score",
        ("sensor", "detections_today"): f"sensor.{camera_id}_detections_today",
        ("binary_sensor", "activity"): f"binary_sensor.{camera_id}_activity",
        ("event", "security_event"): f"event.{camera_id}_security_event",
    }
    for (domain, key), entity_id in expected.items():
        assert registered(hass, entry, domain, f"{camera_id}_{key}") == entity_id
        assert hass.states.get(entity_id) is not None

    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.hub.cameras[camera_id].camera.name == name
    for (domain, key), entity_id in expected.items():
        assert registered(hass, entry, domain, f"{camera_id}_{key}") == entity_id


# --- the hub's id on every bus event -------------------------------------------------------------


async def test_every_bus_event_names_its_hub(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """ai_security_event, _detection and _event_updated carry the entry id of their hub."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    detected = async_capture_events(hass, "ai_security_detection")
    updated = async_capture_events(hass, "ai_security_event_updated")
    (event,) = await upload(hass, camera_root, "Front Door", "a.jpg", 2)
    assert event.data["entry_id"] == entry.entry_id
    assert detected
    assert {found.data["entry_id"] for found in detected} == {entry.entry_id}

    pipeline = entry.runtime_data.pipeline
    now = dt_util.utcnow()
    old = SecurityEvent(
        event_id=event.data["event_id"],
        camera_id="front_door",
        started_at=now - timedelta(seconds=30),
        ended_at=now,
        risk_score=40,
        risk_level=RiskLevel.MEDIUM,
        summary="A person",
        reasoning="Heuristic.",
        object_types=("person",),
        detection_count=1,
        is_fast_path=False,
        source=EventSource.HEURISTIC,
    )
    new = replace(old, risk_score=72, risk_level=RiskLevel.HIGH, source=EventSource.LLM)
    pipeline.callbacks.event_updated(
        pipeline.cameras["front_door"],
        EventUpdate(previous=old, event=new, changed=("verdict",), level_rose=True),
    )
    await hass.async_block_till_done()
    again = updated[-1]
    assert again.data["event_id"] == event.data["event_id"]
    assert again.data["entry_id"] == entry.entry_id
    assert (again.data["previous_risk_level"], again.data["risk_level"]) == ("medium", "high")


# --- deleting a camera whose folder is gone ----------------------------------------------------


@pytest.fixture
async def remove_device(hass: HomeAssistant, hass_ws_client: WebSocketGenerator) -> RemoveDevice:
    """Return a function deleting a device as its device page does; True when it was.

    The websocket client starts the HTTP server, so it is made at the first call, once the
    entry (which registers a view) is set up.
    """
    clients: list[Any] = []

    async def remove(device_id: str) -> bool:
        if not clients:
            assert await async_setup_component(hass, "config", {})
            clients.append(await hass_ws_client(hass))
        client = clients[0]
        await client.send_json_auto_id(
            {"type": "config/device_registry/remove", "device_id": device_id}
        )
        response = await client.receive_json()
        await hass.async_block_till_done()
        return bool(response["success"])

    return remove


async def test_a_camera_whose_folder_is_gone_can_be_deleted(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    remove_device: RemoveDevice,
) -> None:
    """Refused while the folder is there and for the hub; then gone until a new upload."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await upload(hass, camera_root, "Gate", "a.jpg", 3)
    await upload(hass, camera_root, "Yard", "a.jpg", 4)
    hub = entry.runtime_data.hub
    device_registry = dr.async_get(hass)
    gate = hub.device_ids["gate"]
    score = registered(hass, entry, "sensor", "gate_risk_score")
    assert score is not None

    assert not await remove_device(gate)  # its folder is still there
    assert hub.hub_device_id is not None
    assert not await remove_device(hub.hub_device_id)
    assert device_registry.async_get(gate) is not None

    await hass.async_add_executor_job(shutil.rmtree, camera_root / "Gate")
    assert await remove_device(gate)
    assert device_registry.async_get(gate) is None
    assert registered(hass, entry, "sensor", "gate_risk_score") is None
    assert hass.states.get(score) is None
    assert "gate" not in hub.cameras
    assert "gate" not in entry.runtime_data.pipeline.cameras
    assert "yard" in hub.cameras

    # A restart does not bring it back: its folder is still gone.
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert "gate" not in entry.runtime_data.hub.cameras
    assert "gate" not in entry.runtime_data.hub.device_ids
    assert "gate" not in entry.runtime_data.pipeline.cameras
    assert "yard" in entry.runtime_data.hub.device_ids
    assert (
        device_registry.async_get_device_by_identifier(
            (DOMAIN, f"{entry.entry_id}_gate"), entry.entry_id
        )
        is None
    )

    # An upload in its folder does, with its entities (it may join the visit a.jpg began).
    await hass.async_add_executor_job(write, camera_root / "Gate" / "b.jpg", jpeg(5))
    await wait_until(
        lambda: "gate" in entry.runtime_data.hub.device_ids, 20, "the camera to come back"
    )
    await hass.async_block_till_done()
    assert registered(hass, entry, "sensor", "gate_risk_score") is not None
    assert hass.states.get(score) is not None


async def test_a_camera_whose_folder_is_back_returns_at_start(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    remove_device: RemoveDevice,
) -> None:
    """A deleted camera whose folder came back while Home Assistant was down returns at start."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await upload(hass, camera_root, "Shed", "a.jpg", 6)
    shed = entry.runtime_data.hub.device_ids["shed"]
    await hass.async_add_executor_job(shutil.rmtree, camera_root / "Shed")
    assert await remove_device(shed)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job((camera_root / "Shed").mkdir)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hub = entry.runtime_data.hub
    assert "shed" in hub.device_ids
    assert hub.cameras["shed"].detections_today > 0  # its history of today came back with it
    assert registered(hass, entry, "sensor", "shed_risk_score") is not None


# --- entities of removed model servers ---------------------------------------------------------


async def test_entities_of_servers_removed_by_reconfigure_are_deleted(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> None:
    """Their registry entries go at setup; the kept server's and the cameras' stay."""
    second = DetectorServer(reply=Reply(body=detections(detection("person", 0.8, [1, 2, 3, 4]))))
    await second.start()
    try:
        hass.config_entries.async_update_entry(
            entry, data={**entry.data, "detector_urls": [detector_server.url, second.url]}
        )
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        # A camera whose id looks like an endpoint key is no endpoint.
        await upload(hass, camera_root, "llm_0123456789ab", "a.jpg", 7)
    finally:
        await second.stop()
    kept = endpoint_key(ServiceKind.DETECTOR, detector_server.url)
    removed = [
        ("binary_sensor", endpoint_key(ServiceKind.DETECTOR, second.url)),
        ("binary_sensor", endpoint_key(ServiceKind.LLM, llm_stub.url)),
        ("sensor", "llm_latency"),
    ]
    camera = ("binary_sensor", "llm_0123456789ab_activity")
    for domain, key in [("binary_sensor", kept), camera, *removed]:
        assert registered(hass, entry, domain, key) is not None, key

    # Reconfigure: one detector, no LLM server (it saves the data and reloads the entry).
    hass.config_entries.async_update_entry(
        entry, data={**entry.data, "detector_urls": [detector_server.url], "llm_urls": []}
    )
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    for domain, key in removed:
        assert registered(hass, entry, domain, key) is None, key
    for domain, key in [("binary_sensor", kept), camera, ("sensor", "detector_latency")]:
        assert registered(hass, entry, domain, key) is not None, key
