"""llama.cpp's native API: POST /completion with one prompt text, GET /health.

The native route takes one text (no chat template): the system prompt, a blank line, the user
prompt, a blank line and the line "JSON answer:". The verdict's JSON schema is turned into a
grammar by the server, so the answer has the right shape; the prompt's start is kept in the
server's cache between requests (cache_prompt), which makes a camera's next verdict cheaper.
"""

from typing import Any, ClassVar, Final

import aiohttp

from .health import get_json
from .llm_provider import Capabilities, Prompt, Reply
from .settings import LlmApi

COMPLETION_PATH: Final = "/completion"
"""llama.cpp's native route."""


def combine_prompt(system: str, user: str) -> str:
    """Return the single text llama.cpp's /completion gets: system, user, then 'JSON answer:'."""
    return f"{system}\n\n{user}\n\nJSON answer:\n"


class LlamaCppProvider:
    """llama-server spoken to natively."""

    api: ClassVar[LlmApi] = LlmApi.LLAMA_CPP
    capabilities: ClassVar[Capabilities] = Capabilities()

    def request(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        """Return /completion and its body: the combined prompt with the schema as grammar."""
        return COMPLETION_PATH, {
            "prompt": combine_prompt(prompt.system, prompt.user),
            "n_predict": prompt.max_tokens,
            "temperature": prompt.temperature,
            "json_schema": prompt.schema,
            "cache_prompt": True,
            "stream": False,
        }

    def reply(self, envelope: object) -> Reply:
        """Return the text in {"content": ...}; stop_type "limit" means it was cut off."""
        if not isinstance(envelope, dict):
            return Reply(content=None, cut_off=False)
        return Reply(content=envelope.get("content"), cut_off=envelope.get("stop_type") == "limit")

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        """GET /health: llama-server answers 503 while it loads its model (not ready)."""
        payload = await get_json(session, f"{base_url}/health", time_limit)
        return payload if isinstance(payload, dict) else {}
