"""The LLM providers, chosen by the configured API (settings.LlmApi); see llm_provider.py.

To add one: a module core/llm_<name>.py with a class like LlamaCppProvider, its value in
settings.LlmApi (with its label in translations/en.json), and its class in PROVIDERS below. A
test checks that every LlmApi value has a provider.
"""

from typing import Final

import aiohttp

from .health import PROBE_TIMEOUT
from .llm_llama_cpp import LlamaCppProvider
from .llm_openai import OpenAiProvider
from .llm_provider import Capabilities, LlmProvider, Prompt, Reply
from .settings import LlmApi

__all__ = [
    "PROVIDERS",
    "Capabilities",
    "LlmProvider",
    "Prompt",
    "Reply",
    "probe_llm",
    "provider_for",
]

PROVIDERS: Final[dict[LlmApi, type[LlmProvider]]] = {
    provider.api: provider for provider in (LlamaCppProvider, OpenAiProvider)
}


def provider_for(api: LlmApi) -> LlmProvider:
    """Return the provider that speaks api."""
    return PROVIDERS[api]()


async def probe_llm(
    session: aiohttp.ClientSession, base_url: str, api: LlmApi, *, time_limit: float = PROBE_TIMEOUT
) -> dict[str, object]:
    """Check an LLM server is ready, the way its provider asks; raise ServiceUnavailableError."""
    return await provider_for(api).probe(session, base_url, time_limit)
