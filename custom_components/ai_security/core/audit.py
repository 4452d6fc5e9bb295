r"""The audit trail: who called which action with what, and how it went, without paths or secrets.

What is redacted (redact(), redact_value(), redact_text()), and why:

- Values of sensitive keys, whatever they hold: file locations (path, file, folder, camera_root,
  database_url, and keys ending in _path, _file, _folder, _dir...) and secrets (password,
  token, api_key, secret...). Keys are compared case-insensitively. The log is read by admins
  through an action and may be shared for support; file locations tell how the house's
  cameras and disks are laid out, and a database URL may hold a password.
- Strings that are a file system path as a whole: absolute (/x, ~/x, C:\x, \\server\x, file:
  and sqlite: URLs), or relative ones such as the camera uploads' "Front Door/2026/a.jpg": a
  path separator and a last part with a file extension. Folder names alone ("Front Door") and
  strings like "and/or" or "2026/03/01" stay.
- Inside longer strings (error messages): absolute paths and space-free relative file paths are
  replaced; user:password@ is cut out of URLs everywhere ("postgresql://u:p@db/x" becomes
  "postgresql://db/x").
- Strings are cut to MAX_STRING characters, lists and mappings to MAX_ITEMS entries, nesting
  to MAX_DEPTH levels, and NUL characters dropped (PostgreSQL's text refuses them): one action
  called with a huge argument must not bloat the log. Values that are not JSON become JSON:
  tuples and sets lists, datetimes ISO text, non-finite floats and other objects their text.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
import math
from pathlib import PurePath
import re
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from .events import MAX_PAGE_SIZE, EventQueryError
from .storage import AuditRow

REDACTED: Final = "**REDACTED**"
"""What replaces a redacted value (the text Home Assistant's diagnostics use)."""
MAX_STRING: Final = 500
MAX_ITEMS: Final = 50
MAX_DEPTH: Final = 8
MAX_ACTION: Final = 64
MAX_USER_ID: Final = 64
MAX_USER_NAME: Final = 255
"""The lengths of AuditRow's columns; longer values are cut to fit."""

SENSITIVE_KEYS: Final = frozenset(
    {
        "path",
        "paths",
        "file",
        "files",
        "filename",
        "folder",
        "folders",
        "directory",
        "dir",
        "camera_root",
        "database_url",
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "secret",
        "authorization",
    }
)
SENSITIVE_SUFFIXES: Final = (
    "_path",
    "_paths",
    "_file",
    "_files",
    "_folder",
    "_folders",
    "_dir",
    "_directory",
    "_password",
    "_token",
    "_secret",
)

_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)\S*@")
"""scheme://userinfo@ in a URL anywhere in a string. Up to the token's last @, so a password with
an unescaped / or @ goes too (at worst a URL path with an @ in it loses its host)."""
_ABSOLUTE = re.compile(
    r"""^(?:/.|~[/\\]|\\\\|[A-Za-z]:[/\\]|(?:file|sqlite[\w+]*):/)""",
    re.IGNORECASE,
)
"""A whole string starting as an absolute path does (POSIX, home, UNC, drive, file or SQLite
URL: a SQLite database URL is a file's path)."""
_FILE_TAIL = re.compile(r"[/\\][^/\\]*\.[A-Za-z][A-Za-z0-9]{0,7}$")
"""A last path part with a file extension, after a separator."""
_EMBEDDED = re.compile(
    r"""\b(?:file|sqlite[\w+]*):/+[^\s'"<>|,;]*"""  # sqlite:////config/ai_security.db
    r"""|(?<![\w:/\\.~-])(?:~)?/[^\s/'"<>|,;:]+(?:/[^\s/'"<>|,;:]+)*"""  # /config/x.jpg
    r"""|\b[A-Za-z]:\\[^\s'"<>|,;]+"""  # C:\cams\a.jpg
    r"""|\\\\[^\s'"<>|,;]+"""  # \\server\share
    r"""|(?<![\w:/\\.~-])[^\s/\\'"<>|,;:]+(?:[/\\][^\s/\\'"<>|,;]+)*"""
    r"""[/\\][^\s/\\'"<>|,;]*\.[A-Za-z][A-Za-z0-9]{0,7}\b""",  # cams/a.jpg
)
"""A path inside a longer string. URL paths are spared: they follow a host, never a space."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRecord:
    """One recorded action: when, who (None for the system), what, with which arguments, how."""

    at: datetime
    user_id: str | None
    user_name: str | None
    action: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    success: bool = True
    error: str | None = None
    audit_id: int | None = None
    """Given by the database; None for a record not stored yet."""

    def as_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready data (at as ISO text), for an action's response."""
        return {
            "audit_id": self.audit_id,
            "at": self.at.isoformat(),
            "user_id": self.user_id,
            "user_name": self.user_name,
            "action": self.action,
            "arguments": self.arguments,
            "result": self.result,
            "success": self.success,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditPage:
    """One page of the audit log, newest first, and how many records match in all."""

    records: list[AuditRecord] = field(default_factory=list)
    total: int = 0
    page: int = 1
    page_size: int = 50


def is_sensitive_key(key: str) -> bool:
    """Return whether a key's value is redacted whatever it holds (see the module docstring)."""
    key = key.strip().lower()
    return key in SENSITIVE_KEYS or key.endswith(SENSITIVE_SUFFIXES)


def looks_like_path(text: str) -> bool:
    """Return whether a whole string is a file system path (see the module docstring)."""
    text = text.strip()
    if _ABSOLUTE.match(text):
        return True
    if "://" in text or "\n" in text:
        return False  # a URL, or text with one in it; or several lines: not one path
    return _FILE_TAIL.search(text) is not None


def _cut(text: str) -> str:
    text = text.replace("\x00", "")
    return text if len(text) <= MAX_STRING else text[: MAX_STRING - 1] + "…"


def redact_text(text: str) -> str:
    """Return text with URL credentials cut out and paths in it replaced, at most MAX_STRING.

    A string that is a path as a whole becomes REDACTED.
    """
    # Only what can survive the cut is searched: a megabyte argument costs no more than a page.
    text = _CREDENTIALS.sub(r"\g<scheme>", text[: 4 * MAX_STRING])
    if looks_like_path(text):
        return REDACTED
    return _cut(_EMBEDDED.sub(REDACTED, text))


def redact_value(value: Any, _depth: int = 0) -> Any:
    """Return value as redacted JSON data: mappings, lists and strings redacted all the way down."""
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if _depth >= MAX_DEPTH:
            return "…"
        if isinstance(value, Mapping):
            return _redact_mapping(value, _depth + 1)
        items = list(value) if isinstance(value, list | tuple) else sorted(value, key=repr)
        redacted = [redact_value(item, _depth + 1) for item in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            redacted.append(f"… {len(items) - MAX_ITEMS} more")
        return redacted
    return _redact_scalar(value)


def _redact_scalar(value: Any) -> Any:
    """Return a value that holds no others as JSON data (see the module docstring)."""
    result: Any
    if value is None or isinstance(value, bool | int):
        result = value
    elif isinstance(value, float):
        result = value if math.isfinite(value) else str(value)
    elif isinstance(value, PurePath):
        result = REDACTED
    elif isinstance(value, datetime | date):
        result = value.isoformat()
    elif isinstance(value, bytes | bytearray | memoryview):
        result = f"<{len(value)} bytes>"
    else:
        result = redact_text(value if isinstance(value, str) else str(value))
    return result


def _redact_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
    redacted: dict[str, Any] = {}
    for index, (key, value) in enumerate(mapping.items()):
        if index == MAX_ITEMS:
            redacted["…"] = f"{len(mapping) - MAX_ITEMS} more"
            break
        name = _cut(str(key))
        if is_sensitive_key(name) and value is not None:
            redacted[name] = REDACTED
        else:
            redacted[name] = redact_value(value, depth)
    return redacted


def redact(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Return an action's arguments fit for the audit log (the rules: see the module docstring)."""
    return _redact_mapping(arguments, 1)


def _fit(text: str | None, limit: int) -> str | None:
    return None if text is None else text.replace("\x00", "")[:limit]


def record(session: Session, record: AuditRecord) -> int:
    """Store an action's record, its arguments, result and error redacted; return its id."""
    if record.at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, not {record.at!r}")
    row = AuditRow(
        at=record.at,
        user_id=_fit(record.user_id, MAX_USER_ID),
        user_name=_fit(record.user_name, MAX_USER_NAME),
        action=_fit(record.action, MAX_ACTION) or "",
        arguments=redact(record.arguments),
        result=redact_value(record.result),
        success=record.success,
        error=None if record.error is None else redact_text(record.error),
    )
    session.add(row)
    session.flush()
    return row.audit_id


def _from_row(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        audit_id=row.audit_id,
        at=row.at,
        user_id=row.user_id,
        user_name=row.user_name,
        action=row.action,
        arguments=row.arguments,
        result=row.result,
        success=row.success,
        error=row.error,
    )


def audit_log(
    session: Session,
    *,
    page: int = 1,
    page_size: int = 50,
    action: str | None = None,
    since: datetime | None = None,
) -> AuditPage:
    """Return a page of the audit log, newest first, optionally of one action and from since on.

    Raises EventQueryError (a ValueError with a translation key, as event searches do) for a
    page below 1, a page size outside 1-MAX_PAGE_SIZE or a naive since. Records of one moment
    are ordered by id, so pages neither repeat nor skip one.
    """
    if page < 1:
        raise EventQueryError("invalid_page", f"page must be 1 or more, not {page}", page=str(page))
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise EventQueryError(
            "invalid_page_size",
            f"page_size must be from 1 to {MAX_PAGE_SIZE}, not {page_size}",
            page_size=str(page_size),
            max=str(MAX_PAGE_SIZE),
        )
    if since is not None and since.utcoffset() is None:
        raise EventQueryError(
            "naive_datetime", f"{since.isoformat()} has no time zone", datetime=since.isoformat()
        )
    conditions: list[ColumnElement[bool]] = []
    if action is not None:
        conditions.append(AuditRow.action == action)
    if since is not None:
        conditions.append(AuditRow.at >= since)
    total = session.scalar(select(func.count()).select_from(AuditRow).where(*conditions)) or 0
    offset = (page - 1) * page_size
    if offset >= total:
        return AuditPage(total=total, page=page, page_size=page_size)
    rows = session.scalars(
        select(AuditRow)
        .where(*conditions)
        .order_by(AuditRow.at.desc(), AuditRow.audit_id.desc())
        .limit(page_size)
        .offset(offset)
    )
    return AuditPage(
        records=[_from_row(row) for row in rows], total=total, page=page, page_size=page_size
    )


def purge_audit(session: Session, older_than: datetime) -> int:
    """Delete the records from before older_than (retention); return how many."""
    if older_than.utcoffset() is None:
        raise ValueError(f"older_than must be timezone-aware, not {older_than!r}")
    result = session.execute(delete(AuditRow).where(AuditRow.at < older_than))
    return int(result.rowcount)  # type: ignore[attr-defined]
