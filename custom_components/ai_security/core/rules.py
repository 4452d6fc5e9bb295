"""Alert rules on security events: which events a rule matches, and a cooldown per camera.

The blueprint "Notify on security event" applies a rule to events as they happen; the action
test_alert_rule replays one over stored events with this module, so a rule can be tried on
last week's events before it is relied on. Conditions are ANDed, and a condition left empty
does not filter.

Cooldown: a matching event is suppressed when its camera's previous matching event started
less than the cooldown before it, whether that one was sent or suppressed itself. A camera that
keeps seeing the same thing therefore notifies once, and again after a quiet spell as long as
the cooldown; events that do not match (a cat at noon, a low-risk event) never hold back an
alert.

The blueprint applies the same cooldown: it looks up the camera's matching events that started
within the cooldown before an incident (search_events). It judges an incident by its verdict
when it opens or is judged again, the replay by its verdict as stored.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
import math
from typing import Final

from sqlalchemy.orm import Session

from .errors import AiSecurityError
from .events import MAX_PAGE_SIZE, EventQuery, levels_at_least, search_events
from .models import RiskLevel, SecurityEvent

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as Home Assistant's time condition spells them, Monday first."""
MAX_COOLDOWN_MINUTES: Final = 1440
DEFAULT_COOLDOWN_MINUTES: Final = 10


class RuleError(AiSecurityError, ValueError):
    """A rule that cannot be evaluated as given; its key names a text of "exceptions"."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertRule:
    """When to notify; checked when made.

    object_types and zones match when the event has at least one of them (any case).
    active_from and active_to are local wall-clock times, as in Home Assistant's time
    condition: from active_from (inclusive) to active_to (exclusive), across midnight when
    active_to is earlier; equal times mean all day; active_from alone runs to midnight,
    active_to alone from midnight. weekdays are those of the event's local start (empty: every
    day). cooldown_minutes 0 suppresses nothing.
    """

    min_level: RiskLevel = RiskLevel.LOW
    object_types: tuple[str, ...] = ()
    camera_ids: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    active_from: time | None = None
    active_to: time | None = None
    weekdays: tuple[str, ...] = ()
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES

    def __post_init__(self) -> None:
        """Refuse a rule that is invalid, so one that exists can always be evaluated."""
        minutes = self.cooldown_minutes
        if not (math.isfinite(minutes) and 0 <= minutes <= MAX_COOLDOWN_MINUTES):
            raise RuleError(
                "invalid_cooldown",
                f"the cooldown must be from 0 to {MAX_COOLDOWN_MINUTES} minutes, not {minutes}",
                cooldown=f"{minutes:g}",
                max=str(MAX_COOLDOWN_MINUTES),
            )
        for day in self.weekdays:
            if day not in WEEKDAYS:
                raise RuleError(
                    "invalid_weekday",
                    f"{day!r} is not a weekday; use {', '.join(WEEKDAYS)}",
                    weekday=str(day),
                    weekdays=", ".join(WEEKDAYS),
                )


def in_schedule(rule: AlertRule, moment: datetime, tz: tzinfo) -> bool:
    """Return whether an aware moment falls in the rule's active hours and weekdays in tz."""
    local = moment.astimezone(tz)
    if rule.weekdays and WEEKDAYS[local.weekday()] not in rule.weekdays:
        return False
    now = local.time()
    after = time(0) if rule.active_from is None else rule.active_from.replace(tzinfo=None)
    before = time.max if rule.active_to is None else rule.active_to.replace(tzinfo=None)
    if after < before:
        return after <= now < before
    # Across midnight, or equal times (all day): outside only from before until after.
    return not before <= now < after


def _shares(wanted: tuple[str, ...], present: Iterable[str]) -> bool:
    """Return whether present has one of wanted, ignoring case."""
    folded = {value.casefold() for value in wanted}
    return any(value.casefold() in folded for value in present)


