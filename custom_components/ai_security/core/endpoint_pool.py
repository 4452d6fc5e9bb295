"""Model server endpoints as a pool: which server gets the next request, and which are unusable.

Both model services can run on several servers: detectors on several GPU boxes, LLMs on several
llama.cpp (or OpenAI-compatible) servers. Each configured URL has its own circuit breaker (shared
with the health checks) and a count of requests in flight; the next request goes to the usable
endpoint with the fewest, so the servers share the load and a dead one stops receiving requests
until its breaker lets a probe through. Choosing endpoints is state over time, independent of how
one request is sent or how its reply is read, so it lives apart from the clients.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
import math
import time

from .health import redact_url
from .resilience import CircuitBreaker, CircuitOpenError, CircuitState


class EndpointPool:
    """Configured URLs of one service, each with its breaker and its count of requests in flight.

    Not thread-safe: use it from the event loop.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        service: str,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create one closed breaker per URL (duplicates ignored); ties go to the earlier URL.

        service names the breakers in logs ("Detector http://gpu:8090"). Raises ValueError for no
        URLs or breaker settings CircuitBreaker refuses, and TypeError for one URL given as a
        plain string (a sequence of one-letter "URLs" otherwise).
        """
        if isinstance(urls, str):
            raise TypeError(f"{service} URLs must be a list of URLs, not one string")
        unique = tuple(dict.fromkeys(urls))
        if not unique:
            raise ValueError(f"at least one {service} URL is needed")
        self.urls = unique
        """The endpoints in the order they were configured."""
        self._in_flight = dict.fromkeys(unique, 0)
        self.breakers: dict[str, CircuitBreaker] = {
            url: CircuitBreaker(
                name=f"{service} {redact_url(url)}",
                failure_threshold=failure_threshold,
                reset_timeout=reset_timeout,
                clock=clock,
            )
            for url in unique
        }
        """One breaker per URL, keyed by the URL as configured, for the health checks to share."""

    def in_flight(self, url: str) -> int:
        """Return how many requests to url are waiting for an answer."""
        return self._in_flight[url]

    def would_allow(self) -> bool:
        """Return whether some endpoint would take a request now (no probe is taken)."""
        return any(breaker.would_allow() for breaker in self.breakers.values())

    def any_closed(self) -> bool:
        """Return whether some endpoint is considered up (its breaker closed)."""
        return any(breaker.state is CircuitState.CLOSED for breaker in self.breakers.values())

    @contextmanager
    def sending(self, url: str) -> Iterator[None]:
        """Count one request to url as in flight while the block runs, however it ends."""
        self._in_flight[url] += 1
        try:
            yield
        finally:
            self._in_flight[url] -= 1

    def choose(self, exclude: Collection[str] = ()) -> str:
        """Return the endpoint for the next request and take its breaker's permission.

        Candidates (all but those in exclude) are tried in order of fewest requests in flight
        (ties: configuration order); the first breaker that allows a request wins.
        allow_request() only changes state when it grants (a half-open probe), so asking in
        turn and stopping at the first yes is safe. Raises CircuitOpenError, naming the breaker
        opened longest ago, when all refuse (or none is left).
        """
        candidates = [url for url in self.urls if url not in exclude]
        for url in sorted(candidates, key=self._in_flight.__getitem__):
            if self.breakers[url].allow_request():
                return url
        refused = min(
            (self.breakers[url] for url in candidates or self.urls),
            key=lambda breaker: math.inf if breaker.opened_at is None else breaker.opened_at,
        )
        raise CircuitOpenError(refused.name, refused.last_error)

    @asynccontextmanager
    async def request(
        self, *, exclude: Collection[str] = (), answered: tuple[type[Exception], ...] = ()
    ) -> AsyncIterator[str]:
        """Run the body as one request to the chosen endpoint, whose URL it is given.

        Like CircuitBreaker.guard for the chosen endpoint: raises CircuitOpenError without
        running the body when every breaker refuses; a normal exit records a success, an
        exception a failure, except the types in answered (the server answered and said no),
        which count as successes; cancellation records nothing and frees a half-open probe.
        """
        url = self.choose(exclude)
        breaker = self.breakers[url]
        with self.sending(url):
            try:
                yield url
            except asyncio.CancelledError:
                breaker.release()
                raise
            except answered:
                breaker.record_success()
                raise
            except Exception as err:
                breaker.record_failure(err)
                raise
            except BaseException:
                breaker.release()
                raise
        breaker.record_success()
