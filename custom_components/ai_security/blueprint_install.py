"""Copy the integration's blueprints into the configuration folder, where Home Assistant finds them.

Only missing files are copied: a blueprint the user edited (or the older copy an automation was
made from) is never overwritten, and a deleted one comes back at the next start. Newer versions
of a blueprint reach an existing copy only when the user re-imports it (its source_url).
"""

from pathlib import Path
from typing import Final

from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.core import HomeAssistant

from .const import LOGGER

BLUEPRINTS: Final = Path(__file__).parent / "blueprints"
"""The blueprints shipped with the integration, in Home Assistant's layout (<domain>/<folder>/)."""


def copy_missing_blueprints(source: Path, target: Path) -> list[Path]:
    """Copy each blueprint under source to the same place under target unless one is there.

    Returns the files copied. Blocking: run it in the executor. A file is created exclusively,
    so a copy made meanwhile (by the user, or another entry starting) is never overwritten.
    """
    copied: list[Path] = []
    for blueprint in sorted(source.rglob("*.yaml")):
        destination = target / blueprint.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        content = blueprint.read_bytes()
        try:
            with destination.open("xb") as file:
                file.write(content)
        except FileExistsError:
            continue
        copied.append(destination)
    return copied


async def async_install_blueprints(hass: HomeAssistant) -> None:
    """Copy the shipped blueprints into <config>/blueprints/ where they are missing.

    A configuration folder that cannot be written is logged, never fatal: the blueprints can
    still be imported by URL. Home Assistant copies its own example blueprints only into a
    blueprints/automation/ folder that does not exist yet, so they are put there first.
    """
    target = Path(hass.config.path("blueprints"))
    try:
        await async_get_blueprints(hass).async_populate()
        copied = await hass.async_add_executor_job(copy_missing_blueprints, BLUEPRINTS, target)
    except OSError as err:
        LOGGER.warning("Cannot copy the AI Security blueprints into %s: %s", target, err)
        return
    for path in copied:
        LOGGER.info("Added the blueprint %s", path.relative_to(target))
