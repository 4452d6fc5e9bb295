"""The integration's actions: search and review events, reprocess, analyze now, dead jobs."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
import hashlib
from pathlib import Path
import re
import time
from typing import Any
import uuid

from homeassistant.auth.models import User
from homeassistant.core import Context, HomeAssistant, ServiceResponse
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError, Unauthorized
from homeassistant.helpers.service import async_get_all_descriptions
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from sqlalchemy.orm import Session

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.core.errors import AiSecurityError
from custom_components.ai_security.core.events import EventQueryError, delete_event
from custom_components.ai_security.core.intake import ReprocessError
from custom_components.ai_security.core.rules import RuleError
from custom_components.ai_security.core.storage import EventRow
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub
from tests.translations import INTEGRATION, STRINGS

from .test_pipeline_ha import detector_server, entry  # noqa: F401

SUMMARY = "Person at the door at night"
"""What LlmStub answers, so what the pipeline's events say."""


async def call(
    hass: HomeAssistant,
    action: str,
    data: dict[str, Any],
    *,
    response: bool = True,
    context: Context | None = None,
) -> ServiceResponse:
    """Call one of the integration's actions and return its response."""
    return await hass.services.async_call(
        DOMAIN, action, data, blocking=True, return_response=response, context=context
    )


async def search(
    hass: HomeAssistant, config_entry: MockConfigEntry, **fields: Any
) -> dict[str, Any]:
    """Return the response of search_events with these fields."""
    data = {"config_entry_id": config_entry.entry_id, **fields}
    response = await call(hass, "search_events", data)
    assert isinstance(response, dict)
    return response


async def refused(
    hass: HomeAssistant, action: str, data: dict[str, Any], *, response: bool = True
) -> ServiceValidationError:
    """Call an action that must refuse its input; return the error (translated, checked).

    Home Assistant drops a translated message's final period: the tests expect it without.
    """
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, action, data, response=response)
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key in STRINGS["exceptions"]
    return err.value


async def set_up(hass: HomeAssistant, config_entry: MockConfigEntry) -> None:
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()


async def upload_event(
    hass: HomeAssistant, camera_root: Path, relative: str, seed: int, events: list[Any]
) -> dict[str, Any]:
    """Upload an image; return the data of the incident it becomes, as judged when it ended."""
    count = len(events)
    updates = async_capture_events(hass, "ai_security_event_updated")
    await hass.async_add_executor_job(write, camera_root / relative, jpeg(seed))
    await wait_until(lambda: len(events) > count, seconds=20, what=f"the event of {relative}")
    event_id = events[-1].data["event_id"]

    def ended() -> dict[str, Any] | None:
        for update in updates:
            if update.data["event_id"] == event_id and not update.data["ongoing"]:
                return dict(update.data)
        return None

    await wait_until(lambda: ended() is not None, seconds=20, what=f"the end of {relative}")
    data = ended()
    assert data is not None
    for key in ("changed", "level_rose", *(k for k in data if k.startswith("previous_"))):
        data.pop(key, None)
    return data


async def add_camera(
    hass: HomeAssistant,
    config_entry: MockConfigEntry,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    folder: str,
    seed: int,
) -> str:
    """Make a camera known to the hub with an upload that has nothing in it; return its id.

    Returns once the detector has been asked about that upload (and so has chosen its empty
    answer): a test that then changes the answer changes it for its own uploads only.
    """
    detector_server.answer(Reply(body=detections()))
    asked = detector_server.count
    await hass.async_add_executor_job(write, camera_root / folder / "empty.jpg", jpeg(seed))
    camera_id = folder.lower()
    pipeline = config_entry.runtime_data.pipeline
    await wait_until(
        lambda: camera_id in pipeline.cameras and detector_server.count > asked,
        seconds=20,
        what=f"camera {folder} and its empty upload looked at",
    )
    return camera_id


def stored_event(camera_id: str, started_at: datetime, **changes: Any) -> Callable[[Session], str]:
    """Return a database function adding an event (for searches over events the test chose)."""

    def add(session: Session) -> str:
        values: dict[str, Any] = {
            "event_id": uuid.uuid4().hex,
            "camera_id": camera_id,
            "started_at": started_at,
            "ended_at": started_at + timedelta(seconds=30),
            "risk_score": 20,
            "risk_level": "low",
            "summary": "A cat crosses the lawn",
            "reasoning": "Animals are harmless.",
            "object_types": ["cat"],
            "detection_count": 2,
            "is_fast_path": False,
            "source": "llm",
            "reviewed": False,
            "dismissed": False,
            "created_at": started_at,
        }
        values |= changes
        session.add(EventRow(**values))
        return str(values["event_id"])

    return add


