"""Diagnostics: the hub's figures and failures, without credentials, folders or payloads."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
import json
from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from sqlalchemy.orm import Session
from syrupy.assertion import SnapshotAssertion

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DATABASE_URL,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)
from custom_components.ai_security.core.models import Camera
from custom_components.ai_security.core.storage import JobRow
from tests.servers import ModelServer

GPU = {
    "name": "NVIDIA RTX 4090",
    "utilization": 37,
    "memory_used_mb": 5120,
    "memory_total_mb": 24564,
    "temperature_c": 61,
    "power_w": 180.5,
}
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Keep snapshots in snapshots/ beside the test module, as Home Assistant does."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


@pytest.fixture
async def gpu_detector(socket_enabled: None) -> AsyncIterator[ModelServer]:
    server = ModelServer(
        health_body={"status": "ok", "model": "rtdetr_v2_r18vd", "device": "cuda", "gpu": GPU}
    )
    await server.start()
    yield server
    await server.stop()


def with_credentials(url: str) -> str:
    return url.replace("http://", "http://admin:s3cret-pass@")


@pytest.fixture
async def entry(
    hass: HomeAssistant,
    camera_root: Path,
    tmp_path: Path,
    gpu_detector: ModelServer,
    llm: ModelServer,
) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id=str(camera_root),
        data={
            CONF_CAMERA_ROOT: str(camera_root),
            CONF_DETECTOR_URLS: [with_credentials(gpu_detector.url)],
            CONF_LLM_URLS: [with_credentials(llm.url)],
            CONF_LLM_API: "llama_cpp",
        },
        options={
            "retention_days": 14,
            CONF_DATABASE_URL: f"sqlite:///{tmp_path / 'private' / 'events.db'}",
        },
        version=1,
        minor_version=3,
    )
    await hass.async_add_executor_job((tmp_path / "private").mkdir)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def add_dead_jobs(entry: MockConfigEntry, camera_root: Path, count: int) -> None:
    def _add(session: Session) -> None:
        session.add_all(
            JobRow(
                kind="detect",
                payload={"path": f"{camera_root}/Front Door/{n}.jpg", "media_id": n},
                state="dead",
                attempts=5,
                next_attempt_at=T0,
                last_error=f"cannot read {camera_root}/Front Door/{n}.jpg: truncated",
                created_at=T0,
                updated_at=T0.replace(minute=n),
            )
            for n in range(count)
        )

    await entry.runtime_data.pipeline.db.run(_add)


def normalized(data: Any, servers: list[ModelServer]) -> Any:
    """Return data with the test servers' random ports replaced by fixed names."""
    text = json.dumps(data)
    for number, server in enumerate(servers):
        text = text.replace(f":{server.port}", f":<port{number}>")
    return json.loads(text)


async def test_entry_diagnostics(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    entry: MockConfigEntry,
    camera_root: Path,
    tmp_path: Path,
    gpu_detector: ModelServer,
    llm: ModelServer,
    snapshot: SnapshotAssertion,
) -> None:
    """Settings, pipeline figures, endpoints, GPU and the last 10 dead jobs, secrets redacted."""
    entry.runtime_data.pipeline.callbacks.camera_added(
        Camera(camera_id="front_door", name="Front Door", folder="Front Door")
    )
    await add_dead_jobs(entry, camera_root, 12)
    await entry.runtime_data.coordinator.async_refresh()

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    text = json.dumps(diagnostics)
    for secret in ("s3cret-pass", "admin", str(tmp_path), "events.db", "media_id"):
        assert secret not in text
    assert len(diagnostics["dead_jobs"]) == 10
    assert normalized(diagnostics, [gpu_detector, llm]) == snapshot
