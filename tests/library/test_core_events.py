"""core.events on SQLite and on a real PostgreSQL server: search, review, deletion, browsing."""

from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
import itertools
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from custom_components.ai_security.core import event_search, events as ev
from custom_components.ai_security.core.events import EventQuery, EventQueryError
from custom_components.ai_security.core.models import RiskLevel
from custom_components.ai_security.core.storage import (
    CameraRow,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    MediaRow,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


def event_row(
    event_id: str,
    *,
    camera_id: str = "front",
    started_at: datetime = T0,
    level: RiskLevel = RiskLevel.LOW,
    summary: str = "Nothing happened",
    reasoning: str = "An empty scene",
    objects: Iterable[str] = (),
    reviewed: bool = False,
) -> EventRow:
    return EventRow(
        event_id=event_id,
        camera_id=camera_id,
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=30),
        risk_score=10,
        risk_level=level.value,
        summary=summary,
        reasoning=reasoning,
        object_types=list(objects),
        detection_count=1,
        is_fast_path=False,
        source="llm",
        reviewed=reviewed,
        created_at=started_at,
    )


async def add(db: Database, *rows: EventRow) -> None:
    def _add(session: Session) -> None:
        session.add_all(rows)

    await db.run(_add)


async def ids(db: Database, query: EventQuery) -> list[str]:
    page = await db.run(lambda s: ev.search_events(s, query))
    assert page.total >= len(page.events)
    return [event.event_id for event in page.events]


async def found(db: Database, words: str) -> set[str]:
    return set(await ids(db, EventQuery(text=words, page_size=500)))


async def add_story(db: Database) -> None:
    await add(
        db,
        event_row(
            "visitor",
            summary="A person walked to the front door",
            reasoning="Delivery at night; the courier left",
            objects=["person"],
        ),
        event_row(
            "spider",
            started_at=T0 + timedelta(minutes=1),
            summary="Caméra obstruée par une araignée",
            reasoning="Insecte devant l'objectif",
            objects=["vélo"],
        ),
        event_row(
            "parked",
            started_at=T0 + timedelta(minutes=2),
            summary="Car parked in the driveway",
            reasoning="The neighbour's vehicle, seen before",
            objects=["car", "truck"],
        ),
    )


async def test_text_search_words_prefixes_case_and_unicode(db: Database) -> None:
    """Words of the summary, reasoning and object types match, as prefixes, in any case."""
    await add_story(db)
    assert await found(db, "person") == {"visitor"}
    assert await found(db, "PERS") == {"visitor"}
    assert await found(db, "deliv") == {"visitor"}  # reasoning
    assert await found(db, "truck") == {"parked"}  # object types only
    assert await found(db, "vélo") == {"spider"}  # an object type that JSON escapes
    assert await found(db, "caméra") == {"spider"}
    assert await found(db, "CAMÉRA OBSTRU") == {"spider"}
    assert await found(db, "Cam") == {"spider"}
    assert await found(db, "car") == {"parked"}  # "caméra" does not start with "car"
    assert await found(db, "person door") == {"visitor"}  # every word must match
    assert await found(db, "person car") == set()
    assert await found(db, "neighbour's") == {"parked"}
    assert await found(db, "elephant") == set()
    # SQLite folds accents as well as case; PostgreSQL's 'simple' configuration keeps them.
    accentless = await found(db, "camera")
    assert accentless == ({"spider"} if db.dialect == "sqlite" else set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"*(:-', {"visitor", "spider", "parked"}),  # no word at all: no filter
        ("", {"visitor", "spider", "parked"}),
        ("-person", {"visitor"}),  # not NOT
        ("person*", {"visitor"}),
        ("summary:person", set()),  # not a column filter: "summary" is a word to find
        ("{summary}: person", set()),
        ("NOT person", set()),
        ("person OR car", set()),  # not OR: all three words
        ("NEAR(person door)", set()),
        ("person & !door", {"visitor"}),  # not tsquery operators either
        ("pers:* | car", set()),
        ("'person'", {"visitor"}),
        ('"person', {"visitor"}),
        ("\\person\\", {"visitor"}),
        ("person\x00door", {"visitor"}),
        ("\U0001d54f" * 500, set()),  # the longest word: 2,000 bytes of UTF-8
        ("a1 " * 166, set()),
    ],
)
async def test_search_syntax_is_never_interpreted(
    db: Database, text: str, expected: set[str]
) -> None:
    """Whatever a person types only ever means words to find; nothing raises."""
    await add_story(db)
    assert await found(db, text) == expected


