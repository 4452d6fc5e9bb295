"""The benchmark's tables: false alarms and threats notified per week, with and without reviews."""

from collections.abc import Sequence

from .replay import Outcome


def _false(outcomes: Sequence[Outcome]) -> int:
    return sum(1 for item in outcomes if item.notified and not item.visit.threat)


def _threats(outcomes: Sequence[Outcome]) -> tuple[int, int]:
    real = [item for item in outcomes if item.visit.threat]
    return sum(1 for item in real if item.notified), len(real)


def _after(outcomes: Sequence[Outcome], reviews: int) -> list[Outcome]:
    return [item for item in outcomes if item.reviews_before >= reviews]


def by_reviews(
    baseline: Sequence[Outcome], learned: Sequence[Outcome]
) -> list[tuple[int, int, int]]:
    """Return (reviews made, false alarms without reviews, with them) over the same visits.

    Each row holds the visits that happened while the user had made exactly that many reviews.
    """
    made = max((item.reviews_before for item in learned), default=0)
    rows = []
    for count in range(made + 1):
        pairs = [
            (base, item)
            for base, item in zip(baseline, learned, strict=True)
            if item.reviews_before == count
        ]
        rows.append(
            (count, _false([base for base, _ in pairs]), _false([item for _, item in pairs]))
        )
    return rows


def reviews_needed(rows: Sequence[tuple[int, int, int]]) -> int | None:
    """Return the fewest reviews after which false alarms stay down by 90 % or more.

    None when they never do (or there were none to begin with).
    """
    needed = None
    for count, base, learned in reversed(rows):
        if base and learned > 0.1 * base:
            break
        if base:
            needed = count
    return needed


def weeks(baseline: Sequence[Outcome], learned: Sequence[Outcome], budget: int) -> str:
    """Return the per-week table and the summary."""
    lines = [
        "Calibration and learned spots: synthetic weeks replayed through the real pipeline",
        f"(scripted detector and LLM; the user marks the first {budget} false alarms, each the"
        " next morning).",
        "",
        f"  {'week':<5} {'false alarms notified':>23} {'threats notified':>18}"
        f" {'suppressed':>11} {'reviews':>8}",
        f"  {'':<5} {'no reviews':>11} {'learning':>11} {'no rev.':>8} {'learning':>9}"
        f" {'(statue)':>11} {'so far':>8}",
    ]
    numbers = sorted({item.visit.week for item in learned})
    for week in numbers:
        base = [item for item in baseline if item.visit.week == week]
        mine = [item for item in learned if item.visit.week == week]
        base_threats, real = _threats(base)
        my_threats, _real = _threats(mine)
        lines.append(
            f"  {week:<5} {_false(base):>11} {_false(mine):>11} {base_threats:>5}/{real:<2}"
            f" {my_threats:>6}/{real:<2} {sum(item.suppressed for item in mine):>11}"
            f" {max(item.reviews_before for item in mine):>8}"
        )
    made = max((item.reviews_before for item in learned), default=0)
    base_threats, real = _threats(baseline)
    my_threats, _real = _threats(learned)
    after = _after(learned, made)
    same = [base for base, item in zip(baseline, learned, strict=True) if item in after]
    cut = 1 - _false(after) / _false(same) if _false(same) else 0.0
    rows = by_reviews(baseline, learned)
    needed = reviews_needed(rows)
    beside = [item for item in learned if item.visit.scene == "intruder beside the statue"]
    lines += [
        "",
        f"  false alarms notified: {_false(baseline)} without reviews, {_false(learned)} with"
        f" {made} reviews",
        f"  after the last review: {_false(same)} -> {_false(after)} ({cut:.0%} fewer)",
        "  false alarms notified while the user had made N reviews (without -> with reviews): "
        + ", ".join(f"{count}: {base} -> {mine}" for count, base, mine in rows),
        "  reviews needed before false alarms stay down by 90 %: "
        + ("never" if needed is None else str(needed)),
        f"  real threats notified: {base_threats}/{real} without reviews, {my_threats}/{real}"
        f" with ({real - my_threats} lost)",
        "  intruder beside the statue notified: "
        + (", ".join("yes" if item.notified else "NO" for item in beside) or "not in this run"),
    ]
    reasons = sorted({item.calibration for item in learned if item.calibration})
    if reasons:
        lines += ["", "  what the events say:"] + [f"    {reason}" for reason in reasons[:6]]
    return "\n".join(lines)
