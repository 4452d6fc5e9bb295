"""One state model: every entity follows a coordinator, and a camera's writes cost what they did.

The cameras' entities follow the cameras' push coordinator, the hub's the polled one. Detections
are gathered for STATE_FLUSH_DELAY by Home Assistant's Debouncer, then written once for every
camera that changed and for no other; what must show at once (a new event) does; unloading while
a flush is pending leaves no timer behind. The model servers' status changes are announced by a
listener of the hub's refreshes, as they were by the coordinator: same events, same log lines,
before the entities see the refresh.
"""

from asyncio import TimerHandle
from collections import Counter
from datetime import timedelta
import logging

from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import entity_platform, entity_registry as er
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from homeassistant.util.async_ import get_scheduled_timer_handles
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.ai_security.camera_coordinator import (
    STATE_FLUSH_DELAY,
    AiSecurityCameraCoordinator,
)
from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.coordinator import AiSecurityCoordinator
from custom_components.ai_security.core.models import (
    BoundingBox,
    Camera,
    Detection,
    EventSource,
    RiskLevel,
    SecurityEvent,
)
from custom_components.ai_security.core.monitor import ServiceStatus
from custom_components.ai_security.service_status import ServiceStatusAnnouncer
from tests.servers import ModelServer

from .test_repairs import DETECTOR_URL, LLM_URL, hub_data

FRONT = Camera(camera_id="front_door", name="Front Door", folder="Front Door")
YARD = Camera(camera_id="yard", name="Yard", folder="Yard")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count every entity's state writes by entity id."""
    counted: Counter[str] = Counter()
    write = Entity.async_write_ha_state

    @callback
    def counting(self: Entity) -> None:
        counted[self.entity_id] += 1
        write(self)

    monkeypatch.setattr(Entity, "async_write_ha_state", counting)
    return counted


async def add_cameras(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Announce Front Door and Yard as the pipeline does when their folders appear."""
    for camera in (FRONT, YARD):
        entry.runtime_data.pipeline.callbacks.camera_added(camera)
    await hass.async_block_till_done()


def camera_entities(hass: HomeAssistant, entry: MockConfigEntry, camera: Camera) -> set[str]:
    """Return the entity ids of a camera's enabled entities."""
    prefix = f"{entry.entry_id}_{camera.camera_id}_"
    found = {
        e.entity_id
        for e in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if e.unique_id.startswith(prefix) and e.disabled_by is None
    }
    assert found, f"no entities of {camera.camera_id}"
    return found


def detected(camera: Camera, label: str = "person") -> list[Detection]:
    return [
        Detection(
            label=label,
            confidence=0.9,
            bbox=BoundingBox(x=10, y=20, w=30, h=60),
            camera_id=camera.camera_id,
            detected_at=dt_util.utcnow(),
            path=f"{camera.folder}/a.jpg",
        )
    ]


def flush(hass: HomeAssistant) -> None:
    """Let STATE_FLUSH_DELAY pass for the loop's timers."""
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=STATE_FLUSH_DELAY))


def state(hass: HomeAssistant, entity_id: str) -> str:
    found = hass.states.get(entity_id)
    assert found is not None, entity_id
    return found.state


def detections_today(hass: HomeAssistant, entry: MockConfigEntry, camera: Camera) -> str:
    (found,) = (e for e in camera_entities(hass, entry, camera) if e.endswith("detections_today"))
    return found