# --- search_events --------------------------------------------------------------------------------


async def test_search_finds_the_pipelines_event(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """An event the pipeline made is found by words of its summary, with all its fields."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    announced = await upload_event(hass, camera_root, "Porch/a.jpg", 1, events)

    await entry.runtime_data.pipeline.wait_for_media()  # its pictures follow the event
    response = await search(hass, entry, text="DOOR nig")
    assert (response["total"], response["page"], response["page_size"]) == (1, 1, 50)
    (found,) = response["events"]
    image_url = found.pop("image_url")
    assert image_url.startswith(f"/api/{DOMAIN}/media/{entry.entry_id}/porch/")
    assert "authSig=" in image_url
    assert found.pop("clip_url") is None  # a photo makes no clip
    # What the LLM was shown: the upload (media 1), the prompt's hash, the server that judged.
    sent = found.pop("sent_to_llm")
    assert sent["frames"] in (["1"], [])  # the llama.cpp stub publishes no media marker
    assert len(sent["prompt_hash"]) == 64
    assert sent["server"] == entry.data["llm_urls"][0]
    assert found == {
        "event_id": announced["event_id"],
        "camera_id": "porch",
        "camera_name": "Porch",
        "started_at": announced["started_at"],
        "ended_at": announced["ended_at"],
        "risk_score": 72,
        "risk_level": "high",
        "summary": SUMMARY,
        "reasoning": "One person close to the entrance late at night.",
        "object_types": ["person"],
        "detection_count": 1,
        "is_fast_path": False,
        "source": "llm",
        "reviewed": False,
        "dismissed": False,
        "missed": False,
        "review_note": None,
        "keep": False,
        "zones": [],
        "raw_score": None,
        "calibration": "",
        "title": "",
        "observations": "",
        "confidence": None,
        "other_concerns": [],
        "unverified_objects": [],
        "contradiction": "",
    }
    assert found["started_at"].endswith("+00:00")

    # Every word must match: one that no event has finds nothing.
    assert (await search(hass, entry, text="door giraffe"))["total"] == 0
    # Without text, every event; the object types are searchable too.
    assert (await search(hass, entry))["total"] == 1
    assert (await search(hass, entry, text="person"))["total"] == 1


@pytest.mark.parametrize(
    "text", ['"*(:-', '"*(:-' * 50, "door*", 'summary:"door" OR NEAR(a b)', "'; DROP TABLE --"]
)
async def test_search_text_with_query_syntax_is_only_words(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    text: str,
) -> None:
    """FTS and SQL syntax in the search text is never run: it cannot fail, only match words."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Porch/a.jpg", 1, events)
    response = await search(hass, entry, text=text)
    # Punctuation alone filters nothing; words that no event has filter everything out.
    expected = 1 if text in ('"*(:-', '"*(:-' * 50, "door*") else 0
    assert response["total"] == expected
    assert len(response["events"]) == expected


