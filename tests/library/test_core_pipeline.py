"""The whole pipeline, core only: real folders, watchdog, SQLite/PostgreSQL, HTTP servers.

The detector is the protocol-speaking test server; the LLM is a stub with exact verdicts, except
in the test that runs the real llama-server end to end.
"""

import asyncio
from collections.abc import AsyncIterator
import hashlib
import logging
import os
from pathlib import Path
import shutil
import subprocess

import pytest
from sqlalchemy import func, select

from custom_components.ai_security.core.jobs import JobKind, JobState
from custom_components.ai_security.core.models import EventSource, RiskLevel
from custom_components.ai_security.core.storage import (
    DetectionRow,
    EventDetectionRow,
    EventRow,
    MediaRow,
)
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.llama import grammar_friendly_params, llama_server_fixture, llama_server_process_fixture  # noqa: F401
from tests.pipeline_helpers import (
    Recorder,
    config,
    fast_options,
    jpeg,
    running,
    wait_for_dead_jobs,
    wait_for_jobs,
    wait_until,
    write,
)
from tests.programs import require_program
from tests.servers import LlmStub

PERSON = detection("person", 0.95, [100, 80, 60, 140])
CAR = detection("car", 0.7, [10, 10, 100, 60])
SMALL_CAR = detection("car", 0.7, [4, 4, 40, 30])
"""A car that fits the 64x48 pictures of the throughput tests."""


@pytest.fixture
def llm(llm_stub: LlmStub) -> LlmStub:
    """Return the LLM stub with fixed verdicts (conftest's llm only answers health)."""
    return llm_stub


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(CAR)))
    await server.start()
    yield server
    await server.stop()


