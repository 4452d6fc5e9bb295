"""Load of the model-server box in a real Home Assistant: sensors, the Server load problem, Repairs.

The detector and the llama.cpp server are small aiohttp stand-ins on 127.0.0.1 answering /health
(queue_depth and gpu) and /slots as the real ones do; the test moves the clock from one health
check to the next (15 s apart) instead of sleeping.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.repairs import issue_id
from tests.hub_helpers import hub_entry
from tests.servers import ModelServer

INTERVAL = timedelta(seconds=15)
"""The default health interval."""
SLACK = timedelta(seconds=1)


def gpu(temperature: float, utilization: float = 40, memory_used_mb: float = 8000) -> Any:
    return {
        "name": "NVIDIA RTX 4090",
        "utilization": utilization,
        "memory_used_mb": memory_used_mb,
        "memory_total_mb": 24000,
        "temperature_c": temperature,
        "power_w": 200,
    }


def slots(busy: int, total: int = 2) -> list[dict[str, Any]]:
    """Return a current llama-server's GET /slots with busy of total slots processing."""
    return [
        {"id": i, "n_ctx": 4096, "speculative": False, "is_processing": i < busy}
        for i in range(total)
    ]


@pytest.fixture
async def servers(socket_enabled: None) -> AsyncIterator[tuple[ModelServer, ModelServer]]:
    detector = ModelServer(health_body={"status": "ok", "queue_depth": 3, "gpu": gpu(60)})
    llm = ModelServer(slots_body=slots(0))
    await detector.start()
    await llm.start()
    yield detector, llm
    await llm.stop()
    await detector.stop()


class Hub:
    """A set-up entry and the way to its entities, issues and next health checks."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: MockConfigEntry,
        freezer: FrozenDateTimeFactory,
        detector: ModelServer,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.freezer = freezer
        self.detector = detector

    def entity(self, domain: str, key: str) -> str | None:
        return er.async_get(self.hass).async_get_entity_id(
            domain, DOMAIN, f"{self.entry.entry_id}_{key}"
        )

    def state(self, domain: str, key: str) -> str:
        entity_id = self.entity(domain, key)
        assert entity_id is not None, f"no {domain} {key}"
        state = self.hass.states.get(entity_id)
        assert state is not None
        return state.state

    def load(self) -> tuple[str, list[dict[str, Any]]]:
        entity_id = self.entity("binary_sensor", "server_load")
        assert entity_id is not None
        state = self.hass.states.get(entity_id)
        assert state is not None
        return state.state, state.attributes["conditions"]

    def issue(self, key: str) -> ir.IssueEntry | None:
        return ir.async_get(self.hass).async_get_issue(DOMAIN, issue_id(key, self.entry.entry_id))

    async def next_check(self, times: int = 1) -> None:
        """Move the clock to the next health check (times over), and let it finish."""
        coordinator = self.entry.runtime_data.coordinator
        for _ in range(times):
            asked = self.detector.requests.count("/health")
            refreshed = asyncio.Event()
            remove = coordinator.async_add_listener(refreshed.set)
            try:
                self.freezer.tick(INTERVAL)
                # The coordinator's timer falls within a second after the interval.
                async_fire_time_changed(self.hass, dt_util.utcnow() + SLACK)
                # It refreshes in a background task, which async_block_till_done does not
                # wait for (nor could it: the pipeline's run for good); its end is told.
                await refreshed.wait()
            finally:
                remove()
            await self.hass.async_block_till_done()
            assert self.detector.requests.count("/health") == asked + 1, "no health check ran"


@pytest.fixture
async def hub(
    hass: HomeAssistant,
    camera_root: Path,
    freezer: FrozenDateTimeFactory,
    servers: tuple[ModelServer, ModelServer],
) -> AsyncIterator[Hub]:
    detector, llm = servers
    freezer.move_to("2026-06-01T12:00:00+00:00")
    entry = hub_entry(hass, camera_root, detector.url, llm.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield Hub(hass, entry, freezer, detector)
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_load_sensors_show_the_servers_figures(
    hub: Hub, servers: tuple[ModelServer, ModelServer]
) -> None:
    """The detector's queue, the LLM's busy slots and total, the GPU's figures."""
    detector, llm = servers
    assert hub.state("sensor", "detector_server_queue") == "3"
    assert hub.state("sensor", "llm_busy_slots") == "0"
    assert hub.state("sensor", "gpu_temperature") == "60.0"
    # The total is fixed by --parallel: registered, off until a user wants it.
    total = er.async_get(hub.hass).async_get(hub.entity("sensor", "llm_total_slots") or "")
    assert total is not None
    assert total.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    assert total.unit_of_measurement == "slots"
    assert hub.load() == (STATE_OFF, [])

    detector.health_body = {"status": "ok", "queue_depth": 12, "gpu": gpu(61)}
    llm.slots_body = slots(1)
    await hub.next_check()
    assert hub.state("sensor", "detector_server_queue") == "12"
    assert hub.state("sensor", "llm_busy_slots") == "1"

    # A detector that stops saying its queue: unavailable, not a stale or made-up 0.
    detector.health_body = {"status": "ok", "gpu": gpu(61)}
    llm.slots_body = {"error": "not a slot list"}
    await hub.next_check()
    assert hub.state("sensor", "detector_server_queue") == STATE_UNAVAILABLE
    assert hub.state("sensor", "llm_busy_slots") == STATE_UNAVAILABLE
    assert hub.load() == (STATE_OFF, [])


