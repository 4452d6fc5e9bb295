"""One object, one box, through the whole core pipeline: what is stored, scored and told.

A detector may answer with several overlapping boxes for one person (the reference server's HOG
backend often does: a box around the whole person and one around the upper body). The pipeline
merges them before anything is stored, so one person never becomes "2 people"; and three uploads
of one person are one person in the prompt and the summary, not three.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
import datetime as dt
from itertools import combinations
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image
import pytest
from sqlalchemy import func, select

from custom_components.ai_security.core.detector import DetectorClient
from custom_components.ai_security.core.models import BoundingBox
from custom_components.ai_security.core.nms import same_object
from custom_components.ai_security.core.storage import DetectionRow
from scripts.demo import feeder
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import Recorder, config, fast_options, jpeg, running, wait_until, write
from tests.reference_detector import ReferenceDetector, encode, reference_detector
from tests.servers import LlmStub

ONE_PERSON_THREE_BOXES = (
    detection("person", 0.82, [100, 60, 70, 150]),
    detection("person", 0.88, [104, 64, 66, 146]),
    detection("person", 0.71, [112, 70, 40, 70]),  # the upper body, inside the others
)
"""Three boxes a detector sent for one person in a 320x240 picture."""
BESIDE = detection("bicycle", 0.7, [95, 120, 80, 90])
"""A bicycle the person stands over: another class, so it is kept."""


@pytest.fixture
def llm(llm_stub: LlmStub) -> LlmStub:
    """Return the LLM stub with fixed verdicts (conftest's llm only answers health)."""
    return llm_stub


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer()
    await server.start()
    yield server
    await server.stop()


async def test_three_boxes_of_one_person_are_one_detection(
    root: Path, sqlite_url: str, detector: DetectorServer
) -> None:
    """One stored person (the surest box) beside the bicycle; the event says a person."""
    detector.answer(Reply(body=detections(*ONE_PERSON_THREE_BOXES, BESIDE)))
    cfg = config(root, sqlite_url, detector.url, "", options=fast_options(fast_path_objects=()))
    async with running(cfg) as (pipeline, rec):
        await asyncio.to_thread(write, root / "Front Door" / "snap.jpg", jpeg(1))
        await wait_until(lambda: len(rec.events) == 1, what="the event")
        stored = await pipeline.db.run(
            lambda s: s.scalar(select(func.count()).select_from(DetectionRow))
        )
    assert stored == 2
    assert sorted((d.label, d.confidence) for _, d in rec.detections) == [
        ("bicycle", 0.7),
        ("person", 0.88),
    ]
    (event,) = rec.events
    assert event.detection_count == 2
    assert event.summary.startswith("A person and a bicycle at Front Door")
    assert "person: 1 at once" in event.reasoning


@pytest.mark.parametrize("with_llm", [True, False], ids=["prompt", "heuristic"])
async def test_one_person_in_three_uploads_is_one_person(
    root: Path, sqlite_url: str, detector: DetectorServer, llm: LlmStub, with_llm: bool
) -> None:
    """Three uploads of one person in one visit: "person 1" for the LLM, "A person" if scored."""
    detector.answer(Reply(body=detections(detection("person", 0.8, [100, 60, 70, 150]))))
    options = fast_options(fast_path_objects=(), batch_window=4.0, batch_idle_timeout=1.5)
    cfg = config(root, sqlite_url, detector.url, llm.url if with_llm else "", options=options)
    async with running(cfg) as (_pipeline, rec):
        for n in range(3):
            await asyncio.to_thread(write, root / "Front Door" / f"snap-{n}.jpg", jpeg(10 + n))
        await wait_until(lambda: len(rec.closed) == 1, what="the incident's last verdict")
    assert len(rec.events) == 1  # one visit, one incident
    (event,) = rec.closed
    assert event.detection_count == 3
    if with_llm:
        (prompt,) = llm.prompts
        assert "Detections: 3 in 3 frames (most in one frame: person 1)" in prompt
        assert "person 3" not in prompt
    else:
        assert event.summary.startswith("A person at Front Door")
        assert "person: 1 at once, seen in 3 frames" in event.reasoning


# --- the reference detector's HOG backend on the demo's own pictures ---------------------------

HOG_DUPLICATES = (("Front Door", 9), ("Driveway", 23), ("Garden", 21), ("Driveway", 9))
"""Demo snapshots (camera, seed) of one person for which HOG sends overlapping boxes: four,
three, three and two (on the last, HOG is surer of the upper body than of the person around it).

Found by sending 90 of the demo's JPEG snapshots of one person (30 seeds, 3 cameras) to HOG: 25
came back with two or more boxes at the integration's threshold. Merged, 18 of them are one box;
7 keep two, boxes that overlap less than either rule asks (the upper body and the legs, or a
false alarm beside the person)."""
WHEN = dt.datetime(2026, 1, 1, 12, 0, 0)  # noqa: DTZ001 - burned into the picture, as cameras do


def demo_frame(camera: str, seed: int) -> tuple[Image.Image, feeder.Placement]:
    """Return the demo feeder's snapshot of camera for seed, and where its person stands."""
    # The garden's statue is the demo's false alarm (test_demo_feeder.py), not a duplicate.
    scene = feeder.scene_for(camera, statue=False)
    rng = np.random.default_rng(seed)
    placement = feeder.random_placement(scene, rng)
    return feeder.render(scene, camera, WHEN, placement, rng), placement


def on_the_person(box: BoundingBox, camera: str, placement: feeder.Placement) -> bool:
    """Return whether a box's centre lies on the person (within their height's outline)."""
    height = feeder.person_height(feeder.scene_for(camera, statue=False), placement.feet_y)
    centre_x, centre_y = box.x + box.w / 2, box.y + box.h / 2
    return (
        abs(centre_x - placement.centre_x) < 0.25 * height
        and placement.feet_y - height < centre_y < placement.feet_y
    )


@pytest.fixture(scope="module")
def hog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceDetector]:
    """Run the reference server as the demo runs it (no GPU), but sending HOG's raw boxes.

    The server merges HOG's duplicates itself; this test is about the integration doing it for
    detectors that do not, so the server is told not to.
    """
    yield from reference_detector(
        tmp_path_factory.mktemp("hog-nms"), "--backend", "hog", "--no-hog-nms"
    )


