"""The pipeline's database: schema, migrations, and one worker thread that does all database work.

SQLite (WAL) in the Home Assistant configuration folder by default, PostgreSQL when the user gives
a URL. Like Home Assistant's recorder, every query runs in one dedicated thread, so the event loop
never waits on the database and SQLite never sees two writers from this process.
"""

import asyncio
import base64
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import logging
import os
import threading
from typing import Any, Final, override

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    column,
    create_engine,
    delete,
    event,
    false,
    insert,
    inspect,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    TimeoutError as PoolTimeoutError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

from .database_url import describe_database_url, engine_url

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 4
"""Bump with a new entry in MIGRATIONS whenever the tables change."""

EVENTS_FTS_TABLE: Final = "ai_security_events_fts"
"""SQLite: the FTS5 index of the events' summary, reasoning and object types."""
EVENTS_SEARCH_TABLE: Final = "ai_security_events_search"
"""SQLite: each event's search_id (its FTS5 rowid) and the columns searches filter and sort on."""
EVENTS_SEARCH_VECTOR: Final = "search_vector"
"""PostgreSQL: the events' generated tsvector column (not mapped: the database computes it)."""

type BlockingRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking callable off the loop: Home Assistant's async_add_executor_job or to_thread."""


class DatabaseError(Exception):
    """The database cannot be used: unreachable, or written by a newer integration version."""


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC (SQLite keeps no zone) and always returned timezone-aware."""

    impl = DateTime(timezone=False)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    @override
    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class FsText(TypeDecorator[str]):
    """A file or folder name as the file system gave it, even when it is not valid UTF-8.

    Linux names are bytes; Python hands the bytes that are not UTF-8 over as lone surrogates,
    which neither SQLite nor PostgreSQL can store. Such a name is stored as "//b64:" and the
    base64 of its bytes, and given back exactly as it was, so the file can still be opened. No
    real value starts so: a folder name holds no "/", and the paths stored are resolved ones,
    which never start with two slashes.
    """

    impl = Text
    cache_ok = True

    @override
    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _FS_PREFIX + base64.b64encode(os.fsencode(value)).decode("ascii")
        return value

    @override
    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or not value.startswith(_FS_PREFIX):
            return value
        return os.fsdecode(base64.b64decode(value[len(_FS_PREFIX) :]))


_FS_PREFIX: Final = "//b64:"


class Base(DeclarativeBase):
    """Declarative base of the integration's tables."""


class MetaRow(Base):
    """Key-value facts about the database itself, such as its schema version."""

    __tablename__ = "ai_security_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CameraRow(Base):
    """A camera, one per folder under the camera root; the id never changes once given."""

    __tablename__ = "ai_security_cameras"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    folder: Mapped[str] = mapped_column(FsText, unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class MediaRow(Base):
    """An accepted upload. The unique content hash is the persistent dedupe index."""

    __tablename__ = "ai_security_media"
    media_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey(CameraRow.camera_id), index=True)
    path: Mapped[str] = mapped_column(FsText)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    media_type: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DetectionRow(Base):
    """One object found in an upload (in a video: in its key frame)."""

    __tablename__ = "ai_security_detections"
    detection_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    media_id: Mapped[int] = mapped_column(ForeignKey(MediaRow.media_id), index=True)
    camera_id: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    frame_width: Mapped[int] = mapped_column(Integer)
    frame_height: Mapped[int] = mapped_column(Integer)
    frame_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    batch_key: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Schema version 3: the camera zone the box's bottom centre lies in, if any."""
    """The batch the detection joined; the batch's event is judged from all of them."""


