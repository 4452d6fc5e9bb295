"""A Home Assistant AI Task entity as the judge being measured, asked over Home Assistant's API.

The integration asks its entity from inside Home Assistant (ai_task_judge.AiTaskJudge); this
script runs outside it, so it asks the way a script or another program does: the generate_data
action over the REST API, with the same instructions and the verdict's structure as the
action's data (ai_task_judge.service_structure), the pictures uploaded to Home Assistant's own
media folder first (the action takes attachments as media ids, and an upload is the one way in
from outside) and removed after (Home Assistant offers removal only over its websocket).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import time
from types import TracebackType
from typing import Any, Final, Self
import uuid

import aiohttp
from homeassistant.components.ai_task import AITaskEntityFeature

from custom_components.ai_security.ai_task_judge import (
    TASK_NAME,
    answer_text as judge_answer_text,
    instructions_for,
    service_structure,
)
from custom_components.ai_security.core.llm_provider import Prompt
from scripts.demo import hass_api

UPLOAD_PATH: Final = "/api/media_source/local_source/upload"
UPLOAD_FOLDER: Final = "media-source://media_source/local/."
"""The top of Home Assistant's default media folder ("My media"), where uploads go."""
GENERATE_PATH: Final = "/api/services/ai_task/generate_data?return_response"
TIME_LIMIT: Final = 300.0
"""Seconds one task may take: a cloud model with pictures can be slow, as a server can."""
SNIPPET: Final = 300
"""Characters of an error reply quoted."""


class HomeAssistantCallError(Exception):
    """Home Assistant refused a request or could not run the task; the message says which."""


@dataclass
class AiTaskEntity:
    """One AI Task entity of a Home Assistant, asked for verdicts as a user's script would."""

    http: aiohttp.ClientSession
    base_url: str
    token: str
    entity_id: str
    unremoved: list[str] = field(default_factory=list)
    """Uploads that could not be removed: the user is told, to delete them by hand."""
    _socket: aiohttp.ClientWebSocketResponse | None = field(default=None, repr=False)
    _commands: hass_api.Websocket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Keep the base URL without a trailing slash, as the paths start with one."""
        self.base_url = self.base_url.rstrip("/")

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def __aenter__(self) -> Self:
        """Return self; the websocket opens only when an upload has to be removed."""
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        """Close the websocket, if one was opened."""
        socket, self._socket, self._commands = self._socket, None, None
        if socket is not None:
            await socket.close()

    async def takes_pictures(self) -> bool:
        """Return whether the entity takes attachments; raise when it cannot judge at all.

        The integration reads the same state: an entity that takes no attachments is given the
        text alone, and one that cannot generate data is no judge.
        """
        url = f"{self.base_url}/api/states/{self.entity_id}"
        async with self.http.get(url, headers=self._headers) as response:
            if response.status == 404:
                raise HomeAssistantCallError(f"Home Assistant has no entity {self.entity_id}")
            state = await _json(response, f"reading {self.entity_id}")
        if state.get("state") == "unavailable":
            raise HomeAssistantCallError(f"{self.entity_id} is unavailable")
        features = int(state.get("attributes", {}).get("supported_features") or 0)
        if not features & AITaskEntityFeature.GENERATE_DATA:
            raise HomeAssistantCallError(f"{self.entity_id} cannot generate data")
        return features & AITaskEntityFeature.SUPPORT_ATTACHMENTS != 0

    async def ask(self, prompt: Prompt) -> tuple[Any, float]:
        """Run one verdict's task; return the entity's structured answer and the seconds taken.

        The prompt's pictures are uploaded, attached in their order, and removed afterwards
        whatever happened; the time is the action's alone, uploads not counted.
        """
        uploaded: list[str] = []
        try:
            for number, image in enumerate(prompt.images, start=1):
                uploaded.append(await self._upload(image.jpeg, number))
            return await self._generate(prompt, uploaded)
        finally:
            for media_id in uploaded:
                await self._remove(media_id)

    async def _upload(self, jpeg: bytes, number: int) -> str:
        """Upload one picture to the media folder; return its media id."""
        form = aiohttp.FormData()
        form.add_field("media_content_id", UPLOAD_FOLDER)
        form.add_field(
            "file",
            jpeg,
            filename=f"ai_security_eval_{uuid.uuid4().hex}_{number}.jpg",
            content_type="image/jpeg",
        )
        async with self.http.post(
            f"{self.base_url}{UPLOAD_PATH}", data=form, headers=self._headers
        ) as response:
            reply = await _json(
                response,
                "uploading a picture (is there a media folder named 'local', and is the token"
                " an administrator's?)",
            )
        media_id = reply.get("media_content_id") if isinstance(reply, Mapping) else None
        if not isinstance(media_id, str):
            raise HomeAssistantCallError(f"the upload answered {str(reply)[:SNIPPET]}")
        return media_id

    async def _generate(self, prompt: Prompt, media_ids: Sequence[str]) -> tuple[Any, float]:
        """Call generate_data for prompt with the uploads attached; return its data and time."""
        body: dict[str, Any] = {
            "task_name": TASK_NAME,
            "entity_id": self.entity_id,
            "instructions": instructions_for(prompt, prompt.images),
            "structure": service_structure(prompt.schema),
        }
        if media_ids:
            body["attachments"] = [
                {"media_content_id": media_id, "media_content_type": "image/jpeg"}
                for media_id in media_ids
            ]
        started = time.perf_counter()
        async with self.http.post(
            f"{self.base_url}{GENERATE_PATH}",
            json=body,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=TIME_LIMIT),
        ) as response:
            reply = await _json(response, f"{self.entity_id}'s task")
        elapsed = time.perf_counter() - started
        result = reply.get("service_response") if isinstance(reply, Mapping) else None
        if not isinstance(result, Mapping) or "data" not in result:
            raise HomeAssistantCallError(f"the task answered {str(reply)[:SNIPPET]}")
        return result["data"], elapsed

    async def _remove(self, media_id: str) -> None:
        """Remove an upload; one that cannot be is remembered, never a reason to stop."""
        try:
            if self._commands is None:
                session = hass_api.Session(
                    base_url=self.base_url,
                    access_token=self.token,
                    refresh_token=None,
                    client_id="",
                )
                self._commands, self._socket = await hass_api.websocket(self.http, session)
            await self._commands.command(
                {"type": "media_source/local_source/remove", "media_content_id": media_id}
            )
        except hass_api.SetupError:  # refused (or the sign-in was): the connection is sound
            self.unremoved.append(media_id)
        except aiohttp.ClientError, TimeoutError, TypeError, ValueError:
            # The connection broke: the next removal opens a new one.
            self.unremoved.append(media_id)
            socket, self._socket, self._commands = self._socket, None, None
            if socket is not None:
                await socket.close()


def answer_text(data: Any) -> str:
    """Return the entity's answer as the JSON text the verdict parser reads.

    As the integration reads it (ai_task_judge.answer_text: a decimal score is rounded).
    """
    try:
        return judge_answer_text(data)
    except ValueError as err:
        raise HomeAssistantCallError(f"the answer is {err}, not data") from err


async def _json(response: aiohttp.ClientResponse, what: str) -> Any:
    """Return a reply's JSON; raise HomeAssistantCallError with its status and text if it failed."""
    if response.status >= 300:
        text = " ".join((await response.text()).split())
        raise HomeAssistantCallError(f"{what}: HTTP {response.status} {text[:SNIPPET]}")
    try:
        return await response.json(content_type=None)
    except ValueError as err:
        raise HomeAssistantCallError(f"{what}: the reply is not JSON") from err
