"""Which LLM servers of a pool take pictures: asked of each server, and learned from refusals.

A vision verdict must never cost the verdict itself. A llama-server tells in GET /props whether
its model sees and where pictures go in a prompt (a marker that changes when the server
restarts); an OpenAI-compatible server cannot tell, so pictures are tried. A server that
refuses a request with pictures (llama-server without a projector answers HTTP 400 on
/completion and HTTP 500 on the chat route) is asked once more about itself, in case it was
only restarted with a new marker; if it still refuses, it is remembered as text-only, warned
about once, and the same request goes again without the pictures.
"""

from collections.abc import Mapping
import logging

import aiohttp

from .health import ServiceUnavailableError, redact_url
from .llm_provider import UNKNOWN_TRAITS, LlmProvider, ServerTraits

_LOGGER = logging.getLogger(__name__)

TEXT_ONLY = ServerTraits(vision=False)
"""A server that refused pictures: it gets the text alone."""


class ServerVision:
    """What each server takes, per URL as configured. Not thread-safe: use it from the loop."""

    def __init__(
        self, provider: LlmProvider, session: aiohttp.ClientSession, time_limit: float
    ) -> None:
        """Ask servers through provider and session, each question bounded by time_limit."""
        self._provider = provider
        self._session = session
        self._time_limit = time_limit
        self._traits: dict[str, ServerTraits] = {}
        self._refused: dict[str, str] = {}

    @property
    def refused(self) -> Mapping[str, str]:
        """Return the servers (redacted URL) that refused pictures, and the refusal."""
        return self._refused

    async def traits(self, url: str) -> ServerTraits:
        """Return what url takes: asked once, remembered until relearn() or a refusal.

        A server that cannot be asked now is treated as saying nothing (and asked next time).
        """
        if redact_url(url) in self._refused:
            return TEXT_ONLY
        if (known := self._traits.get(url)) is not None:
            return known
        try:
            found = await self._provider.traits(self._session, url.rstrip("/"), self._time_limit)
        except ServiceUnavailableError as err:
            _LOGGER.debug("Cannot ask %s what it takes: %s", redact_url(url), err)
            return UNKNOWN_TRAITS
        self._traits[url] = found
        return found

    async def relearn(self, url: str) -> ServerTraits | None:
        """Ask url again; return its new traits when they changed and it still sees, else None.

        A restarted llama-server publishes a new media marker: the request that carried the old
        one was refused, and goes again with the new one.
        """
        before = self._traits.pop(url, None)
        after = await self.traits(url)
        if after.vision is not False and after != before and after is not UNKNOWN_TRAITS:
            return after
        return None

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
