"""core.storage, schema and migrations on SQLite and on a real PostgreSQL server."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
import json
from pathlib import Path
import threading
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    DateTime,
    bindparam,
    create_engine,
    inspect,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from custom_components.ai_security.core import events, migrations, storage
from custom_components.ai_security.core.database_url import engine_url
from custom_components.ai_security.core.schema import MetaRow
from custom_components.ai_security.core.storage import CameraRow, Database, DatabaseError
from tests.programs import PostgresServer


async def test_schema_created_and_reopened(database_url: str) -> None:
    """A new database gets the current schema; data and version survive a reopen."""
    db = Database(database_url)
    await db.start()
    created = datetime(2026, 11, 26, 3, 0, tzinfo=timezone(timedelta(hours=1)))

    def add(session: Session) -> None:
        session.add(
            CameraRow(
                camera_id="front_door", folder="Front Door", name="Front Door", created_at=created
            )
        )

    await db.run(add)
    await db.close()

    db = Database(database_url)
    await db.start()

    def read(session: Session) -> tuple[str, datetime, str]:
        row = session.get(CameraRow, "front_door")
        assert row is not None
        version = session.scalars(select(MetaRow.value).where(MetaRow.key == "schema_version"))
        return row.name, row.created_at, version.one()

    name, created_at, version = await db.run(read)
    await db.close()
    assert name == "Front Door"
    assert created_at == created
    assert created_at.tzinfo is UTC
    assert version == str(migrations.SCHEMA_VERSION)


async def test_work_runs_on_one_named_thread_and_is_joined(database_url: str) -> None:
    """Every query runs on the same dedicated thread, which is gone after close()."""
    db = Database(database_url)
    await db.start()
    names = {await db.run(lambda _s: threading.current_thread().name) for _ in range(5)}
    assert len(names) == 1
    (name,) = names
    assert name.startswith("ai_security_db")
    assert name != threading.current_thread().name
    await db.close()
    assert not any(t.name == name for t in threading.enumerate())
    with pytest.raises(DatabaseError, match="closed"):
        await db.run(lambda _s: None)


async def test_failed_transaction_rolls_back(database_url: str) -> None:
    """An exception inside run() leaves nothing of that transaction behind."""
    db = Database(database_url)
    await db.start()
    now = storage.utcnow()

    def add_then_fail(session: Session) -> None:
        session.add(CameraRow(camera_id="c", folder="c", name="c", created_at=now))
        session.flush()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await db.run(add_then_fail)
    assert await db.run(lambda s: s.get(CameraRow, "c")) is None
    await db.close()


async def test_naive_datetimes_are_refused(database_url: str) -> None:
    """A naive timestamp would be ambiguous; the database refuses it instead of guessing."""
    db = Database(database_url)
    await db.start()

    def add(session: Session) -> None:
        naive = datetime(2026, 1, 1)  # noqa: DTZ001 - what the test is about
        session.add(CameraRow(camera_id="c", folder="c", name="c", created_at=naive))

    with pytest.raises(Exception, match="naive datetime"):
        await db.run(add)
    await db.close()


async def test_newer_schema_is_refused(database_url: str) -> None:
    """A database written by a newer version is left alone, with a clear error."""
    db = Database(database_url)
    await db.start()
    await db.run(
        lambda s: s.execute(
            update(MetaRow).where(MetaRow.key == "schema_version").values(value="999")
        )
    )
    await db.close()
    db = Database(database_url)
    with pytest.raises(DatabaseError, match="schema version 999, newer"):
        await db.start()
    assert not any(t.name.startswith("ai_security_db") for t in threading.enumerate())


async def test_migrations_run_in_order(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older database is migrated step by step to the current version, once."""
    db = Database(database_url)
    await db.start()
    await db.close()
    steps: list[int] = []
    current = migrations.SCHEMA_VERSION
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", current + 2)
    monkeypatch.setattr(
        migrations,
        "MIGRATIONS",
        {current: lambda _c: steps.append(current), current + 1: lambda _c: steps.append(2)},
    )
    db = Database(database_url)
    await db.start()
    await db.close()
    assert steps == [current, 2]
    db = Database(database_url)
    await db.start()
    version = await db.run(
        lambda s: s.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
    )
    await db.close()
    assert steps == [current, 2]
    assert version == str(current + 2)


async def test_unreachable_database() -> None:
    """A PostgreSQL URL nobody answers gives DatabaseError, and no thread is left behind."""
    db = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(DatabaseError, match="cannot open the database"):
        await db.start()
    assert not any(t.name.startswith("ai_security_db") for t in threading.enumerate())