def fits(rule: AlertRule, event: SecurityEvent) -> bool:
    """Return whether the event is what the rule watches: camera, level, objects and zones."""
    if rule.camera_ids and event.camera_id not in rule.camera_ids:
        return False
    if event.risk_level not in levels_at_least(rule.min_level):
        return False
    if rule.object_types and not _shares(rule.object_types, event.object_types):
        return False
    # Events carry the zones their detections were in (none when the camera has no zones).
    zones: tuple[str, ...] = getattr(event, "zones", ())
    return not rule.zones or _shares(rule.zones, zones)


def matches(rule: AlertRule, event: SecurityEvent, tz: tzinfo) -> bool:
    """Return whether the rule would notify of event, before the cooldown."""
    return fits(rule, event) and in_schedule(rule, event.started_at, tz)


def apply_cooldown(
    events: Iterable[SecurityEvent], minutes: float
) -> tuple[list[SecurityEvent], int]:
    """Return the matching events that are sent, oldest first, and how many were suppressed.

    events are the matching events, of any cameras, in any order. Per camera, an event is
    suppressed when the camera's previous matching event started less than minutes before it.
    """
    cooldown = timedelta(minutes=minutes)
    fired: list[SecurityEvent] = []
    suppressed = 0
    previous: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: (e.started_at, e.event_id)):
        last = previous.get(event.camera_id)
        previous[event.camera_id] = event.started_at
        if last is not None and event.started_at - last < cooldown:
            suppressed += 1
        else:
            fired.append(event)
    return fired, suppressed


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleResult:
    """What a rule did over a time range."""

    fired: list[SecurityEvent] = field(default_factory=list)
    """The events that would have been sent, oldest first."""
    suppressed_by_cooldown: int = 0
    matched: int = 0
    """Events matching the rule, sent or suppressed."""
    evaluated: int = 0
    """Events of the rule's cameras in the range."""


class RuleTally:
    """Events judged by a rule so far: each counted once, only the matching ones kept."""

    def __init__(self, rule: AlertRule, tz: tzinfo) -> None:
        """Start with no events."""
        self.rule = rule
        self.tz = tz
        self._seen: set[str] = set()
        self._matched: list[SecurityEvent] = []

    def add(self, events: Iterable[SecurityEvent]) -> None:
        """Judge events; one already judged (by its id) is skipped."""
        for event in events:
            if event.event_id in self._seen:
                continue
            self._seen.add(event.event_id)
            if matches(self.rule, event, self.tz):
                self._matched.append(event)

    def result(self) -> RuleResult:
        """Return what the rule did over the events added, with the cooldown applied."""
        fired, suppressed = apply_cooldown(self._matched, self.rule.cooldown_minutes)
        return RuleResult(
            fired=fired,
            suppressed_by_cooldown=suppressed,
            matched=len(self._matched),
            evaluated=len(self._seen),
        )


def evaluate(rule: AlertRule, events: Iterable[SecurityEvent], tz: tzinfo) -> RuleResult:
    """Return what the rule does over events given in memory."""
    tally = RuleTally(rule, tz)
    tally.add(events)
    return tally.result()


class RuleReplay:
    """A rule replayed over the stored events of a time range, read one page at a time.

    Each read_page call is one short database call (run it on the database thread), so a long
    range never holds the database for long; only matching events are kept in memory.
    """

    def __init__(self, rule: AlertRule, tz: tzinfo, start: datetime, end: datetime) -> None:
        """Prepare the replay over [start, end); raises EventQueryError for a bad range."""
        self.tally = RuleTally(rule, tz)
        self._camera_ids = rule.camera_ids
        self._start = start
        self._end = end
        self._page = 1
        self._query(1)  # checks the range now, not on the database thread

    def _query(self, page: int) -> EventQuery:
        return EventQuery(
            camera_ids=self._camera_ids,
            start=self._start,
            end=self._end,
            page=page,
            page_size=MAX_PAGE_SIZE,
        )

    def read_page(self, session: Session) -> bool:
        """Judge the next page of events; return whether more pages remain.

        Pages are read newest first; an event that a page boundary shows twice (one stored
        meanwhile shifts the pages) is counted once.
        """
        query = self._query(self._page)
        page = search_events(session, query)
        self.tally.add(page.events)
        self._page += 1
        return bool(page.events) and query.page * query.page_size < page.total

    def result(self) -> RuleResult:
        """Return what the rule did over the pages read."""
        return self.tally.result()
