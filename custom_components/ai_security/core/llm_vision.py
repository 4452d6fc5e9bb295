"""Which LLM servers of a pool take pictures: asked of each server, and learned from refusals.

A vision verdict must never cost the verdict itself. A llama-server tells in GET /props whether
its model sees and where pictures go in a prompt (a marker that changes when the server
restarts); an OpenAI-compatible server cannot tell, so pictures are tried. A server that
refuses a request with pictures (llama-server without a projector answers HTTP 400 on
/completion and HTTP 500 on the chat route) is asked once more about itself, in case it was
only restarted with a new marker; if it still refuses, it is remembered as text-only, warned
about once, and the same request goes again without the pictures.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
import logging
import time
from typing import Final

import aiohttp

from .health import ServiceUnavailableError, redact_url
from .llm_budget import most_telling
from .llm_provider import UNKNOWN_TRAITS, LlmProvider, Prompt, PromptImage, ServerTraits

_LOGGER = logging.getLogger(__name__)

TEXT_ONLY = ServerTraits(vision=False)
"""A server that refused pictures: it gets the text alone."""
CONTEXT_WORDS: Final = ("context",)
"""What a refusal for a prompt over the model's context says (llama.cpp: "exceeds the available
context size"; OpenAI-compatible servers: "maximum context length")."""
ASK_AGAIN: Final = 300.0
"""Seconds before a server that could not say what it takes is asked again."""
TRY_AGAIN: Final = 3600.0
"""Seconds before a server that refused pictures gets them again: it may have been given a
vision model since (the refusal, and its Repairs warning, stay until pictures are taken)."""
_PROBE: Final = Prompt(
    system="",
    user="",
    schema={},
    max_tokens=1,
    temperature=0.0,
    images=(PromptImage(jpeg=b"", caption=""),),
)
"""A prompt with a picture, to find out whether a provider would carry it to a server."""


def is_over_context(error: Exception) -> bool:
    """Return whether a server refused a request because it did not fit the model's context."""
    status = getattr(error, "status", None)
    return status == 400 and any(word in str(error).lower() for word in CONTEXT_WORDS)


class ServerVision:
    """What each server takes, per URL as configured. Not thread-safe: use it from the loop."""

    def __init__(
        self,
        provider: LlmProvider,
        session: aiohttp.ClientSession,
        time_limit: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Ask servers through provider and session, each question bounded by time_limit."""
        self._provider = provider
        self._session = session
        self._time_limit = time_limit
        self._clock = clock
        self._traits: dict[str, ServerTraits] = {}
        self._unsaid: dict[str, float] = {}
        """Servers that could not say what they take, and when they were asked."""
        self._refused: dict[str, str] = {}
        self._retry_at: dict[str, float] = {}
        """When each server that refused pictures gets them again."""
        self._fits: dict[str, int] = {}
        """Servers whose context took fewer pictures than were made, and how many it took."""

    @property
    def refused(self) -> Mapping[str, str]:
        """Return the servers (redacted URL) that refused pictures, and the refusal."""
        return self._refused

    def may_see(self, url: str) -> bool:
        """Return whether pictures might go to url: not refused, and not known to be useless.

        A server not asked yet might: the pictures are made, and it is asked when they go.
        """
        if redact_url(url) in self._refused and not self._due(url):
            return False
        if (known := self._traits.get(url)) is None:
            return url not in self._unsaid or self._ask_again(url)
        return self._carries(known)

    def _carries(self, traits: ServerTraits) -> bool:
        """Return whether the provider would send a picture to a server with these traits."""
        return self._provider.request(_PROBE, traits) != self._provider.request(
            replace(_PROBE, images=()), traits
        )

    def _ask_again(self, url: str) -> bool:
        return self._clock() - self._unsaid[url] >= ASK_AGAIN

    async def traits(self, url: str) -> ServerTraits:
        """Return what url takes: asked once, remembered until relearn() or a refusal.

        A server that cannot say (or be asked) is taken to say nothing, and asked again only
        after ASK_AGAIN seconds, so a server without the route is not asked before each verdict.
        """
        if redact_url(url) in self._refused:
            if not self._due(url):
                return TEXT_ONLY
            self._retry_at[url] = self._clock() + TRY_AGAIN  # one try per period
            self._traits.pop(url, None)
        if (known := self._traits.get(url)) is not None:
            return known
        if url in self._unsaid and not self._ask_again(url):
            return UNKNOWN_TRAITS
        try:
            found = await self._provider.traits(self._session, url.rstrip("/"), self._time_limit)
        except ServiceUnavailableError as err:
            _LOGGER.debug("Cannot ask %s what it takes: %s", redact_url(url), err)
            self._unsaid[url] = self._clock()
            return UNKNOWN_TRAITS
        self._unsaid.pop(url, None)
        self._traits[url] = found
        return found

    async def relearn(self, url: str) -> ServerTraits | None:
        """Ask url again; return its new traits when they changed and it still sees, else None.

        A restarted llama-server publishes a new media marker: the request that carried the old
        one was refused, and goes again with the new one.
        """
        before = self._traits.pop(url, None)
        self._unsaid.pop(url, None)
        after = await self.traits(url)
        if after.vision is not False and after != before and after is not UNKNOWN_TRAITS:
            return after
        return None

    def fitting(self, url: str, images: Sequence[PromptImage]) -> tuple[PromptImage, ...]:
        """Return the pictures that fit url's context, as far as it has shown so far."""
        fits = self._fits.get(url)
        return tuple(images) if fits is None else most_telling(images, fits)

    def fewer(self, url: str, images: Sequence[PromptImage]) -> tuple[PromptImage, ...]:
        """Return half the pictures (the most telling), remembered as what fits url from now."""
        count = len(images) // 2
        if self._fits.get(url) != count:
            _LOGGER.info(
                "The LLM server %s has no room for %d pictures with the detections; sending %d",
                redact_url(url),
                len(images),
                count,
            )
        self._fits[url] = count
        return most_telling(images, count)

    def _due(self, url: str) -> bool:
        return self._clock() >= self._retry_at.get(url, 0.0)

    def took(self, url: str) -> None:
        """Note that url took pictures: a refusal it made before is over."""
        if self._refused.pop(redact_url(url), None) is not None:
            self._retry_at.pop(url, None)
            _LOGGER.info("The LLM server %s takes pictures again", redact_url(url))

    def refuse(self, url: str, error: Exception) -> None:
        """Remember that url refused pictures (warned once); it gets the text alone from now."""
        where = redact_url(url)
        if where not in self._refused:
            _LOGGER.warning(
                "The LLM server %s refused pictures (%s); its verdicts are made from the "
                "detections' text alone. Load a vision model (llama-server with --mmproj) to "
                "have it look at the incidents",
                where,
                error,
            )
        self._refused[where] = str(error)
        self._retry_at[url] = self._clock() + TRY_AGAIN