async def test_search_filters_and_pages(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """Cameras, level, time range and review state filter; pages neither repeat nor skip."""
    await hass.config.async_set_time_zone("Europe/Amsterdam")  # UTC+1 in January
    await set_up(hass, entry)
    porch = await add_camera(hass, entry, camera_root, detector_server, "Porch", 1)
    garden = await add_camera(hass, entry, camera_root, detector_server, "Garden", 2)
    base = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    db = entry.runtime_data.pipeline.db
    ids = [
        await db.run(stored_event(porch, base)),
        await db.run(stored_event(porch, base + timedelta(hours=1), risk_level="medium")),
        await db.run(stored_event(garden, base + timedelta(hours=2), risk_level="high")),
        await db.run(
            stored_event(garden, base + timedelta(hours=3), risk_level="critical", reviewed=True)
        ),
        await db.run(stored_event(porch, base + timedelta(hours=4), reviewed=True, dismissed=True)),
    ]
    newest_first = ids[::-1]

    async def found(**fields: Any) -> list[str]:
        response = await search(hass, entry, **fields)
        assert response["total"] == len(response["events"])
        return [event["event_id"] for event in response["events"]]

    assert await found() == newest_first
    assert await found(cameras=[garden]) == [ids[3], ids[2]]
    assert await found(cameras=[porch, garden, porch]) == newest_first
    assert await found(min_level="medium") == [ids[3], ids[2], ids[1]]
    assert await found(min_level="critical") == [ids[3]]
    assert await found(min_level="high", cameras=[porch]) == []
    assert await found(reviewed=True) == [ids[4], ids[3]]
    assert await found(reviewed=False) == [ids[2], ids[1], ids[0]]
    assert await found(dismissed=True) == [ids[4]]
    assert await found(reviewed=True, dismissed=False) == [ids[3]]
    assert await found(text="cat lawn", cameras=[porch], min_level="medium") == [ids[1]]

    # start inclusive, end exclusive; a time without zone is Home Assistant's (Amsterdam).
    assert await found(start="2026-01-10 14:00:00", end="2026-01-10 16:00:00") == [
        ids[2],
        ids[1],
    ]
    assert await found(start="2026-01-10 14:00:01") == [ids[4], ids[3], ids[2]]
    assert await found(start="2026-01-10T13:00:00+00:00", end="2026-01-10T15:00:00Z") == [
        ids[2],
        ids[1],
    ]
    assert await found(start=base, end=base) == []

    pages = []
    for page in (1, 2, 3):
        response = await search(hass, entry, page=page, page_size=2)
        assert (response["total"], response["page"], response["page_size"]) == (5, page, 2)
        pages.append([event["event_id"] for event in response["events"]])
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    beyond = await search(hass, entry, page=4, page_size=2)
    assert (beyond["total"], beyond["events"]) == (5, [])
    everything = await search(hass, entry, page_size=500)
    assert [event["event_id"] for event in everything["events"]] == newest_first


async def test_search_of_an_unknown_camera_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """A camera id the hub does not know is named in the error, not silently matched to nothing."""
    await set_up(hass, entry)
    porch = await add_camera(hass, entry, camera_root, detector_server, "Porch", 1)
    data = {"config_entry_id": entry.entry_id, "cameras": [porch, "back_yard"]}
    err = await refused(hass, "search_events", data)
    assert err.translation_key == "unknown_camera"
    assert err.translation_placeholders == {"camera": "back_yard"}
    assert "back_yard" in str(err)


async def test_reversed_date_range_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """A range that ends before it starts is an error naming both ends."""
    await set_up(hass, entry)
    data = {
        "config_entry_id": entry.entry_id,
        "start": "2026-03-02T10:00:00+00:00",
        "end": "2026-03-01T10:00:00+00:00",
    }
    err = await refused(hass, "search_events", data)
    assert err.translation_key == "invalid_date_range"
    assert str(err) == (
        "The time range starts (2026-03-02T10:00:00+00:00) after it ends "
        "(2026-03-01T10:00:00+00:00)"
    )


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"page_size": 0}, "invalid_page_size"),
        ({"page_size": 10_000}, "invalid_page_size"),
        ({"page_size": -1}, "invalid_page_size"),
        ({"page": 0}, "invalid_page"),
        ({"page": -3}, "invalid_page"),
        ({"text": "x" * 10_240}, "search_text_too_long"),
        ({"text": "ab " * 3000}, "search_text_too_long"),
    ],
)
async def test_bad_search_input_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    fields: dict[str, Any],
    key: str,
) -> None:
    """Page numbers and sizes out of range and huge search texts give translated errors."""
    await set_up(hass, entry)
    err = await refused(hass, "search_events", {"config_entry_id": entry.entry_id, **fields})
    assert err.translation_key == key
    assert err.translation_placeholders
    message = str(err)
    assert "{" not in message
    if key == "invalid_page_size":
        assert message == f"The page size must be from 1 to 500, not {fields['page_size']}"
    if key == "search_text_too_long":
        assert message.startswith(f"The search text has {len(fields['text'])} characters")


