"""The camera entities of a camera that has seen nothing yet, in their snapshot file."""

from pathlib import Path

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from syrupy.assertion import SnapshotAssertion

from .platform_snapshots import check_platform


async def test_camera_entities(
    hass: HomeAssistant,
    camera_root: Path,
    entity_registry: er.EntityRegistry,
    snapshot: SnapshotAssertion,
    freezer: FrozenDateTimeFactory,
    socket_enabled: None,
) -> None:
    """As registered and as their states read."""
    await check_platform(hass, camera_root, entity_registry, snapshot, freezer, Platform.CAMERA)