class EventRow(Base):
    """An incident of a camera (one visit) and its latest verdict: the security event users see."""

    __tablename__ = "ai_security_events"
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    risk_score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str] = mapped_column(Text)
    object_types: Mapped[list[str]] = mapped_column(JSON)
    detection_count: Mapped[int] = mapped_column(Integer)
    is_fast_path: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Schema version 2: the user's review. The server default fills rows that predate it.
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Schema version 3: retention spares events flagged keep; the zones the event happened in.
    keep: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    zones: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Schema version 4: incidents. An open one is judged again as it grows; each judgement says
    # how many of its detections it saw, so a slower, older judgement never overwrites a newer.
    ongoing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    judged_detections: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    peak_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The highest level the incident has had: a rise above it is news, a fall and rise is not."""
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        Index("ix_ai_security_events_camera_started", "camera_id", "started_at"),
        # Newest first over all cameras, and date ranges; event_id breaks ties so that pages
        # of equal timestamps neither repeat nor skip an event.
        Index("ix_ai_security_events_started", "started_at", "event_id"),
    )


class EventDetectionRow(Base):
    """Which detections an event was judged from."""

    __tablename__ = "ai_security_event_detections"
    event_id: Mapped[str] = mapped_column(ForeignKey(EventRow.event_id), primary_key=True)
    detection_id: Mapped[int] = mapped_column(
        ForeignKey(DetectionRow.detection_id), primary_key=True
    )

    # Schema version 3: deleting a detection checks its links (the foreign key), and the
    # clean-up asks which detections no event needs; without it each is a scan of all links.
    __table_args__ = (Index("ix_ai_security_event_detections_detection", "detection_id"),)


class JobRow(Base):
    """A unit of durable work (detect an upload, analyze a batch) and its retry state."""

    __tablename__ = "ai_security_jobs"
    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_ai_security_jobs_due", "state", "kind", "next_attempt_at"),
        # Schema version 3: retention finds finished and dead jobs by age.
        Index("ix_ai_security_jobs_state_updated", "state", "updated_at"),
    )


class BaselineRow(Base):
    """Schema version 3: a camera's usual detection rate of a class in one hour of the week.

    An exponentially decayed count of detections per hour (core.baseline): unusual activity is
    activity well above it.
    """

    __tablename__ = "ai_security_baselines"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hour_of_week: Mapped[int] = mapped_column(Integer, primary_key=True)
    """0 = Monday 00:00-01:00 local time, 167 = Sunday 23:00-24:00."""
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
    """Detections per hour, decayed."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """Schema version 3: one sensitive action: who did what, with which arguments, and how."""

    __tablename__ = "ai_security_audit"
    audit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    success: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BatchRow(Base):
    """A camera's open incident, stored so a restart resumes it with its original deadlines.

    Its detections carry its batch_key, so adding one never rewrites a growing list here. A row
    without event_id is a batch left by schema version 3 (judged into one event when it closes).
    """

    __tablename__ = "ai_security_batches"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch_key: Mapped[str] = mapped_column(String(32), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_detection_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detection_count: Mapped[int] = mapped_column(Integer)
    # Schema version 4: the incident's event, its current judging window, and how many of its
    # detections the last queued judgement covers.
    event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    window_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    judged_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    fast_judged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


type Migration = Callable[[Connection], None]

# SQLite's full-text search, written out literally so it reads as the SQL it is.
#
# ai_security_events_fts is a contentless FTS5 index (the text stays in ai_security_events only).
# Its rowid is the search_id of ai_security_events_search, not the events' rowid: the events
# table has a text primary key, so its rowid is implicit, and implicit rowids may change (SQLite
# allows VACUUM to renumber them; a dump and restore does), which would silently point the index
# at the wrong events. search_id is an INTEGER PRIMARY KEY (never renumbered) and AUTOINCREMENT
# (never reused, so a stale index entry can never match a newer event).
#
# ai_security_events_search also copies the columns a search filters and sorts on, so a search
# goes from the index to them by integer key: reaching the events themselves through their text
# key costs about 1.4 us a row, 140 ms for a word found in 100,000 events; only the page's 50
# events are read from ai_security_events. The triggers keep the copies in step.
#
# unicode61 folds case and diacritics ("camera" finds "Caméra"); the 2- and 3-letter prefix
# indexes keep short prefix searches fast. Object types are indexed as their words (json_each),
# not as the JSON text, where "vélo" is "v\u00e9lo". A contentless table deletes an entry by
# being given the values it was indexed from, which the triggers recompute from the old row.
_SQLITE_SEARCH_DDL: Final = (
    """CREATE TABLE ai_security_events_search (
        search_id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id VARCHAR(32) NOT NULL UNIQUE,
        camera_id VARCHAR(128) NOT NULL,
        started_at DATETIME NOT NULL,
        risk_level VARCHAR(16) NOT NULL,
        reviewed BOOLEAN NOT NULL,
        dismissed BOOLEAN NOT NULL
    )""",
    "CREATE VIRTUAL TABLE ai_security_events_fts USING fts5("
    "summary, reasoning, object_types, content='', "
    "tokenize='unicode61 remove_diacritics 2', prefix='2 3')",
    # Backfill: the events stored before search existed (none in a new database).
    """INSERT INTO ai_security_events_search
        (event_id, camera_id, started_at, risk_level, reviewed, dismissed)
        SELECT event_id, camera_id, started_at, risk_level, reviewed, dismissed
        FROM ai_security_events ORDER BY started_at, event_id""",
    """INSERT INTO ai_security_events_fts (rowid, summary, reasoning, object_types)
        SELECT s.search_id, e.summary, e.reasoning,
            (SELECT group_concat(value, ' ') FROM json_each(e.object_types))
        FROM ai_security_events e JOIN ai_security_events_search s ON s.event_id = e.event_id""",
    """CREATE TRIGGER ai_security_events_search_insert AFTER INSERT ON ai_security_events BEGIN
        INSERT INTO ai_security_events_search
            (event_id, camera_id, started_at, risk_level, reviewed, dismissed)
            VALUES (new.event_id, new.camera_id, new.started_at, new.risk_level, new.reviewed,
                new.dismissed);
        INSERT INTO ai_security_events_fts (rowid, summary, reasoning, object_types)
            SELECT search_id, new.summary, new.reasoning,
                (SELECT group_concat(value, ' ') FROM json_each(new.object_types))
            FROM ai_security_events_search WHERE event_id = new.event_id;
    END""",
    # Reviews change only the copied columns; the index is rewritten only when the text changes.
    """CREATE TRIGGER ai_security_events_search_update
    AFTER UPDATE OF camera_id, started_at, risk_level, reviewed, dismissed
    ON ai_security_events BEGIN
        UPDATE ai_security_events_search SET camera_id = new.camera_id,
            started_at = new.started_at, risk_level = new.risk_level, reviewed = new.reviewed,
            dismissed = new.dismissed
            WHERE event_id IN (old.event_id, new.event_id);
    END""",
    """CREATE TRIGGER ai_security_events_fts_update
    AFTER UPDATE OF event_id, summary, reasoning, object_types ON ai_security_events BEGIN
        INSERT INTO ai_security_events_fts
            (ai_security_events_fts, rowid, summary, reasoning, object_types)
            SELECT 'delete', search_id, old.summary, old.reasoning,
                (SELECT group_concat(value, ' ') FROM json_each(old.object_types))
            FROM ai_security_events_search WHERE event_id = old.event_id;
        UPDATE ai_security_events_search SET event_id = new.event_id
            WHERE event_id = old.event_id;
        INSERT INTO ai_security_events_fts (rowid, summary, reasoning, object_types)
            SELECT search_id, new.summary, new.reasoning,
                (SELECT group_concat(value, ' ') FROM json_each(new.object_types))
            FROM ai_security_events_search WHERE event_id = new.event_id;
    END""",
    """CREATE TRIGGER ai_security_events_search_delete AFTER DELETE ON ai_security_events BEGIN
        INSERT INTO ai_security_events_fts
            (ai_security_events_fts, rowid, summary, reasoning, object_types)
            SELECT 'delete', search_id, old.summary, old.reasoning,
                (SELECT group_concat(value, ' ') FROM json_each(old.object_types))
            FROM ai_security_events_search WHERE event_id = old.event_id;
        DELETE FROM ai_security_events_search WHERE event_id = old.event_id;
    END""",
)

# PostgreSQL's: a stored generated column (adding it computes it for existing rows) with a GIN
# index. The 'simple' configuration lowercases but never stems or drops stop words: summaries
# come in whatever language the LLM answers in.
_POSTGRESQL_SEARCH_DDL: Final = (
    "ALTER TABLE ai_security_events ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    "to_tsvector('simple'::regconfig, coalesce(summary, '') || ' ' || coalesce(reasoning, '')) "
    "|| json_to_tsvector('simple'::regconfig, coalesce(object_types, '[]'::json), "
    "'[\"string\"]'::jsonb)) STORED",
    "CREATE INDEX ix_ai_security_events_search ON ai_security_events USING gin (search_vector)",
)


def _create_event_search(conn: Connection) -> None:
    """Create the events' full-text index (create_all cannot: FTS5 table, generated tsvector)."""
    statements = _SQLITE_SEARCH_DDL if conn.dialect.name == "sqlite" else _POSTGRESQL_SEARCH_DDL
    for statement in statements:
        conn.execute(text(statement))