def test_search_words() -> None:
    """Words are runs of letters and digits, distinct, with combining accents kept in them."""
    assert event_search.search_words('"*(:-') == ()
    assert event_search.search_words("it's 12:30, it's") == ("it", "s", "12", "30")
    assert event_search.search_words("Came\u0301ra_2") == ("Caméra", "2")
    assert event_search.fts5_query(("a", "b2")) == '"a"* AND "b2"*'
    assert event_search.tsquery(("a", "b2")) == "'a':* & 'b2':*"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"page": 0}, "invalid_page"),
        ({"page": -3}, "invalid_page"),
        ({"page_size": 0}, "invalid_page_size"),
        ({"page_size": 10_000}, "invalid_page_size"),
        ({"text": "x" * 10_240}, "search_text_too_long"),
        ({"text": "x" * 501}, "search_text_too_long"),
        ({"start": T0, "end": T0 - timedelta(seconds=1)}, "invalid_date_range"),
        ({"start": T0.replace(tzinfo=None)}, "naive_datetime"),
    ],
)
def test_invalid_queries_are_refused_with_a_translation_key(
    fields: dict[str, object], key: str
) -> None:
    """Each invalid query names the message the Home Assistant layer shows, with placeholders."""
    with pytest.raises(EventQueryError) as caught:
        EventQuery(**fields)
    assert caught.value.translation_key == key
    assert isinstance(caught.value, ValueError)
    assert all(isinstance(value, str) for value in caught.value.placeholders.values())
    assert caught.value.placeholders


def test_valid_limits() -> None:
    """The limits themselves are allowed; an empty range is a range, not an error."""
    assert EventQuery(page=1, page_size=1, text="x" * 500).text == "x" * 500
    assert EventQuery(page_size=500, start=T0, end=T0).page_size == 500


