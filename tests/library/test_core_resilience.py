"""core.resilience: the circuit breaker's states and logs, and the retry backoff (no sleeping)."""

import asyncio
from itertools import pairwise
import logging

import pytest

from custom_components.ai_security.core.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    RetryPolicy,
    describe_error,
)

LOGGER_NAME = "custom_components.ai_security.core.resilience"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        """Start at an arbitrary non-zero reading, as time.monotonic() does."""
        self.now = 1000.0

    def __call__(self) -> float:
        """Return the current reading."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


type Transition = tuple[str, CircuitState, CircuitState]


def make_breaker(
    clock: FakeClock, transitions: list[Transition] | None = None, *, threshold: int = 3
) -> CircuitBreaker:
    """Return a breaker on the fake clock that records its transitions into transitions."""

    def listener(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        if transitions is not None:
            transitions.append((breaker.name, old, new))

    return CircuitBreaker(
        name="Detector",
        failure_threshold=threshold,
        reset_timeout=30.0,
        clock=clock,
        on_state_change=listener,
    )


def open_breaker(breaker: CircuitBreaker, error: str = "connection refused") -> None:
    """Record just enough consecutive failures to open a closed breaker."""
    for _ in range(breaker.failure_threshold):
        assert breaker.allow_request()
        breaker.record_failure(error)
    assert breaker.state is CircuitState.OPEN


def test_starts_closed() -> None:
    """A new breaker lets requests through and has nothing to report."""
    breaker = make_breaker(FakeClock())
    assert breaker.state is CircuitState.CLOSED
    assert breaker.state == "closed"
    assert breaker.allow_request()
    assert breaker.consecutive_failures == 0
    assert breaker.last_error is None
    assert breaker.opened_at is None


def test_opens_after_threshold_consecutive_failures() -> None:
    """It opens on the threshold-th failure in a row, not before, and remembers the error."""
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = make_breaker(clock, transitions)
    breaker.record_failure("refused 1")
    breaker.record_failure(TimeoutError())
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2
    assert breaker.last_error == "TimeoutError"
    assert transitions == []
    breaker.record_failure(ConnectionError("refused 3"))
    assert breaker.state is CircuitState.OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.last_error == "refused 3"
    assert breaker.opened_at == 1000.0
    assert transitions == [("Detector", CircuitState.CLOSED, CircuitState.OPEN)]
    assert not breaker.allow_request()


def test_success_resets_the_failure_count() -> None:
    """Only consecutive failures count: a success in between starts the count again."""
    breaker = make_breaker(FakeClock())
    breaker.record_failure("x")
    breaker.record_failure("x")
    breaker.record_success()
    assert breaker.consecutive_failures == 0
    breaker.record_failure("x")
    breaker.record_failure("x")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2
    breaker.record_failure("x")
    assert breaker.state is CircuitState.OPEN


def test_refuses_until_reset_timeout_then_allows_exactly_one_probe() -> None:
    """While open nothing passes; after reset_timeout one probe passes and nothing else."""
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = make_breaker(clock, transitions)
    open_breaker(breaker)
    clock.advance(29.9)
    assert not breaker.allow_request()
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.allow_request()
    assert breaker.state is CircuitState.HALF_OPEN
    assert [breaker.allow_request() for _ in range(5)] == [False] * 5
    clock.advance(3600)
    assert not breaker.allow_request()  # the probe is still outstanding
    assert transitions == [
        ("Detector", CircuitState.CLOSED, CircuitState.OPEN),
        ("Detector", CircuitState.OPEN, CircuitState.HALF_OPEN),
    ]


def test_probe_success_closes() -> None:
    """A successful probe closes the breaker and requests flow again."""
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = make_breaker(clock, transitions)
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow_request()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.opened_at is None
    assert breaker.last_error == "connection refused"  # kept for diagnostics
    assert all(breaker.allow_request() for _ in range(5))
    assert transitions[-1] == ("Detector", CircuitState.HALF_OPEN, CircuitState.CLOSED)


def test_probe_failure_reopens_with_a_fresh_timer() -> None:
    """A failed probe opens the breaker again, timed from the probe's failure."""
    clock = FakeClock()
    transitions: list[Transition] = []
    breaker = make_breaker(clock, transitions)
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow_request()
    clock.advance(5)  # the probe takes a while to fail
    breaker.record_failure("still refused")
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == 1035.0
    assert breaker.last_error == "still refused"
    clock.advance(29)
    assert not breaker.allow_request()
    clock.advance(1)
    assert breaker.allow_request()
    assert breaker.state is CircuitState.HALF_OPEN
    assert [new for _, _, new in transitions] == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
    ]


