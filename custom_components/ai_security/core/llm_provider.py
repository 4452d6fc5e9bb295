"""What an LLM provider is: how one kind of server is asked for a verdict and checked on.

The analyzer (core/analyzer.py) owns everything a verdict needs that does not depend on the
server: the prompt, the verdict's JSON schema, the breaker, sending, time limits, error
handling and checking the answer. A provider only knows its server's dialect: which route takes
the request and how its body looks, where the model's text sits in the reply, and how to ask
whether the server is ready. Adding a server kind is one module with a class like these, its
value in settings.LlmApi, and one line in the registry (llm_providers.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp

from .settings import LlmApi


@dataclass(frozen=True, kw_only=True, slots=True)
class Prompt:
    """One verdict request, as every provider gets it."""

    system: str
    user: str
    schema: Mapping[str, Any]
    """The verdict's JSON schema: the answer must have its shape."""
    max_tokens: int
    temperature: float
    model: str | None = None
    """The model to use, for servers that serve several (Ollama, vLLM); None: the server's."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a provider can carry besides text."""

    images: bool = False
    """Whether it sends pictures to a vision model with the prompt (not yet: text only)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """The model's text found in a server's reply."""

    content: object
    """The text (anything else is refused by the analyzer, naming the server)."""
    cut_off: bool
    """Whether the answer stopped at max_tokens rather than where the model ended it."""


class LlmProvider(Protocol):
    """One kind of LLM server's dialect (see the module's docstring)."""

    api: ClassVar[LlmApi]
    """The configuration value that chooses it."""
    capabilities: ClassVar[Capabilities]

    def request(self, prompt: Prompt) -> tuple[str, dict[str, Any]]:
        """Return the route (a path under the server's URL) and the JSON body to send."""
        ...

    def reply(self, envelope: object) -> Reply:
        """Return the model's text in the server's decoded JSON reply (content None if absent)."""
        ...

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        """Return the server's readiness report; raise ServiceUnavailableError when not ready."""
        ...
