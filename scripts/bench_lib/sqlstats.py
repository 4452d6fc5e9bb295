"""Counts of the SQL the pipeline runs (--sql-stats): transactions and statements per image.

Attached to the pipeline's SQLAlchemy engine through its public event hooks, so the integration
itself is untouched; the counting costs a few microseconds per statement on the database thread.
"""

from collections import Counter
import re
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", re.IGNORECASE)


class SqlStats:
    """Statements by verb and table, and commits, from attach() until detach()."""

    def __init__(self, engine: Engine) -> None:
        """Count on engine once attach() is called."""
        self.engine = engine
        self.statements: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        """Time inside the driver per statement kind (cursor.execute, SQLite's own work)."""
        self._current: tuple[str, float] | None = None
        self.commits = 0
        self.rollbacks = 0

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        table = _TABLE.search(statement)
        name = table.group(1).removeprefix("ai_security_") if table else ""
        key = f"{verb} {name}".strip()
        self.statements[key] += 1
        self._current = (key, time.perf_counter())

    def _executed(self, *_args: Any) -> None:
        if self._current is not None:
            key, started = self._current
            self.seconds[key] += time.perf_counter() - started
            self._current = None

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _rollback(self, _conn: Any) -> None:
        self.rollbacks += 1

    def attach(self) -> None:
        """Start counting."""
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "after_cursor_execute", self._executed)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)

    def detach(self) -> None:
        """Stop counting."""
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "after_cursor_execute", self._executed)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)

    def summary(self, images: int) -> list[str]:
        """Return report lines: commits and statements per image."""
        per = max(1, images)
        lines = [
            f"SQL per image: {self.commits / per:.2f} commits, "
            f"{sum(self.statements.values()) / per:.2f} statements, "
            f"{self.rollbacks / per:.2f} rollbacks (transactions that wrote nothing end in one)"
        ]
        lines.append("  per image   us each   statement  (us: wall time in the driver)")
        lines.extend(
            f"  {count / per:9.2f}  {self.seconds[statement] / count * 1e6:8.0f}   {statement}"
            for statement, count in self.statements.most_common()
        )
        return lines
