"""Job payloads: one typed definition per kind, its JSON form, and what a corrupt row becomes.

The JSON forms are the ones stored by earlier versions (a database upgraded in place keeps its
queued jobs), so each is compared with a literal dict, not only round-tripped. A payload no
version wrote ends its job dead with the reason, in a running pipeline, instead of being retried
or crashing the worker.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from custom_components.ai_security.core.jobs import (
    Job,
    JobKind,
    JobState,
    PermanentJobError,
    add_job,
)
from custom_components.ai_security.core.models import MediaType
from custom_components.ai_security.core.payloads import (
    AnalyzePayload,
    DetectPayload,
    PayloadError,
    RescorePayload,
    payload_of,
)
from tests.detector_server import DetectorServer
from tests.pipeline_helpers import config, running, wait_for_dead_jobs

START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
END = datetime(2026, 12, 1, 3, 2, tzinfo=UTC)


def job(kind: JobKind, payload: dict[str, Any]) -> Job:
    return Job(
        job_id=1,
        kind=kind,
        payload=payload,
        state=JobState.RUNNING,
        attempts=0,
        next_attempt_at=START,
        last_error=None,
    )


def test_detect_payload_is_stored_as_before_and_read_back() -> None:
    payload = DetectPayload(
        media_id=7,
        camera_id="front",
        path="/cams/Front/a.mp4",
        media_type=MediaType.VIDEO,
        width=1920,
        height=1080,
    )
    stored = {
        "media_id": 7,
        "camera_id": "front",
        "path": "/cams/Front/a.mp4",
        "media_type": "video",
        "width": 1920,
        "height": 1080,
    }
    assert payload.to_json() == stored
    assert DetectPayload.from_json(stored) == payload


def test_an_incident_judgement_is_stored_as_before_and_read_back() -> None:
    payload = AnalyzePayload(
        camera_id="front",
        started_at=START,
        ended_at=END,
        batch_key="b1",
        event_id="e1",
        final=False,
        fast_path=True,
        judged=3,
    )
    stored = {
        "camera_id": "front",
        "started_at": "2026-12-01T03:00:00+00:00",
        "ended_at": "2026-12-01T03:02:00+00:00",
        "fast_path": True,
        "event_id": "e1",
        "final": False,
        "judged": 3,
        "batch_key": "b1",
    }
    assert payload.to_json() == stored
    assert AnalyzePayload.from_json(stored) == payload


def test_a_version_3_job_is_read_as_it_was_written() -> None:
    """Version 3 queued fast-path lists (detection ids, no batch) and batches without events."""
    listed = {
        "camera_id": "front",
        "started_at": START.isoformat(),
        "ended_at": END.isoformat(),
        "fast_path": True,
        "detection_ids": [4, 5],
    }
    read = AnalyzePayload.from_json(listed)
    assert (read.event_id, read.batch_key, read.detection_ids, read.fast_path) == (
        None,
        None,
        (4, 5),
        True,
    )
    assert read.to_json() == listed
    batch = {**listed, "fast_path": False, "batch_key": "old"}
    del batch["detection_ids"]
    assert AnalyzePayload.from_json(batch).batch_key == "old"


def test_rescore_payload() -> None:
    assert RescorePayload(event_id="e1").to_json() == {"event_id": "e1"}
    assert RescorePayload.from_json({"event_id": "e1"}) == RescorePayload(event_id="e1")


@pytest.mark.parametrize(
    ("kind", "payload", "says"),
    [
        (DetectPayload, {}, "'media_id' is None"),
        (DetectPayload, {"media_id": True}, "'media_id' is True, not int"),
        (
            DetectPayload,
            {"media_id": 1, "camera_id": "c", "path": "p", "media_type": "sound"},
            "media_type is 'sound'",
        ),
        (AnalyzePayload, {"camera_id": "c", "started_at": "yesterday"}, "not ISO 8601"),
        (
            AnalyzePayload,
            {
                "camera_id": "c",
                "started_at": START.isoformat(),
                "ended_at": END.isoformat(),
                "event_id": "e1",
            },
            "has no 'batch_key'",
        ),
        (
            AnalyzePayload,
            {
                "camera_id": "c",
                "started_at": START.isoformat(),
                "ended_at": END.isoformat(),
                "detection_ids": ["x"],
            },
            "non-number",
        ),
        (RescorePayload, {"event_id": 5}, "'event_id' is 5, not str"),
    ],
)
def test_a_payload_no_version_wrote_is_refused_with_the_reason(
    kind: type[DetectPayload | AnalyzePayload | RescorePayload], payload: dict[str, Any], says: str
) -> None:
    with pytest.raises(PayloadError, match=says.replace("(", r"\(")):
        kind.from_json(payload)
    with pytest.raises(PermanentJobError, match="its payload cannot be read"):
        payload_of(kind, job(JobKind.DETECT, payload))


async def test_a_corrupt_queued_job_goes_dead_with_its_reason(
    root: Path, database_url: str, socket_enabled: None
) -> None:
    """A detect job whose row holds no media id: dead at once, not retried, the reason kept."""
    detector = DetectorServer()
    await detector.start()
    try:
        async with running(config(root, database_url, detector.url, "")) as (pipeline, _rec):
            await pipeline.db.run(
                lambda s: add_job(s, JobKind.DETECT, {"camera_id": "front"}, START)
            )
            pipeline.queue.notify(JobKind.DETECT)
            (dead,) = await wait_for_dead_jobs(pipeline)
            assert dead.attempts == 1
            assert dead.last_error is not None
            assert "'media_id' is None" in dead.last_error
            assert detector.requests == []
    finally:
        await detector.stop()
