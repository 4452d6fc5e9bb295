"""The OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models.

Spoken by llama-server too, and by vLLM, Ollama, LM Studio and gateways in front of a cluster.
The schema goes as a strict json_schema response format; "model" is sent when one is named
(servers that serve several pick the model by it).

Pictures go as content parts of the user's message: each caption as text, then the JPEG as an
image_url data URI, then the user's text. Such a server cannot say whether its model sees
(its model list does not tell), so pictures are tried; the analyzer learns from a refusal.
"""

import base64
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import aiohttp

from .health import ServiceUnavailableError, get_json, redact_url
from .llm_llama_cpp import count_of
from .llm_provider import UNKNOWN_TRAITS, Capabilities, Prompt, Reply, ServerTraits
from .settings import LlmApi

CHAT_PATH: Final = "/v1/chat/completions"
"""The OpenAI-compatible route."""
SCHEMA_NAME: Final = "security_verdict"
"""The schema's name in an OpenAI response_format."""
LLAMA_CPP_OWNER: Final = "llamacpp"
"""The owner llama-server names for its model in GET /v1/models."""


class OpenAiProvider:
    """Any server speaking the OpenAI chat completions API."""

    api: ClassVar[LlmApi] = LlmApi.OPENAI
    capabilities: ClassVar[Capabilities] = Capabilities(images=True)

    def request(
        self, prompt: Prompt, traits: ServerTraits = UNKNOWN_TRAITS
    ) -> tuple[str, dict[str, Any]]:
        """Return the chat route and its body: system and user messages, the schema as format.

        The prompt's pictures are sent unless traits say the server takes none.
        """
        user: str | list[dict[str, Any]] = prompt.user
        if prompt.images and traits.vision is not False:
            user = [
                part
                for image in prompt.images
                for part in (
                    {"type": "text", "text": image.caption},
                    {"type": "image_url", "image_url": {"url": _data_uri(image.jpeg)}},
                )
            ]
            user.append({"type": "text", "text": prompt.user})
        body: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": user},
            ],
            "max_tokens": prompt.max_tokens,
            "temperature": prompt.temperature,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": prompt.schema},
            },
            "stream": False,
        }
        if prompt.model is not None:
            body["model"] = prompt.model
        return CHAT_PATH, body

    def reply(self, envelope: object) -> Reply:
        """Return the first choice's message text; finish_reason "length" means cut off."""
        choices = envelope.get("choices") if isinstance(envelope, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return Reply(content=None, cut_off=False)
        message = choice.get("message")
        usage = envelope.get("usage") if isinstance(envelope, dict) else None
        return Reply(
            content=message.get("content") if isinstance(message, dict) else None,
            cut_off=choice.get("finish_reason") == "length",
            prompt_tokens=count_of(usage.get("prompt_tokens")) if isinstance(usage, dict) else None,
        )

    async def count_tokens(
        self, session: aiohttp.ClientSession, base_url: str, text: str, time_limit: float
    ) -> int | None:
        """Return None: the OpenAI API has no route that counts tokens.

        Its servers are sized by their refusals instead (llm_vision.ServerVision.fewer).
        """
        return None

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        """GET /v1/models: the server must list its models the OpenAI way."""
        payload = await get_json(session, f"{base_url}/v1/models", time_limit)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise ServiceUnavailableError(
                f"{redact_url(base_url)}/v1/models did not return an OpenAI model list"
            )
        return payload

    def has_slots(self, report: Mapping[str, object]) -> bool:
        """Return whether the model list is llama-server's: it says `"owned_by": "llamacpp"`.

        vLLM, Ollama and gateways name other owners and have no slots to ask about.
        """
        models = report.get("data")
        return isinstance(models, list) and any(
            isinstance(model, dict) and model.get("owned_by") == LLAMA_CPP_OWNER for model in models
        )

    async def traits(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> ServerTraits:
        """Nothing to ask: the API has no route that says whether the model sees."""
        return UNKNOWN_TRAITS


def _data_uri(jpeg: bytes) -> str:
    """Return a JPEG as a data URI, the form every OpenAI-compatible server takes."""
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode('ascii')}"