async def test_filters_combine(db: Database) -> None:
    """Cameras, minimum level, date range, review state and text all apply together.

    Each query also runs with a word every event has, which on SQLite filters in the search
    table rather than the events table; both must agree with the events as they are now, also
    after reviews and rescoring change them.
    """
    cameras = ("front", "garden", "garage")
    state: dict[str, dict[str, Any]] = {}
    for n, (camera, level, reviewed) in enumerate(
        itertools.product(cameras, RiskLevel, (False, True))
    ):
        state[f"e{n:02d}"] = {
            "camera_id": camera,
            "risk_level": level,
            "reviewed": reviewed,
            "dismissed": False,
            "started_at": T0 + timedelta(hours=n),
            "summary": f"{'Person' if n % 3 else 'Cat'} seen on the {camera} camera",
        }
    await add(
        db,
        *(
            event_row(
                event_id,
                camera_id=e["camera_id"],
                level=e["risk_level"],
                reviewed=e["reviewed"],
                started_at=e["started_at"],
                summary=e["summary"],
            )
            for event_id, e in state.items()
        ),
    )
    queries = [
        EventQuery(camera_ids=("garden",)),
        EventQuery(camera_ids=("garden", "garage"), min_level=RiskLevel.HIGH),
        EventQuery(min_level=RiskLevel.MEDIUM, reviewed=False),
        EventQuery(min_level=RiskLevel.CRITICAL),
        EventQuery(start=T0 + timedelta(hours=5), end=T0 + timedelta(hours=9)),
        EventQuery(start=T0 + timedelta(hours=20)),
        EventQuery(end=T0 + timedelta(hours=3)),
        EventQuery(dismissed=True),
        EventQuery(dismissed=False, reviewed=True, camera_ids=("front", "garage")),
        EventQuery(reviewed=True, text="person"),
        EventQuery(text="cat garden", min_level=RiskLevel.MEDIUM),
        EventQuery(
            text="person",
            camera_ids=("front", "garage"),
            min_level=RiskLevel.MEDIUM,
            start=T0 + timedelta(hours=2),
            end=T0 + timedelta(hours=20),
            reviewed=False,
        ),
        EventQuery(camera_ids=("nowhere",)),
    ]
    queries += [replace(query, text=f"{query.text} seen") for query in queries]
    order = list(RiskLevel)

    def expected(query: EventQuery) -> list[str]:
        def keep(e: dict[str, Any]) -> bool:
            words = e["summary"].lower().split()
            return (
                (not query.camera_ids or e["camera_id"] in query.camera_ids)
                and (
                    query.min_level is None
                    or order.index(e["risk_level"]) >= order.index(query.min_level)
                )
                and (query.start is None or e["started_at"] >= query.start)
                and (query.end is None or e["started_at"] < query.end)
                and (query.reviewed is None or e["reviewed"] == query.reviewed)
                and (query.dismissed is None or e["dismissed"] == query.dismissed)
                and all(any(word.startswith(w.lower()) for word in words) for w in query.words)
            )

        kept = [event_id for event_id, e in state.items() if keep(e)]
        return sorted(kept, key=lambda event_id: state[event_id]["started_at"], reverse=True)

    async def check() -> None:
        for query in queries:
            page = await db.run(lambda s, q=query: ev.search_events(s, q))
            want = expected(query)
            assert [e.event_id for e in page.events] == want, query
            assert page.total == len(want), query
            assert await db.run(lambda s, q=query: ev.count_events(s, q)) == len(want), query
        assert expected(queries[0]) != expected(replace(queries[0], text="cat"))

    await check()
    assert expected(EventQuery(dismissed=True)) == []

    # Reviews, a rescore (new level and summary) and a moved start time.
    now = T0 + timedelta(days=1)
    for event_id, reviewed, dismissed in (("e00", True, True), ("e07", True, True)):
        await db.run(
            lambda s, i=event_id, r=reviewed, d=dismissed: ev.review_event(
                s, i, reviewed=r, dismissed=d, now=now
            )
        )
        state[event_id].update(reviewed=reviewed, dismissed=dismissed)
    await db.run(lambda s: ev.review_event(s, "e03", reviewed=False, now=now))
    state["e03"]["reviewed"] = False
    changes = {"risk_level": RiskLevel.CRITICAL, "summary": "Person seen breaking in"}
    await db.run(
        lambda s: s.execute(
            update(EventRow)
            .where(EventRow.event_id == "e04")
            .values(risk_level="critical", summary=changes["summary"])
        )
    )
    state["e04"].update(changes)
    moved = T0 + timedelta(hours=30)
    await db.run(
        lambda s: s.execute(
            update(EventRow).where(EventRow.event_id == "e05").values(started_at=moved)
        )
    )
    state["e05"]["started_at"] = moved
    await check()
    assert expected(EventQuery(dismissed=True)) == ["e07", "e00"]