def test_engine_url() -> None:
    """PostgreSQL URLs use psycopg 3; SQLite URLs pass through."""
    assert engine_url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert engine_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert engine_url("sqlite:////config/ai_security.db") == "sqlite:////config/ai_security.db"
    assert Database("postgresql://h/d").dialect == "postgresql"
    assert Database("sqlite:///x.db").dialect == "sqlite"


async def test_concurrent_calls_commit_together_and_fail_alone(database_url: str) -> None:
    """Calls queued at once share transactions; one that raises loses only its own writes."""
    db = Database(database_url)
    await db.start()
    now = storage.utcnow()

    def add(n: int) -> Callable[[Session], int]:
        def _add(session: Session) -> int:
            session.add(CameraRow(camera_id=f"c{n}", folder=f"f{n}", name="x", created_at=now))
            session.flush()
            if n == 13:
                raise ValueError("unlucky")
            return n

        return _add

    results = await asyncio.gather(*(db.run(add(n)) for n in range(50)), return_exceptions=True)
    stored = await db.run(lambda s: sorted(s.scalars(select(CameraRow.camera_id)).all()))
    # Without failures, calls waiting together share a transaction.
    before = db.transactions
    await asyncio.gather(*(db.run(add(n)) for n in range(100, 150)))
    grouped = db.transactions - before
    await db.close()
    assert [r for r in results if isinstance(r, Exception)] == [results[13]]
    assert str(results[13]) == "unlucky"
    assert [r for r in results if not isinstance(r, Exception)] == [n for n in range(50) if n != 13]
    assert stored == sorted(f"c{n}" for n in range(50) if n != 13)
    assert 1 <= grouped < 50


async def test_cancelled_call_never_runs(database_url: str) -> None:
    """A caller that gave up before its call started does not write anything."""
    db = Database(database_url)
    await db.start()
    try:
        now = storage.utcnow()
        gate = threading.Event()
        blocker = asyncio.ensure_future(db.run(lambda _s: gate.wait(10)))
        await asyncio.sleep(0.05)  # the database thread is now inside the blocker
        late = asyncio.ensure_future(
            db.run(
                lambda s: s.add(CameraRow(camera_id="late", folder="l", name="l", created_at=now))
            )
        )
        await asyncio.sleep(0.05)
        late.cancel()
        gate.set()
        await blocker
        assert await db.run(lambda s: s.get(CameraRow, "late")) is None
    finally:
        await db.close()


async def test_lost_connection_is_replaced_without_failing_callers(
    postgres_server: PostgresServer, postgres_database: str
) -> None:
    """The kept connection dying (a server restart drops it) costs callers nothing.

    The server ends the database thread's session, as a restart would; the next call, a write,
    succeeds on a fresh connection and is stored exactly once.
    """
    db = Database(postgres_database)
    await db.start()
    try:
        now = storage.utcnow()
        assert await db.run(lambda s: s.scalar(select(MetaRow.value))) is not None
        name = make_url(postgres_database).database

        def terminate() -> int:
            with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
            return len(rows)

        assert await asyncio.to_thread(terminate) == 1

        def add(session: Session) -> str:
            session.add(CameraRow(camera_id="after", folder="a", name="a", created_at=now))
            return "added"

        assert await db.run(add) == "added"
        stored = await db.run(lambda s: s.scalars(select(CameraRow.camera_id)).all())
        assert stored == ["after"]
    finally:
        await db.close()


V1_DDL = (
    "CREATE TABLE ai_security_meta (key VARCHAR(64) NOT NULL, value TEXT NOT NULL, "
    "PRIMARY KEY (key))",
    "CREATE TABLE ai_security_events (event_id VARCHAR(32) NOT NULL, "
    "camera_id VARCHAR(128) NOT NULL, started_at {timestamp} NOT NULL, "
    "ended_at {timestamp} NOT NULL, risk_score INTEGER NOT NULL, "
    "risk_level VARCHAR(16) NOT NULL, summary TEXT NOT NULL, reasoning TEXT NOT NULL, "
    "object_types JSON NOT NULL, detection_count INTEGER NOT NULL, "
    "is_fast_path BOOLEAN NOT NULL, source VARCHAR(16) NOT NULL, reviewed BOOLEAN NOT NULL, "
    "created_at {timestamp} NOT NULL, PRIMARY KEY (event_id))",
    "CREATE INDEX ix_ai_security_events_camera_started ON ai_security_events "
    "(camera_id, started_at)",
)
"""What schema version 1 created for the tables that version 2 changes (as create_all wrote it)."""


