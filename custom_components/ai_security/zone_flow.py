"""Camera zones as config subentries: add, edit and delete them from the integration's page.

A zone is a polygon over a camera's picture, in fractions of its width and height ("0,0.6
0.4,0.6 0.4,1 0,1" is the lower-left corner), with a name, a kind and a priority. The form checks
it as core.zones does (three points or more, inside the picture, edges not crossing) and says
what is wrong on the field. The entry applies changed zones at once, without a reload.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.config_entries import ConfigSubentry, SubentryFlowResult
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
)
import probatio

from .camera_subentry import CameraSubentryFlow, camera_selector
from .const import LOGGER
from .core.zones import (
    Zone,
    ZoneError,
    ZoneKind,
    ZoneMap,
    format_points,
    make_zone,
    zone_from_dict,
    zone_to_dict,
)

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

SUBENTRY_ZONE: Final = "zone"
CONF_CAMERA: Final = "camera"
CONF_NAME: Final = "name"
CONF_KIND: Final = "kind"
CONF_PRIORITY: Final = "priority"
CONF_POINTS: Final = "points"

_FIELD_OF_ERROR: Final = {
    "zone_name_empty": CONF_NAME,
    "zone_duplicate_name": CONF_NAME,
    "zone_bad_kind": CONF_KIND,
}
"""Which field a ZoneError key is shown on; every other key is about the points."""


def zone_maps(entry: AiSecurityConfigEntry) -> dict[str, ZoneMap]:
    """Return each camera's zones from the entry's zone subentries (bad stored ones logged)."""
    by_camera: dict[str, list[Zone]] = {}
    for subentry in entry.subentries.values():
        if subentry.subentry_type != SUBENTRY_ZONE:
            continue
        try:
            zone = zone_from_dict(subentry.data)
        except ZoneError as err:
            LOGGER.warning("Ignoring the zone %s: %s", subentry.title, err)
            continue
        by_camera.setdefault(str(subentry.data.get(CONF_CAMERA, "")), []).append(zone)
    maps: dict[str, ZoneMap] = {}
    for camera_id, zones in by_camera.items():
        try:
            maps[camera_id] = ZoneMap(zones)
        except ZoneError as err:
            LOGGER.warning("Ignoring the zones of %s: %s", camera_id, err)
    return maps


class ZoneSubentryFlow(CameraSubentryFlow):
    """Add or change one zone of one camera."""

    @override
    async def _form(
        self,
        step: str,
        user_input: dict[str, Any] | None,
        current: ConfigSubentry | None,
        entry: AiSecurityConfigEntry,
        cameras: Mapping[str, str],
    ) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            camera_id = str(user_input[CONF_CAMERA])
            try:
                zone = make_zone(
                    user_input[CONF_NAME],
                    user_input[CONF_KIND],
                    int(user_input.get(CONF_PRIORITY, 0)),
                    user_input[CONF_POINTS],
                )
                self._check_unique(entry, camera_id, zone, current)
            except ZoneError as err:
                errors[_FIELD_OF_ERROR.get(err.translation_key, CONF_POINTS)] = err.translation_key
                placeholders = dict(err.placeholders)
            else:
                if camera_id not in cameras:  # gone since the form was shown
                    errors[CONF_CAMERA] = "zone_unknown_camera"
            if not errors:
                data = {CONF_CAMERA: camera_id, **zone_to_dict(zone)}
                title = f"{cameras[camera_id]}: {zone.name}"
                if current is not None:
                    return self.async_update_and_abort(entry, current, title=title, data=data)
                return self.async_create_entry(title=title, data=data)
        suggested = dict(user_input or {})
        if user_input is None and current is not None:
            suggested = {
                CONF_CAMERA: current.data.get(CONF_CAMERA),
                CONF_NAME: current.data.get(CONF_NAME),
                CONF_KIND: current.data.get(CONF_KIND),
                CONF_PRIORITY: current.data.get(CONF_PRIORITY, 0),
                CONF_POINTS: format_points(
                    tuple(tuple(point) for point in current.data.get(CONF_POINTS, ()))
                ),
            }
        return self.async_show_form(
            step_id=step,
            data_schema=self.add_suggested_values_to_schema(_schema(cameras), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    @staticmethod
    def _check_unique(
        entry: AiSecurityConfigEntry, camera_id: str, zone: Zone, current: ConfigSubentry | None
    ) -> None:
        """Refuse a second zone of the same name on one camera (rules name zones)."""
        for subentry in entry.subentries.values():
            if (
                subentry.subentry_type == SUBENTRY_ZONE
                and (current is None or subentry.subentry_id != current.subentry_id)
                and subentry.data.get(CONF_CAMERA) == camera_id
                and str(subentry.data.get(CONF_NAME, "")).casefold() == zone.name.casefold()
            ):
                raise ZoneError("zone_duplicate_name", {"name": zone.name})


def _schema(cameras: Mapping[str, str]) -> probatio.Schema:
    return probatio.Schema(
        {
            probatio.Required(CONF_CAMERA): camera_selector(cameras),
            probatio.Required(CONF_NAME): TextSelector(),
            probatio.Required(CONF_KIND, default=ZoneKind.OTHER.value): SelectSelector(
                SelectSelectorConfig(
                    options=[kind.value for kind in ZoneKind],
                    mode=SelectSelectorMode.DROPDOWN,
                    translation_key="zone_kind",
                )
            ),
            probatio.Required(CONF_PRIORITY, default=0): NumberSelector(
                NumberSelectorConfig(min=0, max=100, step=1, mode=NumberSelectorMode.BOX)
            ),
            probatio.Required(CONF_POINTS): TextSelector(TextSelectorConfig(multiline=True)),
        }
    )