def _migrate_1_to_2(conn: Connection) -> None:
    """Add the review columns, the started_at index and full-text search of existing events.

    Written out rather than derived from EventRow, so later changes to the model cannot change
    what this step does.
    """
    sqlite = conn.dialect.name == "sqlite"
    # What create_all writes for the same columns on each database.
    false_, timestamp = ("0", "DATETIME") if sqlite else ("false", "TIMESTAMP WITHOUT TIME ZONE")
    for statement in (
        f"ALTER TABLE ai_security_events ADD COLUMN dismissed BOOLEAN DEFAULT {false_} NOT NULL",
        "ALTER TABLE ai_security_events ADD COLUMN review_note TEXT",
        f"ALTER TABLE ai_security_events ADD COLUMN reviewed_at {timestamp}",
        "CREATE INDEX ix_ai_security_events_started ON ai_security_events (started_at, event_id)",
    ):
        conn.execute(text(statement))
    _create_event_search(conn)


def _migrate_2_to_3(conn: Connection) -> None:
    """Add the keep flag and zones of events, the zone of detections, and two indexes.

    The new tables (baselines, audit) are made by create_all after the steps.
    """
    sqlite = conn.dialect.name == "sqlite"
    false_ = "0" if sqlite else "false"
    existing = set(inspect(conn).get_table_names())
    for name, statement in (
        (
            "ai_security_events",
            f"ALTER TABLE ai_security_events ADD COLUMN keep BOOLEAN DEFAULT {false_} NOT NULL",
        ),
        ("ai_security_events", "ALTER TABLE ai_security_events ADD COLUMN zones JSON"),
        (
            "ai_security_detections",
            "ALTER TABLE ai_security_detections ADD COLUMN zone VARCHAR(64)",
        ),
        (
            "ai_security_jobs",
            "CREATE INDEX ix_ai_security_jobs_state_updated "
            "ON ai_security_jobs (state, updated_at)",
        ),
        (
            "ai_security_event_detections",
            "CREATE INDEX ix_ai_security_event_detections_detection "
            "ON ai_security_event_detections (detection_id)",
        ),
    ):
        # A table that is not there at all is created whole, new columns included, by the
        # create_all that follows the steps.
        if name in existing:
            conn.execute(text(statement))