async def test_database_failures_are_reported(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """A database that cannot answer is a translated failure, not a validation error."""
    await set_up(hass, entry)
    porch = await add_camera(hass, entry, camera_root, detector_server, "Porch", 1)
    db = entry.runtime_data.pipeline.db

    async def broken(*_args: object) -> None:
        raise OSError("disk I/O error")

    run, db.run = db.run, broken  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(HomeAssistantError) as err:
            await search(hass, entry, text="door")
        assert not isinstance(err.value, ServiceValidationError)
        assert str(err.value) == "The AI Security database cannot be read: disk I/O error"
        data = {"config_entry_id": entry.entry_id, "event_id": "x"}
        with pytest.raises(HomeAssistantError) as err:
            await call(hass, "review_event", data)
        assert not isinstance(err.value, ServiceValidationError)
        assert str(err.value) == "The AI Security database cannot be written: disk I/O error"
    finally:
        db.run = run  # type: ignore[method-assign]

    pipeline = entry.runtime_data.pipeline
    pipeline.reprocess = broken  # type: ignore[method-assign,assignment]
    pipeline.analyze_now = broken  # type: ignore[method-assign,assignment]
    for action, extra, response in (
        ("reprocess_file", {"path": "Porch/a.jpg"}, True),
        ("analyze_now", {"camera": porch}, False),
    ):
        data = {"config_entry_id": entry.entry_id, **extra}
        with pytest.raises(HomeAssistantError) as err:
            await call(hass, action, data, response=response)
        assert not isinstance(err.value, ServiceValidationError)
        assert str(err.value) == "The AI Security database cannot be written: disk I/O error"


# --- review_event ---------------------------------------------------------------------------------


async def test_review_and_dismiss_an_event(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """A review is stored and returned; a search then filters on it."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    event_id = (await upload_event(hass, camera_root, "Porch/a.jpg", 1, events))["event_id"]
    base = {"config_entry_id": entry.entry_id, "event_id": event_id}

    reviewed = await call(hass, "review_event", {**base, "note": "  The postman.  "})
    assert isinstance(reviewed, dict)
    assert reviewed["event_id"] == event_id
    assert reviewed["summary"] == SUMMARY
    assert (reviewed["reviewed"], reviewed["dismissed"], reviewed["review_note"]) == (
        True,
        False,
        "The postman.",
    )
    assert (await search(hass, entry, reviewed=False))["total"] == 0
    (listed,) = (await search(hass, entry, reviewed=True))["events"]
    # The same event; a search adds its media links, which the review's answer leaves out.
    assert {key: value for key, value in listed.items() if not key.endswith("_url")} == reviewed

    # Dismissed as a false alarm; no note given keeps the note, an empty one removes it.
    dismissed = await call(hass, "review_event", {**base, "dismissed": True})
    assert isinstance(dismissed, dict)
    assert (dismissed["dismissed"], dismissed["review_note"]) == (True, "The postman.")
    assert (await search(hass, entry, dismissed=True))["total"] == 1
    cleared = await call(hass, "review_event", {**base, "reviewed": False, "note": ""})
    assert isinstance(cleared, dict)
    assert (cleared["reviewed"], cleared["dismissed"], cleared["review_note"]) == (
        False,
        False,
        None,
    )
    # Without asking for the response, the review is still made.
    assert await call(hass, "review_event", base, response=False) is None
    (listed,) = (await search(hass, entry, reviewed=True))["events"]
    assert listed["event_id"] == event_id
    # Kept past retention, then let go again; not giving keep leaves it as it is.
    kept = await call(hass, "review_event", {**base, "keep": True})
    assert isinstance(kept, dict)
    assert kept["keep"] is True
    again = await call(hass, "review_event", base)
    assert isinstance(again, dict)
    assert again["keep"] is True
    released = await call(hass, "review_event", {**base, "keep": False})
    assert isinstance(released, dict)
    assert released["keep"] is False


async def test_review_says_looks_right_false_alarm_or_missed(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """The three outcomes are stored and returned; false alarm and missed exclude each other.

    A review taken back drops its outcome; a refused review leaves the event as it was.
    """
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    event_id = (await upload_event(hass, camera_root, "Porch/a.jpg", 1, events))["event_id"]
    base = {"config_entry_id": entry.entry_id, "event_id": event_id}

    def outcome(event: Any) -> tuple[bool, bool, bool]:
        return event["reviewed"], event["dismissed"], event["missed"]

    assert outcome(await call(hass, "review_event", base)) == (True, False, False)
    missed = await call(hass, "review_event", {**base, "missed": True, "note": "It was a thief"})
    assert outcome(missed) == (True, False, True)
    assert outcome(await call(hass, "review_event", {**base, "dismissed": True})) == (
        True,
        True,
        False,
    )
    err = await refused(hass, "review_event", {**base, "dismissed": True, "missed": True})
    assert err.translation_key == "review_conflict"
    assert str(err) == "An event cannot be both a false alarm and missed: choose one"
    (stored,) = (await search(hass, entry))["events"]
    assert outcome(stored) == (True, True, False)  # unchanged by the refused review
    back = await call(hass, "review_event", {**base, "reviewed": False, "missed": True})
    assert outcome(back) == (False, False, False)
    # What the audit trail kept: each review, the refused one with its error.
    log = await call(
        hass, "get_audit_log", {"config_entry_id": entry.entry_id, "action": "review_event"}
    )
    assert isinstance(log, dict)
    assert log["total"] == 5
    assert [record["success"] for record in log["records"]] == [True, False, True, True, True]
    assert log["records"][2]["arguments"]["missed"] is False  # newest first: the false alarm


async def test_review_of_a_missing_event_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """An event that never existed, or was deleted, cannot be reviewed (a clear error)."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    event_id = (await upload_event(hass, camera_root, "Porch/a.jpg", 1, events))["event_id"]
    pipeline = entry.runtime_data.pipeline
    assert await pipeline.db.run(lambda session: delete_event(session, event_id))

    for missing in (event_id, "0" * 32, "not an id"):
        data = {"config_entry_id": entry.entry_id, "event_id": missing}
        err = await refused(hass, "review_event", data)
        assert err.translation_key == "event_not_found"
        assert err.translation_placeholders == {"event_id": missing}
        assert str(err) == f"There is no event {missing}; it may have been deleted"
    assert (await search(hass, entry))["total"] == 0


async def test_review_note_too_long_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> None:
    """A note over 1000 characters is refused and the event is left as it was."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    event_id = (await upload_event(hass, camera_root, "Porch/a.jpg", 1, events))["event_id"]
    data = {"config_entry_id": entry.entry_id, "event_id": event_id, "note": "n" * 1001}
    err = await refused(hass, "review_event", data)
    assert err.translation_key == "review_note_too_long"
    assert str(err) == "The note has 1001 characters; at most 1000 are allowed"
    (event,) = (await search(hass, entry))["events"]
    assert (event["reviewed"], event["review_note"]) == (False, None)


async def test_summary_with_markup_is_returned_as_text(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    llm_stub: LlmStub,
) -> None:
    """HTML and markdown the LLM wrote come back verbatim, neither escaped nor stripped."""
    summary = '<img src=x onerror="alert(1)"> **Bold** _x_ [door](javascript:alert(1)) &amp; <'
    reasoning = "<script>alert('x')</script>\n# Heading\n| a | b |"
    llm_stub.verdict = {
        "risk_score": 40,
        "risk_level": "medium",
        "summary": summary,
        "reasoning": reasoning,
    }
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    event_id = (await upload_event(hass, camera_root, "Porch/a.jpg", 1, events))["event_id"]

    (found,) = (await search(hass, entry, text="img onerror door"))["events"]
    assert (found["summary"], found["reasoning"]) == (summary, reasoning)
    note = "<b>checked</b> *ok*"
    data = {"config_entry_id": entry.entry_id, "event_id": event_id, "note": note}
    reviewed = await call(hass, "review_event", data)
    assert isinstance(reviewed, dict)
    assert (reviewed["summary"], reviewed["review_note"]) == (summary, note)


# --- reprocess_file and process_old_uploads ------------------------------------------------------


async def test_process_old_uploads_refuses_an_unknown_camera(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """The camera must be one of the hub's; with none named, every camera counts."""
    await set_up(hass, entry)
    err = await refused(
        hass, "process_old_uploads", {"config_entry_id": entry.entry_id, "camera": "nowhere"}
    )
    assert err.translation_key == "unknown_camera"
    response = await call(hass, "process_old_uploads", {"config_entry_id": entry.entry_id})
    assert response == {"queued": 0}


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("../../secrets.yaml", "not_an_upload"),
        ("../outside.jpg", "not_an_upload"),
        ("Porch/../../outside.jpg", "not_an_upload"),
        ("/etc/passwd", "not_an_upload"),
        ("top_level.jpg", "not_an_upload"),
        ("Porch/notes.txt", "not_an_upload"),
        ("Porch/missing.jpg", "file_not_found"),
        ("Porch/broken.jpg", "file_unusable"),
        ("Porch/link.jpg", "file_unusable"),
        ("Porch/sub/inside_a_linked_folder.jpg", "file_unusable"),
    ],
)
async def test_reprocess_refuses_what_is_not_an_upload(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    tmp_path: Path,
    detector_server: DetectorServer,  # noqa: F811
    path: str,
    key: str,
) -> None:
    """Paths outside the camera root, missing files and unreadable ones are refused."""
    await set_up(hass, entry)

    def files() -> None:
        (tmp_path / "outside.jpg").write_bytes(jpeg(9))
        (tmp_path / "secrets.yaml").write_text("password: hunter2\n")
        (camera_root / "top_level.jpg").write_bytes(jpeg(8))
        (camera_root / "Porch").mkdir()
        (camera_root / "Porch" / "notes.txt").write_text("hello")
        (camera_root / "Porch" / "broken.jpg").write_bytes(b"not a jpeg at all")
        (camera_root / "Porch" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
        (tmp_path / "elsewhere").mkdir()
        (tmp_path / "elsewhere" / "inside_a_linked_folder.jpg").write_bytes(jpeg(7))
        (camera_root / "Porch" / "sub").symlink_to(tmp_path / "elsewhere")

    await hass.async_add_executor_job(files)
    err = await refused(hass, "reprocess_file", {"config_entry_id": entry.entry_id, "path": path})
    assert err.translation_key == key
    assert err.translation_placeholders is not None
    assert err.translation_placeholders["path"] == path
    message = str(err)
    assert path in message
    assert "{" not in message
    assert "hunter2" not in message
    # Nothing of the file outside the root reached the detector.
    outside = hashlib.sha256(jpeg(9)).hexdigest()
    assert outside not in {request.sha256 for request in detector_server.requests}


async def test_reprocess_sends_a_known_file_again(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """An upload already processed goes to the detector again (dedupe skipped), by either path."""
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    await upload_event(hass, camera_root, "Porch/a.jpg", 1, events)
    assert detector_server.count == 1

    response = await call(
        hass, "reprocess_file", {"config_entry_id": entry.entry_id, "path": "Porch/a.jpg"}
    )
    assert isinstance(response, dict)
    assert set(response) == {"job_id"}
    assert isinstance(response["job_id"], int)
    await detector_server.wait_for_requests(2, seconds=10)
    first, second = detector_server.requests
    assert second.sha256 == first.sha256
    assert second.filename == "a.jpg"

    absolute = str(camera_root / "Porch" / "a.jpg")
    again = await call(
        hass, "reprocess_file", {"config_entry_id": entry.entry_id, "path": absolute}
    )
    assert isinstance(again, dict)
    assert again["job_id"] != response["job_id"]
    await detector_server.wait_for_requests(3, seconds=10)
    assert detector_server.requests[2].sha256 == first.sha256


async def test_admin_actions_need_an_admin(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_read_only_user: User,
) -> None:
    """Reprocessing files and retrying dead jobs are for administrators; searching is not."""
    await set_up(hass, entry)
    context = Context(user_id=hass_read_only_user.id)
    data = {"config_entry_id": entry.entry_id}
    for action, extra in (
        ("reprocess_file", {"path": "Porch/a.jpg"}),
        ("requeue_dead_letters", {}),
        ("list_dead_jobs", {}),
    ):
        with pytest.raises(Unauthorized):
            await call(hass, action, {**data, **extra}, context=context)
    response = await call(hass, "search_events", data, context=context)
    assert isinstance(response, dict)
    assert response["total"] == 0


# --- analyze_now ----------------------------------------------------------------------------------


async def test_analyze_now_judges_the_open_batch_at_once(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """With a 60 s idle time, the incident is judged right after analyze_now, not a minute later."""
    hass.config_entries.async_update_entry(
        entry,
        options={
            "batch_window": 60,
            "batch_idle_timeout": 60,
            "debounce": 0.1,
            "detection_events": True,
        },
    )
    events = async_capture_events(hass, "ai_security_event")
    found = async_capture_events(hass, "ai_security_detection")
    await set_up(hass, entry)
    porch = await add_camera(hass, entry, camera_root, detector_server, "Porch", 1)
    data = {"config_entry_id": entry.entry_id, "camera": porch}

    err = await refused(hass, "analyze_now", data, response=False)
    assert err.translation_key == "no_open_batch"
    assert str(err) == "Camera porch has no open incident to analyze"

    updates = async_capture_events(hass, "ai_security_event_updated")
    detector_server.answer(Reply(body=detections(detection("person", 0.8, [10, 20, 30, 60]))))
    await hass.async_add_executor_job(write, camera_root / "Porch" / "b.jpg", jpeg(2))
    await wait_until(lambda: len(found) == 1, seconds=20, what="the detection")
    await wait_until(lambda: len(events) == 1, seconds=5, what="the incident to open")
    assert events[0].data["source"] == "heuristic"
    await asyncio.sleep(0.5)
    assert updates == []  # not judged again before it ends (a minute of idleness)
    started = time.monotonic()
    assert await call(hass, "analyze_now", data, response=False) is None
    await wait_until(lambda: len(updates) == 1, seconds=5, what="the verdict after analyze_now")
    assert time.monotonic() - started < 5
    (update,) = updates
    assert update.data["event_id"] == events[0].data["event_id"]
    assert (update.data["camera_id"], update.data["detection_count"]) == (porch, 1)
    assert (update.data["summary"], update.data["ongoing"]) == (SUMMARY, False)
    assert len(events) == 1

    # The batch is gone: nothing is left to analyze.
    err = await refused(hass, "analyze_now", data, response=False)
    assert err.translation_key == "no_open_batch"


async def test_analyze_now_of_an_unknown_camera_is_refused(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """A camera the hub does not know is named in the error."""
    await set_up(hass, entry)
    data = {"config_entry_id": entry.entry_id, "camera": "nowhere"}
    err = await refused(hass, "analyze_now", data, response=False)
    assert err.translation_key == "unknown_camera"
    assert str(err).startswith("This hub has no camera nowhere.")


# --- dead jobs ------------------------------------------------------------------------------------


async def test_list_and_requeue_dead_letters(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
) -> None:
    """An upload the detector refuses is listed with the reason; retried, it becomes an event."""
    detector_server.answer(Reply(status=413, body={"error": "image too large"}))
    events = async_capture_events(hass, "ai_security_event")
    await set_up(hass, entry)
    assert not hass.services.has_service(DOMAIN, "requeue_dead_jobs")
    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(7))

    async def listed() -> bool:
        response = await call(hass, "list_dead_jobs", {"config_entry_id": entry.entry_id})
        return bool(response and response["jobs"])

    await wait_until(listed, seconds=20, what="the dead job")
    response = await call(hass, "list_dead_jobs", {"config_entry_id": entry.entry_id})
    assert isinstance(response, dict)
    jobs = response["jobs"]
    assert isinstance(jobs, list)
    (job,) = jobs
    assert isinstance(job, dict)
    assert (job["kind"], job["attempts"]) == ("detect", 1)
    assert "413" in str(job["last_error"])

    detector_server.answer(Reply(body=detections(detection("person", 0.7, [1, 2, 3, 4]))))
    job_id = job["job_id"]
    response = await call(
        hass, "requeue_dead_letters", {"config_entry_id": entry.entry_id, "job_ids": [job_id]}
    )
    assert response == {"requeued": 1}
    await wait_until(lambda: len(events) == 1, seconds=20, what="the event after the retry")
    response = await call(hass, "requeue_dead_letters", {"config_entry_id": entry.entry_id})
    assert response == {"requeued": 0}


async def test_actions_need_a_loaded_entry(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """Naming an entry that is not loaded is a clear error, not a crash."""
    await set_up(hass, entry)
    assert await hass.config_entries.async_unload(entry.entry_id)
    for action, extra, response in (
        ("list_dead_jobs", {}, True),
        ("requeue_dead_letters", {}, True),
        ("search_events", {"text": "door"}, True),
        ("review_event", {"event_id": "0" * 32}, True),
        ("reprocess_file", {"path": "Porch/a.jpg"}, True),
        ("process_old_uploads", {}, True),
        ("analyze_now", {"camera": "porch"}, False),
        ("snooze_camera", {"camera": "porch", "duration": 10}, True),
    ):
        for entry_id in (entry.entry_id, "nope"):
            data = {"config_entry_id": entry_id, **extra}
            with pytest.raises(ServiceValidationError):
                await call(hass, action, data, response=response)


async def test_queue_errors_are_reported(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """When the database cannot answer, the action fails with a readable, translated error."""
    await set_up(hass, entry)
    queue = entry.runtime_data.pipeline.queue

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise OSError("disk I/O error")

    queue.dead_jobs = broken  # type: ignore[method-assign]
    queue.requeue_dead = broken  # type: ignore[method-assign]
    for service in ("list_dead_jobs", "requeue_dead_letters"):
        with pytest.raises(
            HomeAssistantError, match="The AI Security job queue cannot be read: disk I/O error"
        ):
            await call(hass, service, {"config_entry_id": entry.entry_id})


# --- descriptions and translations ---------------------------------------------------------------


async def test_actions_are_registered_with_their_descriptions(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
) -> None:
    """services.yaml passes Home Assistant's own schema: every action shows its fields in the UI."""
    await set_up(hass, entry)
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    expected = {
        "search_events": {
            "config_entry_id",
            "text",
            "cameras",
            "min_level",
            "start",
            "end",
            "reviewed",
            "dismissed",
            "page",
            "page_size",
        },
        "review_event": {
            "config_entry_id",
            "event_id",
            "reviewed",
            "dismissed",
            "missed",
            "note",
            "keep",
        },
        "reprocess_file": {"config_entry_id", "path"},
        "process_old_uploads": {"config_entry_id", "camera", "since"},
        "analyze_now": {"config_entry_id", "camera"},
        "snooze_camera": {"config_entry_id", "camera", "duration"},
        "reset_learning": {"config_entry_id", "camera"},
        "learned_spots": {"config_entry_id", "camera", "forget"},
        "digest": {"config_entry_id", "cameras", "period", "start", "end", "use_llm"},
        "list_dead_jobs": {"config_entry_id"},
        "requeue_dead_letters": {"config_entry_id", "job_ids"},
        "get_audit_log": {"config_entry_id", "page", "page_size", "action", "since"},
        "test_alert_rule": {
            "config_entry_id",
            "start",
            "end",
            "min_level",
            "object_types",
            "cameras",
            "zones",
            "active_from",
            "active_to",
            "weekdays",
            "cooldown",
        },
    }
    assert {name: set(spec["fields"]) for name, spec in descriptions.items()} == expected
    level = descriptions["search_events"]["fields"]["min_level"]["selector"]["select"]
    assert level["translation_key"] == "risk_level"
    assert set(STRINGS["selector"]["risk_level"]["options"]) == set(level["options"])
    assert descriptions["search_events"]["response"] == {"optional": False}
    assert descriptions["review_event"]["response"] == {"optional": True}
    assert "response" not in descriptions["analyze_now"]
    assert descriptions["snooze_camera"]["response"] == {"optional": True}


def test_every_refusal_the_library_can_raise_is_translated() -> None:
    """The keys of the refusals actions meet are passed on as they are: all have texts.

    The decorator turns every AiSecurityError into a ServiceValidationError under its own key,
    so each key raised anywhere in core/ by these classes needs a text in "exceptions".
    """
    refusals = (EventQueryError, ReprocessError, RuleError)
    assert all(issubclass(refusal, AiSecurityError) for refusal in refusals)
    sources = [path.read_text() for path in sorted((INTEGRATION / "core").glob("*.py"))]
    keys = {
        refusal.__name__: {
            key
            for source in sources
            for key in re.findall(rf'\b{refusal.__name__}\(\s*"(\w+)"', source)
        }
        for refusal in refusals
    }
    assert keys == {
        "EventQueryError": {
            "invalid_page",
            "invalid_page_size",
            "search_text_too_long",
            "naive_datetime",
            "invalid_date_range",
            "review_note_too_long",
            "review_conflict",
        },
        "ReprocessError": {"not_an_upload", "file_not_found", "file_unusable", "unknown_camera"},
        "RuleError": {"invalid_cooldown", "invalid_weekday"},
    }
    services = (INTEGRATION / "service_handlers.py").read_text()
    own = set(re.findall(r'(?:translation_key=|failure=)"(\w+)"', services))
    assert {"unknown_camera", "event_not_found", "no_open_batch", "invalid_snooze_duration"} <= own
    assert {"database_failed", "database_write_failed", "queue_unavailable"} <= own
    messages = STRINGS["exceptions"]
    for key in set().union(*keys.values()) | own:
        assert messages[key]["message"], key
