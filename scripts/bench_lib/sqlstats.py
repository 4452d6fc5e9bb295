"""Counts of the SQL the pipeline runs (--sql-stats): transactions and statements per image.

Attached to the pipeline's SQLAlchemy engine through its public event hooks, so the integration
itself is untouched; the counting costs a few microseconds per statement on the database thread.
"""

from __future__ import annotations

from collections import Counter
import re
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
        self.commits = 0
        self.rollbacks = 0

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        table = _TABLE.search(statement)
        name = table.group(1).removeprefix("ai_security_") if table else ""
        self.statements[f"{verb} {name}".strip()] += 1

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def _rollback(self, _conn: Any) -> None:
        self.rollbacks += 1

    def attach(self) -> None:
        """Start counting."""
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)

    def detach(self) -> None:
        """Stop counting."""
        event.remove(self.engine, "before_cursor_execute", self._statement)
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
        lines.extend(
            f"  {count / per:6.2f}  {statement}"
            for statement, count in self.statements.most_common()
        )
        return lines