MERGE_IDLE: Final = timedelta(seconds=30)
"""Schema version 4 merges a camera's stored events less than this apart into one incident (the
default idle time after which an incident closes)."""
MERGE_CAP: Final = timedelta(minutes=10)
"""...and no longer than this (the default longest incident)."""

_LEVELS: Final = ("low", "medium", "high", "critical")

# The events table as schema version 3 wrote it: the merge reads and writes only these columns.
_V3_EVENTS = table(
    "ai_security_events",
    column("event_id", String),
    column("camera_id", String),
    column("started_at", UtcDateTime),
    column("ended_at", UtcDateTime),
    column("risk_score", Integer),
    column("risk_level", String),
    column("object_types", JSON),
    column("zones", JSON),
    column("detection_count", Integer),
    column("reviewed", Boolean),
    column("dismissed", Boolean),
    column("review_note", Text),
    column("keep", Boolean),
    column("peak_level", String),
)
_V3_LINKS = table(
    "ai_security_event_detections", column("event_id", String), column("detection_id", Integer)
)


def _migrate_3_to_4(conn: Connection) -> None:
    """Add incidents: the events' and batches' new columns, then merge stored bursts.

    Before, one visit left a fast-path event per upload plus an event per batch; now it is one
    incident. A camera's events that follow each other within MERGE_IDLE (and span at most
    MERGE_CAP) become one: the most worrying verdict is kept with the whole span, every object,
    zone and detection of the others, and the others' reviews (kept if any was; dismissed only
    if every reviewed one was). Their pictures stay on disk until retention removes them.
    """
    sqlite = conn.dialect.name == "sqlite"
    false_ = "0" if sqlite else "false"
    timestamp = "DATETIME" if sqlite else "TIMESTAMP WITHOUT TIME ZONE"
    existing = set(inspect(conn).get_table_names())
    for table_name, statement in (
        (
            "ai_security_events",
            f"ALTER TABLE ai_security_events ADD COLUMN ongoing BOOLEAN DEFAULT {false_} NOT NULL",
        ),
        (
            "ai_security_events",
            "ALTER TABLE ai_security_events ADD COLUMN judged_detections INTEGER "
            "DEFAULT 0 NOT NULL",
        ),
        ("ai_security_events", "ALTER TABLE ai_security_events ADD COLUMN peak_level VARCHAR(16)"),
        ("ai_security_events", f"ALTER TABLE ai_security_events ADD COLUMN updated_at {timestamp}"),
        ("ai_security_batches", "ALTER TABLE ai_security_batches ADD COLUMN event_id VARCHAR(32)"),
        (
            "ai_security_batches",
            f"ALTER TABLE ai_security_batches ADD COLUMN window_opened_at {timestamp}",
        ),
        (
            "ai_security_batches",
            "ALTER TABLE ai_security_batches ADD COLUMN judged_count INTEGER DEFAULT 0 NOT NULL",
        ),
        (
            "ai_security_batches",
            f"ALTER TABLE ai_security_batches ADD COLUMN fast_judged BOOLEAN DEFAULT {false_} "
            "NOT NULL",
        ),
    ):
        if table_name in existing:
            conn.execute(text(statement))
    if "ai_security_events" in existing:
        merge_bursts(conn)