def _schema(url: str) -> dict[str, Any]:
    """Describe every table's columns and indexes, and the full-text search objects."""
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as conn:
            found = inspect(conn)
            shape: dict[str, Any] = {
                table: (
                    # Sorted: a migration appends columns, so their order is not the schema's.
                    sorted(
                        (c["name"], str(c["type"]), c["nullable"], c["default"], c.get("computed"))
                        for c in found.get_columns(table)
                    ),
                    sorted(
                        (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                        for i in found.get_indexes(table)
                    ),
                )
                for table in found.get_table_names()
            }
            if conn.dialect.name == "sqlite":
                shape["sqlite_master"] = sorted(
                    conn.execute(
                        text(
                            "SELECT type, name, sql FROM sqlite_master "
                            "WHERE type = 'trigger' OR name LIKE 'ai_security_events_fts%'"
                        )
                    ).tuples()
                )
            return shape
    finally:
        engine.dispose()


def _wipe(url: str) -> None:
    """Remove every table, so the database can be built again from V1_DDL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    engine = create_engine(engine_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def _build_v1(url: str) -> None:
    """Create a version 1 database holding two events, written as version 1 wrote them."""
    engine = create_engine(engine_url(url))
    timestamp = "DATETIME" if engine.dialect.name == "sqlite" else "TIMESTAMP WITHOUT TIME ZONE"
    insert_event = text(
        "INSERT INTO ai_security_events VALUES (:event_id, 'front', :at, :at, 80, 'high', "
        ":summary, :reasoning, :objects, 2, false, 'llm', :reviewed, :at)"
    ).bindparams(bindparam("at", type_=DateTime()))  # as version 1 stored times: naive UTC
    try:
        with engine.begin() as conn:
            for statement in V1_DDL:
                conn.execute(text(statement.format(timestamp=timestamp)))
            conn.execute(text("INSERT INTO ai_security_meta VALUES ('schema_version', '1')"))
            for n, (summary, reasoning, objects) in enumerate(
                [
                    ("A person climbed the fence", "At night, hurried", ["person"]),
                    ("Caméra: un vélo volé", "Le voleur est parti", ["vélo", "bicycle"]),
                ]
            ):
                conn.execute(
                    insert_event,
                    {
                        "event_id": f"old{n}",
                        "at": datetime(2026, 1, 1, 3, n),  # noqa: DTZ001 - naive UTC, as stored
                        "summary": summary,
                        "reasoning": reasoning,
                        # As SQLAlchemy's JSON type stores it: non-ASCII escaped.
                        "objects": json.dumps(objects),
                        "reviewed": n == 1,
                    },
                )
    finally:
        engine.dispose()


async def test_migration_from_v1_keeps_events_and_makes_them_searchable(
    database_url: str,
) -> None:
    """A version 1 database becomes the schema a new database gets, events kept and searchable.

    It passes through every later step too (2 -> 3: keep flag, zones, baselines, audit).
    """
    db = Database(database_url)
    await db.start()
    await db.close()
    fresh = _schema(database_url)
    _wipe(database_url)
    _build_v1(database_url)
    assert "dismissed" not in str(_schema(database_url)["ai_security_events"])

    db = Database(database_url)
    await db.start()
    try:
        version = await db.run(
            lambda s: s.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
        )
        assert version == str(migrations.SCHEMA_VERSION)

        def find(session: Session, words: str) -> list[str]:
            page = events.search_events(session, events.EventQuery(text=words))
            return [event.event_id for event in page.events]

        assert await db.run(lambda s: find(s, "fence")) == ["old0"]
        assert await db.run(lambda s: find(s, "hurr")) == ["old0"]
        assert await db.run(lambda s: find(s, "VÉLO")) == ["old1"]
        assert await db.run(lambda s: find(s, "bicycle")) == ["old1"]
        assert await db.run(lambda s: find(s, "")) == ["old1", "old0"]
        old = await db.run(lambda s: events.get_event(s, "old1"))
        assert old is not None
        assert (old.reviewed, old.dismissed, old.review_note) == (True, False, None)
        assert old.started_at == datetime(2026, 1, 1, 3, 1, tzinfo=UTC)
        assert old.object_types == ("vélo", "bicycle")
        # Old events leave the index when deleted; new ones join it.
        assert await db.run(lambda s: events.delete_event(s, "old0")) is True
        assert await db.run(lambda s: find(s, "fence")) == []

        def add(session: Session) -> None:
            at = datetime(2026, 1, 2, tzinfo=UTC)
            session.add(
                storage.EventRow(
                    event_id="new",
                    camera_id="front",
                    started_at=at,
                    ended_at=at,
                    risk_score=5,
                    risk_level="low",
                    summary="A fox",
                    reasoning="",
                    object_types=["fox"],
                    detection_count=1,
                    is_fast_path=False,
                    source="llm",
                    reviewed=False,
                    created_at=at,
                )
            )

        await db.run(add)
        assert await db.run(lambda s: find(s, "fox")) == ["new"]
    finally:
        await db.close()
    assert _schema(database_url) == fresh


async def test_stored_bursts_become_one_incident_per_visit(database_url: str) -> None:
    """Schema 4 merges a camera's fast-path and batch events of one visit into one incident.

    The most worrying verdict stays, with the whole span, every object, zone and detection, and
    the reviews; visits apart, and other cameras, stay apart.
    """
    db = Database(database_url)
    await db.start()
    t0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)

    def seed(session: Session) -> None:
        session.add(CameraRow(camera_id="door", folder="Door", name="Door", created_at=t0))
        session.add(CameraRow(camera_id="yard", folder="Yard", name="Yard", created_at=t0))
        session.flush()
        session.add(
            storage.MediaRow(
                camera_id="door",
                path="/x.jpg",
                sha256="0" * 64,
                media_type="image",
                size=1,
                width=1,
                height=1,
                received_at=t0,
            )
        )
        session.flush()
        for _ in range(4):
            session.add(
                storage.DetectionRow(
                    media_id=1,
                    camera_id="door",
                    label="person",
                    confidence=0.9,
                    x=0,
                    y=0,
                    w=1,
                    h=1,
                    frame_width=1,
                    frame_height=1,
                    detected_at=t0,
                )
            )
        session.flush()

        def event(ident: str, camera: str, start: int, end: int, score: int, **more: Any) -> None:
            level = "critical" if score >= 85 else "high" if score >= 60 else "medium"
            session.add(
                storage.EventRow(
                    event_id=ident,
                    camera_id=camera,
                    started_at=t0 + timedelta(seconds=start),
                    ended_at=t0 + timedelta(seconds=end),
                    risk_score=score,
                    risk_level=level,
                    summary=f"summary {ident}",
                    reasoning="",
                    object_types=more.pop("objects"),
                    detection_count=1,
                    is_fast_path=start == end,
                    source="llm",
                    reviewed=more.pop("reviewed", False),
                    created_at=t0,
                    **more,
                )
            )

        # One visit at the door: a fast-path event per upload and a batch event over them.
        event("fast1", "door", 0, 0, 70, objects=["person"], keep=True)
        event("fast2", "door", 20, 20, 90, objects=["person"], zones=["porch"])
        event(
            "batch",
            "door",
            0,
            45,
            65,
            objects=["car", "person"],
            reviewed=True,
            review_note="postman",
        )
        # Another visit an hour later, and the yard at the same time: apart.
        event("later", "door", 3600, 3610, 40, objects=["cat"])
        event("yard", "yard", 10, 20, 50, objects=["dog"])
        session.flush()
        for ident, detection in (("fast1", 1), ("fast2", 2), ("batch", 1), ("batch", 3)):
            session.add(storage.EventDetectionRow(event_id=ident, detection_id=detection))

    await db.run(seed)

    def merge(session: Session) -> int:
        return migrations.merge_bursts(session.connection())

    try:
        assert await db.run(merge) == 2
        kept = await db.run(lambda s: events.get_event(s, "fast2"))
        row = await db.run(lambda s: s.get(storage.EventRow, "fast2"))
        remaining = await db.run(
            lambda s: sorted(s.scalars(select(storage.EventRow.event_id)).all())
        )
        assert await db.run(merge) == 0  # once merged, nothing more to merge
    finally:
        await db.close()
    assert remaining == ["fast2", "later", "yard"]
    assert kept is not None
    assert (kept.risk_score, kept.summary) == (90, "summary fast2")
    assert (kept.started_at, kept.ended_at) == (t0, t0 + timedelta(seconds=45))
    assert kept.object_types == ("car", "person")
    assert kept.zones == ("porch",)
    assert kept.detection_ids == (1, 2, 3)
    assert kept.detection_count == 3
    assert (kept.reviewed, kept.dismissed, kept.review_note, kept.keep) == (
        True,
        False,
        "postman",
        True,
    )
    assert row.peak_level == "critical"
