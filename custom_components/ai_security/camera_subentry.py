"""What every per-camera subentry flow shares: a running hub that knows cameras, and their picker.

Zones and a camera's notes are both subentries about one camera, added from the integration's
page and changed in place. Both need the hub running (the cameras are what it has seen) and at
least one camera, and both offer the cameras by name; the form itself is each flow's own.
"""

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import (
    ConfigEntryState,
    ConfigSubentry,
    ConfigSubentryFlow,
    SubentryFlowResult,
)
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry


class CameraSubentryFlow(ConfigSubentryFlow):
    """Add or change a subentry about one of the hub's cameras."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Add one."""
        return await self._camera_form("user", user_input, None)

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Change one."""
        return await self._camera_form("reconfigure", user_input, self._get_reconfigure_subentry())

    async def _camera_form(
        self, step: str, user_input: dict[str, Any] | None, current: ConfigSubentry | None
    ) -> SubentryFlowResult:
        entry: AiSecurityConfigEntry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        cameras = {
            camera_id: state.camera.name
            for camera_id, state in entry.runtime_data.hub.cameras.items()
        }
        if not cameras:
            return self.async_abort(reason="no_cameras")
        return await self._form(step, user_input, current, entry, cameras)

    @abstractmethod
    async def _form(
        self,
        step: str,
        user_input: dict[str, Any] | None,
        current: ConfigSubentry | None,
        entry: AiSecurityConfigEntry,
        cameras: Mapping[str, str],
    ) -> SubentryFlowResult:
        """Show the form, or save what it was given; cameras are the hub's, by id -> name."""


def camera_selector(cameras: Mapping[str, str]) -> SelectSelector:
    """Return a picker of the cameras, by name."""
    return SelectSelector(
        SelectSelectorConfig(
            options=[
                SelectOptionDict(value=camera_id, label=name)
                for camera_id, name in sorted(cameras.items(), key=lambda item: item[1])
            ],
            mode=SelectSelectorMode.DROPDOWN,
        )
    )