def _incidents(rows: list[Any]) -> list[list[Any]]:
    """Group one camera's events (in start order) into incidents."""
    groups: list[list[Any]] = []
    end: datetime | None = None
    for row in rows:
        if (
            groups
            and end is not None
            and row.started_at <= end + MERGE_IDLE
            and row.ended_at <= groups[-1][0].started_at + MERGE_CAP
        ):
            groups[-1].append(row)
            end = max(end, row.ended_at)
            continue
        groups.append([row])
        end = row.ended_at
    return groups


def merge_bursts(conn: Connection) -> int:
    """Merge each camera's stored events that belong to one visit; return how many were merged.

    Runs once, in the migration to schema version 4 (see _migrate_3_to_4).
    """
    events = _V3_EVENTS
    rows = conn.execute(
        select(events).order_by(events.c.camera_id, events.c.started_at, events.c.event_id)
    ).all()
    by_camera: dict[str, list[Any]] = {}
    for row in rows:
        by_camera.setdefault(row.camera_id, []).append(row)
    merged = 0
    for camera_rows in by_camera.values():
        for group in _incidents(camera_rows):
            if len(group) > 1:
                _merge(conn, group)
                merged += len(group) - 1
    conn.execute(
        update(events).where(events.c.peak_level.is_(None)).values(peak_level=events.c.risk_level)
    )
    if merged:
        _LOGGER.info("Merged %s stored events into the incidents they belong to", merged)
    return merged


def _merge(conn: Connection, group: list[Any]) -> None:
    """Merge group's events into its most worrying one (highest score, then the first)."""
    events, links = _V3_EVENTS, _V3_LINKS
    kept = max(group, key=lambda row: (row.risk_score, -group.index(row)))
    others = [row.event_id for row in group if row.event_id != kept.event_id]
    linked = set(
        conn.scalars(
            select(links.c.detection_id).where(
                links.c.event_id.in_([row.event_id for row in group])
            )
        )
    )
    conn.execute(delete(links).where(links.c.event_id.in_([row.event_id for row in group])))
    if linked:
        conn.execute(
            insert(links),
            [{"event_id": kept.event_id, "detection_id": ident} for ident in sorted(linked)],
        )
    conn.execute(delete(events).where(events.c.event_id.in_(others)))
    reviewed = [row for row in group if row.reviewed]
    notes = dict.fromkeys(row.review_note for row in group if row.review_note)
    conn.execute(
        update(events)
        .where(events.c.event_id == kept.event_id)
        .values(
            started_at=min(row.started_at for row in group),
            ended_at=max(row.ended_at for row in group),
            object_types=sorted({label for row in group for label in row.object_types or ()}),
            zones=sorted({zone for row in group for zone in row.zones or ()}) or None,
            detection_count=len(linked) or max(row.detection_count for row in group),
            reviewed=bool(reviewed),
            dismissed=bool(reviewed) and all(row.dismissed for row in reviewed),
            review_note="\n".join(notes) or None,
            keep=any(row.keep for row in group),
            peak_level=max(
                (row.risk_level for row in group),
                key=lambda level: _LEVELS.index(level) if level in _LEVELS else -1,
            ),
        )
    )