def test_late_failure_while_open_keeps_the_timer() -> None:
    """A failure of a request that started before the breaker opened does not delay the probe."""
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(20)
    breaker.record_failure("late")
    assert breaker.opened_at == 1000.0
    assert breaker.last_error == "late"
    clock.advance(10)
    assert breaker.allow_request()


def test_any_success_while_open_closes() -> None:
    """A health check that succeeds while the breaker is open closes it at once."""
    breaker = make_breaker(FakeClock())
    open_breaker(breaker)
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow_request()


def test_released_probe_lets_the_next_request_probe() -> None:
    """A probe that ends without a verdict frees the slot without changing the state."""
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(30)
    assert breaker.allow_request()
    assert not breaker.allow_request()
    breaker.release()
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow_request()
    assert not breaker.allow_request()


def test_failing_listener_does_not_break_the_breaker(caplog: pytest.LogCaptureFixture) -> None:
    """An exception in on_state_change is logged; the transition still happens."""

    def listener(breaker: CircuitBreaker, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(name="LLM", failure_threshold=1, on_state_change=listener)
    breaker.record_failure("down")
    assert breaker.state is CircuitState.OPEN
    assert "State listener of LLM failed" in caplog.text


def test_works_without_listener() -> None:
    """on_state_change is optional; repr shows name and state for logs."""
    breaker = CircuitBreaker(name="LLM", failure_threshold=1)
    breaker.record_failure("down")
    assert breaker.state is CircuitState.OPEN
    assert repr(breaker) == "<CircuitBreaker 'LLM' open>"


def test_rejects_bad_settings() -> None:
    """A threshold below 1 or a negative timeout is a programming error."""
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(name="x", failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(name="x", reset_timeout=-1)


def test_logs_once_down_and_once_back(caplog: pytest.LogCaptureFixture) -> None:
    """One warning when the service goes down, one info when it is back, nothing in between."""
    caplog.set_level(logging.DEBUG, logger=LOGGER_NAME)
    clock = FakeClock()
    breaker = make_breaker(clock)

    def records(level: int) -> list[str]:
        return [
            record.getMessage()
            for record in caplog.records
            if record.name == LOGGER_NAME and record.levelno == level
        ]

    breaker.record_failure("refused")
    breaker.record_failure("refused")
    assert records(logging.WARNING) == []
    breaker.record_failure(ConnectionRefusedError("Connection refused"))
    assert records(logging.WARNING) == ["Detector is unavailable: Connection refused"]
    for _ in range(3):  # three failed probes, and late failures while open
        clock.advance(30)
        assert breaker.allow_request()
        breaker.record_failure("refused again")
        breaker.record_failure("late")
    assert breaker.state is CircuitState.OPEN
    assert len(records(logging.WARNING)) == 1
    assert records(logging.INFO) == []
    clock.advance(30)
    assert breaker.allow_request()
    breaker.record_success()
    breaker.record_success()
    assert records(logging.INFO) == ["Detector is available again"]
    assert len(records(logging.WARNING)) == 1
    assert all(r.levelno <= logging.WARNING for r in caplog.records)


async def test_guard_records_success_and_failure() -> None:
    """The guard counts a normal exit as a success and an exception as a failure."""
    breaker = make_breaker(FakeClock(), threshold=2)
    async with breaker.guard():
        pass
    assert breaker.consecutive_failures == 0
    with pytest.raises(ConnectionError):
        async with breaker.guard():
            raise ConnectionError("refused")
    assert breaker.consecutive_failures == 1
    assert breaker.last_error == "refused"
    async with breaker.guard():
        pass
    assert breaker.consecutive_failures == 0


async def test_guard_refuses_while_open() -> None:
    """An open breaker raises CircuitOpenError without running the body or counting a failure."""
    breaker = make_breaker(FakeClock(), threshold=1)
    breaker.record_failure("HTTP 503 from http://gpu.lan:8090/health")
    ran = False
    with pytest.raises(CircuitOpenError) as caught:
        async with breaker.guard():
            ran = True
    assert not ran
    assert caught.value.name == "Detector"
    assert caught.value.last_error == "HTTP 503 from http://gpu.lan:8090/health"
    assert str(caught.value) == "Detector is unavailable: HTTP 503 from http://gpu.lan:8090/health"
    assert breaker.consecutive_failures == 1


async def test_guard_answered_errors_count_as_success() -> None:
    """An error that proves the service answered (a rejected request) does not open it."""
    breaker = make_breaker(FakeClock(), threshold=1)
    for _ in range(3):
        with pytest.raises(ValueError, match="bad image"):
            async with breaker.guard(answered=(ValueError,)):
                raise ValueError("bad image")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_guard_cancellation_is_not_a_failure() -> None:
    """A cancelled request counts as nothing while closed."""
    breaker = make_breaker(FakeClock(), threshold=1)
    with pytest.raises(asyncio.CancelledError):
        async with breaker.guard():
            raise asyncio.CancelledError
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.last_error is None


async def test_guard_cancelled_probe_frees_the_slot() -> None:
    """A probe whose task is cancelled leaves the breaker half-open with the slot free."""
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(30)
    started = asyncio.Event()

    async def probe() -> None:
        async with breaker.guard():
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(probe())
    await started.wait()
    assert breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow_request()  # the probe is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.allow_request()  # the next request is the new probe
    assert not breaker.allow_request()


async def test_guard_other_base_exceptions_release_the_probe() -> None:
    """An exit that is neither an error nor cancellation (KeyboardInterrupt) is no verdict."""

    class Interrupted(BaseException):
        """Stands in for KeyboardInterrupt or SystemExit."""

    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(30)
    with pytest.raises(Interrupted):
        async with breaker.guard():
            raise Interrupted
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.consecutive_failures == 3
    assert breaker.allow_request()


async def test_guard_probe_failure_reopens() -> None:
    """A probe that raises through the guard opens the breaker again."""
    clock = FakeClock()
    breaker = make_breaker(clock)
    open_breaker(breaker)
    clock.advance(30)
    with pytest.raises(TimeoutError):
        async with breaker.guard():
            raise TimeoutError
    assert breaker.state is CircuitState.OPEN
    assert breaker.opened_at == 1030.0
    with pytest.raises(CircuitOpenError):
        async with breaker.guard():
            pass


def test_describe_error() -> None:
    """Errors without a message are named by their type, so last_error is never empty."""
    assert describe_error("refused") == "refused"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(OSError(111, "Connection refused")) == "[Errno 111] Connection refused"


def test_backoff_bounds_and_growth() -> None:
    """With equal jitter the wait lies in [ceiling/2, ceiling], doubling until the cap."""
    policy = RetryPolicy(base=1.0, maximum=300.0)
    low = [policy.delay(attempt, rng=lambda: 0.0) for attempt in range(1, 11)]
    high = [policy.delay(attempt, rng=lambda: 1.0) for attempt in range(1, 11)]
    assert high == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0]
    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 150.0]
    for attempt in range(1, 11):
        middle = policy.delay(attempt, rng=lambda: 0.5)
        assert low[attempt - 1] < middle < high[attempt - 1]
    assert all(a < b for a, b in pairwise(low))
    assert all(0 < value <= 300.0 for value in low + high)


def test_backoff_is_capped_for_huge_attempts() -> None:
    """A job retried for ever still waits at most the cap, without overflowing."""
    policy = RetryPolicy(base=2.0, maximum=60.0)
    assert policy.delay(10_000, rng=lambda: 1.0) == 60.0
    assert policy.delay(10_000, rng=lambda: 0.0) == 30.0
    assert policy.delay(0, rng=lambda: 1.0) == 2.0  # treated as the first attempt
    assert policy.delay(3, rng=lambda: 7.0) == 8.0  # a bad rng cannot exceed the ceiling


def test_backoff_uses_random_jitter_by_default() -> None:
    """Without an injected rng the waits still stay in bounds."""
    policy = RetryPolicy()
    for _ in range(100):
        assert 2.0 <= policy.delay(3) <= 4.0


def test_exhausted() -> None:
    """After max_attempts attempts the job goes to the dead-letter state."""
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in range(5)] == [False, False, False, True, True]
    assert RetryPolicy().exhausted(5)
    assert not RetryPolicy().exhausted(4)


def test_retry_policy_rejects_bad_settings() -> None:
    """Values that would never wait or never try are refused."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=0)
    with pytest.raises(ValueError, match="base"):
        RetryPolicy(base=10, maximum=5)
