"""core.audit: redaction of paths and secrets, and the audit log on SQLite and PostgreSQL."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custom_components.ai_security.core import audit
from custom_components.ai_security.core.audit import REDACTED, AuditRecord
from custom_components.ai_security.core.events import MAX_PAGE_SIZE, EventQueryError
from custom_components.ai_security.core.storage import AuditRow, Database

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Whole strings that are paths.
        ("/config/cameras/Front Door/2026/a.jpg", REDACTED),
        ("/media", REDACTED),
        ("~/cams/a.jpg", REDACTED),
        ("C:\\cams\\a.jpg", REDACTED),
        ("c:/cams", REDACTED),
        ("\\\\nas\\cams\\a.jpg", REDACTED),
        ("file:///config/a.jpg", REDACTED),
        ("sqlite:////config/ai_security.db", REDACTED),
        ("Front Door/2026/03/01/snapshot 08.15.jpg", REDACTED),
        ("Front Door\\2026\\a.jpg", REDACTED),
        ("  Front Door/a.MP4  ", REDACTED),
        # Paths inside text.
        (
            "cannot read /config/cams/a.jpg: permission denied",
            f"cannot read {REDACTED}: permission denied",
        ),
        ("moved cams/a.jpg and ~/b.png away", f"moved {REDACTED} and {REDACTED} away"),
        ("could not open sqlite:////config/x.db now", f"could not open {REDACTED} now"),
        # Credentials go, the rest of the URL stays.
        ("postgresql://ha:s3cret@db.lan:5432/ai", "postgresql://db.lan:5432/ai"),
        ("postgresql+psycopg://ha:pa/ss@w0rd@db/ai", "postgresql+psycopg://db/ai"),
        ("connect to http://user@cam.lan/x.jpg failed", "connect to http://cam.lan/x.jpg failed"),
        ("http://detector.lan:8000/detect", "http://detector.lan:8000/detect"),
        # Not paths.
        ("Front Door", "Front Door"),
        ("person/car", "person/car"),
        ("2026/03/01", "2026/03/01"),
        ("50 km/h and/or 1 / 2", "50 km/h and/or 1 / 2"),
        ("A person at the door.", "A person at the door."),
        ("mail me@example.org", "mail me@example.org"),
        ("", ""),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert audit.redact_text(text) == expected


def test_redact_nested_arguments() -> None:
    """Sensitive keys go whatever they hold; lists and mappings are redacted all the way down."""

    class Level(StrEnum):
        HIGH = "high"

    arguments = {
        "camera_id": "front_door",
        "Path": "anything at all",
        "file": ["a", "b"],
        "folder": {"nested": 1},
        "camera_root": "/config/cams",
        "database_url": "postgresql://db/ai",
        "snapshot_path": "x",
        "password": "hunter2",
        "api_key": 12345,
        "translation_key": "kept",
        "note": None,
        "path_count": 3,
        "events": [
            {"event_id": "e1", "media": "Front Door/a.jpg", "level": Level.HIGH},
            ("tuple", "/abs/b.jpg"),
            {"deeper": [{"url": "postgresql://u:p@h/d", "token": "t"}]},
        ],
        "ids": {3, 1, 2},
        "when": T0,
        "where": PurePosixPath("/config/x.jpg"),
        "blob": b"\x00\x01",
        "ratio": float("nan"),
        "flag": True,
        7: "numeric key",
    }
    assert audit.redact(arguments) == {
        "camera_id": "front_door",
        "Path": REDACTED,
        "file": REDACTED,
        "folder": REDACTED,
        "camera_root": REDACTED,
        "database_url": REDACTED,
        "snapshot_path": REDACTED,
        "password": REDACTED,
        "api_key": REDACTED,
        "translation_key": "kept",
        "note": None,
        "path_count": 3,
        "events": [
            {"event_id": "e1", "media": REDACTED, "level": "high"},
            ["tuple", REDACTED],
            {"deeper": [{"url": "postgresql://h/d", "token": REDACTED}]},
        ],
        "ids": [1, 2, 3],
        "when": T0.isoformat(),
        "where": REDACTED,
        "blob": "<2 bytes>",
        "ratio": "nan",
        "flag": True,
        "7": "numeric key",
    }
    # The arguments given are left as they were.
    assert arguments["password"] == "hunter2"  # noqa: S105


def test_redact_bounds_size() -> None:
    """Long strings, long lists, wide mappings and deep nesting are cut; NULs dropped."""
    long = "a" * 5000
    assert audit.redact_text(long) == "a" * (audit.MAX_STRING - 1) + "…"
    assert len(audit.redact_text("x y " * 1000)) == audit.MAX_STRING
    assert audit.redact_text("nul\x00here") == "nulhere"
    many = audit.redact({"ids": list(range(120))})["ids"]
    assert many == [*range(audit.MAX_ITEMS), f"… {120 - audit.MAX_ITEMS} more"]
    wide = audit.redact({f"k{i}": i for i in range(60)})
    assert len(wide) == audit.MAX_ITEMS + 1
    assert wide["…"] == "10 more"
    deep: dict[str, Any] = {"leaf": "/secret/path.jpg"}
    for _ in range(20):
        deep = {"d": deep}
    redacted = audit.redact(deep)
    depth = 0
    while isinstance(redacted, dict):
        redacted = redacted["d"] if "d" in redacted else redacted["leaf"]
        depth += 1
    assert redacted == "…"
    assert depth <= audit.MAX_DEPTH


def record_at(
    at: datetime, action: str = "ai_security.review_event", **changes: Any
) -> AuditRecord:
    values: dict[str, Any] = {
        "at": at,
        "user_id": "abc123",
        "user_name": "Admin",
        "action": action,
        "arguments": {"event_id": "e1"},
        "result": {"reviewed": True},
        "success": True,
        "error": None,
    }
    values.update(changes)
    return AuditRecord(**values)


async def add(db: Database, *records: AuditRecord) -> list[int]:
    return await db.run(lambda s: [audit.record(s, item) for item in records])


async def test_record_round_trip_is_redacted(db: Database) -> None:
    """What is read back is the record as given, with paths, secrets and sizes redacted."""
    given = AuditRecord(
        at=T0.astimezone(timezone(timedelta(hours=-5))),  # stored and read as UTC
        user_id="u" * 100,
        user_name="Ünïcode Admin",
        action="ai_security.reanalyze",
        arguments={
            "media_path": "/config/cams/a.jpg",
            "event_id": "e\x00 1",
            "note": "x" * 2000,
        },
        result=["/config/cams/a.jpg", {"database_url": "sqlite:////config/x.db"}, 3],
        success=False,
        error="failed reading /config/cams/a.jpg from postgresql://ha:pw@db/ai",
    )
    (audit_id,) = await add(db, given)
    page = await db.run(audit.audit_log)
    assert page.total == 1
    assert page.records == [
        AuditRecord(
            audit_id=audit_id,
            at=T0,
            user_id="u" * audit.MAX_USER_ID,
            user_name="Ünïcode Admin",
            action="ai_security.reanalyze",
            arguments={
                "media_path": REDACTED,
                "event_id": "e 1",
                "note": "x" * (audit.MAX_STRING - 1) + "…",
            },
            result=[REDACTED, {"database_url": REDACTED}, 3],
            success=False,
            error=f"failed reading {REDACTED} from postgresql://db/ai",
        )
    ]
    assert page.records[0].at.tzinfo is UTC
    assert page.records[0].as_dict() == {
        "audit_id": audit_id,
        "at": "2026-03-01T12:00:00+00:00",
        "user_id": "u" * audit.MAX_USER_ID,
        "user_name": "Ünïcode Admin",
        "action": "ai_security.reanalyze",
        "arguments": page.records[0].arguments,
        "result": page.records[0].result,
        "success": False,
        "error": page.records[0].error,
    }


async def test_system_records_and_empty_results(db: Database) -> None:
    """Records without a user (retention runs) and without a result store as None."""
    await add(
        db,
        record_at(T0, "retention", user_id=None, user_name=None, arguments={}, result=None),
    )
    (stored,) = (await db.run(audit.audit_log)).records
    assert (stored.user_id, stored.user_name, stored.arguments, stored.result) == (
        None,
        None,
        {},
        None,
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        await add(db, record_at(datetime(2026, 3, 1, 12, 0)))  # noqa: DTZ001


async def test_paging_is_newest_first_with_totals(db: Database) -> None:
    """Pages are newest first, ties by id, and together hold every record exactly once."""
    records = [record_at(T0 + timedelta(minutes=i // 2), arguments={"n": i}) for i in range(7)]
    ids = await add(db, *records)
    # Newest first; of two records of one moment the later stored comes first.
    newest_first = sorted(ids, key=lambda i: (-(ids.index(i) // 2), -i))
    seen: list[int] = []
    for number in (1, 2, 3):
        page = await db.run(lambda s, n=number: audit.audit_log(s, page=n, page_size=3))
        assert (page.total, page.page, page.page_size) == (7, number, 3)
        seen.extend(item.audit_id for item in page.records if item.audit_id is not None)
    assert seen == newest_first
    beyond = await db.run(lambda s: audit.audit_log(s, page=4, page_size=3))
    assert beyond.records == []
    assert beyond.total == 7


async def test_filters_by_action_and_since(db: Database) -> None:
    await add(
        db,
        record_at(T0, "ai_security.review_event"),
        record_at(T0 + timedelta(hours=1), "ai_security.delete_event"),
        record_at(T0 + timedelta(hours=2), "ai_security.review_event"),
        record_at(T0 + timedelta(hours=3), "options"),
    )

    async def actions(**kwargs: Any) -> tuple[int, list[tuple[str, datetime]]]:
        page = await db.run(lambda s: audit.audit_log(s, **kwargs))
        return page.total, [(item.action, item.at) for item in page.records]

    assert await actions(action="ai_security.review_event") == (
        2,
        [("ai_security.review_event", T0 + timedelta(hours=2)), ("ai_security.review_event", T0)],
    )
    assert await actions(since=T0 + timedelta(hours=1)) == (
        3,
        [
            ("options", T0 + timedelta(hours=3)),
            ("ai_security.review_event", T0 + timedelta(hours=2)),
            ("ai_security.delete_event", T0 + timedelta(hours=1)),
        ],
    )
    assert await actions(action="ai_security.review_event", since=T0 + timedelta(minutes=1)) == (
        1,
        [("ai_security.review_event", T0 + timedelta(hours=2))],
    )
    assert await actions(action="nothing") == (0, [])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"page": 0}, "invalid_page"),
        ({"page_size": 0}, "invalid_page_size"),
        ({"page_size": MAX_PAGE_SIZE + 1}, "invalid_page_size"),
        ({"since": datetime(2026, 3, 1)}, "naive_datetime"),  # noqa: DTZ001
    ],
)
def test_invalid_queries_have_translation_keys(kwargs: dict[str, Any], key: str) -> None:
    """Bad paging is refused before any query, with the keys event searches use."""
    with pytest.raises(EventQueryError) as raised:
        audit.audit_log(Session(), **kwargs)
    assert raised.value.translation_key == key
    assert isinstance(raised.value, ValueError)


async def test_purge_removes_only_older_records(db: Database) -> None:
    await add(db, *(record_at(T0 + timedelta(days=day)) for day in range(5)))
    assert await db.run(lambda s: audit.purge_audit(s, T0 + timedelta(days=2))) == 2
    assert await db.run(lambda s: audit.purge_audit(s, T0 + timedelta(days=2))) == 0

    def remaining(session: Session) -> list[datetime]:
        return list(session.scalars(select(AuditRow.at).order_by(AuditRow.at)))

    assert await db.run(remaining) == [T0 + timedelta(days=day) for day in (2, 3, 4)]
    with pytest.raises(ValueError, match="timezone-aware"):
        await db.run(lambda s: audit.purge_audit(s, datetime(2026, 3, 1)))  # noqa: DTZ001
    count = await db.run(lambda s: s.scalar(select(func.count()).select_from(AuditRow)))
    assert count == 3