MIGRATIONS: dict[int, Migration] = {1: _migrate_1_to_2, 2: _migrate_2_to_3, 3: _migrate_3_to_4}
"""Step from version N to N+1, keyed by N."""


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    """Use WAL (readers never block the writer) and enforce foreign keys on every connection.

    The driver's own transaction handling is switched off (SQLAlchemy emits BEGIN itself, see
    _sqlite_begin): with it on, pysqlite breaks SAVEPOINTs, which group commits rely on.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Start SQLite transactions explicitly (the driver's implicit BEGIN is off)."""
    conn.exec_driver_sql("BEGIN")


def _create_engine(url: str) -> Engine:
    """Build the engine for url; SQLite gets its pragmas on every new connection."""
    sa_url = engine_url(url)
    if sa_url.startswith("sqlite"):
        engine = create_engine(sa_url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(sa_url, pool_pre_ping=True, pool_size=2, max_overflow=0)


def migrate(engine: Engine) -> int:
    """Create the schema, or migrate it to SCHEMA_VERSION; return the version found before.

    Raises DatabaseError when the database is newer than this code understands, so a downgrade
    never damages data.
    """
    with engine.begin() as conn:
        if not inspect(conn).has_table(MetaRow.__tablename__):
            Base.metadata.create_all(conn)
            _create_event_search(conn)
            conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
            return 0
        row = conn.execute(
            select(MetaRow.value).where(MetaRow.key == "schema_version")
        ).scalar_one()
        found = int(row)
        if found > SCHEMA_VERSION:
            raise DatabaseError(
                f"the database has schema version {found}, newer than this version of the "
                f"integration understands ({SCHEMA_VERSION})"
            )
        for version in range(found, SCHEMA_VERSION):
            _LOGGER.info(
                "Migrating the database from schema version %s to %s", version, version + 1
            )
            MIGRATIONS[version](conn)
        # Tables added since (create_all skips existing ones).
        Base.metadata.create_all(conn)
        conn.execute(
            update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION))
        )
        return found


@dataclass(slots=True)
class _Work:
    """One run() call waiting for the database thread."""

    fn: Callable[[Session], Any]
    future: asyncio.Future[Any]


MAX_GROUP: Final = 500
"""Most run() calls committed together in one transaction."""


