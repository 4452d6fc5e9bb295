"""The entities of a real Home Assistant: camera sensors, event entity, hub health and GPU."""

from collections.abc import AsyncIterator
from datetime import timedelta
import io
from pathlib import Path
import subprocess
import sys
import types
from typing import Any

from freezegun import freeze_time
from homeassistant.components import camera, image
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from PIL import Image
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.ai_security.const import (
    DOMAIN,
)
from custom_components.ai_security.core.events import get_event
from custom_components.ai_security.core.monitor import ServiceKind, endpoint_key
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.programs import require_program
from tests.servers import LlmStub

GPU = {
    "name": "NVIDIA RTX 4090",
    "utilization": 37,
    "memory_used_mb": 5120,
    "memory_total_mb": 24564,
    "temperature_c": 61,
    "power_w": 180.5,
}


@pytest.fixture
async def detector_server(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(
        reply=Reply(
            body=detections(
                detection("person", 0.8, [10, 20, 30, 60]), detection("car", 0.7, [100, 50, 80, 40])
            )
        )
    )
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def entry(
    hass: HomeAssistant, camera_root: Path, detector_server: DetectorServer, llm_stub: LlmStub
) -> MockConfigEntry:
    return hub_entry(hass, camera_root, detector_server.url, llm_stub.url)


def entity_id(hass: HomeAssistant, entry: MockConfigEntry, domain: str, key: str) -> str:
    """Return the entity id registered for unique id <entry>_<key>."""
    found = er.async_get(hass).async_get_entity_id(domain, DOMAIN, f"{entry.entry_id}_{key}")
    assert found is not None, f"no {domain} entity with key {key}"
    return found


async def test_camera_entities_follow_uploads_and_events(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """An upload updates the camera's sensors; its event fires the event entity and sets risk."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "a.jpg", jpeg(1))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="ai_security_event")
    await wait_until(
        lambda: (
            hass.states.get(entity_id(hass, entry, "sensor", "front_door_detections_today")).state
            == "2"
        ),
        seconds=5,
        what="detections today",
    )
    await hass.async_block_till_done()

    event_data = security_events[0].data
    score = hass.states.get(entity_id(hass, entry, "sensor", "front_door_risk_score"))
    level = hass.states.get(entity_id(hass, entry, "sensor", "front_door_risk_level"))
    objects = hass.states.get(entity_id(hass, entry, "sensor", "front_door_last_detected_objects"))
    fired = hass.states.get(entity_id(hass, entry, "event", "front_door_security_event"))
    assert score is not None
    assert level is not None
    assert objects is not None
    assert fired is not None
    assert score.state == str(event_data["risk_score"])
    assert score.attributes["event_id"] == event_data["event_id"]
    assert level.state == event_data["risk_level"]
    assert level.attributes["options"] == ["clear", "low", "medium", "high", "critical"]
    assert objects.state == "person, car"
    assert [d["class"] for d in objects.attributes["detections"]] == ["person", "car"]
    assert fired.attributes["event_type"] == event_data["risk_level"]
    assert fired.attributes["event_id"] == event_data["event_id"]
    assert fired.attributes["summary"] == event_data["summary"]
    assert fired.attributes["object_types"] == ["car", "person"]
    assert fired.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    # Names come from the translations, under the camera's device name.
    assert score.name == "Front Door Risk score"
    assert fired.name == "Front Door Security event"


async def test_activity_and_risk_hold(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """Activity is on while an incident is open; risk shows it for 10 minutes after, then clears."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    updates = async_capture_events(hass, "ai_security_event_updated")
    hub = entry.runtime_data.hub
    await hass.async_add_executor_job(write, camera_root / "Yard" / "a.jpg", jpeg(2))
    await wait_until(lambda: "yard" in hub.cameras, seconds=10, what="camera")
    await hass.async_block_till_done()
    activity_id = entity_id(hass, entry, "binary_sensor", "yard_activity")
    await wait_until(
        lambda: hass.states.get(activity_id).state == STATE_ON, seconds=10, what="activity on"
    )
    await wait_until(lambda: len(security_events) >= 1, seconds=20, what="event")
    await wait_until(
        lambda: hass.states.get(activity_id).state == STATE_OFF, seconds=10, what="activity off"
    )
    score_id = entity_id(hass, entry, "sensor", "yard_risk_score")
    level_id = entity_id(hass, entry, "sensor", "yard_risk_level")
    # While the incident lasts, and after, the score follows its verdicts.
    await wait_until(
        lambda: any(not update.data["ongoing"] for update in updates), 20, "its last verdict"
    )
    await hass.async_block_till_done()
    assert hass.states.get(score_id).state == str(updates[-1].data["risk_score"])

    later = dt_util.utcnow() + timedelta(minutes=11)
    with freeze_time(later):
        async_fire_time_changed(hass, later)
        await hass.async_block_till_done()
        assert hass.states.get(score_id).state == "0"
        assert hass.states.get(level_id).state == "clear"


async def test_counts_survive_a_restart(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """After a reload, detections today and the latest event come back from the database."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Gate" / "a.jpg", jpeg(3))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="event")
    await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    today = hass.states.get(entity_id(hass, entry, "sensor", "gate_detections_today"))
    score = hass.states.get(entity_id(hass, entry, "sensor", "gate_risk_score"))
    events_today = hass.states.get(entity_id(hass, entry, "sensor", "events_today"))
    assert today is not None
    assert score is not None
    assert events_today is not None
    assert today.state == "2"
    assert score.attributes["event_id"] == security_events[0].data["event_id"]
    assert events_today.state == "1"


async def test_hub_health_status_events_and_recovery(
    hass: HomeAssistant, entry: MockConfigEntry, detector_server: DetectorServer
) -> None:
    """A detector that stops answering turns its sensor off and fires a status event, then back.

    Checks run every 15 s; the test runs them at once through the coordinator.
    """
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    coordinator = entry.runtime_data.coordinator
    assert coordinator.update_interval == timedelta(seconds=15)
    statuses = async_capture_events(hass, "ai_security_service_status")
    key = endpoint_key(ServiceKind.DETECTOR, detector_server.url)
    connectivity = entity_id(hass, entry, "binary_sensor", key)
    latency = entity_id(hass, entry, "sensor", "detector_latency")
    state = hass.states.get(connectivity)
    assert state is not None
    assert state.state == STATE_ON
    assert state.attributes["url"] == detector_server.url
    assert state.attributes["circuit"] == "closed"
    assert hass.states.get(entity_id(hass, entry, "sensor", "detection_queue")).state == "0"

    detector_server.health_status = 500
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(connectivity)
    assert state.state == STATE_OFF
    assert "HTTP 500" in state.attributes["last_error"]
    # The circuit agrees with the state: a failed check is "open" at once, although the
    # breaker itself opens only after more failures in a row (its own state: diagnostics).
    assert (state.attributes["status"], state.attributes["circuit"]) == ("unhealthy", "open")
    breaker = entry.runtime_data.pipeline.detector.breakers[detector_server.url]
    assert breaker.state.value == "closed"
    assert hass.states.get(latency).state == STATE_UNAVAILABLE
    (down,) = statuses
    assert down.data["service"] == "detector"
    assert (down.data["previous_status"], down.data["status"]) == ("healthy", "unhealthy")
    assert down.data["url"] == detector_server.url

    detector_server.health_status = 200
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    state = hass.states.get(connectivity)
    assert state.state == STATE_ON
    assert state.attributes["circuit"] == "closed"
    assert [e.data["status"] for e in statuses] == ["unhealthy", "healthy"]
    assert {e.data["entry_id"] for e in statuses} == {entry.entry_id}


async def test_each_llm_server_of_a_pool_has_its_own_entities(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """Two LLM servers: a connectivity sensor each (own unique id, own URL), followed apart.

    One that stops answering is shown down while the other stays up; the LLM latency, a figure
    of the pool, stays available as long as one answers.
    """
    second = LlmStub()
    await second.start()
    try:
        entry = hub_entry(hass, camera_root, detector_server.url, [llm_stub.url, second.url])
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.coordinator
        statuses = async_capture_events(hass, "ai_security_service_status")
        keys = [endpoint_key(ServiceKind.LLM, url) for url in (llm_stub.url, second.url)]
        assert keys[0] != keys[1]
        first_id, second_id = (entity_id(hass, entry, "binary_sensor", key) for key in keys)
        assert first_id != second_id
        latency = entity_id(hass, entry, "sensor", "llm_latency")
        for entity, url in ((first_id, llm_stub.url), (second_id, second.url)):
            state = hass.states.get(entity)
            assert state is not None
            assert state.state == STATE_ON
            assert state.attributes["url"] == url
            assert url in state.name

        await second.stop()
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        first, down = hass.states.get(first_id), hass.states.get(second_id)
        assert (first.state, first.attributes["status"]) == (STATE_ON, "healthy")
        assert (down.state, down.attributes["status"]) == (STATE_OFF, "unhealthy")
        assert down.attributes["circuit"] == "open"
        assert down.attributes["last_error"]
        assert hass.states.get(latency).state != STATE_UNAVAILABLE
        (event,) = statuses
        assert (event.data["service"], event.data["url"]) == ("llm", second.url)
        assert (event.data["previous_status"], event.data["status"]) == ("healthy", "unhealthy")

        await llm_stub.stop()
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        assert hass.states.get(first_id).state == STATE_OFF
        assert hass.states.get(latency).state == STATE_UNAVAILABLE

        await second.start()
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        assert hass.states.get(second_id).state == STATE_ON
        assert hass.states.get(first_id).state == STATE_OFF
        assert hass.states.get(latency).state != STATE_UNAVAILABLE
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await second.stop()


async def test_gpu_sensors_from_the_detector_report(
    hass: HomeAssistant, entry: MockConfigEntry, detector_server: DetectorServer
) -> None:
    """A detector that reports a GPU in /health gives the hub GPU sensors."""
    detector_server.health_body = {"status": "ok", "gpu": GPU}
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    values = {
        key: hass.states.get(entity_id(hass, entry, "sensor", key)).state
        for key in (
            "gpu_utilization",
            "gpu_memory_used",
            "gpu_temperature",
            "gpu_power",
        )
    }
    assert values == {
        "gpu_utilization": "37.0",
        "gpu_memory_used": "5.0",  # 5120 MiB, shown in GiB
        "gpu_temperature": "61.0",
        "gpu_power": "180.5",
    }
    memory = hass.states.get(entity_id(hass, entry, "sensor", "gpu_memory_used"))
    assert memory.attributes["unit_of_measurement"] == "GiB"
    # The total never changes: registered, but off until a user wants it.
    total = er.async_get(hass).async_get(entity_id(hass, entry, "sensor", "gpu_memory_total"))
    assert total is not None
    assert total.disabled_by is er.RegistryEntryDisabler.INTEGRATION


async def test_no_gpu_no_gpu_sensors(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Without NVML or a detector GPU report there are no GPU sensors at all."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("sensor", DOMAIN, f"{entry.entry_id}_gpu_power") is None


class FakeNvml(types.ModuleType):
    """Enough of pynvml for one GPU: what NVML would report."""

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.shutdowns = 0

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        """Start NVML."""

    def nvmlShutdown(self) -> None:  # noqa: N802 - pynvml's names
        """Stop NVML."""
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - pynvml's names
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:  # noqa: N802 - pynvml's names
        return f"gpu{index}"

    def nvmlDeviceGetName(self, _handle: str) -> bytes:  # noqa: N802 - pynvml's names
        return b"NVIDIA L4"

    def nvmlDeviceGetUtilizationRates(self, _handle: str) -> Any:  # noqa: N802 - pynvml's names
        return types.SimpleNamespace(gpu=12, memory=3)

    def nvmlDeviceGetMemoryInfo(self, _handle: str) -> Any:  # noqa: N802 - pynvml's names
        return types.SimpleNamespace(used=2048 * 2**20, total=23034 * 2**20, free=0)

    def nvmlDeviceGetTemperature(self, _handle: str, _sensor: int) -> int:  # noqa: N802 - pynvml's names
        return 44

    def nvmlDeviceGetPowerUsage(self, _handle: str) -> int:  # noqa: N802 - pynvml's names
        raise RuntimeError("not supported on this board")


async def test_gpu_sensors_from_nvml(
    hass: HomeAssistant, entry: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NVML on Home Assistant's host wins over the detector; a figure it lacks is unavailable."""
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.states.get(entity_id(hass, entry, "sensor", "gpu_utilization")).state == "12.0"
    assert hass.states.get(entity_id(hass, entry, "sensor", "gpu_memory_used")).state == "2.0"
    assert hass.states.get(entity_id(hass, entry, "sensor", "gpu_temperature")).state == "44.0"
    assert hass.states.get(entity_id(hass, entry, "sensor", "gpu_power")).state == (
        STATE_UNAVAILABLE
    )
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert fake.shutdowns == 1


async def test_camera_and_image_entities_show_annotated_pictures(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """The camera entity draws the latest frame; the image entity shows the event's key frame."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    upload = await hass.async_add_executor_job(
        write, camera_root / "Porch" / "a.jpg", jpeg(4, 320, 240)
    )
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="event")
    pipeline = entry.runtime_data.pipeline
    await pipeline.wait_for_media()
    await hass.async_block_till_done()

    camera_id = entity_id(hass, entry, "camera", "porch_latest_detection")
    image_id = entity_id(hass, entry, "image", "porch_event_snapshot")
    picture = await camera.async_get_image(hass, camera_id)
    with Image.open(io.BytesIO(picture.content)) as drawn:
        assert drawn.size == (320, 240)
        red, green, _blue = drawn.convert("RGB").getpixel((10, 50))  # the person box's left edge
        assert red > 180
        assert green < 120
    state = hass.states.get(camera_id)
    assert state.attributes["event_id"] == security_events[0].data["event_id"]
    assert state.attributes["object_types"] == ["car", "person"]

    snapshot = hass.states.get(image_id)
    assert snapshot.state not in (STATE_UNKNOWN, STATE_UNAVAILABLE)
    assert snapshot.attributes["event_id"] == security_events[0].data["event_id"]
    key = await image.async_get_image(hass, image_id)
    assert key.content_type == "image/jpeg"
    with Image.open(io.BytesIO(key.content)) as key_frame:
        assert key_frame.size == (320, 240)

    # The upload deleted: the camera entity falls back to the event's key frame.
    await hass.async_add_executor_job(upload.unlink)
    entity = hass.data["camera"].get_entity(camera_id)
    entity._frame_key = None  # forget the drawn frame, as after a restart
    fallback = await camera.async_get_image(hass, camera_id)
    assert fallback.content == key.content


async def test_camera_entities_unavailable_while_the_folder_is_gone(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """An unmounted camera folder makes the cameras' entities unavailable until it is back."""
    await hass.async_add_executor_job((camera_root / "Shed").mkdir)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Shed" / "a.jpg", jpeg(5))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="event")
    await hass.async_block_till_done()
    score_id = entity_id(hass, entry, "sensor", "shed_risk_score")
    coordinator = entry.runtime_data.coordinator
    moved = camera_root.with_name("cameras_unmounted")
    await hass.async_add_executor_job(camera_root.rename, moved)
    try:
        await coordinator.async_refresh()
        await hass.async_block_till_done()
        assert hass.states.get(score_id).state == STATE_UNAVAILABLE
        assert coordinator.data.camera_root_ok is False
    finally:
        await hass.async_add_executor_job(moved.rename, camera_root)
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert hass.states.get(score_id).state == str(security_events[0].data["risk_score"])


async def test_deleting_an_event_deletes_its_pictures(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path
) -> None:
    """An event deleted takes its key frame, frames, thumbnails and clip with it."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Drive" / "a.jpg", jpeg(6))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="event")
    pipeline = entry.runtime_data.pipeline
    await pipeline.wait_for_media()
    event_id = security_events[0].data["event_id"]
    key = entry.runtime_data.hub.cameras["drive"].event_image
    assert key is not None
    assert await hass.async_add_executor_job(key.is_file)
    folder = key.parent
    assert await pipeline.delete_event(event_id)
    assert not await hass.async_add_executor_job(folder.exists)
    assert await pipeline.db.run(lambda session: get_event(session, event_id)) is None
    assert not await pipeline.delete_event(event_id)


async def test_camera_entity_draws_a_clips_key_frame(
    hass: HomeAssistant, entry: MockConfigEntry, camera_root: Path, tmp_path: Path
) -> None:
    """A detection in a clip: the camera entity decodes that frame again and draws on it."""
    ffmpeg = require_program("ffmpeg")
    clip = tmp_path / "clip.mp4"

    def make_clip() -> bytes:
        subprocess.run(
            [
                *(ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
                *("-f", "lavfi", "-i", "testsrc=duration=3:size=320x240:rate=25"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)),
            ],
            check=True,
            timeout=60,
        )
        return clip.read_bytes()

    content = await hass.async_add_executor_job(make_clip)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Garage" / "clip.mp4", content)
    await wait_until(lambda: len(security_events) == 1, seconds=30, what="event")
    await hass.async_block_till_done()
    state = entry.runtime_data.hub.cameras["garage"]
    assert state.last_detections[0].frame_time is not None
    picture = await camera.async_get_image(
        hass, entity_id(hass, entry, "camera", "garage_latest_detection")
    )
    with Image.open(io.BytesIO(picture.content)) as drawn:
        assert drawn.size == (320, 240)
        red, green, _blue = drawn.convert("RGB").getpixel((10, 50))
        assert red > 180
        assert green < 120