async def test_every_entity_follows_the_coordinator_of_its_kind(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Camera entities follow the cameras' coordinator, the hub's entities the hub's: no other.

    A refresh asked of a camera entity (homeassistant.update_entity) fetches nothing and leaves
    it available.
    """
    entry = init_integration
    await add_cameras(hass, entry)
    runtime = entry.runtime_data
    assert isinstance(runtime.camera_coordinator, AiSecurityCameraCoordinator)
    assert runtime.camera_coordinator.update_interval is None
    cameras = camera_entities(hass, entry, FRONT) | camera_entities(hass, entry, YARD)
    entities = {
        entity_id: entity
        for platform in entity_platform.async_get_platforms(hass, DOMAIN)
        for entity_id, entity in platform.entities.items()
    }
    assert cameras <= set(entities)
    assert set(entities) - cameras, "no hub entities"
    for entity_id, entity in entities.items():
        assert isinstance(entity, CoordinatorEntity), entity_id
        if entity_id in cameras:
            assert entity.coordinator is runtime.camera_coordinator, entity_id
        else:
            assert isinstance(entity.coordinator, AiSecurityCoordinator), entity_id
            assert entity.coordinator is runtime.coordinator, entity_id

    sensor = detections_today(hass, entry, FRONT)
    assert await async_setup_component(hass, "homeassistant", {})
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": sensor}, blocking=True
    )
    assert state(hass, sensor) == "0"
    assert runtime.camera_coordinator.last_update_success


async def test_a_burst_of_detections_writes_its_camera_once_per_flush(
    hass: HomeAssistant, init_integration: MockConfigEntry, writes: Counter[str]
) -> None:
    """Five detections on Front Door: nothing written until the flush, then each entity once.

    Yard's entities are not written at all by Front Door's updates, and the recorder sees one
    change of the detection count per flush, not one per detection.
    """
    entry = init_integration
    await add_cameras(hass, entry)
    front, yard = camera_entities(hass, entry, FRONT), camera_entities(hass, entry, YARD)
    count = detections_today(hass, entry, FRONT)
    changes = async_capture_events(hass, EVENT_STATE_CHANGED)
    callbacks = entry.runtime_data.pipeline.callbacks
    writes.clear()

    for label in ("person", "car", "person", "dog", "person"):
        callbacks.detections(FRONT, detected(FRONT, label))
    await hass.async_block_till_done()
    assert not writes, "written before the flush"
    assert state(hass, count) == "0"

    flush(hass)
    await hass.async_block_till_done()
    # The event entity changes only with events: a flush of detections does not write it.
    once = {e: 0 if e.startswith("event.") else 1 for e in front}
    assert {e: writes[e] for e in front} == once
    assert not {e: writes[e] for e in yard if writes[e]}
    assert state(hass, count) == "5"
    assert [c.data["new_state"].state for c in changes if c.data["entity_id"] == count] == ["5"]

    for _ in range(3):
        callbacks.detections(FRONT, detected(FRONT))
    await hass.async_block_till_done()
    assert {e: writes[e] for e in front} == once
    flush(hass)
    await hass.async_block_till_done()
    assert {e: writes[e] for e in front} == {e: 2 * n for e, n in once.items()}
    assert not {e: writes[e] for e in yard if writes[e]}
    assert [c.data["new_state"].state for c in changes if c.data["entity_id"] == count] == [
        "5",
        "8",
    ]


async def test_a_new_event_is_shown_at_once(
    hass: HomeAssistant, init_integration: MockConfigEntry, writes: Counter[str]
) -> None:
    """An event is written without waiting for the flush, with the detections gathered so far.

    The flush then writes only the cameras still waiting (Yard), not Front Door again.
    """
    entry = init_integration
    await add_cameras(hass, entry)
    front, yard = camera_entities(hass, entry, FRONT), camera_entities(hass, entry, YARD)
    callbacks = entry.runtime_data.pipeline.callbacks
    writes.clear()
    callbacks.detections(FRONT, detected(FRONT))
    callbacks.detections(YARD, detected(YARD))
    await hass.async_block_till_done()
    assert not writes

    now = dt_util.utcnow()
    event = SecurityEvent(
        event_id="e1",
        camera_id=FRONT.camera_id,
        started_at=now - timedelta(seconds=5),
        ended_at=now,
        risk_score=72,
        risk_level=RiskLevel.HIGH,
        summary="A person at the door",
        reasoning="Night, a person.",
        object_types=("person",),
        detection_count=1,
        is_fast_path=False,
        source=EventSource.HEURISTIC,
        ongoing=True,
    )
    callbacks.event(FRONT, event)
    await hass.async_block_till_done()
    (risk,) = (e for e in front if e.endswith("risk_score"))
    assert state(hass, risk) == "72"
    assert state(hass, detections_today(hass, entry, FRONT)) == "1"
    assert {e: writes[e] for e in front} == dict.fromkeys(front, 1)
    assert not {e: writes[e] for e in yard if writes[e]}

    flush(hass)
    await hass.async_block_till_done()
    assert {e: writes[e] for e in front} == dict.fromkeys(front, 1)
    assert {e: writes[e] for e in yard} == {e: 0 if e.startswith("event.") else 1 for e in yard}
    assert state(hass, detections_today(hass, entry, YARD)) == "1"


def pending_flushes(
    hass: HomeAssistant, coordinator: AiSecurityCameraCoordinator
) -> list[TimerHandle]:
    """Return the loop's live timers of the cameras' coordinator's debouncer."""
    return [
        handle
        for handle in get_scheduled_timer_handles(hass.loop)
        if not handle.cancelled()
        and isinstance(debouncer := getattr(handle._callback, "__self__", None), Debouncer)
        and getattr(debouncer.function, "__self__", None) is coordinator
    ]


async def test_unloading_during_a_pending_flush_leaves_nothing_behind(
    hass: HomeAssistant, init_integration: MockConfigEntry, writes: Counter[str]
) -> None:
    """Detections gathered, then the entry unloads: the flush's timer goes with it, unrun."""
    entry = init_integration
    await add_cameras(hass, entry)
    coordinator = entry.runtime_data.camera_coordinator
    entry.runtime_data.pipeline.callbacks.detections(FRONT, detected(FRONT))
    await hass.async_block_till_done()
    (pending,) = pending_flushes(hass, coordinator)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert pending.cancelled()
    assert not pending_flushes(hass, coordinator)
    writes.clear()
    flush(hass)
    await hass.async_block_till_done()
    assert not writes
    assert state(hass, detections_today(hass, entry, FRONT)) == STATE_UNAVAILABLE


async def test_status_changes_are_announced_by_a_health_listener(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    detector: ModelServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A detector down, then back: its event and log line each time, before the entities see it.

    What the entities are told is recorded by a listener of the coordinator, as theirs are.
    """
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    statuses = async_capture_events(hass, "ai_security_service_status")
    seen_by_entities: list[int] = []
    entry.async_on_unload(
        coordinator.async_add_listener(lambda: seen_by_entities.append(len(statuses)))
    )
    caplog.set_level(logging.INFO, "custom_components.ai_security")

    detector.health_status = 500
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    (down,) = statuses
    assert down.data == {
        "entry_id": entry.entry_id,
        "service": "detector",
        "url": detector.url,
        "status": "unhealthy",
        "previous_status": "healthy",
        "error": down.data["error"],
    }
    assert "HTTP 500" in down.data["error"]
    assert seen_by_entities == [1]
    assert [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()] == [
        f"The detector server at {detector.url} is not reachable ({down.data['error']}); "
        "uploads wait in the queue until a detector answers"
    ]

    detector.health_status = 200
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert [(e.data["previous_status"], e.data["status"], e.data["error"]) for e in statuses] == [
        ("healthy", "unhealthy", down.data["error"]),
        ("unhealthy", "healthy", None),
    ]
    assert seen_by_entities == [1, 2]
    assert f"The detector server at {detector.url} answers again" in caplog.messages


async def test_status_changes_are_told_while_the_database_fails(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    detector: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refresh that fails on the queue read still tells that a server went down and came back."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator

    async def broken() -> dict[str, int]:
        raise OSError("database is locked")

    monkeypatch.setattr(entry.runtime_data.pipeline, "queue_depths", broken)
    statuses = async_capture_events(hass, "ai_security_service_status")
    detector.health_status = 500
    await coordinator.async_refresh()
    assert not coordinator.last_update_success
    detector.health_status = 200
    await coordinator.async_refresh()
    await hass.async_block_till_done()
    assert [(e.data["previous_status"], e.data["status"]) for e in statuses] == [
        ("healthy", "unhealthy"),
        ("unhealthy", "healthy"),
    ]


async def test_the_announcer_on_its_own(
    hass: HomeAssistant, caplog: pytest.LogCaptureFixture
) -> None:
    """The first refresh logs what is down without an event; each change after fires one."""
    announcer = ServiceStatusAnnouncer(hass, "entry")
    statuses = async_capture_events(hass, "ai_security_service_status")
    caplog.set_level(logging.INFO, "custom_components.ai_security")

    announcer.announce(hub_data(detector=ServiceStatus.UNHEALTHY).health)
    await hass.async_block_till_done()
    assert not statuses
    assert caplog.messages == [
        f"The detector server at {DETECTOR_URL} is not reachable (connection refused); "
        "uploads wait in the queue until a detector answers"
    ]

    caplog.clear()
    announcer.announce(hub_data(detector=ServiceStatus.UNHEALTHY).health)
    announcer.announce(hub_data(llm=ServiceStatus.UNHEALTHY).health)
    await hass.async_block_till_done()
    assert [(e.data["service"], e.data["url"], e.data["status"]) for e in statuses] == [
        ("detector", DETECTOR_URL, "healthy"),
        ("llm", LLM_URL, "unhealthy"),
    ]
    assert statuses[1].data["error"] == "connection refused"
    assert {e.data["entry_id"] for e in statuses} == {"entry"}
    assert caplog.messages == [
        f"The detector server at {DETECTOR_URL} answers again",
        f"The llm server at {LLM_URL} is not reachable (connection refused); "
        "events are scored by the heuristic until it answers",
    ]
