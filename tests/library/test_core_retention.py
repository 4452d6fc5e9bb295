"""core.retention on SQLite and PostgreSQL: what goes, what stays, and files outside the root."""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from custom_components.ai_security.core import events as ev
from custom_components.ai_security.core.derived import DerivedMedia
from custom_components.ai_security.core.events import EventQuery
from custom_components.ai_security.core.models import MediaType
from custom_components.ai_security.core.payloads import AnalyzePayload, DetectPayload
from custom_components.ai_security.core.retention import (
    MAX_DAYS,
    RetentionError,
    RetentionStats,
    run_retention,
)
from custom_components.ai_security.core.storage import (
    AuditRow,
    BatchRow,
    CameraRow,
    Database,
    DetectionRow,
    EventDetectionRow,
    EventRow,
    JobRow,
    MediaRow,
)

# Files get their change time from the real clock, which no test can set back: "now" lies two
# months ahead, so files written by a test are older than its cutoff (now - 30 days).
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
OLD = NOW - timedelta(days=40)
NEW = NOW - timedelta(days=1)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.start()
    yield database
    await database.close()


@dataclass
class World:
    """A camera root, a derived-media root and a file outside both that must survive."""

    root: Path
    media: DerivedMedia
    outside: Path

    def upload(self, name: str, content: bytes = b"x" * 100) -> str:
        path = self.root / "front" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)


@pytest.fixture
def world(tmp_path: Path) -> World:
    outside = tmp_path / "secret" / "diary.jpg"
    outside.parent.mkdir()
    outside.write_bytes(b"keep me" * 10)
    return World(tmp_path / "cameras", DerivedMedia(tmp_path / "derived"), outside)


def event_row(event_id: str, started_at: datetime, *, keep: bool = False) -> EventRow:
    return EventRow(
        event_id=event_id,
        camera_id="front",
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=30),
        risk_score=10,
        risk_level="low",
        summary=f"summary {event_id} zebra",
        reasoning="nothing",
        object_types=["person"],
        detection_count=1,
        is_fast_path=False,
        source="llm",
        reviewed=False,
        created_at=started_at,
        keep=keep,
    )


def detection(detection_id: int, media_id: int, at: datetime, batch_key: str | None = None) -> Any:
    return DetectionRow(
        detection_id=detection_id,
        media_id=media_id,
        camera_id="front",
        label="person",
        confidence=0.9,
        x=0.1,
        y=0.1,
        w=0.2,
        h=0.2,
        frame_width=640,
        frame_height=480,
        detected_at=at,
        batch_key=batch_key,
    )


def job(job_id: int, state: str, at: datetime, kind: str = "detect", **payload: Any) -> JobRow:
    return JobRow(
        job_id=job_id,
        kind=kind,
        payload=payload,
        state=state,
        attempts=0,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
    )


