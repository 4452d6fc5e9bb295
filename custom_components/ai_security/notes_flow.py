"""What is normal at a camera, as a config subentry: the owner's notes the LLM judges with.

"Parcels are delivered between 10 and 12", "the neighbour's cat crosses the garden", "a grey van
is always parked across the street": a model that knows them can tell a delivery from a visit
that is not. One set of notes per camera, added, changed and deleted from the integration's
page; the entry gives them to the pipeline at once, without a reload. They go into the prompt as
one bounded line of data that the system prompt says is context, never instructions.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, override

from homeassistant.config_entries import ConfigSubentry, SubentryFlowResult
from homeassistant.helpers.selector import (
    TextSelector,
    TextSelectorConfig,
)
import probatio

from .camera_subentry import CameraSubentryFlow, camera_selector
from .core.prompts import MAX_NOTES

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

SUBENTRY_NOTES: Final = "camera_notes"
CONF_CAMERA: Final = "camera"
CONF_NOTES: Final = "notes"


def camera_notes(entry: AiSecurityConfigEntry) -> dict[str, str]:
    """Return each camera's notes from the entry's notes subentries."""
    return {
        str(subentry.data.get(CONF_CAMERA, "")): str(subentry.data.get(CONF_NOTES, ""))
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_NOTES
    }


class CameraNotesSubentryFlow(CameraSubentryFlow):
    """Add or change the notes of one camera."""

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
        if user_input is not None:
            camera_id = str(user_input[CONF_CAMERA])
            notes = " ".join(str(user_input.get(CONF_NOTES, "")).split())
            if camera_id not in cameras:  # gone since the form was shown
                errors[CONF_CAMERA] = "notes_unknown_camera"
            elif _has_notes(entry, camera_id, current):
                errors[CONF_CAMERA] = "notes_duplicate_camera"
            if not notes:
                errors[CONF_NOTES] = "notes_empty"
            elif len(notes) > MAX_NOTES:
                errors[CONF_NOTES] = "notes_too_long"
            if not errors:
                data = {CONF_CAMERA: camera_id, CONF_NOTES: notes}
                title = cameras[camera_id]
                if current is not None:
                    return self.async_update_and_abort(entry, current, title=title, data=data)
                return self.async_create_entry(title=title, data=data)
        suggested = dict(user_input or {})
        if user_input is None and current is not None:
            suggested = {
                CONF_CAMERA: current.data.get(CONF_CAMERA),
                CONF_NOTES: current.data.get(CONF_NOTES),
            }
        return self.async_show_form(
            step_id=step,
            data_schema=self.add_suggested_values_to_schema(_schema(cameras), suggested),
            errors=errors,
            description_placeholders={"maximum": str(MAX_NOTES)},
        )


def _has_notes(
    entry: AiSecurityConfigEntry, camera_id: str, current: ConfigSubentry | None
) -> bool:
    """Return whether another notes subentry is about camera_id (one set per camera)."""
    return any(
        subentry.subentry_type == SUBENTRY_NOTES
        and (current is None or subentry.subentry_id != current.subentry_id)
        and subentry.data.get(CONF_CAMERA) == camera_id
        for subentry in entry.subentries.values()
    )


def _schema(cameras: Mapping[str, str]) -> probatio.Schema:
    return probatio.Schema(
        {
            probatio.Required(CONF_CAMERA): camera_selector(cameras),
            probatio.Required(CONF_NOTES): TextSelector(TextSelectorConfig(multiline=True)),
        }
    )
