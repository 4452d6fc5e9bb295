"""core.storage on SQLite and on a real PostgreSQL server: schema, migrations, the worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
import threading

import psycopg
import pytest
from sqlalchemy import make_url, select, update
from sqlalchemy.orm import Session

from custom_components.ai_security.core import storage
from custom_components.ai_security.core.storage import (
    CameraRow,
    Database,
    DatabaseError,
    MetaRow,
    engine_url,
)

from .programs import PostgresServer


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
    assert version == str(storage.SCHEMA_VERSION)


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
    monkeypatch.setattr(storage, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(
        storage, "MIGRATIONS", {1: lambda _c: steps.append(1), 2: lambda _c: steps.append(2)}
    )
    db = Database(database_url)
    await db.start()
    await db.close()
    assert steps == [1, 2]
    db = Database(database_url)
    await db.start()
    version = await db.run(
        lambda s: s.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
    )
    await db.close()
    assert steps == [1, 2]
    assert version == "3"


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