async def test_gpu_too_hot_raises_a_problem_and_an_issue_until_it_cools(
    hub: Hub, servers: tuple[ModelServer, ModelServer]
) -> None:
    """Warning after a minute above 75 °C, error after a minute above 85 °C, cleared below 70."""
    detector, _llm = servers

    def temperature(value: float) -> None:
        detector.health_body = {"status": "ok", "queue_depth": 0, "gpu": gpu(value)}

    temperature(78)
    await hub.next_check(4)  # 45 s above the warning level: not yet
    assert hub.load() == (STATE_OFF, [])
    assert hub.issue("gpu_temperature") is None
    await hub.next_check()  # 60 s
    state, conditions = hub.load()
    assert state == STATE_ON
    assert [(c["kind"], c["level"], c["value"], c["limit"]) for c in conditions] == [
        ("gpu_temperature", "warning", 78.0, 75.0)
    ]
    assert conditions[0]["server"] == detector.url
    found = hub.issue("gpu_temperature")
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert not found.is_fixable
    assert found.translation_placeholders == {
        "title": "Home",
        "value": "78",
        "level": "75",
        "server": detector.url,
    }

    temperature(88)
    await hub.next_check(4)
    found = hub.issue("gpu_temperature")
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING  # critical for 45 s only
    await hub.next_check()
    found = hub.issue("gpu_temperature")
    assert found is not None
    assert found.severity is ir.IssueSeverity.ERROR
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["level"] == "85"
    assert [c["level"] for c in hub.load()[1]] == ["critical"]

    # Within 5 °C of the level: still critical (no flapping); then warning; then clear.
    temperature(81)
    await hub.next_check()
    assert [c["level"] for c in hub.load()[1]] == ["critical"]
    temperature(76)
    await hub.next_check()
    assert [c["level"] for c in hub.load()[1]] == ["warning"]
    found = hub.issue("gpu_temperature")
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    temperature(65)
    await hub.next_check()
    assert hub.load() == (STATE_OFF, [])
    assert hub.issue("gpu_temperature") is None


async def test_gpu_memory_utilization_and_llm_slots(
    hub: Hub, servers: tuple[ModelServer, ModelServer]
) -> None:
    """Each load kind has its own issue; every LLM slot busy for a minute is a warning."""
    detector, llm = servers
    detector.health_body = {
        "status": "ok",
        "gpu": gpu(60, utilization=99, memory_used_mb=22_000),  # 91.7 % of 24000
    }
    llm.slots_body = slots(2)
    await hub.next_check(5)
    state, conditions = hub.load()
    assert state == STATE_ON
    assert [(c["kind"], c["level"]) for c in conditions] == [
        ("gpu_utilization", "critical"),
        ("gpu_memory", "warning"),
        ("llm_slots", "warning"),
    ]
    severities = {
        key: found.severity
        for key in ("gpu_temperature", "gpu_utilization", "gpu_memory", "llm_slots")
        if (found := hub.issue(key)) is not None
    }
    assert severities == {
        "gpu_utilization": ir.IssueSeverity.ERROR,
        "gpu_memory": ir.IssueSeverity.WARNING,
        "llm_slots": ir.IssueSeverity.WARNING,
    }
    found = hub.issue("llm_slots")
    assert found is not None
    assert found.translation_placeholders == {
        "title": "Home",
        "value": "2",
        "level": "2",
        "server": llm.url,
    }
    found = hub.issue("gpu_memory")
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["value"] == "91.7"

    # One slot free again ends the LLM's at once; the GPU's below their margins.
    llm.slots_body = slots(1)
    detector.health_body = {"status": "ok", "gpu": gpu(60, utilization=50, memory_used_mb=8000)}
    await hub.next_check()
    assert hub.load() == (STATE_OFF, [])
    for key in ("gpu_utilization", "gpu_memory", "llm_slots"):
        assert hub.issue(key) is None


