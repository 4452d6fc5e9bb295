"""llama.cpp's native API: POST /completion with one prompt text, GET /health.

The native route takes one text (no chat template): the system prompt, a blank line, the user
prompt, a blank line and the line "JSON answer:". The verdict's JSON schema is turned into a
grammar by the server, so the answer has the right shape; the prompt's start is kept in the
server's cache between requests (cache_prompt), which makes a camera's next verdict cheaper.

Pictures (a server started with a vision projector, `--mmproj`) go as `multimodal_data`, each in
the prompt where the server's media marker stands. The marker is random per server process and
published in GET /props with the modalities the model takes; the literal `<__media__>` of older
servers is refused. The pictures come after the system prompt and before the detections, each
after its caption, so the text always ends the prompt (this server version aborts on a prompt
that ends with a picture).
"""

import base64
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import aiohttp

from .health import ServiceUnavailableError, get_json, redact_url
from .llm_provider import UNKNOWN_TRAITS, Capabilities, Prompt, Reply, ServerTraits
from .settings import LlmApi

COMPLETION_PATH: Final = "/completion"
"""llama.cpp's native route."""


PROPS_PATH: Final = "/props"
"""Where llama-server describes itself: modalities, media marker, slot context."""
TOKENIZE_PATH: Final = "/tokenize"
"""Where llama-server turns a text into the model's tokens (no generation: cheap)."""


def count_of(value: object) -> int | None:
    """Return value when it is a count (a non-negative int, not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def combine_prompt(system: str, user: str, pictures: str = "") -> str:
    """Return the single text llama.cpp's /completion gets: system, user, then 'JSON answer:'.

    pictures (captions and media markers) go between the system prompt and the user's text.
    """
    middle = f"{pictures}\n" if pictures else ""
    return f"{system}\n\n{middle}{user}\n\nJSON answer:\n"


def traits_from_props(props: object) -> ServerTraits:
    """Return what a /props answer says: whether the model sees, its marker, a slot's context."""
    if not isinstance(props, dict):
        return UNKNOWN_TRAITS
    modalities = props.get("modalities")
    vision = modalities.get("vision") if isinstance(modalities, dict) else None
    marker = props.get("media_marker")
    settings = props.get("default_generation_settings")
    context = settings.get("n_ctx") if isinstance(settings, dict) else None
    return ServerTraits(
        vision=vision if isinstance(vision, bool) else None,
        media_marker=marker if isinstance(marker, str) and marker else None,
        context_tokens=context
        if isinstance(context, int) and not isinstance(context, bool) and context > 0
        else None,
    )


class LlamaCppProvider:
    """llama-server spoken to natively."""

    api: ClassVar[LlmApi] = LlmApi.LLAMA_CPP
    capabilities: ClassVar[Capabilities] = Capabilities(images=True)

    def request(
        self, prompt: Prompt, traits: ServerTraits = UNKNOWN_TRAITS
    ) -> tuple[str, dict[str, Any]]:
        """Return /completion and its body: the combined prompt with the schema as grammar.

        Pictures go only to a server that said it sees, with the marker it published (without
        one, there is nowhere to put them).
        """
        text: str | dict[str, Any] = combine_prompt(prompt.system, prompt.user)
        if prompt.images and traits.vision and traits.media_marker:
            marker = traits.media_marker
            pictures = "".join(f"{image.caption}\n{marker}\n" for image in prompt.images)
            text = {
                "prompt_string": combine_prompt(prompt.system, prompt.user, pictures),
                "multimodal_data": [
                    base64.b64encode(image.jpeg).decode("ascii") for image in prompt.images
                ],
            }
        return COMPLETION_PATH, {
            "prompt": text,
            "n_predict": prompt.max_tokens,
            "temperature": prompt.temperature,
            "json_schema": prompt.schema,
            "cache_prompt": True,
            "stream": False,
        }

    def reply(self, envelope: object) -> Reply:
        """Return the text in {"content": ...}; stop_type "limit" means it was cut off.

        tokens_evaluated is the whole prompt's tokens (pictures included), cached or not.
        """
        if not isinstance(envelope, dict):
            return Reply(content=None, cut_off=False)
        return Reply(
            content=envelope.get("content"),
            cut_off=envelope.get("stop_type") == "limit",
            prompt_tokens=count_of(envelope.get("tokens_evaluated")),
        )

    async def count_tokens(
        self, session: aiohttp.ClientSession, base_url: str, text: str, time_limit: float
    ) -> int | None:
        """POST /tokenize: the tokens text makes for the loaded model."""
        try:
            async with session.post(
                f"{base_url}{TOKENIZE_PATH}",
                json={"content": text},
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as response:
                if response.status != 200:
                    return None
                payload = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            raise ServiceUnavailableError(f"cannot count tokens at {redact_url(base_url)}") from err
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        return len(tokens) if isinstance(tokens, list) else None

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        """GET /health: llama-server answers 503 while it loads its model (not ready)."""
        payload = await get_json(session, f"{base_url}/health", time_limit)
        return payload if isinstance(payload, dict) else {}

    def has_slots(self, report: Mapping[str, object]) -> bool:
        """Return True: the native API is llama-server's own."""
        return True

    async def traits(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> ServerTraits:
        """GET /props: the modalities, the media marker and a slot's context."""
        return traits_from_props(await get_json(session, f"{base_url}{PROPS_PATH}", time_limit))