@pytest.mark.parametrize("words", ["", "nothing"])
async def test_paging_and_total(db: Database, words: str) -> None:
    """Pages are newest first, neither repeat nor skip events (even equal times), and count all.

    With words too: on SQLite a text search sorts in the search table, not the events table.
    """
    # Inserted out of order, so neither insertion order nor search_id gives the order.
    rows = [event_row(f"e{n}", started_at=T0 + timedelta(minutes=n // 2)) for n in range(7)]
    await add(db, *(rows[n] for n in (3, 0, 6, 5, 1, 4, 2)))
    newest_first = [f"e{n}" for n in (6, 5, 4, 3, 2, 1, 0)]
    seen: list[str] = []
    for page_number in (1, 2, 3):
        query = EventQuery(text=words, page=page_number, page_size=3)
        page = await db.run(lambda s, q=query: ev.search_events(s, q))
        assert page.total == 7
        assert (page.page, page.page_size) == (page_number, 3)
        seen += [event.event_id for event in page.events]
    assert seen == newest_first
    beyond = await db.run(
        lambda s: ev.search_events(s, EventQuery(text=words, page=4, page_size=3))
    )
    assert beyond.events == []
    assert beyond.total == 7


async def test_review(db: Database) -> None:
    """A review sets its fields, keeps or clears the note as asked; a missing event gives None."""
    await add_story(db)
    now = T0 + timedelta(days=1)
    assert await db.run(lambda s: ev.review_event(s, "missing", note="x", now=now)) is None
    reviewed = await db.run(
        lambda s: ev.review_event(s, "visitor", dismissed=True, note=" the postman ", now=now)
    )
    assert reviewed is not None
    assert (reviewed.reviewed, reviewed.dismissed, reviewed.review_note) == (
        True,
        True,
        "the postman",
    )
    assert reviewed.summary == "A person walked to the front door"
    stored_at = await db.run(lambda s: s.get(EventRow, "visitor").reviewed_at)
    assert stored_at == now
    assert await ids(db, EventQuery(reviewed=True)) == ["visitor"]
    assert await ids(db, EventQuery(dismissed=True)) == ["visitor"]
    assert set(await ids(db, EventQuery(reviewed=False))) == {"spider", "parked"}
    # The review columns are not indexed words, and changing them keeps the event searchable.
    assert await found(db, "postman") == set()
    assert await found(db, "person") == {"visitor"}

    kept = await db.run(lambda s: ev.review_event(s, "visitor", note=None, now=now))
    assert kept is not None
    assert (kept.dismissed, kept.review_note) == (False, "the postman")
    undone = await db.run(lambda s: ev.review_event(s, "visitor", reviewed=False, note="", now=now))
    assert undone is not None
    assert (undone.reviewed, undone.review_note) == (False, None)
    assert await db.run(lambda s: s.get(EventRow, "visitor").reviewed_at) is None

    with pytest.raises(EventQueryError) as caught:
        await db.run(lambda s: ev.review_event(s, "visitor", note="n" * 1001, now=now))
    assert caught.value.translation_key == "review_note_too_long"
    await db.run(lambda s: ev.review_event(s, "visitor", note="n" * 1000, now=now))


async def _linked_event(db: Database) -> list[int]:
    """Store the story plus detections linked to the visitor event; return their ids."""

    def _add(session: Session) -> list[int]:
        session.add(CameraRow(camera_id="front", folder="Front", name="Front", created_at=T0))
        media = MediaRow(
            camera_id="front",
            path="/cams/Front/1.jpg",
            sha256="0" * 64,
            media_type="image",
            size=1,
            received_at=T0,
        )
        session.add(media)
        session.flush()
        detections = [
            DetectionRow(
                media_id=media.media_id,
                camera_id="front",
                label="person",
                confidence=0.9,
                x=0,
                y=0,
                w=1,
                h=1,
                frame_width=10,
                frame_height=10,
                detected_at=T0,
            )
            for _ in range(2)
        ]
        session.add_all(detections)
        session.flush()
        for detection in detections:
            session.add(EventDetectionRow(event_id="visitor", detection_id=detection.detection_id))
        return [detection.detection_id for detection in detections]

    await add_story(db)
    return await db.run(_add)


async def test_get_and_delete(db: Database) -> None:
    """Deleting removes the event, its links and its search entry; its detections stay."""
    detection_ids = await _linked_event(db)
    event = await db.run(lambda s: ev.get_event(s, "visitor"))
    assert event is not None
    assert event.detection_ids == tuple(sorted(detection_ids))
    assert await db.run(lambda s: ev.get_event(s, "missing")) is None

    assert await db.run(lambda s: ev.delete_event(s, "visitor")) is True
    assert await db.run(lambda s: ev.get_event(s, "visitor")) is None
    assert await found(db, "person") == set()
    assert await found(db, "") == {"spider", "parked"}
    links = await db.run(lambda s: s.scalar(select(func.count()).select_from(EventDetectionRow)))
    assert links == 0
    detections = await db.run(lambda s: s.scalar(select(func.count()).select_from(DetectionRow)))
    assert detections == 2
    assert await db.run(lambda s: ev.delete_event(s, "visitor")) is False
    if db.dialect == "sqlite":
        # The index entry itself is gone, not just hidden by the join.
        entries = await db.run(
            lambda s: s.scalar(
                text(
                    "SELECT count(*) FROM ai_security_events_fts "
                    "WHERE ai_security_events_fts MATCH :q"
                ),
                {"q": "courier"},
            )
        )
        assert entries == 0
        copies = await db.run(
            lambda s: s.scalar(text("SELECT count(*) FROM ai_security_events_search"))
        )
        assert copies == 2
    # A new event is found by its own words only.
    await add(db, event_row("later", summary="A fox crossed", objects=["fox"]))
    assert await found(db, "courier") == set()
    assert await found(db, "fox") == {"later"}


async def test_changed_text_is_searched_again(db: Database) -> None:
    """When the pipeline rescores an event (new summary), the index follows."""
    await add_story(db)
    await db.run(
        lambda s: s.execute(
            update(EventRow)
            .where(EventRow.event_id == "visitor")
            .values(summary="A raccoon at the bins", object_types=["raccoon"])
        )
    )
    assert await found(db, "walked") == set()
    assert await found(db, "raccoon") == {"visitor"}
    assert await found(db, "courier") == {"visitor"}  # the reasoning did not change
    assert await found(db, "person") == set()


async def test_camera_days_and_counts(db: Database) -> None:
    """A camera's local days with events, one page of a day, and events per camera."""
    tz = ZoneInfo("America/New_York")
    moments = [
        datetime(2026, 3, 7, 23, 0, tzinfo=tz),
        datetime(2026, 3, 8, 1, 30, tzinfo=tz),  # the night the clocks go forward
        datetime(2026, 3, 8, 3, 30, tzinfo=tz),
        datetime(2026, 3, 8, 23, 59, tzinfo=tz),
        datetime(2026, 3, 10, 0, 0, tzinfo=tz),
    ]
    await add(
        db,
        *(event_row(f"f{n}", started_at=m.astimezone(UTC)) for n, m in enumerate(moments)),
        event_row("g0", camera_id="garden", started_at=datetime(2026, 3, 9, 12, 0, tzinfo=tz)),
    )
    days = await db.run(lambda s: ev.event_days(s, "front", tz))
    assert days == [date(2026, 3, 10), date(2026, 3, 8), date(2026, 3, 7)]
    assert await db.run(lambda s: ev.event_days(s, "front", UTC)) == [
        date(2026, 3, 10),
        date(2026, 3, 9),
        date(2026, 3, 8),
    ]
    assert await db.run(lambda s: ev.event_days(s, "nowhere", tz)) == []

    day_start = datetime(2026, 3, 8, tzinfo=tz).astimezone(UTC)
    day_end = datetime(2026, 3, 9, tzinfo=tz).astimezone(UTC)
    assert day_end - day_start == timedelta(hours=23)

    def page(session: Session, offset: int, limit: int) -> list[str]:
        events = ev.events_for_camera_day(
            session, "front", day_start, day_end, offset=offset, limit=limit
        )
        return [event.event_id for event in events]

    assert await db.run(lambda s: page(s, 0, 50)) == ["f3", "f2", "f1"]
    assert await db.run(lambda s: page(s, 1, 1)) == ["f2"]
    assert await db.run(lambda s: page(s, 3, 50)) == []
    with pytest.raises(ValueError, match="limit"):
        await db.run(lambda s: page(s, 0, 0))

    assert await db.run(ev.camera_event_counts) == {"front": 5, "garden": 1}
