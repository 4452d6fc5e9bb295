"""core.load: a level counts only once held for a minute, ends below its margin, never on a gap."""

import pytest

from custom_components.ai_security.core.gpu import GpuReading
from custom_components.ai_security.core.llm_slots import SlotUsage
from custom_components.ai_security.core.load import (
    HOLD,
    LIMITS,
    LoadCondition,
    LoadKind,
    LoadLevel,
    LoadSample,
    LoadWatcher,
    load_samples,
)

SERVER = "http://10.0.0.5:8090"
TEMPERATURE = LoadKind.GPU_TEMPERATURE


def temperature(value: float | None) -> dict[LoadKind, LoadSample | None]:
    return {TEMPERATURE: None if value is None else LoadSample(value=value, server=SERVER)}


def run(watcher: LoadWatcher, checks: list[tuple[float, float | None]]) -> list[str | None]:
    """Feed (time, temperature) checks; return the level after each (None: nothing holds)."""
    levels: list[str | None] = []
    for now, value in checks:
        conditions = watcher.update(temperature(value), now)
        levels.append(conditions[0].level.value if conditions else None)
    return levels


def test_one_hot_sample_is_not_a_problem() -> None:
    """A spike, however high, that is gone at the next check never counts."""
    watcher = LoadWatcher()
    assert run(watcher, [(0, 95), (15, 60), (30, 95), (45, 60), (200, 60)]) == [None] * 5


def test_a_level_counts_after_holding_for_a_minute() -> None:
    """At 15 s checks: the fifth check above the limit (60 s after the first) raises it."""
    watcher = LoadWatcher()
    levels = run(watcher, [(t, 78) for t in (0, 15, 30, 45, 59.9, 60)])
    assert levels == [None, None, None, None, None, "warning"]
    [condition] = watcher.update(temperature(79), 75)
    assert condition == LoadCondition(
        kind=TEMPERATURE,
        level=LoadLevel.WARNING,
        value=79,
        limit=75,
        since=60,
        server=SERVER,
    )


def test_at_long_intervals_two_checks_in_a_row_are_needed() -> None:
    """With a 5-minute health interval, the first check above starts the clock, the next counts."""
    watcher = LoadWatcher()
    assert run(watcher, [(0, 90), (300, 90)]) == [None, "critical"]


def test_a_dip_below_the_limit_restarts_the_clock() -> None:
    """The figure must stay above: one check under the limit before the minute is up resets it."""
    watcher = LoadWatcher()
    levels = run(watcher, [(0, 80), (30, 80), (45, 74), (60, 80), (105, 80), (120, 80)])
    assert levels == [None, None, None, None, None, "warning"]


def test_hysteresis_keeps_a_level_until_the_margin_is_crossed() -> None:
    """A warning at 75 °C ends below 70 °C, not at 74 °C: hovering at the limit does not flap."""
    watcher = LoadWatcher()
    run(watcher, [(0, 76), (60, 76)])
    assert run(watcher, [(75, 74), (90, 71), (105, 70), (120, 76), (135, 69.9)]) == [
        "warning",
        "warning",
        "warning",
        "warning",
        None,
    ]
    # Ended: the next time needs its own minute.
    assert run(watcher, [(150, 80), (195, 80), (210, 80)]) == [None, None, "warning"]


def test_critical_needs_its_own_minute_and_falls_back_to_warning() -> None:
    """Warning to critical takes a minute above 85 °C; below 80 °C it is a warning again."""
    watcher = LoadWatcher()
    levels = run(
        watcher,
        [(0, 78), (60, 78), (75, 86), (120, 86), (135, 87), (150, 82), (165, 79.5), (180, 68)],
    )
    assert levels == [
        None,
        "warning",
        "warning",  # above critical since 75 s: not for a minute yet
        "warning",
        "critical",
        "critical",  # 82 °C: within the 5 °C margin of 85
        "warning",
        None,
    ]


def test_the_condition_keeps_its_start_through_level_changes() -> None:
    watcher = LoadWatcher()
    run(watcher, [(0, 90), (60, 90)])
    [condition] = watcher.update(temperature(79), 90)
    assert (condition.level, condition.limit, condition.since) == (LoadLevel.WARNING, 75, 60)


@pytest.mark.parametrize("gap", [None, "absent"])
def test_a_missing_figure_ends_the_condition_and_its_clock(gap: str | None) -> None:
    """Nothing measured, nothing claimed: the condition ends, and the next minute starts over."""
    watcher = LoadWatcher()
    run(watcher, [(0, 90), (60, 90)])
    samples = temperature(None) if gap is None else {}
    assert watcher.update(samples, 75) == ()
    assert run(watcher, [(90, 90), (120, 90), (150, 90)]) == [None, None, "critical"]


