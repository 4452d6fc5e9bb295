"""The phone's picture is decoded while the detector looks at the upload that opens an incident.

Core only: real folders, SQLite, the protocol-speaking detector server, Pillow in threads. The
pipeline's executor is asyncio.to_thread wrapped to note what it was asked to run, so a test can
see the key frame's decoding start (and finish) before the detector has answered.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.ai_security.core.annotate import annotate_key_frame, decode_key_frame
from custom_components.ai_security.core.models import BoundingBox, Detection
from custom_components.ai_security.core.pipeline import Pipeline
from tests.detector_server import DetectorServer, DetectRequest, Reply, detection, detections
from tests.pipeline_helpers import Recorder, config, jpeg, wait_until, write

BOX = [100.0, 80.0, 200.0, 300.0]
"""A person in the 640x480 uploads."""
PERSON = Detection(
    label="person", confidence=0.95, bbox=BoundingBox(x=BOX[0], y=BOX[1], w=BOX[2], h=BOX[3])
)


class Executor:
    """asyncio.to_thread, noting each key frame decode begun and finished."""

    def __init__(self) -> None:
        self.decodes_started = 0
        self.decodes_finished = 0
        self.finished = asyncio.Event()

    async def __call__(self, func: Callable[..., Any], /, *args: Any) -> Any:
        if func is not decode_key_frame:
            return await asyncio.to_thread(func, *args)
        self.decodes_started += 1
        try:
            return await asyncio.to_thread(func, *args)
        finally:
            self.decodes_finished += 1
            self.finished.set()


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(reply=Reply(body=detections(detection("person", 0.95, BOX))))
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def pipeline(
    tmp_path: Path, root: Path, database_url: str, detector: DetectorServer
) -> AsyncIterator[tuple[Pipeline, Recorder, Executor]]:
    """Run a pipeline with pictures (a media root) and no LLM, on the noting executor."""
    recorder, executor = Recorder(), Executor()
    cfg = config(root, database_url, detector.url, "", media_root=str(tmp_path / "media"))
    async with aiohttp.ClientSession() as session:
        pipeline = Pipeline(cfg, session, run_blocking=executor, callbacks=recorder.callbacks())
        await pipeline.start()
        try:
            yield pipeline, recorder, executor
        finally:
            await pipeline.stop()


async def test_the_key_frame_is_decoded_before_the_detector_answers(
    root: Path,
    detector: DetectorServer,
    pipeline: tuple[Pipeline, Recorder, Executor],
) -> None:
    """A quiet camera's upload: its key frame is decoded while the detector still holds it.

    The detector, when a decode is under way as it is asked, answers once it has finished: the
    picture the incident is announced with is the one drawn on that decode, the same as drawing
    it from scratch. A second upload joins the open incident: nothing is decoded early for it.
    """
    running, recorder, executor = pipeline
    seen: list[int] = []
    """Decodes finished when the detector answered each upload."""

    async def after_the_decode(_request: DetectRequest) -> Reply:
        if executor.decodes_started > executor.decodes_finished:
            async with asyncio.timeout(5):
                await executor.finished.wait()
        seen.append(executor.decodes_finished)
        return Reply(body=detections(detection("person", 0.95, BOX)))

    detector.answer(after_the_decode)
    content = jpeg(1, 640, 480)
    await asyncio.to_thread(write, root / "Front" / "a.jpg", content)
    await wait_until(lambda: len(recorder.events) == 1, what="the incident to open")
    assert seen == [1]
    assert executor.decodes_started == 1
    (event,) = recorder.events
    media = running.media
    assert media is not None
    key = media.key_frame_path(event.camera_id, event.event_id, event.started_at)
    expected = annotate_key_frame(content, [PERSON])
    assert await asyncio.to_thread(key.read_bytes) == expected.jpeg

    await asyncio.to_thread(write, root / "Front" / "b.jpg", jpeg(2, 640, 480))
    await wait_until(lambda: len(recorder.detections) == 2, what="its detections stored")
    assert seen == [1, 1]
    assert executor.decodes_started == 1
    assert len(recorder.events) == 1


async def test_an_empty_upload_costs_its_decode_and_nothing_else(
    root: Path,
    detector: DetectorServer,
    pipeline: tuple[Pipeline, Recorder, Executor],
) -> None:
    """Nothing found: the early decode is dropped; no picture, no event, nothing left running.

    The next upload of the camera, with a person, opens the incident with its own picture.
    """
    running, recorder, executor = pipeline
    detector.queue(Reply(body=detections()))
    await asyncio.to_thread(write, root / "Front" / "empty.jpg", jpeg(3, 640, 480))
    await wait_until(lambda: len(detector.requests) == 1, what="the detector to be asked")
    await wait_until(lambda: executor.decodes_finished == 1, what="the decode to finish")
    await running.wait_for_media()
    assert recorder.events == []
    media = running.media
    assert media is not None
    made = await asyncio.to_thread(lambda: [p for p in media.root.rglob("*") if p.is_file()])
    assert made == []

    content = jpeg(4, 640, 480)
    await asyncio.to_thread(write, root / "Front" / "person.jpg", content)
    await wait_until(lambda: len(recorder.events) == 1, what="the incident to open")
    assert executor.decodes_started == 2
    (event,) = recorder.events
    key = media.key_frame_path(event.camera_id, event.event_id, event.started_at)
    expected = annotate_key_frame(content, [PERSON])
    assert await asyncio.to_thread(key.read_bytes) == expected.jpeg
