"""What a user's database URL means: the only place that parses one.

The config flow checks a URL before using it, diagnostics say which database is used and Repairs
watches the free space under a SQLite file; each needs a fact of the URL, none needs SQLAlchemy's
URL type, which stays in this library with the rest of the database.
"""

from dataclasses import dataclass
import os

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class InvalidDatabaseUrlError(ValueError):
    """The text is not a database URL at all (its scheme and parts cannot be told apart)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseUrl:
    """The facts of a database URL that may be shown: never its host, user or password."""

    dialect: str
    """The database as the engine names it: "sqlite", "postgresql" ("postgres://" too), or the
    scheme's own name for one the integration does not support ("mysql")."""
    folder: str | None
    """The folder of a SQLite database file; None for a server database or one in memory."""


def engine_url(url: str) -> str:
    """Return the SQLAlchemy URL for a user's database URL (PostgreSQL goes through psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def describe_database_url(url: str) -> DatabaseUrl:
    """Return what url names; raise InvalidDatabaseUrlError when it is not a URL."""
    try:
        parsed = make_url(url)
        dialect = make_url(engine_url(url)).get_backend_name()
    except ArgumentError as err:
        raise InvalidDatabaseUrlError(str(err)) from err
    database = parsed.database
    folder = None
    if parsed.drivername.startswith("sqlite") and database and database != ":memory:":
        folder = os.path.dirname(os.path.abspath(database))
    return DatabaseUrl(dialect=dialect, folder=folder)