async def seed(db: Database, world: World) -> None:
    """Store one of each: old, new, kept, orphaned, and what pending work still needs.

    media 1: old upload of the old event (detections 1, 2) -> all go
    media 2: old upload of the kept event (detection 3) -> stays
    media 3: new upload of the new event (detection 4) -> stays
    media 4: old upload without detections, file on disk -> goes only with its file
    media 5: old upload without detections, file already gone -> the row goes
    media 6: old upload a queued detect job still needs -> stays
    detection 5: old, unlinked -> goes; 6: old, in an open batch -> stays;
    detection 7: old, in a queued analyze job -> stays (both on media 1, which then stays too)
    """
    paths = {
        1: world.upload("old_event.jpg"),
        2: world.upload("kept_event.jpg"),
        3: world.upload("new_event.jpg"),
        4: world.upload("old_orphan.jpg", b"y" * 250),
        5: str(world.root / "front" / "vanished.jpg"),
        6: world.upload("queued.jpg"),
    }
    received = {1: OLD, 2: OLD, 3: NEW, 4: OLD, 5: OLD, 6: OLD}

    def store(session: Session) -> None:
        session.add(CameraRow(camera_id="front", folder="front", name="Front", created_at=OLD))
        session.flush()
        session.add_all(
            MediaRow(
                media_id=media_id,
                camera_id="front",
                path=path,
                sha256=f"{media_id:064d}",
                media_type="image",
                size=100,
                received_at=received[media_id],
            )
            for media_id, path in paths.items()
        )
        session.flush()
        session.add_all(
            [
                detection(1, 1, OLD),
                detection(2, 1, OLD + timedelta(seconds=1)),
                detection(3, 2, OLD),
                detection(4, 3, NEW),
                detection(5, 1, OLD),
                detection(6, 1, OLD, batch_key="open"),
                detection(7, 1, OLD),
                event_row("old", OLD),
                event_row("kept", OLD, keep=True),
                event_row("new", NEW),
                BatchRow(
                    camera_id="front",
                    batch_key="open",
                    opened_at=OLD,
                    last_detection_at=OLD,
                    detection_count=1,
                ),
                job(1, "done", OLD),
                job(2, "dead", OLD),
                job(
                    3,
                    "queued",
                    OLD,
                    **DetectPayload(
                        media_id=6,
                        camera_id="front",
                        path=paths[6],
                        media_type=MediaType.IMAGE,
                        width=64,
                        height=48,
                    ).to_json(),
                ),
                job(
                    4,
                    "running",
                    OLD,
                    kind="analyze",
                    **AnalyzePayload(
                        camera_id="front",
                        started_at=OLD,
                        ended_at=OLD,
                        fast_path=True,
                        detection_ids=(7,),
                    ).to_json(),
                ),
                job(5, "done", NEW),
                job(6, "dead", NEW),
                AuditRow(audit_id=1, at=OLD, action="delete_event", arguments={}, success=True),
                AuditRow(audit_id=2, at=NEW, action="delete_event", arguments={}, success=True),
            ]
        )
        session.flush()
        session.add_all(
            [
                EventDetectionRow(event_id="old", detection_id=1),
                EventDetectionRow(event_id="old", detection_id=2),
                EventDetectionRow(event_id="kept", detection_id=3),
                EventDetectionRow(event_id="new", detection_id=4),
            ]
        )

    await db.run(store)


async def remaining(db: Database) -> dict[str, list[Any]]:
    def read(session: Session) -> dict[str, list[Any]]:
        return {
            "events": sorted(session.scalars(select(EventRow.event_id))),
            "detections": sorted(session.scalars(select(DetectionRow.detection_id))),
            "links": sorted(session.execute(select(EventDetectionRow.event_id)).scalars()),
            "media": sorted(session.scalars(select(MediaRow.media_id))),
            "jobs": sorted(session.scalars(select(JobRow.job_id))),
            "audit": sorted(session.scalars(select(AuditRow.audit_id))),
        }

    return await db.run(read)


async def retain(db: Database, world: World, **kwargs: Any) -> RetentionStats:
    options: dict[str, Any] = {"now": NOW, "days": 30, "media": world.media} | kwargs
    return await run_retention(db, **options)


async def test_old_rows_go_new_kept_and_pending_stay(db: Database, world: World) -> None:
    """Each table loses exactly its old rows; kept events and pending work keep theirs."""
    await seed(db, world)
    stats = await retain(db, world)
    assert await remaining(db) == {
        "events": ["kept", "new"],
        "detections": [3, 4, 6, 7],
        "links": ["kept", "new"],
        # 1 still has detections 6 and 7; 4's upload is still on disk (uploads not deleted).
        "media": [1, 2, 3, 4, 6],
        "jobs": [3, 4, 5, 6],
        "audit": [2],
    }
    assert (stats.events, stats.detections, stats.media, stats.jobs, stats.audit) == (
        1,
        3,
        1,
        2,
        1,
    )
    assert stats.rows == 8
    # No upload was touched without delete_uploads.
    assert sorted(p.name for p in (world.root / "front").iterdir()) == [
        "kept_event.jpg",
        "new_event.jpg",
        "old_event.jpg",
        "old_orphan.jpg",
        "queued.jpg",
    ]
    # The full-text index followed: the old event's words find nothing any more.
    found = await db.run(lambda s: ev.search_events(s, EventQuery(text="zebra")))
    assert sorted(e.event_id for e in found.events) == ["kept", "new"]
    assert await db.run(lambda s: ev.count_events(s, EventQuery(text="old"))) == 0


