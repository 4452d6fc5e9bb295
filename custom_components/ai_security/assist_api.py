"""The "AI Security" LLM API: tools any conversation agent can use to read the cameras' history.

A user enables it in their conversation agent's options (OpenAI, Google, Anthropic, Ollama...),
beside Assist's own API. Its tools search incidents, summarise a period, give a camera's latest
incident and the cameras' state now. Every input is checked against the tool's schema (the
agent's model writes it, so it is untrusted, like an action's), every answer is bounded (at most
MAX_NOTABLE incidents, summaries cut short) and holds no file path, picture or hub id: times,
cameras, levels and what was seen. A camera the user does not have is an error that lists the
ones they do.
"""

from datetime import datetime, timedelta
from typing import Any, Final, override

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv, llm
from homeassistant.util import dt as dt_util
from homeassistant.util.json import JsonObjectType
import probatio as vol

from . import assist_data
from .assist_data import CameraRef
from .const import DOMAIN
from .core.assist import MAX_NOTABLE
from .core.event_search import MAX_TEXT_LENGTH
from .core.models import RiskLevel
from .core.periods import PERIODS, period_bounds

API_ID: Final = DOMAIN
API_NAME: Final = "AI Security"
MAX_CAMERAS: Final = 20
MAX_NAME: Final = 100
LEVELS: Final = [level.value for level in RiskLevel]

API_PROMPT: Final = (
    "The AI Security tools read the history of the home's security cameras: incidents (one "
    "visit each) with their time, camera, risk level (low, medium, high, critical), summary, "
    "objects seen and whether the user reviewed them. Use them for questions about who or what "
    "was seen, when, and where. Cite the time and the camera of each incident you mention. "
    "Periods are named (today, yesterday, last_night, this_week, ...) or given as start and end."
)

_CAMERAS = vol.All(cv.ensure_list, [vol.All(str, vol.Length(min=1, max=MAX_NAME))])
_PERIOD_FIELDS: Final[dict[Any, Any]] = {
    vol.Optional("period"): vol.In(PERIODS),
    vol.Optional("start"): cv.datetime,
    vol.Optional("end"): cv.datetime,
}
_LEVEL = vol.All(vol.In(LEVELS), RiskLevel)
"""A minimum risk level by its name, as the RiskLevel the queries take."""
_ANNOTATIONS: Final = llm.ToolAnnotations(
    read_only=True, destructive=False, idempotent=True, open_world=False
)


def _cameras(hass: HomeAssistant, spoken: list[str] | None) -> list[CameraRef] | None:
    """Return the cameras named (None for all); an unknown name is an error naming the known."""
    if not spoken:
        return None
    found: dict[tuple[str, str], CameraRef] = {}
    for name in spoken[:MAX_CAMERAS]:
        matched = assist_data.match_cameras(hass, name)
        if not matched:
            known = ", ".join(ref.name for ref in assist_data.cameras(hass)) or "none yet"
            raise HomeAssistantError(f"No camera is called {name[:MAX_NAME]!r}. Cameras: {known}")
        for ref in matched:
            found[(ref.entry.entry_id, ref.camera_id)] = ref
    return list(found.values())


def _period(args: dict[str, Any], default: str) -> tuple[datetime, datetime]:
    """Return the period asked for: start and end, or a named period (default when neither)."""
    now = dt_util.utcnow()
    start, end = args.get("start"), args.get("end")
    if start is None and end is None:
        return period_bounds(args.get("period", default), now, assist_data.local_tz())
    # Only a start: until now. Only an end: the day before it.
    end = dt_util.as_utc(end) if end is not None else now
    start = dt_util.as_utc(start) if start is not None else end - timedelta(days=1)
    if start > end:
        raise HomeAssistantError(
            f"The period starts ({start.isoformat()}) after it ends ({end.isoformat()})"
        )
    return start, end


class _Tool(llm.Tool):
    """A read-only tool of this API: its arguments checked before it runs."""

    integration = DOMAIN
    annotations = _ANNOTATIONS

    @override
    async def async_call(
        self, hass: HomeAssistant, tool_input: llm.ToolInput, llm_context: llm.LLMContext
    ) -> llm.ToolResult:
        """Check the arguments against the schema, then answer."""
        args = self.parameters(tool_input.tool_args)
        return llm.ToolResult(data=await self.answer(hass, args))

    async def answer(self, hass: HomeAssistant, args: dict[str, Any]) -> JsonObjectType:
        """Return the tool's answer to checked arguments."""
        raise NotImplementedError


