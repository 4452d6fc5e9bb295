"""Load levels of the model-server box: a hot, saturated or full GPU, an LLM with no free slot.

Each figure has a warning and (except the LLM's slots) a critical limit. A level counts only once
the figure has stayed at or above its limit for HOLD seconds, every health check in between
included: one hot sample (a burst of work, a fan spinning up) is not a problem, a minute of them
is. Measured in time rather than in checks, the rule does not depend on the health interval the
user picked, and since the first check above a limit only starts the clock it always takes at
least two checks in a row. A level ends at the first check where the figure is more than its
margin below the limit (hysteresis): a figure hovering at the limit does not flap the level on
and off. A critical level that ends falls back to warning when the figure is still high enough
for that; a warning that turns critical needs its own HOLD above the critical limit.

A figure that is missing (the detector did not answer, the server stopped reporting it) ends its
condition and starts its clock over: a level is only claimed for what was measured.

The LLM's slots are a share of the pool's slots that are busy: "all busy for over a minute" is
100 % held for HOLD, and any free slot ends it (a margin of 0).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .gpu import GpuReading
from .llm_slots import SlotUsage


class LoadKind(StrEnum):
    """What is watched; each has its own condition, binary sensor attribute and Repairs issue."""

    GPU_TEMPERATURE = "gpu_temperature"
    """The GPU's temperature in °C."""
    GPU_UTILIZATION = "gpu_utilization"
    """Percent of the time the GPU ran a kernel."""
    GPU_MEMORY = "gpu_memory"
    """GPU memory used, in percent of its total."""
    LLM_SLOTS = "llm_slots"
    """The LLM servers' slots that are busy, in percent of all their slots."""


class LoadLevel(StrEnum):
    """How serious a condition is."""

    WARNING = "warning"
    CRITICAL = "critical"


HOLD: Final = 60.0
"""Seconds a figure must stay at or above a limit before its level counts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """A figure's limits, and how far below one it must fall for its level to end."""

    warning: float
    critical: float | None
    margin: float
    hold: float = HOLD

    def limit(self, level: LoadLevel) -> float | None:
        """Return the limit of level (None: the figure has no such level)."""
        return self.warning if level is LoadLevel.WARNING else self.critical


LIMITS: Final[Mapping[LoadKind, Limits]] = {
    LoadKind.GPU_TEMPERATURE: Limits(warning=75.0, critical=85.0, margin=5.0),
    LoadKind.GPU_UTILIZATION: Limits(warning=90.0, critical=98.0, margin=5.0),
    LoadKind.GPU_MEMORY: Limits(warning=90.0, critical=95.0, margin=5.0),
    LoadKind.LLM_SLOTS: Limits(warning=100.0, critical=None, margin=0.0),
}
"""The levels users of a GPU box expect: consumer and data-centre GPUs throttle in the high
80s °C; utilisation near 100 % means work queues for the card; nearly full memory means the next
model or a larger batch fails to load; every LLM slot busy means verdicts wait."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadSample:
    """One figure as one health check read it, and which server (or machine) it describes."""

    value: float
    server: str


def load_samples(
    *,
    gpu: GpuReading | None,
    gpu_server: str | None,
    slots: SlotUsage | None,
    slot_servers: Sequence[str],
) -> dict[LoadKind, LoadSample | None]:
    """Return one check's figures: the GPU's (where it is read), the LLM pool's slots.

    A figure the source did not give (no GPU, memory without its total, slots without their
    total) is None: not measured.
    """
    where = gpu_server or (gpu.name if gpu is not None and gpu.name else "GPU")

    def sample(value: float | None, server: str) -> LoadSample | None:
        return None if value is None else LoadSample(value=value, server=server)

    memory: float | None = None
    if gpu is not None and gpu.memory_used_mb is not None and gpu.memory_total_mb:
        memory = round(100.0 * gpu.memory_used_mb / gpu.memory_total_mb, 1)
    return {
        LoadKind.GPU_TEMPERATURE: sample(gpu.temperature_c if gpu else None, where),
        LoadKind.GPU_UTILIZATION: sample(gpu.utilization if gpu else None, where),
        LoadKind.GPU_MEMORY: sample(memory, where),
        LoadKind.LLM_SLOTS: sample(
            slots.busy_percent if slots is not None else None, ", ".join(slot_servers)
        ),
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadCondition:
    """A figure that is at a level now."""

    kind: LoadKind
    level: LoadLevel
    value: float
    """The figure at the latest check."""
    limit: float
    """The level's limit."""
    since: float
    """When the condition started (the clock's seconds): when its first level began to count."""
    server: str


@dataclass(kw_only=True, slots=True)
class _Track:
    """One figure's state between checks."""

    above_since: dict[LoadLevel, float]
    """For each level, since when the figure has been at or above its limit without a break."""
    held: set[LoadLevel]
    """The levels that count now."""
    since: float | None = None


class LoadWatcher:
    """Turns each health check's figures into the conditions that hold (see the module's doc).

    The caller passes the time of each check, in seconds of any clock that does not go back
    (Home Assistant's `utcnow().timestamp()`; tests their own numbers).
    """

    def __init__(self, limits: Mapping[LoadKind, Limits] = LIMITS) -> None:
        """Watch every kind in limits; nothing holds before the first update."""
        self._limits = dict(limits)
        self._tracks = {kind: _Track(above_since={}, held=set()) for kind in self._limits}

    def update(
        self, samples: Mapping[LoadKind, LoadSample | None], now: float
    ) -> tuple[LoadCondition, ...]:
        """Take one check's figures (a kind missing from samples counts as not measured).

        Returns the conditions that hold after it, in LoadKind's order.
        """
        conditions = (
            self._step(kind, limits, samples.get(kind), now)
            for kind, limits in self._limits.items()
        )
        return tuple(condition for condition in conditions if condition is not None)

    def _step(
        self, kind: LoadKind, limits: Limits, sample: LoadSample | None, now: float
    ) -> LoadCondition | None:
        track = self._tracks[kind]
        if sample is None:
            self._tracks[kind] = _Track(above_since={}, held=set())
            return None
        value = sample.value
        for level in LoadLevel:
            limit = limits.limit(level)
            if limit is None:
                continue
            if value >= limit:
                started = track.above_since.setdefault(level, now)
                if now - started >= limits.hold:
                    track.held.add(level)
            else:
                track.above_since.pop(level, None)
                if value < limit - limits.margin:
                    track.held.discard(level)
        current = max(track.held, key=list(LoadLevel).index, default=None)
        current_limit = None if current is None else limits.limit(current)
        if current is None or current_limit is None:  # (only levels with a limit are held)
            track.since = None
            return None
        if track.since is None:
            track.since = now
        return LoadCondition(
            kind=kind,
            level=current,
            value=value,
            limit=current_limit,
            since=track.since,
            server=sample.server,
        )