async def test_pending_work_released_then_deleted(db: Database, world: World) -> None:
    """Once the batch closed and the jobs finished, the next run deletes what they held."""
    await seed(db, world)
    await retain(db, world)

    def finish(session: Session) -> None:
        session.execute(update(JobRow).values(state="done"))
        session.execute(delete(BatchRow))

    await db.run(finish)
    stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    after = await remaining(db)
    assert after["detections"] == [3, 4]
    assert after["media"] == [2, 3]
    assert after["jobs"] == [5, 6]  # 3 and 4 finished at OLD: past retention now
    assert (stats.detections, stats.media, stats.jobs) == (2, 3, 2)


async def test_running_twice_is_idempotent(db: Database, world: World) -> None:
    """A second run finds nothing more to do and changes nothing."""
    await seed(db, world)
    await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    before = await remaining(db)
    stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    assert stats.rows == stats.files == stats.bytes_freed == 0
    assert await remaining(db) == before


async def test_small_chunks_give_the_same_result(db: Database, world: World) -> None:
    """Chunks of 2 rows, with kept rows between them, delete exactly what one chunk would."""
    await seed(db, world)

    def more(session: Session) -> None:
        # 9 old events, every third kept, each with two detections on media 1.
        for n in range(9):
            at = OLD + timedelta(minutes=n)
            session.add(event_row(f"e{n}", at, keep=n % 3 == 0))
            session.add_all([detection(100 + 2 * n, 1, at), detection(101 + 2 * n, 1, at)])
            session.flush()
            session.add_all(
                [
                    EventDetectionRow(event_id=f"e{n}", detection_id=100 + 2 * n),
                    EventDetectionRow(event_id=f"e{n}", detection_id=101 + 2 * n),
                ]
            )
        session.add_all(job(10 + n, "done", OLD) for n in range(5))

    await db.run(more)
    transactions = db.transactions
    stats = await retain(db, world, chunk=2)
    after = await remaining(db)
    assert after["events"] == ["e0", "e3", "e6", "kept", "new"]
    assert after["detections"] == [3, 4, 6, 7, 100, 101, 106, 107, 112, 113]
    assert after["jobs"] == [3, 4, 5, 6]
    assert (stats.events, stats.detections, stats.jobs) == (7, 15, 7)
    # Many short transactions, not one long one.
    assert db.transactions - transactions > 15


async def test_derived_folders_of_deleted_events_only(db: Database, world: World) -> None:
    """The old event's folder goes (its bytes counted); the kept and new events' stay."""
    await seed(db, world)
    for event_id, at in (("old", OLD), ("kept", OLD), ("new", NEW)):
        world.media.write_file(world.media.key_frame_path("front", event_id, at), b"k" * 300)
        world.media.write_file(world.media.frame_path("front", event_id, at, 1), b"f" * 200)
    stats = await retain(db, world)
    assert not world.media.event_dir("front", "old", OLD).exists()
    assert world.media.key_frame_path("front", "kept", OLD).read_bytes() == b"k" * 300
    assert world.media.key_frame_path("front", "new", NEW).exists()
    assert stats.files == 1
    assert stats.bytes_freed == 500


async def test_uploads_deleted_only_when_asked(db: Database, world: World) -> None:
    """delete_uploads removes old uploads no detection needs; the others stay."""
    await seed(db, world)
    stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    assert sorted(p.name for p in (world.root / "front").iterdir()) == [
        "kept_event.jpg",
        "new_event.jpg",
        "old_event.jpg",  # detections 6 and 7 still need it
        "queued.jpg",
    ]
    assert (await remaining(db))["media"] == [1, 2, 3, 6]
    assert (stats.media, stats.files, stats.bytes_freed) == (2, 1, 250)
    assert world.outside.read_bytes() == b"keep me" * 10


