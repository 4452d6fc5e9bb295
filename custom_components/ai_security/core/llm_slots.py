"""How busy a llama.cpp server is: its slots, from GET /slots or, failing that, GET /metrics.

llama-server runs a fixed number of requests at once (`--parallel`, one slot each); when every
slot is busy, the next verdict waits. GET /slots lists the slots (newer servers mark a busy one
`"is_processing": true`, older ones `"state": 1`, 0 being idle). A server started with
`--no-slots` answers it 501; then the `llamacpp:requests_processing` gauge of GET /metrics (a
server started with `--metrics`) gives the busy count, and GET /props its `total_slots`.

A route the server does not offer (404 or 501) is not asked again for an hour, so a server with
neither costs two requests an hour, not two a health check. Everything here answers None, with
a debug line, for a server that cannot say or says something unexpected: the health check that
asks must never fail because of it.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import json
import logging
import math
import re
import time
from typing import Final, Literal

import aiohttp

from .health import redact_url

_LOGGER = logging.getLogger(__name__)

SLOTS_PATH: Final = "/slots"
METRICS_PATH: Final = "/metrics"
PROPS_PATH: Final = "/props"

MAX_SLOTS: Final = 1024
"""More slots than any server runs: a longer list is not a slot list (nothing is counted)."""
MAX_BODY_BYTES: Final = 4 * 2**20
"""The largest answer read: older servers put each slot's prompt in /slots, never this much."""
RETRY_UNSUPPORTED: Final = 3600.0
"""Seconds before a route the server did not offer is asked again (it may have restarted)."""
_CHUNK: Final = 64 * 1024
NOT_OFFERED: Final = frozenset({404, 405, 501})
"""Statuses that mean the server has no such route, or has it turned off."""

