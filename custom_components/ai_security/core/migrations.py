"""How a database of any older schema version becomes the current one, and when it cannot.

One step per version, each written out as the SQL it ran rather than derived from the mapped
tables, so that changing the tables (schema.py) can never change what an old step does. Kept
apart from the database thread (storage.py), which only calls migrate() once when it opens.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
import logging
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    Text,
    column,
    delete,
    insert,
    inspect,
    select,
    table,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from .schema import Base, MetaRow, UtcDateTime
from .search_schema import create_event_search

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 5
"""Bump with a new entry in MIGRATIONS whenever the tables change."""


class DatabaseError(Exception):
    """The database cannot be used: unreachable, or written by a newer integration version.

    Defined here, where a newer version is found; the database thread (storage.py) raises it for
    a database it cannot open.
    """


type Migration = Callable[[Connection], None]


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
    create_event_search(conn)


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


def _migrate_4_to_5(conn: Connection) -> None:
    """Add what version 5 stores: verdict details, "missed" reviews, calibration, spots.

    That is: the events' verdict details, the review outcome "missed", the calibration, when
    each camera's learning and learned spots were last reset, and which detections were
    taken for a learned spot. Older events keep no details (they were judged before verdicts
    had them) and were never reviewed as missed; no older detection was suppressed.
    """
    existing = set(inspect(conn).get_table_names())
    sqlite = conn.dialect.name == "sqlite"
    false_, timestamp = ("0", "DATETIME") if sqlite else ("false", "TIMESTAMP WITHOUT TIME ZONE")
    statements = {
        "ai_security_cameras": (
            f"ALTER TABLE ai_security_cameras ADD COLUMN learning_since {timestamp}",
            f"ALTER TABLE ai_security_cameras ADD COLUMN spots_since {timestamp}",
        ),
        "ai_security_detections": (
            "ALTER TABLE ai_security_detections ADD COLUMN suppressed BOOLEAN "
            f"DEFAULT {false_} NOT NULL",
        ),
        "ai_security_events": (
            "ALTER TABLE ai_security_events ADD COLUMN details JSON",
            "ALTER TABLE ai_security_events ADD COLUMN raw_score INTEGER",
            "ALTER TABLE ai_security_events ADD COLUMN calibration TEXT",
            f"ALTER TABLE ai_security_events ADD COLUMN missed BOOLEAN DEFAULT {false_} NOT NULL",
        ),
    }
    for table_name, changes in statements.items():
        if table_name in existing:
            for statement in changes:
                conn.execute(text(statement))


MIGRATIONS: dict[int, Migration] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
}
"""Step from version N to N+1, keyed by N."""


def migrate(engine: Engine) -> int:
    """Create the schema, or migrate it to SCHEMA_VERSION; return the version found before.

    Raises DatabaseError when the database is newer than this code understands, so a downgrade
    never damages data.
    """
    with engine.begin() as conn:
        if not inspect(conn).has_table(MetaRow.__tablename__):
            Base.metadata.create_all(conn)
            create_event_search(conn)
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
