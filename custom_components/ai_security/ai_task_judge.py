"""Home Assistant's AI Task as a judge: any ai_task entity the user set up judges incidents.

The user picks an entity they already have (OpenAI, Google, Anthropic, Ollama ... set up in
Home Assistant) and nothing is configured twice. It joins the pipeline's LLM pool by its entity
id (core.llm_provider.LlmAsker): the same prompt and pictures as a server gets, with the
verdict's JSON schema given as the task's structure (selectors, which every AI Task entity turns
into its service's own schema), and the answer checked by the same parser and verifier.

Pictures go as attachments through this integration's media source: AI Task resolves a media id
to a local file, so each verdict's frames are written under the entry's media folder
(`.llm_frames/<token>/`, a name no camera can have) for the length of the task and removed after.
"""

from collections.abc import Mapping, Sequence
import json
import os
from pathlib import Path
import re
import secrets
import shutil
from typing import Any, Final

from homeassistant.components import ai_task
from homeassistant.const import ATTR_SUPPORTED_FEATURES, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import selector
import probatio

from .const import DOMAIN
from .core.derived import DerivedMedia
from .core.health import ServiceUnavailableError
from .core.llm_errors import AnalyzerError, LlmUnavailableError
from .core.llm_provider import Prompt, PromptImage

FRAMES_FOLDER: Final = ".llm_frames"
"""Under the entry's media root: a leading dot, so no camera's folder can be named so."""
TASK_NAME: Final = "AI Security verdict"
_TOKEN: Final = re.compile(r"[0-9a-f]{32}")
_FRAME_FILE: Final = re.compile(r"[1-9][0-9]?\.jpg")

_FIELD_HELP: Final[Mapping[str, str]] = {
    "observations": "What you see happening, plainly.",
    "objects": "The things present, one or two words each.",
    "reasoning": "Why, briefly.",
    "risk_score": "The risk, 0-100, by the bands given.",
    "risk_level": "The band the score falls in.",
    "confidence": "How sure you are, 0-100.",
    "title": "A few words.",
    "summary": "One sentence for a phone notification.",
    "other_concerns": "Anything else the owner should know; none if nothing.",
}
"""Each field's meaning, given with the structure (the instructions say it too)."""


def structure_for(schema: Mapping[str, Any]) -> probatio.Schema:
    """Return the verdict's JSON schema as an AI Task structure (a schema of selectors).

    Strings are text, a string with an enum a select, an integer a number with its bounds, an
    array of strings a text that takes several; every field the schema requires is required.
    """
    required = set(schema.get("required", ()))
    fields: dict[Any, Any] = {}
    for name, spec in schema["properties"].items():
        marker = probatio.Required if name in required else probatio.Optional
        fields[marker(name, description=_FIELD_HELP.get(name))] = _selector(spec)
    return probatio.Schema(fields)


def service_structure(schema: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the verdict's JSON schema as the generate_data action's `structure` data.

    The action (called from a script or over the REST API) takes the structure as plain data,
    `{field: {"selector": ..., "required": ..., "description": ...}}`, and builds the schema
    itself: from the same selectors as structure_for, so an entity asked that way is given the
    same structure as one the integration asks.
    """
    required = set(schema.get("required", ()))
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in schema["properties"].items():
        field: dict[str, Any] = {**_selector(spec).serialize(), "required": name in required}
        if (meaning := _FIELD_HELP.get(name)) is not None:
            field["description"] = meaning
        fields[name] = field
    return fields


def _selector(spec: Mapping[str, Any]) -> selector.Selector[Any]:
    """Return the selector for one property of the verdict's schema."""
    kind = spec.get("type")
    if kind == "string" and "enum" in spec:
        return selector.SelectSelector(
            selector.SelectSelectorConfig(options=[str(value) for value in spec["enum"]])
        )
    if kind == "string":
        return selector.TextSelector(selector.TextSelectorConfig(multiline=True))
    if kind in ("integer", "number"):
        return selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=spec.get("minimum", 0),
                max=spec.get("maximum", 100),
                step=1 if kind == "integer" else "any",
                mode=selector.NumberSelectorMode.BOX,
            )
        )
    if kind == "array" and spec.get("items", {}).get("type") == "string":
        return selector.TextSelector(selector.TextSelectorConfig(multiple=True))
    raise ValueError(f"no AI Task selector for {spec!r}")


def instructions_for(prompt: Prompt, attached: Sequence[PromptImage]) -> str:
    """Return the task's instructions: the system text, the facts, and what each picture is.

    An AI Task takes one text: the system prompt comes first, as the rules; the attached
    pictures are introduced in the order they are attached, by the captions a server gets.
    """
    parts = [prompt.system, prompt.user]
    if attached:
        parts.append(
            "Pictures attached, in order:\n"
            + "\n".join(f"{index}. {image.caption}" for index, image in enumerate(attached, 1))
        )
    return "\n\n".join(parts)


