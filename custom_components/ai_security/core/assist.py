"""What Assist asks of the event history: a period summarised, objects counted, the latest incident.

A conversation agent (through the integration's LLM API) and the default agent's sentences both
answer from these queries. Each returns plain data bounded in size, so an answer never floods a
model's context or a speaker: at most MAX_NOTABLE incidents are named, a summary is cut at
SUMMARY_CHARS, and nothing about files is included (no paths, no media). The periods are the
caller's, already checked (start before end, both aware); the queries run in the database thread.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, Final

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from .event_rows import event_from_row
from .event_search import levels_at_least
from .models import RiskLevel, SecurityEvent
from .schema import EventRow

MAX_NOTABLE: Final = 10
"""The most incidents one answer names."""
SUMMARY_CHARS: Final = 160
"""A named incident's summary is cut here (with an ellipsis)."""
LEVELS: Final = tuple(level.value for level in RiskLevel)


def short(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Return text on one line, cut at limit characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def brief(event: SecurityEvent, camera_name: str, tz: tzinfo) -> dict[str, Any]:
    """Return an incident as an answer names it: when, where, how risky, what, reviewed how."""
    review = "not reviewed"
    if event.reviewed:
        review = "false alarm" if event.dismissed else "missed" if event.missed else "confirmed"
    return {
        "id": event.event_id,
        "camera": camera_name,
        "camera_id": event.camera_id,
        "started": event.started_at.astimezone(tz).isoformat(timespec="minutes"),
        "ended": event.ended_at.astimezone(tz).isoformat(timespec="minutes"),
        "level": event.risk_level.value,
        "score": event.risk_score,
        "summary": short(event.summary),
        "objects": list(event.object_types),
        "zones": list(event.zones),
        "review": review,
        "ongoing": event.ongoing,
    }


@dataclass(frozen=True, slots=True)
class PeriodSummary:
    """A period's incidents: counts per camera and level, and the most notable ones."""

    start: datetime
    end: datetime
    total: int = 0
    levels: dict[str, dict[str, int]] = field(default_factory=dict)
    """Camera id -> risk level -> incidents."""
    notable: list[SecurityEvent] = field(default_factory=list)
    """The riskiest incidents, then the latest, at most the limit asked for."""

    def level_count(self, *, at_least: RiskLevel) -> int:
        """Return the incidents at at_least or above, over every camera."""
        wanted = {level.value for level in levels_at_least(at_least)}
        return sum(
            count
            for by_level in self.levels.values()
            for level, count in by_level.items()
            if level in wanted
        )

    def as_dict(self, names: Mapping[str, str], tz: tzinfo) -> dict[str, Any]:
        """Return the summary as a tool answers it (cameras by name, times local)."""
        return {
            "from": self.start.astimezone(tz).isoformat(timespec="minutes"),
            "until": self.end.astimezone(tz).isoformat(timespec="minutes"),
            "incidents": self.total,
            "by_camera": {
                names.get(camera_id, camera_id): {
                    level: by_level[level] for level in LEVELS if level in by_level
                }
                for camera_id, by_level in sorted(self.levels.items())
            },
            "notable": [
                brief(event, names.get(event.camera_id, event.camera_id), tz)
                for event in self.notable
            ],
        }


def _period(
    camera_ids: Sequence[str], start: datetime, end: datetime, min_level: RiskLevel | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [EventRow.started_at >= start, EventRow.started_at < end]
    if camera_ids:
        where.append(EventRow.camera_id.in_(camera_ids))
    if min_level is not None:
        where.append(EventRow.risk_level.in_([level.value for level in levels_at_least(min_level)]))
    return where


def summarize(
    session: Session,
    *,
    camera_ids: Sequence[str],
    start: datetime,
    end: datetime,
    min_level: RiskLevel | None = None,
    notable: int = 5,
) -> PeriodSummary:
    """Return the incidents that started in [start, end) of the cameras (all when none).

    notable (0 to MAX_NOTABLE) riskiest incidents are named, the latest first among equals.
    """
    where = _period(camera_ids, start, end, min_level)
    levels: dict[str, dict[str, int]] = {}
    total = 0
    for camera_id, level, count in session.execute(
        select(EventRow.camera_id, EventRow.risk_level, func.count())
        .where(*where)
        .group_by(EventRow.camera_id, EventRow.risk_level)
    ):
        levels.setdefault(camera_id, {})[level] = int(count)
        total += int(count)
    named: list[SecurityEvent] = []
    limit = max(0, min(notable, MAX_NOTABLE))
    if total and limit:
        rows = session.scalars(
            select(EventRow)
            .where(*where)
            .order_by(
                EventRow.risk_score.desc(), EventRow.started_at.desc(), EventRow.event_id.desc()
            )
            .limit(limit)
        ).all()
        named = [event_from_row(row) for row in rows]
    return PeriodSummary(start=start, end=end, total=total, levels=levels, notable=named)


def count_with_object(
    session: Session, *, camera_ids: Sequence[str], start: datetime, end: datetime, label: str
) -> dict[str, int]:
    """Return, per camera, the incidents in [start, end) in which label was detected.

    An incident is one visit, so this counts visits with a person, not heads.
    """
    # object_types is a JSON list: its text holds the label in quotes on SQLite and PostgreSQL.
    quoted = '%"' + label.replace("\\", "").replace('"', "").replace("%", "") + '"%'
    where = [*_period(camera_ids, start, end, None), cast(EventRow.object_types, Text).like(quoted)]
    return {
        camera_id: int(count)
        for camera_id, count in session.execute(
            select(EventRow.camera_id, func.count()).where(*where).group_by(EventRow.camera_id)
        )
    }


def latest_incident(
    session: Session, *, camera_ids: Sequence[str], before: datetime | None = None
) -> SecurityEvent | None:
    """Return the latest incident of the cameras (all when none), started before before."""
    statement = select(EventRow)
    if camera_ids:
        statement = statement.where(EventRow.camera_id.in_(camera_ids))
    if before is not None:
        statement = statement.where(EventRow.started_at < before)
    row = session.scalars(
        statement.order_by(EventRow.started_at.desc(), EventRow.event_id.desc()).limit(1)
    ).first()
    return None if row is None else event_from_row(row)


__all__ = [
    "MAX_NOTABLE",
    "SUMMARY_CHARS",
    "PeriodSummary",
    "brief",
    "count_with_object",
    "latest_incident",
    "short",
    "summarize",
]
