"""Each camera's usual activity per hour of the week, and how unusual a batch is against it.

How the baseline learns (ALPHA, LEARNING_PERIOD and the rest are the constants below):

- A slot is one hour of the local week (hour_of_week: 0 = Monday 00:00-01:00, 167 = Sunday
  23:00-24:00); an occurrence of a slot is that hour in one particular week. Per camera, slot and
  object class, BaselineRow.rate is an exponential moving average of the class's count per
  occurrence: rate <- (1 - ALPHA) * rate + ALPHA * count, one step per weekly occurrence.
- Weekly steps rather than a decay by wall-clock time: a time decay read at the start of a slot
  has lost almost a week of weight since the slot was last seen (22 % with a 4-week time
  constant), so a perfectly regular visitor would always look 1.3 times more frequent than usual.
  Counting occurrences reads exactly the average until the slot's hour has passed without
  detections.
- Occurrences are counted in local weeks (the local hour index: local week x 168 + slot), so a
  DST change moves no slot. Once a year a slot's hour is skipped (counted as a quiet hour) or
  happens twice (counted as one hour); both are lost in four weeks of memory.
- Absence costs no work: each row keeps the moment of its latest observation (updated_at), and
  occurrences that passed since without detections are applied as zero counts, (1 - ALPHA) each,
  when the row is next read or written. No hourly job, no rows for quiet hours.
- Several batches in one hour add up to that occurrence's count.
- Early on, the average is corrected for the weeks the camera has not been watched yet (as Adam
  corrects its moments): expected = rate / (1 - (1 - ALPHA) ** n), where n is the number of the
  slot's occurrences since the camera's first observation. Without it, a slot seen once would
  expect a quarter of what it saw, and the regular morning visitor would be unusual for weeks.
- The first observation of a camera is kept in a reserved row (label SINCE_LABEL, hour_of_week 0,
  rate 0): until LEARNING_PERIOD after it the baseline is learning and judges nothing.

How unusual a batch is against the usual counts, and how that is said in the prompt and weighed
by the heuristic, is anomaly_score's: this module learns and reads the counts, in the database.
"""

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any, Final

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .anomaly_score import (
    LEARNING,
    LEARNING_TEXT,
    MAX_BONUS,
    MAX_SCORE,
    Anomaly,
    UnusualClass,
    anomaly,
    clean_counts,
    describe,
    heuristic_bonus,
)
from .storage import BaselineRow

__all__ = [
    "ALPHA",
    "HOURS_PER_WEEK",
    "LEARNING",
    "LEARNING_PERIOD",
    "LEARNING_TEXT",
    "MAX_BONUS",
    "MAX_SCORE",
    "SINCE_LABEL",
    "SINCE_SLOT",
    "STALE_AFTER",
    "Anomaly",
    "UnusualClass",
    "anomaly",
    "assess",
    "describe",
    "expected",
    "forget_camera",
    "heuristic_bonus",
    "hour_of_week",
    "is_learning",
    "learning_since",
    "prune_baseline",
    "record_batch",
]
"""The judgement's names are anomaly_score's; named here too because the analysis stage and the
baseline's tests meet them as one baseline: learn, read, judge."""

HOURS_PER_WEEK: Final = 168
ALPHA: Final = 0.25
"""Weight of each weekly occurrence of a slot. A new level is 68 % learned after four weeks
(1 - 0.75 ** 4) and 90 % after eight; the average observation is three weeks old."""
LEARNING_PERIOD: Final = timedelta(days=7)
"""How long after a camera's first observation its baseline only learns (every slot seen once)."""
SINCE_LABEL: Final = "__since__"
"""The reserved label of a camera's first-observation row; labels starting with __ are never
recorded as classes."""
SINCE_SLOT: Final = 0
"""The hour_of_week of the first-observation row (any valid slot: the label tells it apart)."""
STALE_AFTER: Final = timedelta(weeks=52)
"""Rows not observed for this long hold less than 1e-6 of their rate and are pruned."""


