"""The detector endpoints as a pool: which server gets the next image, and which are unusable.

Each configured URL has its own circuit breaker (shared with the health checks) and a count of
requests in flight; the next image goes to the usable endpoint with the fewest, so several GPU
servers share the load and a dead one stops receiving images until its breaker lets a probe
through. The pool also remembers endpoints whose boxes make no sense. It is separate from the
client because choosing and judging endpoints is state over time, independent of how one
request is sent or how its reply is read.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
import logging
import math
import time

from .health import redact_url
from .resilience import CircuitBreaker, CircuitOpenError

_LOGGER = logging.getLogger(__name__)


class EndpointPool:
    """The configured detector URLs, each with its breaker, in-flight count and plausibility.

    Not thread-safe: use it from the event loop.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create one closed breaker per URL (duplicates ignored); ties go to the earlier URL.

        Raises ValueError for no URLs or breaker settings CircuitBreaker refuses.
        """
        unique = tuple(dict.fromkeys(urls))
        if not unique:
            raise ValueError("at least one detector URL is needed")
        self.urls = unique
        """The endpoints in the order they were configured."""
        self._in_flight = dict.fromkeys(unique, 0)
        self.breakers: dict[str, CircuitBreaker] = {
            url: CircuitBreaker(
                name=f"Detector {redact_url(url)}",
                failure_threshold=failure_threshold,
                reset_timeout=reset_timeout,
                clock=clock,
            )
            for url in unique
        }
        """One breaker per URL, keyed by the URL as configured, for the health checks to share."""
        self.implausible: dict[str, str] = {}
        """Endpoints (redacted URL) whose latest reply with boxes made no sense, and why."""

    def in_flight(self, url: str) -> int:
        """Return how many requests to url are waiting for an answer."""
        return self._in_flight[url]

    @contextmanager
    def sending(self, url: str) -> Iterator[None]:
        """Count one request to url as in flight while the block runs, however it ends."""
        self._in_flight[url] += 1
        try:
            yield
        finally:
            self._in_flight[url] -= 1

    def choose(self) -> str:
        """Return the endpoint for the next request and take its breaker's permission.

        Candidates are tried in order of fewest requests in flight (ties: configuration order);
        the first breaker that allows a request wins. allow_request() only changes state when it
        grants (a half-open probe), so asking in turn and stopping at the first yes is safe.
        Raises CircuitOpenError, naming the breaker opened longest ago, when all refuse.
        """
        for url in sorted(self.urls, key=self._in_flight.__getitem__):
            if self.breakers[url].allow_request():
                return url
        refused = min(
            self.breakers.values(),
            key=lambda breaker: math.inf if breaker.opened_at is None else breaker.opened_at,
        )
        raise CircuitOpenError(refused.name, refused.last_error)

    def note_plausibility(self, endpoint: str, problem: str | None, answered: bool) -> None:
        """Warn once when an endpoint's replies stop making sense, and say when they do again.

        Only a reply with boxes can show either way: an empty one leaves the verdict as it was.
        """
        if problem is not None:
            if self.implausible.get(endpoint) != problem:
                _LOGGER.warning(
                    "Detector %s sent boxes that make no sense for the image: %s. Its replies "
                    "are refused, and the images wait, until they fit the image",
                    endpoint,
                    problem,
                )
            self.implausible[endpoint] = problem
        elif answered and self.implausible.pop(endpoint, None) is not None:
            _LOGGER.info("Detector %s sends plausible boxes again", endpoint)
