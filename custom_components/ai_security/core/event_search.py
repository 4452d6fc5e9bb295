"""Searching stored events: the query a person asks, checked, and the page of events it finds.

Text goes through search_words, so nothing typed reaches FTS5 or tsquery syntax; on SQLite a text
search reads the full-text index and its search table (search_schema.py), on PostgreSQL the
events' tsvector column. Kept apart from reviewing, deleting and browsing events (events.py):
this is the one module that knows how each database searches, and the one a search's cost
depends on.
"""

from dataclasses import dataclass, field, fields
from datetime import datetime
import re
from typing import Any, Final
import unicodedata

from sqlalchemy import (
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    String,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlalchemy.orm import Session

from .errors import AiSecurityError
from .event_rows import event_from_row
from .models import RiskLevel, SecurityEvent
from .risk import LEVEL_ORDER, at_least
from .schema import EventRow, UtcDateTime
from .search_schema import EVENTS_FTS_TABLE, EVENTS_SEARCH_TABLE, EVENTS_SEARCH_VECTOR

MAX_TEXT_LENGTH: Final = 500
"""Longest search text: enough for any phrase a person types, short enough to stay cheap."""
MAX_PAGE_SIZE: Final = 500

_WORD = re.compile(r"[^\W_]+")
"""A word of a search: a run of Unicode letters and digits. Everything else only separates words,
so nothing a user types reaches FTS5 or tsquery syntax."""

# SQLite's search tables, as light table clauses (not ORM models: create_all must not make them).
_FTS = table(EVENTS_FTS_TABLE, column("rowid", Integer))
_SEARCH = table(
    EVENTS_SEARCH_TABLE,
    column("search_id", Integer),
    column("event_id", String),
    column("camera_id", String),
    column("started_at", UtcDateTime),
    column("risk_level", String),
    column("reviewed", Boolean),
    column("dismissed", Boolean),
)


class EventQueryError(AiSecurityError, ValueError):
    """A search or review request that cannot be served as given.

    Its translation key names a text of the integration's "exceptions", so the Home Assistant
    layer raises a translated ServiceValidationError without knowing why each check exists.
    """


@dataclass(frozen=True, kw_only=True, slots=True)
class EventQuery:
    """Which events to list, and which page of them; checked when made.

    start is inclusive and end exclusive, both on the event's start time. text matches events
    that have every word of it as the start of a word of their summary, reasoning or object
    types, ignoring case (and on SQLite accents too). Text without any letter or digit, such
    as `"*(:-`, does not filter at all: it lists every event, as an empty search box does.
    """

    text: str = ""
    camera_ids: tuple[str, ...] = ()
    min_level: RiskLevel | None = None
    start: datetime | None = None
    end: datetime | None = None
    reviewed: bool | None = None
    dismissed: bool | None = None
    page: int = 1
    page_size: int = 50

    def __post_init__(self) -> None:
        """Refuse a query that is invalid, so one that exists can always be run."""
        self.validate()

    def validate(self) -> None:
        """Raise EventQueryError, with a translation key, for a query that cannot be run."""
        if self.page < 1:
            raise EventQueryError(
                "invalid_page", f"page must be 1 or more, not {self.page}", page=str(self.page)
            )
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise EventQueryError(
                "invalid_page_size",
                f"page_size must be from 1 to {MAX_PAGE_SIZE}, not {self.page_size}",
                page_size=str(self.page_size),
                max=str(MAX_PAGE_SIZE),
            )
        if len(self.text) > MAX_TEXT_LENGTH:
            raise EventQueryError(
                "search_text_too_long",
                f"the search text has {len(self.text)} characters; at most {MAX_TEXT_LENGTH}",
                length=str(len(self.text)),
                max=str(MAX_TEXT_LENGTH),
            )
        for moment in (self.start, self.end):
            # The database refuses naive times too, but only once the query runs, and with an
            # error a person cannot act on.
            if moment is not None and moment.utcoffset() is None:
                raise EventQueryError(
                    "naive_datetime",
                    f"{moment.isoformat()} has no time zone",
                    datetime=moment.isoformat(),
                )
        if self.start is not None and self.end is not None and self.start > self.end:
            raise EventQueryError(
                "invalid_date_range",
                f"the range starts ({self.start.isoformat()}) after it ends "
                f"({self.end.isoformat()})",
                start=self.start.isoformat(),
                end=self.end.isoformat(),
            )

    @property
    def words(self) -> tuple[str, ...]:
        """Return the words searched for (see search_words)."""
        return search_words(self.text)


@dataclass(frozen=True, kw_only=True, slots=True)
class EventPage:
    """One page of a search, newest event first, and how many events match in all."""

    events: list[SecurityEvent] = field(default_factory=list)
    total: int = 0
    page: int = 1
    page_size: int = 50


def search_words(text: str) -> tuple[str, ...]:
    """Return the distinct words of text, in order: runs of Unicode letters and digits.

    The text is NFC-normalized first so an accent typed as a combining mark stays in its word.
    """
    words = _WORD.findall(unicodedata.normalize("NFC", text))
    return tuple(dict.fromkeys(words))


def fts5_query(words: tuple[str, ...]) -> str:
    """Return the SQLite FTS5 query for events having every word as a prefix of one of theirs.

    Each word is quoted (an FTS5 string cannot be an operator or column filter) and only holds
    letters and digits anyway.
    """
    return " AND ".join('"{}"*'.format(word.replace('"', '""')) for word in words)


def tsquery(words: tuple[str, ...]) -> str:
    """Return the PostgreSQL to_tsquery text with every word as a quoted prefix term, ANDed."""
    return " & ".join(
        "'{}':*".format(word.replace("\\", "\\\\").replace("'", "''")) for word in words
    )


def levels_at_least(level: RiskLevel) -> tuple[RiskLevel, ...]:
    """Return level and every level more worrying than it (risk_level is stored as text)."""
    return tuple(other for other in LEVEL_ORDER if at_least(other, level))


@dataclass(frozen=True, slots=True)
class _Columns:
    """The columns a search filters and sorts on, in the table it reads them from."""

    event_id: ColumnElement[Any]
    camera_id: ColumnElement[Any]
    started_at: ColumnElement[Any]
    risk_level: ColumnElement[Any]
    reviewed: ColumnElement[Any]
    dismissed: ColumnElement[Any]

    @classmethod
    def of(cls, source: FromClause) -> _Columns:
        """Return source's columns of those names."""
        return cls(*(source.c[spec.name] for spec in fields(cls)))


_EVENTS: Final = _Columns.of(EventRow.__table__)
_SEARCHED: Final = _Columns.of(_SEARCH)


def _filters(columns: _Columns, query: EventQuery) -> list[ColumnElement[bool]]:
    """Return the conditions of query other than its text."""
    conditions: list[ColumnElement[bool]] = []
    if query.camera_ids:
        conditions.append(columns.camera_id.in_(query.camera_ids))
    if query.min_level is not None:
        conditions.append(columns.risk_level.in_(levels_at_least(query.min_level)))
    if query.start is not None:
        conditions.append(columns.started_at >= query.start)
    if query.end is not None:
        conditions.append(columns.started_at < query.end)
    if query.reviewed is not None:
        conditions.append(columns.reviewed == query.reviewed)
    if query.dismissed is not None:
        conditions.append(columns.dismissed == query.dismissed)
    return conditions


def _matching(
    session: Session, query: EventQuery
) -> tuple[FromClause, list[ColumnElement[bool]], _Columns]:
    """Return where the matching events are found, the conditions, and the columns to sort on.

    A text search on SQLite reads the FTS5 index and the search table only (see search_schema);
    every other query reads the events table, with its indexes.
    """
    events = EventRow.__table__
    conditions = _filters(_EVENTS, query)
    words = query.words
    if not words:
        return events, conditions, _EVENTS
    if session.get_bind().dialect.name == "postgresql":
        vector = literal_column(f"{EventRow.__tablename__}.{EVENTS_SEARCH_VECTOR}", TSVECTOR)
        matches = vector.op("@@", is_comparison=True)(
            func.to_tsquery(cast("simple", REGCONFIG), tsquery(words))
        )
        return events, [*conditions, matches], _EVENTS
    # FTS5 wants the table's name on the left of MATCH; the query is a bound parameter.
    matches = literal_column(EVENTS_FTS_TABLE).op("MATCH", is_comparison=True)(fts5_query(words))
    source = _FTS.join(_SEARCH, _SEARCH.c.search_id == _FTS.c.rowid)
    return source, [matches, *_filters(_SEARCHED, query)], _SEARCHED


def _count(session: Session, source: FromClause, conditions: list[ColumnElement[bool]]) -> int:
    return session.scalar(select(func.count()).select_from(source).where(*conditions)) or 0


def count_events(session: Session, query: EventQuery) -> int:
    """Return how many events match query, on all pages."""
    source, conditions, _columns = _matching(session, query)
    return _count(session, source, conditions)


def search_events(session: Session, query: EventQuery) -> EventPage:
    """Return the page of events matching query, newest first, and the number matching in all.

    Ties in start time are broken by event id, so pages neither repeat nor skip events. The
    events come without their detection ids (get_event has them).
    """
    source, conditions, columns = _matching(session, query)
    total = _count(session, source, conditions)
    offset = (query.page - 1) * query.page_size
    if offset >= total:
        return EventPage(total=total, page=query.page, page_size=query.page_size)
    # The page's ids first, then only those events: sorting carries ids, not whole rows.
    ids = session.scalars(
        select(columns.event_id)
        .select_from(source)
        .where(*conditions)
        .order_by(columns.started_at.desc(), columns.event_id.desc())
        .limit(query.page_size)
        .offset(offset)
    ).all()
    rows = {
        row.event_id: row
        for row in session.scalars(select(EventRow).where(EventRow.event_id.in_(ids)))
    }
    events = [event_from_row(rows[event_id]) for event_id in ids]
    return EventPage(events=events, total=total, page=query.page, page_size=query.page_size)
