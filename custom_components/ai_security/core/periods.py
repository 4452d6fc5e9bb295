"""Named periods people ask about ("today", "last night", "this week") as [start, end) times.

Assist's sentences and the LLM API's tools both take these names; a period is always in the
past or up to now, in the household's time zone, and never reversed. Night is 18:00 to 08:00:
asked at 03:00, "last night" is the night so far; asked at noon, the night that ended at 08:00.
"""

from collections.abc import Callable
from datetime import datetime, time, timedelta, tzinfo
from typing import Final

EVENING: Final = time(18, 0)
MORNING: Final = time(8, 0)


def _at(day: datetime, moment: time) -> datetime:
    """Return moment on day's date, in day's time zone."""
    return datetime.combine(day.date(), moment, day.tzinfo)


def _midnight(local: datetime) -> datetime:
    return _at(local, time(0))


def _last_night(local: datetime) -> tuple[datetime, datetime]:
    start = _at(local - timedelta(days=1), EVENING)
    return (start, local) if local.time() < MORNING else (start, _at(local, MORNING))


def _this_week(local: datetime) -> datetime:
    return _midnight(local) - timedelta(days=local.weekday())


type _Bounds = Callable[[datetime], tuple[datetime, datetime]]

_PERIODS: Final[dict[str, _Bounds]] = {
    "today": lambda local: (_midnight(local), local),
    "yesterday": lambda local: (_midnight(local - timedelta(days=1)), _midnight(local)),
    "last_night": _last_night,
    "this_morning": lambda local: (_at(local, time(5, 0)), min(local, _at(local, time(12, 0)))),
    "this_evening": lambda local: (_at(local, EVENING), local),
    "last_hour": lambda local: (local - timedelta(hours=1), local),
    "last_24_hours": lambda local: (local - timedelta(days=1), local),
    "this_week": lambda local: (_this_week(local), local),
    "last_week": lambda local: (_this_week(local) - timedelta(days=7), _this_week(local)),
    "last_7_days": lambda local: (local - timedelta(days=7), local),
    "this_month": lambda local: (_midnight(local.replace(day=1)), local),
    "last_30_days": lambda local: (local - timedelta(days=30), local),
}

PERIODS: Final = tuple(_PERIODS)
"""Every period's name, as the tools' schema lists them."""


def period_bounds(name: str, now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """Return the period called name as [start, end) in tz; ValueError for an unknown name.

    A period that has not begun yet (this evening, asked at noon) is empty: it starts and ends
    now.
    """
    bounds = _PERIODS.get(name)
    if bounds is None:
        raise ValueError(f"unknown period {name!r}")
    start, end = bounds(now.astimezone(tz))
    return min(start, end), end


__all__ = ["PERIODS", "period_bounds"]
