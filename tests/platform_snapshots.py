"""How each platform's snapshot is taken: its entities (registry entries and states) for one camera.

Each platform has its own test module (tests/integration/test_<platform>_snapshot.py) and so its own
snapshot file. The camera's folder and its database row exist before setup, so the entities are
those of a camera that has not seen anything yet; time, ports and the entry id are fixed so the
snapshots are stable.
"""

from collections.abc import AsyncIterator, Callable, Coroutine
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, snapshot_platform
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)
from custom_components.ai_security.core.storage import CameraRow, Database

from .detector_server import DetectorServer
from .servers import ModelServer

ENTRY_ID = "01JSNAPSHOTENTRY0000000000"
DETECTOR_PORT = 48731
LLM_PORT = 48732


@contextlib.asynccontextmanager
async def _servers() -> AsyncIterator[tuple[DetectorServer, ModelServer]]:
    """Run a detector reporting a GPU and its queue, and an LLM with slots, on fixed ports.

    (Their URLs name entities.)
    """
    detector = DetectorServer()
    detector.port = DETECTOR_PORT
    detector.health_body = {
        "status": "ok",
        "queue_depth": 2,
        "gpu": {
            "name": "NVIDIA RTX 4090",
            "utilization": 37,
            "memory_used_mb": 5120,
            "memory_total_mb": 24564,
            "temperature_c": 61,
            "power_w": 180.5,
        },
    }
    llm = ModelServer(
        port=LLM_PORT,
        slots_body=[
            {"id": 0, "n_ctx": 4096, "speculative": False, "is_processing": True},
            {"id": 1, "n_ctx": 4096, "speculative": False, "is_processing": False},
        ],
    )
    await detector.start()
    await llm.start()
    try:
        yield detector, llm
    finally:
        await llm.stop()
        await detector.stop()


async def _entry(
    hass: HomeAssistant, camera_root: Path, detector: DetectorServer, llm: ModelServer
) -> MockConfigEntry:
    """Return an entry whose database already knows the camera "Front Door"."""
    await hass.async_add_executor_job((camera_root / "Front Door").mkdir)
    folder = Path(hass.config.path(DOMAIN))
    database = folder / f"{ENTRY_ID}.db"

    def fresh() -> None:
        folder.mkdir(exist_ok=True)
        for leftover in folder.glob(f"{ENTRY_ID}.db*"):  # the config folder outlives a test
            leftover.unlink()

    await hass.async_add_executor_job(fresh)
    db = Database(f"sqlite:///{database}")
    await db.start()
    created = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
    try:
        await db.run(
            lambda session: session.add(
                CameraRow(
                    camera_id="front_door",
                    folder="Front Door",
                    name="Front Door",
                    created_at=created,
                )
            )
        )
    finally:
        await db.close()
    entry = MockConfigEntry(
        domain=DOMAIN,
        entry_id=ENTRY_ID,
        title="Home",
        unique_id=str(camera_root),
        data={
            CONF_CAMERA_ROOT: str(camera_root),
            CONF_DETECTOR_URLS: [detector.url],
            CONF_LLM_URLS: [llm.url],
            CONF_LLM_API: "llama_cpp",
        },
        version=1,
        minor_version=3,
    )
    entry.add_to_hass(hass)
    return entry


async def check_platform(
    hass: HomeAssistant,
    camera_root: Path,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    freezer: FrozenDateTimeFactory,
    platform: Platform,
) -> None:
    """Set the entry up with platform alone; match its entities, every one enabled, and states."""
    freezer.move_to("2026-11-26T03:00:00+00:00")
    async with _servers() as (detector, llm):
        entry = await _entry(hass, camera_root, detector, llm)
        with (
            # Entities that start disabled are enabled, so every one is in the snapshot.
            patch(
                "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
                return_value=True,
                new_callable=PropertyMock,
            ),
            patch("custom_components.ai_security.PLATFORMS", [platform]),
            patch("random.SystemRandom.getrandbits", return_value=0x5EC0_12E7),
        ):
            assert await hass.config_entries.async_setup(entry.entry_id)
            await hass.async_block_till_done()
            await snapshot_platform(
                hass,
                entity_registry,
                # Home Assistant's objects serialized with their random ids and times masked.
                snapshot.use_extension(HomeAssistantSnapshotExtension),
                entry.entry_id,
            )
            assert await hass.config_entries.async_unload(entry.entry_id)


def platform_test(platform: Platform) -> Callable[..., Coroutine[Any, Any, None]]:
    """Return the snapshot test of platform, for its own module to hold (and so its own file).

    A test module names it test_<platform>_entities; syrupy keeps the snapshots of a module in
    integration/snapshots/<module>.ambr, which is what gives each platform its file.
    """

    async def test(
        hass: HomeAssistant,
        camera_root: Path,
        entity_registry: er.EntityRegistry,
        snapshot: SnapshotAssertion,
        freezer: FrozenDateTimeFactory,
        socket_enabled: None,
    ) -> None:
        """As registered and as their states read."""
        await check_platform(hass, camera_root, entity_registry, snapshot, freezer, platform)

    return test