def answer_text(data: Any) -> str:
    """Return an AI Task's answer as the JSON text the verdict parser reads.

    A number selector answers with a decimal, and a model may give 74.5 for a score asked in
    whole numbers: it is rounded rather than lost as a malformed verdict. Raises ValueError
    for data that is no JSON (naming its type).
    """
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and isinstance(data.get("risk_score"), float):
        data = {**data, "risk_score": round(data["risk_score"])}
    try:
        return json.dumps(data)
    except (TypeError, ValueError) as err:
        raise ValueError(type(data).__name__) from err


def clear_frames(root: str) -> None:
    """Remove every verdict's frames left under root (a task cut short by a restart); blocking."""
    shutil.rmtree(os.path.join(root, FRAMES_FOLDER), ignore_errors=True)


def frame_path(root: str, token: str, name: str) -> Path | None:
    """Return the file a frame's media id names, or None if the id is not one this writes.

    Only `<token>/<n>.jpg` directly under the frames folder: nothing else of the media root
    (or outside it) can be reached through this path of the media source. Blocking.
    """
    if not _TOKEN.fullmatch(token) or not _FRAME_FILE.fullmatch(name):
        return None
    try:
        path = DerivedMedia(root).resolve(f"{FRAMES_FOLDER}/{token}/{name}")
    except ValueError:
        return None
    return path if path.is_file() else None


def _write_frames(root: str, token: str, images: Sequence[PromptImage]) -> list[str]:
    """Write a verdict's frames under the frames folder; return their names. Blocking."""
    media = DerivedMedia(root)
    names = []
    for index, image in enumerate(images, start=1):
        name = f"{index}.jpg"
        media.write_file(media.root / FRAMES_FOLDER / token / name, image.jpeg)
        names.append(name)
    return names


class AiTaskJudge:
    """One AI Task entity, asked for verdicts as the pipeline's LLM servers are."""

    def __init__(self, hass: HomeAssistant, entry_id: str, entity_id: str, root: str) -> None:
        """Ask entity_id for entry_id's verdicts; root is the entry's media folder."""
        self._hass = hass
        self._entry_id = entry_id
        self.entity_id = entity_id
        self._root = root

    def _features(self) -> int | None:
        """Return the entity's supported features, or None while it is missing or unavailable."""
        state = self._hass.states.get(self.entity_id)
        if state is None or state.state == STATE_UNAVAILABLE:
            return None
        return int(state.attributes.get(ATTR_SUPPORTED_FEATURES) or 0)

    def takes_pictures(self) -> bool:
        """Return whether the entity says it takes attachments (vision, for these)."""
        features = self._features()
        return (
            features is not None and features & ai_task.AITaskEntityFeature.SUPPORT_ATTACHMENTS != 0
        )

    async def probe(self) -> dict[str, object]:
        """Return the entity's state as a readiness report; raise when it cannot judge."""
        features = self._features()
        if features is None:
            raise ServiceUnavailableError(f"{self.entity_id} is missing or unavailable")
        if not features & ai_task.AITaskEntityFeature.GENERATE_DATA:
            raise ServiceUnavailableError(f"{self.entity_id} cannot generate data")
        return {"entity_id": self.entity_id, "attachments": self.takes_pictures()}

    async def ask(self, prompt: Prompt) -> str:
        """Run the verdict as an AI Task and return its structured answer as JSON text."""
        if self._features() is None:
            raise LlmUnavailableError(f"{self.entity_id} is missing or unavailable")
        token = secrets.token_hex(16)
        images = prompt.images
        try:
            names: list[str] = []
            if images:
                names = await self._hass.async_add_executor_job(
                    _write_frames, self._root, token, images
                )
            attachments = [
                {
                    "media_content_id": (
                        f"media-source://{DOMAIN}/{self._entry_id}/{FRAMES_FOLDER}/{token}/{name}"
                    ),
                    "media_content_type": "image/jpeg",
                }
                for name in names
            ]
            result = await ai_task.async_generate_data(
                self._hass,
                task_name=TASK_NAME,
                entity_id=self.entity_id,
                instructions=instructions_for(prompt, images),
                structure=structure_for(prompt.schema),
                attachments=attachments or None,
            )
        except OSError as err:
            raise AnalyzerError(f"cannot write the pictures for {self.entity_id}: {err}") from err
        except HomeAssistantError as err:
            raise AnalyzerError(f"{self.entity_id} failed: {err}") from err
        finally:
            if images:
                # The entity has read them (or failed): they were for this task only.
                await self._hass.async_add_executor_job(
                    shutil.rmtree, os.path.join(self._root, FRAMES_FOLDER, token), True
                )
        try:
            return answer_text(result.data)
        except ValueError as err:
            raise AnalyzerError(f"{self.entity_id} answered with {err}") from err