class SearchIncidentsTool(_Tool):
    """Find incidents by words, cameras, period, level and review."""

    name = "search_incidents"
    description = (
        "Search the camera incidents, newest first. text: words that must appear in the "
        "summary, reasoning or objects (empty for all). Returns how many match and the latest "
        f"ones (at most limit, {MAX_NOTABLE} at most)."
    )
    parameters = vol.Schema(
        {
            vol.Optional("text", default=""): vol.All(str, vol.Length(max=MAX_TEXT_LENGTH)),
            vol.Optional("cameras"): _CAMERAS,
            **_PERIOD_FIELDS,
            vol.Optional("min_level"): _LEVEL,
            vol.Optional("reviewed"): bool,
            vol.Optional("limit", default=5): vol.All(int, vol.Range(min=1, max=MAX_NOTABLE)),
        }
    )

    @override
    async def answer(self, hass: HomeAssistant, args: dict[str, Any]) -> JsonObjectType:
        """Return the matching incidents."""
        refs = _cameras(hass, args.get("cameras"))
        start, end = _period(args, "last_30_days")
        return await assist_data.search(
            hass,
            refs,
            text=args["text"],
            start=start,
            end=end,
            min_level=args.get("min_level"),
            reviewed=args.get("reviewed"),
            limit=args["limit"],
        )


class SummarizePeriodTool(_Tool):
    """Count a period's incidents per camera and level, and name the notable ones."""

    name = "summarize_period"
    description = (
        "Summarise the camera incidents of a period: how many per camera and risk level, and "
        "the most notable ones with their times. Default period: today."
    )
    parameters = vol.Schema(
        {
            vol.Optional("cameras"): _CAMERAS,
            **_PERIOD_FIELDS,
            vol.Optional("min_level"): _LEVEL,
            vol.Optional("notable", default=5): vol.All(int, vol.Range(min=0, max=MAX_NOTABLE)),
        }
    )

    @override
    async def answer(self, hass: HomeAssistant, args: dict[str, Any]) -> JsonObjectType:
        """Return the period's summary."""
        refs = _cameras(hass, args.get("cameras"))
        start, end = _period(args, "today")
        return await assist_data.summary(
            hass,
            refs,
            start,
            end,
            min_level=args.get("min_level"),
            notable=args["notable"],
        )


class LatestIncidentTool(_Tool):
    """The latest incident of a camera (or of any)."""

    name = "latest_incident"
    description = "Return the latest incident of a camera (of any camera when none is given)."
    parameters = vol.Schema({vol.Optional("camera"): vol.All(str, vol.Length(min=1, max=MAX_NAME))})

    @override
    async def answer(self, hass: HomeAssistant, args: dict[str, Any]) -> JsonObjectType:
        """Return the latest incident, or none."""
        camera = args.get("camera")
        refs = _cameras(hass, [camera] if camera else None)
        return {"incident": await assist_data.latest(hass, refs)}


class CameraStatusTool(_Tool):
    """The cameras' state now."""

    name = "camera_status"
    description = (
        "Return each camera's state now: its risk level and score, whether something is going "
        "on, detections today, learned false alarms kept out today, and whether its alerts or "
        "its detection are paused."
    )
    parameters = vol.Schema({vol.Optional("cameras"): _CAMERAS})

    @override
    async def answer(self, hass: HomeAssistant, args: dict[str, Any]) -> JsonObjectType:
        """Return the cameras' states."""
        refs = _cameras(hass, args.get("cameras"))
        states: list[Any] = assist_data.status(hass, refs)
        return {"cameras": states}


TOOLS: Final[tuple[type[_Tool], ...]] = (
    SearchIncidentsTool,
    SummarizePeriodTool,
    LatestIncidentTool,
    CameraStatusTool,
)


class AiSecurityAPI(llm.API):
    """The integration's LLM API: one for all hubs, registered once."""

    @override
    async def async_get_api_instance(self, llm_context: llm.LLMContext) -> llm.APIInstance:
        """Return the tools, with the prompt that says what they are for."""
        return llm.APIInstance(
            api=self,
            api_prompt=API_PROMPT,
            llm_context=llm_context,
            tools=[tool() for tool in TOOLS],
        )


def async_register_api(hass: HomeAssistant) -> None:
    """Offer the API to conversation agents (once: it serves every loaded hub)."""
    llm.async_register_api(hass, AiSecurityAPI(hass=hass, id=API_ID, name=API_NAME))