@pytest.mark.slow
async def test_hog_duplicates_of_one_person_become_one_box(
    root: Path, sqlite_url: str, hog_server: ReferenceDetector, socket_enabled: None
) -> None:
    """HOG's overlapping boxes for one person in demo frames: one stored box each, on her."""
    frames = {f"{camera} {seed}": demo_frame(camera, seed) for camera, seed in HOG_DUPLICATES}
    uploads = {
        folder: encode(image, quality=feeder.JPEG_QUALITY) for folder, (image, _) in frames.items()
    }
    threshold = fast_options().confidence_threshold
    async with aiohttp.ClientSession() as session:
        client = DetectorClient(session, [hog_server.url], threshold=threshold)
        for folder, content in uploads.items():
            raw = await client.detect(content, filename="snap.jpg", width=1280, height=720)
            people = [found for found in raw.detections if found.label == "person"]
            assert len(people) >= 2, (folder, people)
            assert any(same_object(a, b) for a, b in combinations(people, 2)), (folder, people)
    cfg = config(
        root,
        sqlite_url,
        hog_server.url,
        "",
        options=fast_options(fast_path_objects=()),
        detector_time_limit=30.0,
    )
    async with running(cfg, Recorder()) as (_pipeline, rec):
        for folder, content in uploads.items():
            await asyncio.to_thread(write, root / folder / "snap.jpg", content)
        await wait_until(lambda: len(rec.events) == len(uploads), seconds=60, what="the events")
    for folder, (_image, placement) in frames.items():
        camera = folder.rsplit(" ", 1)[0]
        camera_id = folder.lower().replace(" ", "_")
        people = [d for cid, d in rec.detections if cid == camera_id and d.label == "person"]
        assert len(people) == 1, (folder, people)
        (person,) = people
        assert on_the_person(person.bbox, camera, placement), (folder, person.bbox, placement)
        (event,) = [e for e in rec.events if e.camera_id == camera_id]
        assert event.summary.startswith(f"A person at {folder}"), event.summary