def hour_of_week(moment: datetime, tz: tzinfo) -> int:
    """Return the slot of an aware moment in tz: 0 = Monday 00:00-01:00 ... 167 = Sunday 23:00.

    Naive moments are refused: astimezone would read them in the host's zone, not the user's.
    """
    local = _local(moment, tz)
    return local.weekday() * 24 + local.hour


def _local(moment: datetime, tz: tzinfo) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"moment must be timezone-aware, not {moment!r}")
    return moment.astimezone(tz)


def _local_hour(moment: datetime, tz: tzinfo) -> int:
    """Return the local hour index: local weeks since year 1 x 168 + hour_of_week.

    date.toordinal() is 1 on Monday 0001-01-01, so (ordinal - 1) // 7 counts Monday-based weeks.
    The occurrences of slot s are the hours k * 168 + s.
    """
    local = _local(moment, tz)
    week = (local.toordinal() - 1) // 7
    return week * HOURS_PER_WEEK + local.weekday() * 24 + local.hour


def _week_of(hour: int) -> int:
    return hour // HOURS_PER_WEEK


def _check_slot(slot: int) -> None:
    if not 0 <= slot < HOURS_PER_WEEK:
        raise ValueError(f"hour of week must be 0-167, not {slot}")


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or overwrite baseline rows in one statement (SQLite and PostgreSQL)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(BaselineRow).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[BaselineRow.camera_id, BaselineRow.hour_of_week, BaselineRow.label],
            set_={"rate": statement.excluded.rate, "updated_at": statement.excluded.updated_at},
        )
    )


def record_batch(
    session: Session,
    camera_id: str,
    counts: Mapping[str, int],
    *,
    started_at: datetime,
    ended_at: datetime,
    tz: tzinfo,
    now: datetime,
) -> None:
    """Add a batch's counts per class to its camera's baseline (in the caller's transaction).

    The batch counts in the slot it started in; a batch recorded late (a retried job) counts in
    its own week, decayed like every week since. started_at is clamped to now, so a camera
    clock running ahead cannot plant observations in the future; ended_at is only checked
    (batches are short, so their start says when they happened). Call it for every batch, also
    with no counts: the first call starts the camera's learning period. Classes absent from
    counts are not touched: their quiet hours are applied when they are next read.

    One SELECT of the slot's rows for these classes and one multi-row upsert.
    """
    if ended_at.utcoffset() is None:
        raise ValueError(f"ended_at must be timezone-aware, not {ended_at!r}")
    moment = min(started_at, now)
    hour = _local_hour(moment, tz)
    slot = hour % HOURS_PER_WEEK
    week = _week_of(hour)
    cleaned = clean_counts(counts)
    existing = {
        row.label: (row.rate, row.updated_at)
        for row in session.execute(
            select(BaselineRow.label, BaselineRow.rate, BaselineRow.updated_at).where(
                BaselineRow.camera_id == camera_id,
                or_(
                    (BaselineRow.hour_of_week == slot) & BaselineRow.label.in_(list(cleaned)),
                    (BaselineRow.hour_of_week == SINCE_SLOT) & (BaselineRow.label == SINCE_LABEL),
                ),
            )
        )
    }
    rows: list[dict[str, Any]] = []
    since = existing.get(SINCE_LABEL)
    if since is None or moment < since[1]:
        rows.append(_row(camera_id, SINCE_SLOT, SINCE_LABEL, 0.0, moment))
    keep = 1.0 - ALPHA
    for label, count in cleaned.items():
        added = ALPHA * count
        if label not in existing:
            rows.append(_row(camera_id, slot, label, added, moment))
            continue
        rate, updated_at = existing[label]
        last_week = _week_of(_local_hour(updated_at, tz))
        # Bring both to the later of the two weeks: the quiet weeks between decay the older.
        latest = max(week, last_week)
        rate = rate * keep ** (latest - last_week) + added * keep ** (latest - week)
        rows.append(_row(camera_id, slot, label, rate, max(updated_at, moment)))
    if rows:
        _upsert(session, rows)


def _row(camera_id: str, slot: int, label: str, rate: float, at: datetime) -> dict[str, Any]:
    return {
        "camera_id": camera_id,
        "hour_of_week": slot,
        "label": label,
        "rate": rate,
        "updated_at": at,
    }