class Database:
    """All database access, serialized on one worker thread, with group commits.

    `await db.run(fn)` runs fn(session) in a transaction on that thread and returns its result;
    fn must return plain data (dataclasses, ints), never ORM objects bound to the session, and
    must not change anything outside the database (it may run twice, see below). When calls
    queue up faster than they commit, the thread takes all waiting calls at once and runs them
    in one transaction: the many small writes of a busy pipeline cost one commit instead of one
    each. If one of them raises, that transaction is rolled back and each call of the group runs
    again in a transaction of its own, so only the failing call fails. Under light load every
    call is its own transaction.
    """

    def __init__(self, url: str, *, run_blocking: BlockingRunner | None = None) -> None:
        """Remember the URL; nothing is opened before start()."""
        self.url = url
        self._run_blocking: BlockingRunner = run_blocking or asyncio.to_thread
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        """The database thread's one connection, kept open (checking one out per transaction
        from the pool costs more than most statements the pipeline runs)."""
        self._pending: deque[_Work] = deque()
        self._lock = threading.Lock()
        self._draining = False
        self.transactions = 0
        """Transactions committed or rolled back so far (for benchmarks and tests)."""

    @property
    def dialect(self) -> str:
        """Return the database's dialect name ("sqlite" or "postgresql")."""
        return describe_database_url(self.url).dialect

    async def start(self) -> None:
        """Open the database and migrate it; raise DatabaseError when it cannot be used."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai_security_db")
        try:
            await self._in_thread(self._open)
        except DatabaseError:
            await self.close()
            raise
        except Exception as err:
            await self.close()
            raise DatabaseError(f"cannot open the database: {err}") from err

    def _open(self) -> None:
        engine = _create_engine(self.url)
        try:
            migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine

    async def _in_thread[T](self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise DatabaseError("the database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run[T](self, fn: Callable[[Session], T]) -> T:
        """Run fn(session) in a transaction on the database thread and return its result."""
        executor = self._executor
        if executor is None:
            raise DatabaseError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._pending.append(_Work(fn, future))
            start_drain = not self._draining
            self._draining = True
        if start_drain:
            executor.submit(self._drain, loop)
        return await future

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run waiting calls in groups until none is left (on the database thread)."""
        while True:
            with self._lock:
                if not self._pending:
                    self._draining = False
                    return
                group = [self._pending.popleft() for _ in range(min(len(self._pending), MAX_GROUP))]
            outcomes = self._run_group(group)
            loop.call_soon_threadsafe(_resolve, group, outcomes)

    def _run_group(self, group: list[_Work], *, reconnect: bool = True) -> list[tuple[bool, Any]]:
        """Run group in one transaction; return (succeeded, result or exception) per call.

        When the kept connection turns out dead (the server restarted or dropped it), the group
        runs once more on a fresh connection: its transaction never committed, so nothing runs
        twice in effect, and callers see no error for an outage that is already over.
        """
        if self._engine is None:
            error = DatabaseError("the database is not open")
            return [(False, error)] * len(group)
        self.transactions += 1
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            conn = self._conn
            # The session joins the connection's transaction; flushing before the commit
            # writes what callers changed through the ORM.
            with conn.begin(), Session(bind=conn, expire_on_commit=False) as session:
                # A caller that gave up before its call started is skipped, as
                # run_in_executor skips a cancelled call that has not started.
                results = [None if work.future.cancelled() else work.fn(session) for work in group]
                session.flush()
        except Exception as err:  # noqa: BLE001 - handed to the caller(s)
            if self._drop_broken_connection() and reconnect:
                _LOGGER.info("The database connection was lost (%s); reconnecting", err)
                return self._run_group(group, reconnect=False)
            if len(group) == 1 or is_transient(err):
                # A busy or unreachable database fails every call alike: running them one by
                # one would only wait out the busy timeout once per call.
                return [(False, err)] * len(group)
            # Somebody's call failed (or the commit did): find out whose, one at a time.
            return [outcome for work in group for outcome in self._run_group([work])]
        return [(True, result) for result in results]

    def _drop_broken_connection(self) -> bool:
        """Forget the connection if a failure broke it; return whether it did.

        A server restart or an administrator ends the session; the next transaction then opens
        a fresh connection. A connection that is still fine is kept.
        """
        conn = self._conn
        if conn is None or not (conn.invalidated or conn.closed):
            return False
        self._conn = None
        conn.close()
        return True

    def _dispose(self, engine: Engine) -> None:
        """Close the kept connection and the engine's pool (on the database thread)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        engine.dispose()

    async def close(self) -> None:
        """Finish queued work, close connections and join the database thread."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        engine, self._engine = self._engine, None
        if engine is not None:
            # Queued behind any drain still running, so waiting calls finish first.
            await asyncio.get_running_loop().run_in_executor(executor, self._dispose, engine)
        # Joining blocks, so it happens on another thread while the loop goes on.
        await self._run_blocking(executor.shutdown, True)


def _resolve(group: list[_Work], outcomes: list[tuple[bool, Any]]) -> None:
    """Hand each caller its result or exception (on the loop)."""
    for work, (succeeded, value) in zip(group, outcomes, strict=True):
        if work.future.cancelled():
            continue
        if succeeded:
            work.future.set_result(value)
        else:
            work.future.set_exception(value)


_SQLITE_TRANSIENT: Final = frozenset({5, 6, 14})
"""SQLITE_BUSY, SQLITE_LOCKED and SQLITE_CANTOPEN (primary result codes)."""


def is_transient(error: BaseException) -> bool:
    """Return whether a database error will likely pass by itself, so the work is worth retrying.

    SQLite busy or locked by another process, a PostgreSQL server restarting or unreachable, a
    dropped connection: the same statement succeeds later. A value the database refuses, or a
    bug, fails again however often it is tried.
    """
    if isinstance(error, PoolTimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    code = getattr(error.orig, "sqlite_errorcode", None)
    if code is None:
        # PostgreSQL (psycopg): OperationalError is the server or the connection failing (not
        # a statement's mistake, which is a ProgrammingError or a DataError).
        return True
    # SQLite also calls a missing table or a syntax error "operational": only a busy or
    # locked database, or a file that cannot be opened right now, passes by itself.
    return code & 0xFF in _SQLITE_TRANSIENT


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC (the only kind the database accepts)."""
    return datetime.now(UTC)
