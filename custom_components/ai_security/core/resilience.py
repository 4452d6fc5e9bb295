"""Circuit breakers and retry backoff, so a dead model server is not hammered and logs stay calm.

One CircuitBreaker guards one external endpoint (a detector URL, an LLM URL) and is shared by the
clients that call it and by the periodic health checks: after a run of failures it stops requests
for a while, then lets a single probe through to see whether the service is back. RetryPolicy says
how long a failed job waits before its next attempt and when it gives up (the dead-letter state).
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
import logging
import random
import time
from typing import override

_LOGGER = logging.getLogger(__name__)

_MAX_DOUBLINGS = 62
"""Beyond this many doublings any sane base exceeds any sane cap; avoids float overflow."""


class CircuitState(StrEnum):
    """Where a circuit breaker stands; the values are what entities and diagnostics show."""

    CLOSED = "closed"
    """Requests flow; failures are being counted."""
    OPEN = "open"
    """The service is considered down; requests are refused until the reset timeout passes."""
    HALF_OPEN = "half_open"
    """One probe request is allowed through to find out whether the service is back."""


class CircuitOpenError(Exception):
    """A request was refused without being sent, because the endpoint's breaker is open.

    Callers treat it like the service being down (the job is retried later) without counting it
    as another failure of the service.
    """

    def __init__(self, name: str, last_error: str | None) -> None:
        """Remember which endpoint refused and the failure that opened its breaker."""
        detail = last_error or "too many failures"
        super().__init__(f"{name} is unavailable: {detail}")
        self.name = name
        self.last_error = last_error


def describe_error(error: str | BaseException) -> str:
    """Return a short text for an error, never empty (TimeoutError() has no message of its own)."""
    if isinstance(error, str):
        return error
    return str(error) or type(error).__name__


type StateListener = Callable[[CircuitBreaker, CircuitState, CircuitState], None]
"""Called with (breaker, old state, new state) on every transition."""


class CircuitBreaker:
    """Stop calling an endpoint after consecutive failures; probe it again after a pause.

    Closed: requests flow and consecutive failures are counted (a success resets the count).
    After failure_threshold of them in a row the breaker opens: allow_request() refuses until
    reset_timeout seconds have passed, then the breaker goes half-open and grants exactly one probe.
    The probe's success closes it; its failure opens it again with a fresh timer. Any success
    recorded while open or half-open (a request that started earlier) closes it.

    The breaker logs a warning once when the service goes down and an info line once when it is
    back, never for every failed request or probe. It is not thread-safe: use it from the loop.
    """

    def __init__(
        self,
        *,
        name: str,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateListener | None = None,
    ) -> None:
        """Create a closed breaker; name is how logs and errors call the endpoint."""
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, not {failure_threshold}")
        if reset_timeout < 0:
            raise ValueError(f"reset_timeout must not be negative, not {reset_timeout}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._on_state_change = on_state_change
        self._state = CircuitState.CLOSED
        self._consecutive_failures = 0
        self._last_error: str | None = None
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @override
    def __repr__(self) -> str:
        """Show the breaker's name and state in logs and debuggers."""
        return f"<CircuitBreaker {self.name!r} {self._state}>"

    @property
    def state(self) -> CircuitState:
        """Return the current state (an open breaker turns half-open only in allow_request)."""
        return self._state

    @property
    def consecutive_failures(self) -> int:
        """Return how many failures were recorded since the last success."""
        return self._consecutive_failures

    @property
    def last_error(self) -> str | None:
        """Return the most recent failure's description (kept after recovery, for diagnostics)."""
        return self._last_error

    @property
    def opened_at(self) -> float | None:
        """Return the clock reading when the breaker last opened; None while closed."""
        return self._opened_at

    def would_allow(self) -> bool:
        """Return whether allow_request() would grant a request now, without taking the probe.

        Workers ask this before taking a job, so jobs wait in the queue while a service is down
        instead of spending their attempts on it.
        """
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            opened_at = self._opened_at if self._opened_at is not None else self._clock()
            return self._clock() - opened_at >= self.reset_timeout
        return not self._probe_in_flight

    def allow_request(self) -> bool:
        """Return whether a request may be sent now; a True in half-open state is the probe.

        Whoever gets True must later call record_success(), record_failure() or release().
        """
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            opened_at = self._opened_at if self._opened_at is not None else self._clock()
            if self._clock() - opened_at < self.reset_timeout:
                return False
            self._probe_in_flight = True
            self._transition(CircuitState.HALF_OPEN)
            return True
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True  # the previous probe was released without a verdict
        return True

    def record_success(self) -> None:
        """Note that the endpoint answered; closes the breaker if it was open or half-open."""
        self._consecutive_failures = 0
        self._probe_in_flight = False
        if self._state is CircuitState.CLOSED:
            return
        self._opened_at = None
        self._transition(CircuitState.CLOSED)
        _LOGGER.info("%s is available again", self.name)

    def record_failure(self, error: str | BaseException) -> None:
        """Note that a request to the endpoint failed; may open the breaker."""
        self._consecutive_failures += 1
        self._last_error = describe_error(error)
        if self._state is CircuitState.CLOSED:
            if self._consecutive_failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._transition(CircuitState.OPEN)
                _LOGGER.warning("%s is unavailable: %s", self.name, self._last_error)
        elif self._state is CircuitState.HALF_OPEN:
            self._probe_in_flight = False
            self._opened_at = self._clock()
            self._transition(CircuitState.OPEN)
            _LOGGER.debug("%s is still unavailable: %s", self.name, self._last_error)
        # Already open: a late answer to an earlier request; the timer keeps running.

    def trial(self) -> None:
        """Let the next request through as the probe now: the service answers its health route.

        An open breaker turns half-open at once instead of waiting out its timer; the request
        that follows decides, as a timed probe would. Closed or half-open: nothing changes.
        """
        if self._state is CircuitState.OPEN:
            self._probe_in_flight = False
            self._transition(CircuitState.HALF_OPEN)
            _LOGGER.debug("%s answers its health check; trying a request", self.name)

    def release(self) -> None:
        """Give back a granted request that ended without a verdict (it was cancelled).

        In half-open state this frees the probe slot, so the next allow_request() probes again.
        """
        self._probe_in_flight = False

    @asynccontextmanager
    async def guard(self, *, answered: tuple[type[Exception], ...] = ()) -> AsyncIterator[None]:
        """Run the body as one request through the breaker.

        Raises CircuitOpenError without running the body when the breaker refuses. A normal exit
        records a success and an exception a failure, except exceptions of the types in answered
        (the service answered, it just said no, as an HTTP 400 does), which count as successes.
        Cancellation records nothing and frees a half-open probe slot.
        """
        if not self.allow_request():
            raise CircuitOpenError(self.name, self._last_error)
        try:
            yield
        except asyncio.CancelledError:
            self.release()
            raise
        except answered:
            self.record_success()
            raise
        except Exception as err:
            self.record_failure(err)
            raise
        except BaseException:
            self.release()
            raise
        self.record_success()

    def _transition(self, new: CircuitState) -> None:
        """Enter state new and tell the listener; a failing listener never breaks the caller."""
        old, self._state = self._state, new
        if self._on_state_change is None:
            return
        try:
            self._on_state_change(self, old, new)
        except Exception:
            _LOGGER.exception("State listener of %s failed", self.name)


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """How long a failed job waits before its next attempt, and when it gives up.

    Exponential backoff with "equal jitter": the wait for attempt n is half of
    min(maximum, base * 2**(n-1)) plus a random share of the other half, so retries of many jobs
    spread out yet never come back at once (never 0) or later than the cap.
    """

    max_attempts: int = 5
    base: float = 1.0
    maximum: float = 300.0

    def __post_init__(self) -> None:
        """Refuse values that would retry forever at once or never wait."""
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not 0 < self.base <= self.maximum:
            raise ValueError(f"need 0 < base <= maximum, not {self.base} and {self.maximum}")

    def ceiling(self, attempt: int) -> float:
        """Return the longest wait after attempt (1-based): base doubled per attempt, capped."""
        doublings = min(max(attempt, 1) - 1, _MAX_DOUBLINGS)
        return min(self.maximum, self.base * (1 << doublings))

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Return seconds to wait after attempt (1-based) failed, between ceiling/2 and ceiling.

        rng returns a number in [0, 1); it is injectable so tests get fixed values.
        """
        ceiling = self.ceiling(attempt)
        share = min(max(rng(), 0.0), 1.0)
        return ceiling / 2 + ceiling / 2 * share

    def exhausted(self, attempts: int) -> bool:
        """Return whether a job that has made attempts attempts goes to the dead-letter state."""
        return attempts >= self.max_attempts