def learning_since(session: Session, camera_id: str) -> datetime | None:
    """Return the camera's first observation, or None when it has none."""
    row = session.get(BaselineRow, (camera_id, SINCE_SLOT, SINCE_LABEL))
    return None if row is None else row.updated_at


def is_learning(since: datetime | None, now: datetime) -> bool:
    """Return whether a baseline first observed at since still learns at now."""
    return since is None or now < since + LEARNING_PERIOD


def expected(
    session: Session, camera_id: str, slot: int, tz: tzinfo, now: datetime
) -> dict[str, float]:
    """Return the usual count per class of a camera in one hour of the week, as of now.

    The weighted average of the slot's past occurrences since the camera's first observation,
    quiet occurrences counting as zero (see the module docstring). An occurrence in progress at
    now counts once it has had detections. Classes never seen are left out (typical 0); a camera
    without observations has an empty baseline.
    """
    _check_slot(slot)
    rows = session.execute(
        select(BaselineRow.label, BaselineRow.rate, BaselineRow.updated_at).where(
            BaselineRow.camera_id == camera_id,
            or_(
                BaselineRow.hour_of_week == slot,
                (BaselineRow.hour_of_week == SINCE_SLOT) & (BaselineRow.label == SINCE_LABEL),
            ),
        )
    ).all()
    since = next((at for label, _rate, at in rows if label == SINCE_LABEL), None)
    if since is None:
        return {}
    return _expected(
        ((label, rate, at) for label, rate, at in rows if label != SINCE_LABEL),
        slot=slot,
        since=since,
        tz=tz,
        now=now,
    )


def _expected(
    rows: Iterable[tuple[str, float, datetime]],
    *,
    slot: int,
    since: datetime,
    tz: tzinfo,
    now: datetime,
) -> dict[str, float]:
    """Return the corrected, decayed averages of rows (label, rate, updated_at) of one slot."""
    now_hour = _local_hour(now, tz)
    # The slot's occurrences (weeks) counted: from the first one not over before since, to the
    # last one over by now.
    first = -((slot - _local_hour(since, tz)) // HOURS_PER_WEEK)
    last_over = (now_hour - 1 - slot) // HOURS_PER_WEEK
    keep = 1.0 - ALPHA
    result: dict[str, float] = {}
    for label, rate, updated_at in rows:
        week = _week_of(_local_hour(updated_at, tz))
        last = max(last_over, week)  # an occurrence in progress counts once it has a row
        weeks = last - first + 1
        if weeks <= 0:  # only rows written under another time zone can predate the start
            continue
        average = rate * keep ** (last - week) / (1.0 - keep**weeks)
        if average > 0.0:
            result[label] = average
    return result


def assess(
    session: Session,
    camera_id: str,
    counts: Mapping[str, int],
    *,
    started_at: datetime,
    tz: tzinfo,
    now: datetime,
) -> Anomaly:
    """Return the anomaly of a batch against its camera's baseline as it was when it started.

    Read before record_batch() adds the batch itself (the pipeline judges, then stores).
    """
    moment = min(started_at, now)
    since = learning_since(session, camera_id)
    if is_learning(since, moment):
        return LEARNING
    usual = expected(session, camera_id, hour_of_week(moment, tz), tz, moment)
    return anomaly(counts, usual, learning=False)


def prune_baseline(session: Session, now: datetime) -> int:
    """Delete rows not observed for STALE_AFTER (their rate is gone); return how many.

    For the daily clean-up. The first-observation rows stay: the camera still is not new.
    """
    result = session.execute(
        delete(BaselineRow).where(
            BaselineRow.label != SINCE_LABEL, BaselineRow.updated_at < now - STALE_AFTER
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def forget_camera(session: Session, camera_id: str) -> int:
    """Delete a camera's whole baseline (it starts learning again); return the rows deleted."""
    result = session.execute(delete(BaselineRow).where(BaselineRow.camera_id == camera_id))
    return int(result.rowcount)  # type: ignore[attr-defined]