async def test_image_to_event(
    root: Path, database_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """An upload in a dated sub-folder becomes detections and one incident, judged when it ends.

    The incident is announced at once with the heuristic's verdict (still going), and updated
    with the LLM's once it closes: one event in the database.
    """
    async with running(config(root, database_url, detector.url, llm.url)) as (pipeline, rec):
        content = jpeg(1)
        path = await asyncio.to_thread(write, root / "Front Door" / "2026-11-26" / "a.jpg", content)
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
        (opened,) = rec.events
        assert (opened.ongoing, opened.source) == (True, EventSource.HEURISTIC)
        (event,) = rec.closed
        assert event.event_id == opened.event_id
        assert not event.ongoing
        assert rec.updates[-1].changed == ("verdict", "ended")
        assert [c.camera_id for c in rec.cameras] == ["front_door"]
        assert detector.requests[0].sha256 == hashlib.sha256(content).hexdigest()
        assert (event.camera_id, event.risk_score, event.risk_level) == (
            "front_door",
            72,
            RiskLevel.HIGH,
        )
        assert event.summary == "Person at the door at night"
        assert (event.object_types, event.detection_count) == (("car",), 1)
        assert (event.is_fast_path, event.source) == (False, EventSource.LLM)
        assert event.started_at <= event.ended_at
        assert rec.batches == [("front_door", True), ("front_door", False)]
        ((camera_id, found),) = rec.detections
        assert (camera_id, found.label, found.path) == ("front_door", "car", str(path))
        assert "Camera: Front Door" in llm.prompts[0]
        stored = await pipeline.db.run(
            lambda s: (
                s.scalar(select(func.count()).select_from(EventRow)),
                s.scalar(select(func.count()).select_from(DetectionRow)),
            )
        )
        assert stored == (1, 1)
        assert await pipeline.queue.counts() == {
            (JobKind.DETECT, JobState.DONE): 1,
            (JobKind.ANALYZE, JobState.DONE): 1,
        }


async def test_fast_path_and_batch(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A confident person opens an incident, which the LLM judges at once and again at its end.

    One event, three verdicts, never a second event for the same visit.
    """
    detector.answer(Reply(body=detections(PERSON, CAR)))
    llm.completion_delay = 0.3  # the instant verdict must not wait for the LLM
    llm.verdict = {"risk_score": 95, "risk_level": "critical", "summary": "s", "reasoning": "r"}
    cfg = config(
        root,
        sqlite_url,
        detector.url,
        llm.url,
        options=fast_options(batch_window=3.0, batch_idle_timeout=2.0),
    )
    async with running(cfg) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Porch" / "a.jpg", jpeg(2))
        await wait_until(lambda: len(rec.events) == 1, what="the incident to open")
        (opened,) = rec.events
        assert (opened.source, opened.ongoing) == (EventSource.HEURISTIC, True)
        assert opened.object_types == ("car", "person")
        assert opened.detection_count == 2
        assert llm.prompts == []  # announced before the LLM answered
        await wait_until(lambda: len(rec.updates) == 1, what="the fast-path verdict")
        fast = rec.updates[0]
        assert fast.event.event_id == opened.event_id
        assert (fast.event.is_fast_path, fast.event.source) == (True, EventSource.LLM)
        assert fast.event.ongoing
        assert opened.risk_level is not RiskLevel.CRITICAL
        assert fast.level_rose  # the LLM says critical
        assert rec.batches == [("porch", True)]  # the incident is still open
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
        (closed,) = rec.closed
        assert closed.event_id == opened.event_id
        assert not closed.is_fast_path
        assert closed.object_types == ("car", "person")
        assert closed.detection_count == 2
        assert not rec.updates[-1].level_rose  # critical again is no rise
        stored = await pipeline.db.run(
            lambda s: s.scalar(select(func.count()).select_from(EventRow))
        )
    assert stored == 1
    assert len(rec.events) == 1


async def test_nothing_processed_twice(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """One image copied under three names, and a file touched again, is detected once."""
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, rec):
        content = jpeg(3)
        for name in ("a.jpg", "b.jpg", "sub/c.jpg"):
            await asyncio.to_thread(write, root / "Yard" / name, content)
        await wait_until(lambda: len(rec.events) == 1, what="the event")
        os.utime(root / "Yard" / "a.jpg")
        await asyncio.sleep(0.5)
        await pipeline.wait_for_intake()
        assert detector.count == 1
        media = await pipeline.db.run(
            lambda s: s.scalar(select(func.count()).select_from(MediaRow))
        )
        assert media == 1


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero.jpg", b"", "empty file"),
        ("truncated.jpg", jpeg(4)[:500], "corrupt or truncated image"),
        ("text.jpg", b"hello, I am not an image\n" * 10, "not an image"),
        ("stub.mp4", b"\x00" * 100, "too small for a video"),
    ],
)
async def test_bad_uploads_are_logged_and_skipped(
    root: Path,
    sqlite_url: str,
    detector: DetectorServer,
    llm: LlmStub,
    caplog: pytest.LogCaptureFixture,
    name: str,
    content: bytes,
    reason: str,
) -> None:
    """A broken upload gets one warning naming it; the good upload after it is processed."""
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (_pipeline, rec):
        bad = await asyncio.to_thread(write, root / "Cam" / name, content)
        await asyncio.to_thread(write, root / "Cam" / "good.jpg", jpeg(5))
        await wait_until(lambda: len(rec.events) == 1, what="the good upload's event")

        def ours() -> list[str]:
            # The integration's own warnings: asyncio's notes on slow steps, which a busy
            # machine can produce, say nothing about the upload.
            return [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and r.name.startswith("custom_components")
            ]

        def warned() -> bool:
            return bool(ours())

        # A file that lands in a folder before its watch exists is seen only created: an empty
        # one is then given time to be written (the watcher waits up to 30 s) before it is
        # judged, so its warning may come after the good upload's event.
        await wait_until(warned, seconds=45, what="the bad upload's warning")
    warnings = ours()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"Ignoring {bad}: {reason}"), warnings
    assert detector.count == 1


async def test_png_named_jpg_is_processed(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A PNG with a .jpg name is a fine image: it is detected like any other."""
    from PIL import Image  # noqa: PLC0415

    path = root / "Cam" / "really_png.jpg"
    path.parent.mkdir()
    Image.new("RGB", (200, 100), "blue").save(path, "PNG")
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (_pipeline, rec):
        await wait_until(lambda: len(rec.events) == 1, what="the event")
    assert (detector.requests[0].width, detector.requests[0].height) == (200, 100)


async def test_camera_folders_and_ids(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """Spaces and accents become stable ids; folders whose ids collide get distinct ones."""
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, rec):
        for n, folder in enumerate(("Caméra Jardin", "Front Door", "front-door", "FRONT DOOR")):
            await asyncio.to_thread(write, root / folder / "a.jpg", jpeg(10 + n))
            await wait_until(lambda n=n: len(rec.cameras) == n + 1, what=f"camera {folder}")
        assert [(c.camera_id, c.name) for c in rec.cameras] == [
            ("camera_jardin", "Caméra Jardin"),
            ("front_door", "Front Door"),
            ("front_door_2", "front-door"),
            ("front_door_3", "FRONT DOOR"),
        ]
        assert set(pipeline.cameras) == {
            "camera_jardin",
            "front_door",
            "front_door_2",
            "front_door_3",
        }
    # The same folders keep their ids after a restart.
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, rec):
        assert [c.camera_id for c in rec.cameras] == [
            "camera_jardin",
            "front_door",
            "front_door_2",
            "front_door_3",
        ]


async def test_symlink_out_of_the_root_is_not_followed(
    root: Path, tmp_path: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A link to a file outside the camera root is refused; nothing is sent anywhere."""
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(jpeg(20))
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, _rec):
        await asyncio.to_thread((root / "Cam").mkdir)
        await asyncio.to_thread((root / "Cam" / "link.jpg").symlink_to, secret)
        await asyncio.sleep(0.5)
        await pipeline.wait_for_intake()
    assert detector.count == 0


async def test_file_deleted_before_and_after_intake(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A deleted upload is forgotten, detected from memory, or a dead job, by when it went.

    Deleted before it is read: forgotten. Deleted while its job waits: detected from the bytes
    intake read. Deleted while its job waited across a restart: a dead job saying so.
    """
    hold = asyncio.Event()
    detector.answer(Reply(body=detections(CAR), hold=hold))
    cfg = config(root, sqlite_url, detector.url, llm.url)
    async with running(cfg) as (pipeline, _rec):
        # Occupy both detector slots so the next upload waits in the queue.
        for n in range(2):
            await asyncio.to_thread(write, root / "Cam" / f"busy{n}.jpg", jpeg(30 + n))
        await detector.wait_for_requests(2)
        doomed = await asyncio.to_thread(write, root / "Cam" / "doomed.jpg", jpeg(32))
        await wait_for_jobs(pipeline, JobKind.DETECT, JobState.QUEUED, 1)
        await asyncio.to_thread(doomed.unlink)
        pipeline.submit(str(root / "Cam" / "never_existed.jpg"))
        await pipeline.wait_for_intake()
        hold.set()
        await detector.wait_for_requests(3)
        # doomed.jpg was still detected, from the bytes intake had read: nothing is lost.
        assert detector.requests[2].sha256 == hashlib.sha256(jpeg(32)).hexdigest()
    hold.clear()
    # A job left queued by a stop, whose file is gone by the next start.
    async with running(cfg) as (pipeline, _rec):
        for n in range(2):
            await asyncio.to_thread(write, root / "Cam" / f"busy{n + 2}.jpg", jpeg(33 + n))
        await detector.wait_for_requests(5)
        late = await asyncio.to_thread(write, root / "Cam" / "late.jpg", jpeg(35))
        await wait_for_jobs(pipeline, JobKind.DETECT, JobState.QUEUED, 1)
    await asyncio.to_thread(late.unlink)
    hold.set()
    async with running(cfg) as (pipeline, _rec):
        (job,) = await wait_for_dead_jobs(pipeline)
    assert job.last_error == f"{late} was deleted before it was processed"
    # busy2 and busy3 were interrupted mid-request by the stop and sent again after it.
    assert detector.count == 7


@pytest.mark.slow
async def test_two_thousand_files_at_once(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """2,000 files landing together are each detected exactly once."""
    detector = DetectorServer(reply=Reply(body=detections(SMALL_CAR)), record=False)
    await detector.start()
    try:
        cfg = config(
            root,
            sqlite_url,
            detector.url,
            llm.url,
            detector_time_limit=30.0,
            options=fast_options(batch_window=60, batch_idle_timeout=60),
        )
        async with running(cfg) as (pipeline, rec):
            contents = [jpeg(1000 + n, 64, 48) for n in range(2000)]

            def land() -> None:
                for n, content in enumerate(contents):
                    write(root / f"Cam {n % 4}" / f"{n:04}.jpg", content)

            await asyncio.to_thread(land)

            async def all_done() -> bool:
                counts = await pipeline.queue.counts()
                return counts.get((JobKind.DETECT, JobState.DONE), 0) == 2000

            await wait_until(all_done, seconds=120, what="2,000 detections")
            assert detector.count == 2000
            assert pipeline.images_processed == 2000
            assert len(rec.detections) == 2000
            assert len(rec.cameras) == 4
    finally:
        await detector.stop()


async def test_detector_garbage_is_retried_until_it_answers(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """500, HTML and a wrong shape are retried; the job completes once the detector answers."""
    detector.queue(
        Reply(status=500, body="boom"),
        Reply(body="<html>proxy error</html>", content_type="text/html"),
        Reply(body={"detections": "x"}),
    )
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(40))
        await wait_until(lambda: len(rec.events) == 1, what="the event")
        assert detector.count == 4
        assert await pipeline.queue.dead_jobs() == []


async def test_detector_bad_items_do_not_stop_the_good_ones(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """NaN confidence and a box outside the image are dropped; the rest becomes the event."""
    detector.answer(
        Reply(
            body=detections(
                detection("person", float("nan"), [1, 1, 5, 5]),
                detection("dog", 0.8, [5000, 5000, 10, 10]),
                CAR,
            )
        )
    )
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(41))
        await wait_until(lambda: len(rec.events) == 1, what="the event")
    assert rec.events[0].object_types == ("car",)


async def test_detector_413_is_a_dead_letter_with_the_reason(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A detector that refuses an image (413) will refuse it again: dead at once, reason kept."""
    detector.answer(Reply(status=413, body={"error": "image too large"}))
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, _rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(42))

        (job,) = await wait_for_dead_jobs(pipeline)
        assert "413" in (job.last_error or "")
        assert detector.count == 1


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        ("this is not JSON", 200),
        ({"risk_score": 250, "risk_level": "high", "summary": "x", "reasoning": "y"}, 200),
        ("", 200),
        (None, 500),
    ],
    ids=["not_json", "score_250", "empty_body", "http_500"],
)
async def test_bad_llm_answers_retry_then_dead_letter(
    root: Path,
    sqlite_url: str,
    detector: DetectorServer,
    llm: LlmStub,
    verdict: object,
    status: int,
) -> None:
    """An LLM answering nonsense is retried; a job that never gets a usable answer is kept dead."""
    if verdict is not None:
        llm.verdict = verdict
    llm.completion_status = status
    cfg = config(root, sqlite_url, detector.url, llm.url, breaker_failures=100)
    async with running(cfg) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(43))

        (job,) = await wait_for_dead_jobs(pipeline)
        assert job.kind is JobKind.ANALYZE
        assert job.attempts == 5
        assert len(llm.prompts) == 5
        # The incident was announced with the heuristic's verdict; its final one never came,
        # but it is over all the same: nothing shows it going on.
        assert [event.source for event in rec.events] == [EventSource.HEURISTIC]
        assert rec.updates == []
        stored = await pipeline.db.run(lambda s: s.scalars(select(EventRow)).one())
        assert (stored.ongoing, stored.source) == (False, "heuristic")
        # Re-queued once the LLM behaves, the same job judges the incident.
        llm.verdict = {"risk_score": 10, "risk_level": "low", "summary": "ok", "reasoning": "ok"}
        llm.completion_status = 200
        assert await pipeline.queue.requeue_dead() == 1
        await wait_until(lambda: len(rec.closed) == 1, what="the verdict after re-queueing")
        assert rec.closed[0].risk_level is RiskLevel.LOW
        assert len(rec.events) == 1


async def test_unknown_llm_level_uses_the_score(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """The stored level follows the score and the thresholds, whatever level the model named."""
    llm.verdict = {"risk_score": 90, "risk_level": "apocalyptic", "summary": "s", "reasoning": "r"}
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(44))
        await wait_until(lambda: len(rec.closed) == 1, what="the verdict")
    assert rec.closed[0].risk_level is RiskLevel.CRITICAL


async def test_llm_unreachable_falls_back_to_the_heuristic(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """With the LLM gone, the event is still made, scored by the heuristic and marked so."""
    detector.answer(Reply(body=detections(PERSON)))
    await llm.stop()
    cfg = config(
        root, sqlite_url, detector.url, llm.url, options=fast_options(fast_path_objects=("knife",))
    )
    async with running(cfg) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(45))
        await wait_until(lambda: len(rec.closed) == 1, what="the heuristic verdict at the end")
    (event,) = rec.closed
    assert event.source is EventSource.HEURISTIC
    assert event.object_types == ("person",)
    assert 0 < event.risk_score <= 100
    assert "person" in event.summary.lower()


@pytest.mark.slow
async def test_both_servers_down_then_back(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """Both servers go away while uploads keep coming; once back, every upload completes once.

    The outage lasts many breaker periods (a scaled-down ten minutes); jobs wait instead of
    spending attempts, so none dies.
    """
    cfg = config(
        root,
        sqlite_url,
        detector.url,
        llm.url,
        options=fast_options(batch_window=2.0, batch_idle_timeout=0.5),
    )
    async with running(cfg) as (pipeline, rec):
        await detector.stop()
        await llm.stop()
        for n in range(12):
            await asyncio.to_thread(write, root / f"Cam {n % 3}" / f"{n}.jpg", jpeg(50 + n))
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # ten breaker periods with nobody answering
        assert await pipeline.queue.dead_jobs() == []
        await detector.start()
        await llm.start()

        async def all_done() -> bool:
            counts = await pipeline.queue.counts()
            return (
                counts.get((JobKind.DETECT, JobState.DONE), 0) == 12
                and not pipeline.batcher.open_cameras
                and not any(
                    state in (JobState.QUEUED, JobState.RUNNING)
                    for (_kind, state), n in counts.items()
                    if n
                )
            )

        await wait_until(all_done, seconds=30, what="every job to finish")
        assert await pipeline.queue.dead_jobs() == []
        hashes = [request.sha256 for request in detector.requests]
        assert len(hashes) == len(set(hashes)) == 12
        events = await pipeline.db.run(
            lambda s: s.scalar(select(func.count()).select_from(EventRow))
        )
        assert events == len(rec.events) == len(rec.closed) >= 3
        assert {e.source for e in rec.events} <= {EventSource.LLM, EventSource.HEURISTIC}


async def test_restart_in_the_middle_of_a_batch(
    root: Path, database_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """Stopped with an incident open and started again: it resumes, and closes once."""
    cfg = config(
        root,
        database_url,
        detector.url,
        llm.url,
        options=fast_options(batch_window=2.0, batch_idle_timeout=1.5),
    )
    first = Recorder()
    async with running(cfg, first):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(70))
        await wait_until(lambda: first.batches == [("cam", True)], what="the incident to open")
        await wait_until(lambda: len(first.events) == 1, what="the incident's announcement")
    assert first.closed == []
    second = Recorder()
    async with running(cfg, second) as (pipeline, _rec):
        await wait_until(lambda: len(second.closed) == 1, what="the resumed incident to close")
        await asyncio.sleep(2.5)
        assert len(second.closed) == 1
        assert second.events == []  # not announced again
        events = await pipeline.db.run(
            lambda s: s.scalar(select(func.count()).select_from(EventRow))
        )
    assert events == 1
    assert second.closed[0].event_id == first.events[0].event_id
    assert second.closed[0].detection_count == 1


async def test_uploads_made_while_stopped_are_picked_up(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """Files that arrived while the pipeline was not running are processed at its start; once."""
    cfg = config(root, sqlite_url, detector.url, llm.url)
    async with running(cfg) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "seen.jpg", jpeg(80))
        await wait_until(lambda: len(rec.detections) == 1, what="the first upload")
    await asyncio.to_thread(write, root / "Cam" / "while_down.jpg", jpeg(81))
    async with running(cfg) as (pipeline, rec):
        await wait_until(lambda: len(rec.detections) == 1, what="the missed upload")
        await pipeline.wait_for_intake()
    assert detector.count == 2


async def test_video_clip_key_frame(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """A clip's frame at min(1 s, 10 %) is detected; a truncated clip is a dead job with why."""
    ffmpeg = require_program("ffmpeg")
    clip = root / "Drive" / "clip.mp4"
    clip.parent.mkdir()
    await asyncio.to_thread(
        subprocess.run,
        [
            ffmpeg,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=3:size=640x360:rate=25",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
    )
    broken = root / "Drive" / "broken.mp4"
    broken.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    async with running(config(root, sqlite_url, detector.url, llm.url)) as (pipeline, rec):

        async def settled() -> bool:
            counts = await pipeline.queue.counts()
            return counts.get((JobKind.DETECT, JobState.DONE), 0) == 1 and bool(
                await pipeline.queue.dead_jobs()
            )

        await wait_until(settled, what="the clip detected and the broken one dead")
        ((camera_id, found),) = rec.detections
        assert (camera_id, found.frame_time, found.path) == ("drive", 0.3, str(clip))
        assert (detector.requests[0].width, detector.requests[0].height) == (640, 360)
        (job,) = await pipeline.queue.dead_jobs()
        assert (job.last_error or "").startswith("corrupt or truncated clip")


@pytest.mark.slow
async def test_real_llama_server_end_to_end(
    root: Path, sqlite_url: str, detector: DetectorServer, llama_server: object
) -> None:
    """With the real llama-server judging, an upload becomes an LLM-scored event."""
    detector.answer(Reply(body=detections(PERSON, CAR)))
    cfg = config(
        root,
        sqlite_url,
        detector.url,
        llama_server.url,  # type: ignore[attr-defined]
        summary_max=40,
        reasoning_max=40,
        llm_extra_params=grammar_friendly_params(),
        options=fast_options(fast_path_objects=("knife",)),
    )
    async with running(cfg) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Front Door" / "a.jpg", jpeg(90))
        await wait_until(lambda: len(rec.closed) == 1, seconds=30, what="the LLM's verdict")
    (event,) = rec.closed
    assert event.source is EventSource.LLM
    assert 0 <= event.risk_score <= 100
    assert event.summary
    assert event.object_types == ("car", "person")


def test_no_test_leaves_copies_behind(tmp_path: Path) -> None:
    """Sanity: helpers write where they are told (guards the tests above against false passes)."""
    path = write(tmp_path / "Cam" / "x.jpg", jpeg(1))
    assert path.read_bytes() == jpeg(1)
    assert jpeg(1) != jpeg(2)
    shutil.rmtree(tmp_path / "Cam")


async def test_heuristic_event_is_rescored_when_the_llm_is_back(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """An event scored by the heuristic during an outage is judged again by the LLM later."""
    recorder = Recorder()
    await llm.stop()
    cfg = config(root, sqlite_url, detector.url, llm.url)

    def rescored() -> list[tuple[int, int, EventSource]]:
        return [
            (u.previous.risk_score, u.event.risk_score, u.event.source)
            for u in rec.updates
            if not u.previous.ongoing
        ]

    async with running(cfg, recorder) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(100))
        await wait_until(lambda: len(rec.closed) == 1, what="the heuristic verdict at the end")
        assert rec.closed[0].source is EventSource.HEURISTIC
        await asyncio.sleep(1.0)  # the LLM stays away for a while; the job waits, not dies
        assert rescored() == []
        assert await pipeline.queue.dead_jobs() == []
        await llm.start()
        await wait_until(lambda: len(rescored()) == 1, what="the re-scored event")
        stored = await pipeline.db.run(lambda s: s.scalars(select(EventRow)).one())
    assert rescored() == [(rec.closed[0].risk_score, 72, EventSource.LLM)]
    assert rec.updates[-1].changed == ("verdict",)
    assert (stored.risk_score, stored.source, stored.summary) == (
        72,
        "llm",
        "Person at the door at night",
    )
    assert len(rec.events) == 1  # re-scoring is not a new event


async def test_rescoring_can_be_turned_off(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """With re-scoring off, a heuristic event stays as it is and no job is queued for it."""
    await llm.stop()
    cfg = config(root, sqlite_url, detector.url, llm.url, options=fast_options(rescore_minutes=0))
    async with running(cfg) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Cam" / "a.jpg", jpeg(101))
        await wait_until(lambda: len(rec.closed) == 1, what="the heuristic verdict at the end")
        counts = await pipeline.queue.counts()
    assert not any(kind is JobKind.RESCORE for kind, _state in counts)


@pytest.mark.slow
async def test_every_detection_is_judged_in_exactly_one_batch(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub
) -> None:
    """Under a steady stream with short windows, incidents close and reopen without overlap."""
    detector.answer(Reply(body=detections(SMALL_CAR)))
    cfg = config(
        root,
        sqlite_url,
        detector.url,
        llm.url,
        options=fast_options(batch_window=0.4, batch_idle_timeout=0.15, debounce=0.05),
    )
    async with running(cfg) as (pipeline, rec):
        for n in range(600):
            await asyncio.to_thread(
                write, root / f"Cam {n % 2}" / f"{n}.jpg", jpeg(2000 + n, 64, 48)
            )
            if n % 20 == 0:
                await asyncio.sleep(0.02)

        async def settled() -> bool:
            counts = await pipeline.queue.counts()
            return (
                counts.get((JobKind.DETECT, JobState.DONE), 0) == 600
                and not pipeline.batcher.open_cameras
                and counts.get((JobKind.ANALYZE, JobState.QUEUED), 0) == 0
                and counts.get((JobKind.ANALYZE, JobState.RUNNING), 0) == 0
            )

        await wait_until(settled, seconds=60, what="every batch judged")
        links = await pipeline.db.run(
            lambda s: list(s.scalars(select(EventDetectionRow.detection_id)).all())
        )
    assert len(rec.closed) == len(rec.events)
    assert sum(event.detection_count for event in rec.closed) == 600
    assert sorted(links) == sorted(set(links))
    assert len(links) == 600
