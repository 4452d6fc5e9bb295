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
class PromptImage:
    """One picture sent with the prompt: a JPEG, and the line of text that introduces it.

    The caption says which frame it is (its number, its time, what the detector saw there), so
    the model can refer to it; it is written by us, never taken from the picture or a server.
    """

    jpeg: bytes
    caption: str
    rank: int = 0
    """How telling the picture is, 0 the most: when fewer fit, the lowest ranks are kept."""
    frame: str = ""
    """Which frame it is, for the audit of what a verdict was shown (vision_frames.frame_id)."""
    digest: str = ""
    """The JPEG's SHA-256 (hex), made where it was drawn; part of the prompt's hash."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerTraits:
    """What one server says about itself, learned before pictures are sent to it.

    vision is None where the server cannot say (an OpenAI-compatible server lists models, not
    what they take): pictures are then tried, and a refusal teaches that it takes none.
    """

    vision: bool | None = None
    media_marker: str | None = None
    """llama.cpp's marker for where a picture goes in a prompt, random per server process."""
    context_tokens: int | None = None
    """The tokens one request may use (prompt and answer), when the server publishes it."""


UNKNOWN_TRAITS = ServerTraits()
"""A server that said nothing about itself."""


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
    images: tuple[PromptImage, ...] = ()
    """Pictures of the incident for a vision model, in the order the user text refers to them."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """What a provider can carry besides text."""

    images: bool = False
    """Whether it can send pictures to a vision model with the prompt."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """The model's text found in a server's reply."""

    content: object
    """The text (anything else is refused by the analyzer, naming the server)."""
    cut_off: bool
    """Whether the answer stopped at max_tokens rather than where the model ended it."""
    prompt_tokens: int | None = None
    """How many tokens the server counted in the prompt, pictures included, when it says."""


class LlmAsker(Protocol):
    """An LLM the host reaches for the pipeline, not a server it speaks HTTP to.

    Home Assistant's AI Task entities are one (the adapter's ai_task_judge.py): the user's
    OpenAI, Google, Anthropic or Ollama set-up, asked through Home Assistant. It joins the
    LLM servers' pool under a name of its own (an entity id), with a breaker like theirs; the
    analyzer gives it the same prompt, schema and pictures, and checks its answer the same way.
    """

    def takes_pictures(self) -> bool:
        """Return whether pictures may go with the prompt (it says it takes attachments)."""
        ...

    async def ask(self, prompt: Prompt) -> str:
        """Return the model's answer to prompt as JSON text (its pictures go with it).

        Raises LlmUnavailableError when it cannot be asked now (gone, unavailable: the next
        LLM of the pool is asked), AnalyzerError when it was asked and failed.
        """
        ...

    async def probe(self) -> dict[str, object]:
        """Return its readiness report; raise ServiceUnavailableError when it is not ready."""
        ...


class LlmProvider(Protocol):
    """One kind of LLM server's dialect (see the module's docstring)."""

    api: ClassVar[LlmApi]
    """The configuration value that chooses it."""
    capabilities: ClassVar[Capabilities]

    def request(
        self, prompt: Prompt, traits: ServerTraits = UNKNOWN_TRAITS
    ) -> tuple[str, dict[str, Any]]:
        """Return the route (a path under the server's URL) and the JSON body to send.

        The prompt's pictures go with it unless traits say the server takes none (or the
        provider cannot carry them); then the text alone is sent.
        """
        ...

    async def traits(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> ServerTraits:
        """Return what the server says about itself (UNKNOWN_TRAITS where it says nothing).

        Raises ServiceUnavailableError when it cannot be asked.
        """
        ...

    def reply(self, envelope: object) -> Reply:
        """Return the model's text in the server's decoded JSON reply (content None if absent)."""
        ...

    async def count_tokens(
        self, session: aiohttp.ClientSession, base_url: str, text: str, time_limit: float
    ) -> int | None:
        """Return how many tokens text makes for the server's model (None: it cannot say).

        Raises ServiceUnavailableError when the server cannot be asked.
        """
        ...

    async def probe(
        self, session: aiohttp.ClientSession, base_url: str, time_limit: float
    ) -> dict[str, object]:
        """Return the server's readiness report; raise ServiceUnavailableError when not ready."""
        ...

    def has_slots(self, report: Mapping[str, object]) -> bool:
        """Return whether the server whose probe answered report is llama.cpp's llama-server.

        Only llama-server says how many requests it runs at once and how many are busy (its
        slots, core/llm_slots.py); the health check asks only the servers this says yes for.
        """
        ...