_METRIC_LINE: Final = re.compile(
    r"^llamacpp:requests_processing(?:\{[^}]*\})?\s+(?P<value>\S+)(?:\s+\S+)?$", re.MULTILINE
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SlotUsage:
    """How many of a server's (or a pool's) slots are busy; total None when it is not known."""

    busy: int
    total: int | None

    @property
    def busy_percent(self) -> float | None:
        """Return the busy share of the slots in percent (None without a total)."""
        if not self.total:
            return None
        return min(100.0, 100.0 * self.busy / self.total)


def combine(usages: list[SlotUsage]) -> SlotUsage | None:
    """Return a pool's slots: the busy ones summed, the total only when every server gave one."""
    if not usages:
        return None
    totals = [usage.total for usage in usages]
    return SlotUsage(
        busy=sum(usage.busy for usage in usages),
        total=None if any(t is None for t in totals) else sum(t for t in totals if t is not None),
    )


def _count(value: object) -> int | None:
    """Return value when it is a count (a non-negative int, not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def slots_from_list(payload: object) -> SlotUsage | None:
    """Return the usage a GET /slots answer gives, or None when it is not a list of slots.

    Each slot must say whether it is busy, by `is_processing` (a bool) or `state` (0 idle, any
    other count busy); one slot that says neither makes the whole answer unreadable, since a
    busy count that silently skips slots would understate the load.
    """
    if not isinstance(payload, list):
        _LOGGER.debug("/slots answered %s, not a list of slots", type(payload).__name__)
        return None
    if not payload or len(payload) > MAX_SLOTS:
        _LOGGER.debug("/slots listed %d slots, not a plausible count", len(payload))
        return None
    busy = 0
    for slot in payload:
        if not isinstance(slot, dict):
            _LOGGER.debug("/slots listed %s, not a slot object", type(slot).__name__)
            return None
        processing = slot.get("is_processing")
        state = _count(slot.get("state"))
        if isinstance(processing, bool):
            busy += int(processing)
        elif state is not None:
            busy += int(state != 0)
        else:
            _LOGGER.debug("a slot in /slots says neither is_processing nor state: %s", list(slot))
            return None
    return SlotUsage(busy=busy, total=len(payload))


def busy_from_metrics(text: str) -> int | None:
    """Return the `llamacpp:requests_processing` gauge of a Prometheus text, or None."""
    match = _METRIC_LINE.search(text)
    if match is None:
        _LOGGER.debug("/metrics has no llamacpp:requests_processing gauge")
        return None
    try:
        value = float(match["value"])
    except ValueError:
        _LOGGER.debug("llamacpp:requests_processing is %r, not a number", match["value"])
        return None
    if not math.isfinite(value) or value < 0 or value > MAX_SLOTS:
        _LOGGER.debug("llamacpp:requests_processing is %s, not a count of requests", value)
        return None
    return round(value)


def total_from_props(payload: object) -> int | None:
    """Return the `total_slots` a GET /props answer gives (None when it gives none)."""
    total = _count(payload.get("total_slots")) if isinstance(payload, dict) else None
    return total if total is not None and 0 < total <= MAX_SLOTS else None


class _NotOfferedError(Exception):
    """The server has no such route (or has it turned off)."""


type Route = Literal["slots", "metrics"]


class SlotReader:
    """Asks one llama.cpp server how busy its slots are, remembering which route it offers.

    Only the health check calls read(), one call at a time per server; a call is bounded by
    time_limit in all (every request it makes included).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        time_limit: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read base_url's slots over session; clock times the hour a missing route is skipped."""
        self._session = session
        self._base_url = base_url
        self._time_limit = time_limit
        self._clock = clock
        self._skip_until: dict[Route, float] = {}

    def _offered(self, route: Route) -> bool:
        return self._clock() >= self._skip_until.get(route, -math.inf)

    async def read(self) -> SlotUsage | None:
        """Return the server's slot usage now, or None when it cannot say (logged at debug)."""
        try:
            async with asyncio.timeout(self._time_limit):
                return await self._read()
        except TimeoutError:
            _LOGGER.debug("%s did not say its slots within %g s", self._where, self._time_limit)
        except (aiohttp.ClientError, UnicodeDecodeError) as err:
            _LOGGER.debug("cannot read the slots of %s: %s", self._where, err)
        return None

    @property
    def _where(self) -> str:
        return redact_url(self._base_url)

    async def _read(self) -> SlotUsage | None:
        for route in ("slots", "metrics"):
            if not self._offered(route):
                continue
            try:
                if route == "slots":
                    return slots_from_list(await _parsed(await self._get(SLOTS_PATH)))
                return await self._from_metrics()
            except _NotOfferedError:
                _LOGGER.debug("%s offers no %s route; asked again in an hour", self._where, route)
                self._skip_until[route] = self._clock() + RETRY_UNSUPPORTED
        return None

    async def _from_metrics(self) -> SlotUsage | None:
        busy = busy_from_metrics(await self._get(METRICS_PATH))
        if busy is None:
            return None
        try:
            total = total_from_props(_json(await self._get(PROPS_PATH)))
        except _NotOfferedError:
            total = None
        return SlotUsage(busy=busy, total=total)

    async def _get(self, path: str) -> str:
        """Return the body of GET path; raise _NotOfferedError when the route is not there.

        Other failures (a status of 300 or more, a body over MAX_BODY_BYTES) raise
        aiohttp.ClientError, which read() turns into None for this round only.
        """
        async with self._session.get(f"{self._base_url}{path}") as response:
            if response.status in NOT_OFFERED:
                raise _NotOfferedError(path)
            if response.status >= 300:
                raise aiohttp.ClientError(f"HTTP {response.status} from {path}")
            # read(n) returns what has arrived so far, not the whole answer: an older server's
            # /slots (each slot's prompt included) comes in many chunks.
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise aiohttp.ClientError(f"{path} answered over {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks).decode()


LARGE_JSON: Final = 64 * 1024
"""Answers longer than this are parsed on a worker thread: megabytes take the loop milliseconds."""


async def _parsed(text: str) -> object:
    """Return _json(text), off the event loop when text is long."""
    if len(text) <= LARGE_JSON:
        return _json(text)
    return await asyncio.to_thread(_json, text)


def _json(text: str) -> object:
    """Return text decoded as JSON, or None (logged) when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError:
        _LOGGER.debug("expected JSON, got %.80r", text)
        return None