async def test_upload_rewritten_after_the_cutoff_stays(db: Database, world: World) -> None:
    """A camera reusing a file name: the file now holds a newer upload, which stays.

    The row is 40 days old, the file was written just now; the row goes, the file stays.
    """
    await seed(db, world)
    real_now = datetime.now(UTC)
    path = world.upload("snapshot.jpg")

    def store(session: Session) -> None:
        session.add(
            MediaRow(
                media_id=40,
                camera_id="front",
                path=path,
                sha256="e" * 64,
                media_type="image",
                size=100,
                received_at=real_now - timedelta(days=40),
            )
        )

    await db.run(store)
    stats = await retain(db, world, now=real_now, delete_uploads=True, camera_root=str(world.root))
    assert (stats.media, stats.files) == (1, 0)
    assert Path(path).read_bytes() == b"x" * 100  # noqa: ASYNC240


async def test_symlink_in_camera_root_to_outside(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A link in the root is removed itself; the file it points to, outside, is never touched.

    A link to a folder outside is not followed at all: what lies behind it stays, and so does
    the link (it is the camera folder's business), with a warning.
    """
    await seed(db, world)
    link = world.root / "front" / "link.jpg"
    link.symlink_to(world.outside)
    (world.root / "elsewhere").symlink_to(world.outside.parent, target_is_directory=True)
    behind = world.root / "elsewhere" / "diary.jpg"

    def store(session: Session) -> None:
        for media_id, path in ((20, link), (21, behind)):
            session.add(
                MediaRow(
                    media_id=media_id,
                    camera_id="front",
                    path=str(path),
                    sha256=f"{media_id:064d}",
                    media_type="image",
                    size=70,
                    received_at=OLD,
                )
            )

    await db.run(store)
    with caplog.at_level(logging.WARNING):
        stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    assert world.outside.read_bytes() == b"keep me" * 10
    assert not os.path.lexists(link)  # noqa: ASYNC240
    assert (world.root / "elsewhere").is_symlink()
    assert 20 not in (await remaining(db))["media"]
    assert stats.files == 2  # old_orphan.jpg and the link
    assert stats.bytes_freed == 250  # removing a link frees nothing of the target
    assert "could not safely delete" in caplog.text
    assert str(behind) in caplog.text


@pytest.mark.parametrize(
    "path",
    [
        "{outside}",  # an absolute path elsewhere
        "{root}/front/../../secret/diary.jpg",  # climbs out of the root
        "../secret/diary.jpg",  # relative, climbing out
    ],
)
async def test_media_row_pointing_outside_the_root(db: Database, world: World, path: str) -> None:
    """A manipulated row cannot make retention delete a file outside the camera root."""
    await seed(db, world)
    world.root.joinpath("front").mkdir(exist_ok=True)
    forged = path.format(outside=world.outside, root=world.root)

    def store(session: Session) -> None:
        session.add(
            MediaRow(
                media_id=30,
                camera_id="front",
                path=forged,
                sha256="f" * 64,
                media_type="image",
                size=70,
                received_at=OLD,
            )
        )

    await db.run(store)
    stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    assert world.outside.read_bytes() == b"keep me" * 10
    assert stats.files == 1  # old_orphan.jpg only
    assert 30 not in (await remaining(db))["media"]  # not a file of ours: the row may go


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1, True])
async def test_days_out_of_range_refused(db: Database, world: World, days: int) -> None:
    """0 days (or fewer, or more than 100 years) is refused before anything is deleted."""
    await seed(db, world)
    before = await remaining(db)
    with pytest.raises(RetentionError) as raised:
        await retain(db, world, days=days)
    assert raised.value.translation_key == "retention_days_out_of_range"
    assert raised.value.placeholders["max"] == str(MAX_DAYS)
    assert await remaining(db) == before


async def test_36500_days_deletes_nothing(db: Database, world: World) -> None:
    """The longest retention keeps everything (events 40 days old are far from 100 years)."""
    await seed(db, world)

    def ancient(session: Session) -> None:
        session.add(event_row("ancient", NOW - timedelta(days=MAX_DAYS - 1)))

    await db.run(ancient)
    before = await remaining(db)
    stats = await retain(db, world, days=MAX_DAYS, delete_uploads=True, camera_root=str(world.root))
    assert stats.rows == stats.files == 0
    assert await remaining(db) == before


async def test_stats_as_dict(db: Database, world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The figures come out JSON-ready, and the run logs one summary line."""
    await seed(db, world)
    with caplog.at_level(logging.INFO, logger="custom_components.ai_security.core.retention"):
        stats = await retain(db, world)
    data = stats.as_dict()
    assert data["events"] == 1
    assert data["rows"] == 8
    assert data["started_at"] == NOW.isoformat()
    assert datetime.fromisoformat(data["finished_at"]) >= NOW
    assert data["seconds"] >= 0
    assert "Retention (30 days" in caplog.text
    assert "1 events, 3 detections" in caplog.text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"now": NOW.replace(tzinfo=None)}, "timezone-aware"),
        ({"chunk": 0}, "chunk"),
        ({"delete_uploads": True}, "camera root"),
    ],
)
async def test_bad_arguments(
    db: Database, world: World, options: dict[str, Any], message: str
) -> None:
    """Programming errors are refused before any work."""
    with pytest.raises(ValueError, match=message):
        await retain(db, world, **options)