def test_each_kind_is_watched_on_its_own() -> None:
    watcher = LoadWatcher()
    for now in (0, 60):
        conditions = watcher.update(
            {
                LoadKind.GPU_TEMPERATURE: LoadSample(value=60, server=SERVER),
                LoadKind.GPU_UTILIZATION: LoadSample(value=99, server=SERVER),
                LoadKind.GPU_MEMORY: LoadSample(value=91, server=SERVER),
                LoadKind.LLM_SLOTS: LoadSample(value=100, server="http://llm:8080"),
            },
            now,
        )
    assert [(c.kind, c.level) for c in conditions] == [
        (LoadKind.GPU_UTILIZATION, LoadLevel.CRITICAL),
        (LoadKind.GPU_MEMORY, LoadLevel.WARNING),
        (LoadKind.LLM_SLOTS, LoadLevel.WARNING),
    ]


def test_llm_slots_all_busy_for_a_minute_and_any_free_slot_ends_it() -> None:
    """The slots have one level (warning), at 100 % busy, and no margin."""
    watcher = LoadWatcher()

    def slots(busy: int, now: float) -> tuple[LoadCondition, ...]:
        usage = SlotUsage(busy=busy, total=4)
        return watcher.update(
            load_samples(gpu=None, gpu_server=None, slots=usage, slot_servers=["http://llm"]),
            now,
        )

    assert slots(3, 0) == slots(4, 10) == slots(4, 69) == ()
    [condition] = slots(4, 70)
    assert (condition.kind, condition.level, condition.value) == (
        LoadKind.LLM_SLOTS,
        LoadLevel.WARNING,
        100,
    )
    assert condition.server == "http://llm"
    assert slots(3, 85) == ()
    assert LIMITS[LoadKind.LLM_SLOTS].critical is None


def test_the_documented_limits() -> None:
    assert HOLD == 60
    assert {kind: (lim.warning, lim.critical) for kind, lim in LIMITS.items()} == {
        LoadKind.GPU_TEMPERATURE: (75, 85),
        LoadKind.GPU_UTILIZATION: (90, 98),
        LoadKind.GPU_MEMORY: (90, 95),
        LoadKind.LLM_SLOTS: (100, None),
    }


def gpu(**figures: float | None) -> GpuReading:
    values: dict[str, float | None] = {
        "utilization": None,
        "memory_used_mb": None,
        "memory_total_mb": None,
        "temperature_c": None,
        "power_w": None,
    } | figures
    return GpuReading(source="detector", name="NVIDIA RTX 4090", **values)  # type: ignore[arg-type]


def test_samples_from_the_gpu_and_the_slots() -> None:
    samples = load_samples(
        gpu=gpu(utilization=37, memory_used_mb=22_000, memory_total_mb=24_000, temperature_c=61),
        gpu_server=SERVER,
        slots=SlotUsage(busy=1, total=2),
        slot_servers=["http://a", "http://b"],
    )
    assert samples == {
        LoadKind.GPU_TEMPERATURE: LoadSample(value=61, server=SERVER),
        LoadKind.GPU_UTILIZATION: LoadSample(value=37, server=SERVER),
        LoadKind.GPU_MEMORY: LoadSample(value=91.7, server=SERVER),
        LoadKind.LLM_SLOTS: LoadSample(value=50, server="http://a, http://b"),
    }


def test_samples_leave_out_what_cannot_be_measured() -> None:
    """No GPU, memory without its total, slots without their total: not measured (None)."""
    assert set(load_samples(gpu=None, gpu_server=None, slots=None, slot_servers=[]).values()) == {
        None
    }
    samples = load_samples(
        gpu=gpu(memory_used_mb=5000, memory_total_mb=0, temperature_c=70),
        gpu_server=None,
        slots=SlotUsage(busy=3, total=None),
        slot_servers=["http://a"],
    )
    assert samples[LoadKind.GPU_MEMORY] is None
    assert samples[LoadKind.GPU_UTILIZATION] is None
    assert samples[LoadKind.LLM_SLOTS] is None
    # Without a server's URL (a GPU read on this host), the GPU is named by its model.
    assert samples[LoadKind.GPU_TEMPERATURE] == LoadSample(value=70, server="NVIDIA RTX 4090")