async def test_a_detector_that_stops_answering_ends_its_gpu_conditions(
    hub: Hub, servers: tuple[ModelServer, ModelServer]
) -> None:
    """What is not measured is not claimed: the GPU's figures gone, its condition ends."""
    detector, _llm = servers
    detector.health_body = {"status": "ok", "gpu": gpu(90)}
    await hub.next_check(5)
    assert hub.issue("gpu_temperature") is not None
    detector.health_body = {"status": "ok"}
    await hub.next_check()
    assert hub.load() == (STATE_OFF, [])
    assert hub.issue("gpu_temperature") is None
    assert hub.state("sensor", "gpu_temperature") == STATE_UNAVAILABLE


async def test_unload_deletes_the_load_issues(
    hass: HomeAssistant, hub: Hub, servers: tuple[ModelServer, ModelServer]
) -> None:
    detector, llm = servers
    detector.health_body = {"status": "ok", "gpu": gpu(90)}
    llm.slots_body = slots(2)
    await hub.next_check(5)
    assert hub.issue("gpu_temperature") is not None
    assert hub.issue("llm_slots") is not None
    assert await hass.config_entries.async_unload(hub.entry.entry_id)
    await hass.async_block_till_done()
    assert hub.issue("gpu_temperature") is None
    assert hub.issue("llm_slots") is None
    assert await hass.config_entries.async_setup(hub.entry.entry_id)  # for the fixture's unload
    await hass.async_block_till_done()


async def test_load_sensors_appear_when_their_figures_do(
    hass: HomeAssistant,
    camera_root: Path,
    freezer: FrozenDateTimeFactory,
    servers: tuple[ModelServer, ModelServer],
) -> None:
    """Figures missing at start: no sensors until a health check has them.

    An older detector that starts reporting its queue and GPU gets their sensors; an LLM server
    with neither /slots nor /metrics is not asked again within the hour, so it gets none.
    """
    detector, llm = servers
    detector.health_body = {"status": "ok"}
    llm.slots_body = None  # no /slots, no /metrics: not a server that says
    entry = hub_entry(hass, camera_root, detector.url, llm.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hub = Hub(hass, entry, freezer, detector)
    for key in ("detector_server_queue", "gpu_temperature", "llm_busy_slots"):
        assert hub.entity("sensor", key) is None
    assert hub.load() == (STATE_OFF, [])

    detector.health_body = {"status": "ok", "queue_depth": 4, "gpu": gpu(50)}
    llm.slots_body = slots(2)  # (its routes are not asked again within the hour)
    await hub.next_check()
    assert hub.state("sensor", "detector_server_queue") == "4"
    assert hub.state("sensor", "gpu_temperature") == "50.0"
    assert hub.entity("sensor", "llm_busy_slots") is None
    assert "/slots" not in llm.requests
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_slot_sensors_of_an_llm_down_at_start_appear_when_it_answers(
    hass: HomeAssistant,
    camera_root: Path,
    freezer: FrozenDateTimeFactory,
    servers: tuple[ModelServer, ModelServer],
) -> None:
    detector, llm = servers
    llm.slots_body = slots(1, total=4)
    await llm.stop()
    entry = hub_entry(hass, camera_root, detector.url, llm.url, llm_api="llama_cpp")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    hub = Hub(hass, entry, freezer, detector)
    assert hub.entity("sensor", "llm_busy_slots") is None
    await llm.start()
    await hub.next_check()
    assert hub.state("sensor", "llm_busy_slots") == "1"
    assert hub.entity("sensor", "llm_total_slots") is not None
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
