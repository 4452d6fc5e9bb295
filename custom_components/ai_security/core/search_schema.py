"""The events' full-text index, which SQLAlchemy's create_all cannot make.

SQLite gets an FTS5 table with a table of the columns searches filter on, kept in step by
triggers; PostgreSQL a generated tsvector column with a GIN index. Written out as the SQL it is
and kept apart from the mapped tables (schema.py) and the migrations that create it: the same
statements make a new database's index and backfill an older database's (migrations.py), and the
searches (event_search.py) read the names it gives.
"""

from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection

EVENTS_FTS_TABLE: Final = "ai_security_events_fts"
"""SQLite: the FTS5 index of the events' summary, reasoning and object types."""
EVENTS_SEARCH_TABLE: Final = "ai_security_events_search"
"""SQLite: each event's search_id (its FTS5 rowid) and the columns searches filter and sort on."""
EVENTS_SEARCH_VECTOR: Final = "search_vector"
"""PostgreSQL: the events' generated tsvector column (not mapped: the database computes it)."""

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


def create_event_search(conn: Connection) -> None:
    """Create the events' full-text index (create_all cannot: FTS5 table, generated tsvector)."""
    statements = _SQLITE_SEARCH_DDL if conn.dialect.name == "sqlite" else _POSTGRESQL_SEARCH_DDL
    for statement in statements:
        conn.execute(text(statement))
