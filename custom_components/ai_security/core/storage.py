"""The pipeline's database: one worker thread that does all database work, with group commits.

SQLite (WAL) in the Home Assistant configuration folder by default, PostgreSQL when the user gives
a URL. Like Home Assistant's recorder, every query runs in one dedicated thread, so the event loop
never waits on the database and SQLite never sees two writers from this process. The tables are
schema.py's and their migrations migrations.py's; the rows and the names most stages use with a
Database are imported here too, so a stage imports its database tools from one place.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import logging
import threading
from typing import Any, Final

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError,
    InterfaceError,
    OperationalError,
    TimeoutError as PoolTimeoutError,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry

from .database_url import describe_database_url, engine_url
from .migrations import DatabaseError, migrate
from .schema import (
    AuditRow,
    BaselineRow,
    BatchRow,
    CameraRow,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    JobRow,
    MediaRow,
    utcnow,
)

__all__ = [
    "MAX_GROUP",
    "AuditRow",
    "BaselineRow",
    "BatchRow",
    "BlockingRunner",
    "CameraRow",
    "Database",
    "DatabaseError",
    "DetectionRow",
    "EventDetectionRow",
    "EventRow",
    "JobRow",
    "MediaRow",
    "is_transient",
    "utcnow",
]
"""The rows, utcnow and DatabaseError are schema.py's and migrations.py's; named here too because
nearly every stage uses them together with a Database."""

_LOGGER = logging.getLogger(__name__)

type BlockingRunner = Callable[..., Awaitable[Any]]
"""Runs a blocking callable off the loop: Home Assistant's async_add_executor_job or to_thread."""


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