async def test_derived_folder_behind_a_link_is_left(
    db: Database, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A camera folder of the derived media that links elsewhere is never deleted through."""
    await seed(db, world)
    elsewhere = world.outside.parent / "front"
    event_dir = elsewhere / OLD.strftime("%Y-%m-%d") / "old"
    event_dir.mkdir(parents=True)
    (event_dir / "key.jpg").write_bytes(b"k" * 10)
    world.media.root.mkdir(parents=True)
    (world.media.root / "front").symlink_to(elsewhere, target_is_directory=True)
    with caplog.at_level(logging.WARNING):
        stats = await retain(db, world)
    assert (event_dir / "key.jpg").read_bytes() == b"k" * 10
    assert stats.events == 1  # the row goes all the same
    assert (stats.files, stats.bytes_freed) == (0, 0)
    assert "could not safely delete" in caplog.text


async def test_hard_link_and_folder_uploads(db: Database, world: World) -> None:
    """Uploads that are not plain files of their own: a hard link, a folder.

    Removing a name hard-linked to a file outside frees nothing and leaves that file whole; a
    folder where an upload was is left alone.
    """
    await seed(db, world)
    linked = world.root / "front" / "hard.jpg"
    os.link(world.outside, linked)
    folder = world.root / "front" / "folder.jpg"
    folder.mkdir()

    def store(session: Session) -> None:
        for media_id, path in ((50, linked), (51, folder)):
            session.add(
                MediaRow(
                    media_id=media_id,
                    camera_id="front",
                    path=str(path),
                    sha256=f"{media_id:064d}",
                    media_type="image",
                    size=70,
                    received_at=OLD,
                )
            )

    await db.run(store)
    stats = await retain(db, world, delete_uploads=True, camera_root=str(world.root))
    assert world.outside.read_bytes() == b"keep me" * 10
    assert not linked.exists()
    assert folder.is_dir()
    assert (stats.files, stats.bytes_freed) == (2, 250)  # old_orphan.jpg and hard.jpg


async def test_batch_of_a_pending_analysis_is_kept(db: Database, world: World) -> None:
    """Detections of a closed batch whose analysis is still queued stay until it has run."""
    await seed(db, world)

    def store(session: Session) -> None:
        session.add(detection(60, 1, OLD, batch_key="closed"))
        payload = AnalyzePayload(
            camera_id="front", started_at=OLD, ended_at=OLD, batch_key="closed", event_id="e"
        )
        session.add(job(70, "queued", OLD, kind="analyze", **payload.to_json()))

    await db.run(store)
    await retain(db, world)
    assert 60 in (await remaining(db))["detections"]


async def test_a_corrupt_pending_job_does_not_stop_retention(db: Database, world: World) -> None:
    """A queued job whose payload no version wrote protects nothing and breaks nothing.

    It goes dead with the reason when it runs; retention still keeps what the readable jobs
    need (detection 7, media 6) and removes the old event's rows.
    """
    await seed(db, world)

    def store(session: Session) -> None:
        session.add(job(71, "queued", OLD, kind="analyze", batch_key=5, detection_ids="x"))
        session.add(job(72, "queued", OLD, media_id="six"))

    await db.run(store)
    await retain(db, world)
    left = await remaining(db)
    assert 7 in left["detections"]
    assert 1 not in left["detections"]
