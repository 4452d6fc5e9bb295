"""The pictures a vision model gets: which frames, their size and numbered boxes, and the pipeline.

Pictures are checked on decoded pixels; the pipeline against the LLM stub, which records the
JPEGs each request carried, on both APIs.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import io
import itertools
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
from PIL import Image
import pytest

from custom_components.ai_security.core import operations
from custom_components.ai_security.core.analyzer import Analyzer
from custom_components.ai_security.core.box_drawing import color_for
from custom_components.ai_security.core.llm_provider import PromptImage
from custom_components.ai_security.core.llm_vision import TRY_AGAIN
from custom_components.ai_security.core.models import BoundingBox, Detection, EventSource
from custom_components.ai_security.core.prompts import AnalysisRequest
from custom_components.ai_security.core.settings import LlmApi, PipelineOptions, SeverityThresholds
from custom_components.ai_security.core.vision_frames import (
    incident_frames,
    pick_frames,
    render_frame,
)
from tests.detector_server import DetectorServer, Reply, detection, detections
from tests.pipeline_helpers import config, fast_options, jpeg, running, wait_until, write
from tests.servers import LlmStub

START = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def found(
    path: str, confidence: float, seconds: float, *, label: str = "person", x: float = 400
) -> Detection:
    return Detection(
        label=label,
        confidence=confidence,
        bbox=BoundingBox(x=x, y=200, w=300, h=600),
        detected_at=START + timedelta(seconds=seconds),
        frame_width=1920,
        frame_height=1080,
        path=path,
    )


def photo(width: int = 1920, height: int = 1080, *, orientation: int | None = None) -> bytes:
    """Return a mid-grey JPEG, optionally with an EXIF orientation."""
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (128, 128, 128))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image.convert("RGB")


def close(pixel: tuple[int, ...], color: str, tolerance: int = 60) -> bool:
    want = tuple(int(color[i : i + 2], 16) for i in (1, 3, 5))
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, want, strict=False))


# --- Which frames ---------------------------------------------------------------------------------


def test_first_clearest_last_in_the_order_seen() -> None:
    """Three of five frames: first, clearest, last, in time order; one: the clearest."""
    seen = [found(f"{n}.jpg", c, n) for n, c in enumerate((0.6, 0.7, 0.95, 0.5, 0.55))]
    picked = pick_frames(seen, 3)
    assert [(p.detections[0].path, p.why) for p in picked] == [
        ("0.jpg", "first"),
        ("2.jpg", "clearest"),
        ("4.jpg", "last"),
    ]
    assert [p.why for p in pick_frames(seen, 1)] == ["clearest"]
    assert [p.detections[0].path for p in pick_frames(seen, 2)] == ["0.jpg", "2.jpg"]
    assert pick_frames(seen, 0) == []
    assert pick_frames([], 3) == []


def test_more_frames_are_spread_over_the_visit() -> None:
    """Eight of twenty: the three, then five spread evenly over the others; never twice."""
    seen = [found(f"{n:02}.jpg", 0.5 + n / 100, n) for n in range(20)]
    picked = pick_frames(seen, 8)
    paths = [p.detections[0].path for p in picked]
    assert len(paths) == len(set(paths)) == 8
    assert paths == sorted(paths)
    assert {"00.jpg", "19.jpg"} <= set(paths)  # the last is also the clearest here
    gaps = [int(b[:2]) - int(a[:2]) for a, b in itertools.pairwise(paths)]
    assert max(gaps) <= 4
    assert len(pick_frames(seen, 30)) == 20


def test_one_frames_detections_stay_together() -> None:
    """Two people in one upload are one picture with two numbered boxes."""
    seen = [found("a.jpg", 0.9, 0), found("a.jpg", 0.8, 0, x=1000), found("b.jpg", 0.7, 5)]
    picked = pick_frames(seen, 3)
    assert [len(p.detections) for p in picked] == [2, 1]


# --- How they look --------------------------------------------------------------------------------


def test_a_frame_is_scaled_to_the_budget_with_thin_numbered_boxes() -> None:
    """1080p at 768: 768x432, the box scaled by 0.4, drawn thin, and tagged above.

    Its edge is in the class colour, its inside untouched, and its tag filled above it.
    """
    person = found("a.jpg", 0.9, 0)
    image = decoded(render_frame(photo(), [(1, person)], 768))
    assert image.size == (768, 432)
    color = color_for("person")
    left, top, bottom = round(400 * 0.4), round(200 * 0.4), round(800 * 0.4) - 1
    assert close(image.getpixel((left, (top + bottom) // 2)), color)
    assert close(image.getpixel((left + 30, (top + bottom) // 2)), "#808080", 12)
    assert close(image.getpixel((left + 1, top - 2)), color)  # the "#1" tag's padding
    small = decoded(render_frame(photo(640, 360), [(1, person)], 768))
    assert small.size == (640, 360)  # never enlarged


def test_a_rotated_upload_is_sent_upright() -> None:
    """EXIF orientation 6 (a portrait phone picture): the model gets it upright."""
    image = decoded(render_frame(photo(1920, 1080, orientation=6), [], 768))
    assert image.size == (432, 768)


async def test_incident_frames_read_inside_the_root_and_caption_what_is_numbered(
    tmp_path: Path,
) -> None:
    """Captions number the boxes across frames, in local time; unreadable frames are left out.

    A missing file is skipped, and no picture is read through a link out of the camera root.
    """
    root = tmp_path / "cameras"
    (root / "Cam").mkdir(parents=True)
    for name in ("a.jpg", "c.jpg"):
        (root / "Cam" / name).write_bytes(photo())
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(photo())
    os.symlink(outside, root / "Cam" / "link.jpg")
    seen = [
        found(str(root / "Cam" / "a.jpg"), 0.9, 0),
        found(str(root / "Cam" / "a.jpg"), 0.8, 0, label="car", x=1200),
        found(str(root / "Cam" / "gone.jpg"), 0.95, 3),
        found(str(root / "Cam" / "link.jpg"), 0.99, 4),
        found(str(root / "Cam" / "c.jpg"), 0.7, 6),
    ]
    images = await incident_frames(
        seen,
        limit=5,
        long_side=512,
        tz=AMSTERDAM,
        run_blocking=asyncio.to_thread,
        camera_root=str(root),
    )
    assert [image.caption for image in images] == [
        "Frame 1 of 2 (first, 03:00:00): #1 person 90%, #2 car 80%",
        "Frame 2 of 2 (last, 03:00:06): #5 person 70%",
    ]
    assert all(max(decoded(image.jpeg).size) == 512 for image in images)


# --- Through the pipeline -------------------------------------------------------------------------


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[DetectorServer]:
    server = DetectorServer(
        reply=Reply(body=detections(detection("person", 0.9, [100, 80, 60, 140])))
    )
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("api", [LlmApi.OPENAI, LlmApi.LLAMA_CPP])
async def test_the_llm_gets_the_incidents_pictures(
    api: LlmApi,
    root: Path,
    sqlite_url: str,
    detector: DetectorServer,
    llm_stub: LlmStub,
) -> None:
    """OpenAI-compatible: the uploads' pictures, scaled, with the verdict still the LLM's.

    The stub has no /props, so a native llama.cpp server that cannot say where pictures go gets
    the text alone, and is not asked before every verdict.
    """
    options = fast_options(llm_frame_size=256)
    cfg = config(root, sqlite_url, detector.url, llm_stub.url, options=options, llm_api=api)
    async with running(cfg) as (pipeline, rec):
        for n in range(3):
            await asyncio.to_thread(write, root / "Front Door" / f"{n}.jpg", photo(640, 480))
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
        stored = await operations.get_event(pipeline.db, rec.closed[0].event_id)
    closed = rec.closed[0]
    assert stored is not None
    assert stored.details == closed.details  # as the database gives it back
    assert closed.source is EventSource.LLM
    assert closed.details is not None
    assert closed.details.server == llm_stub.url
    assert len(closed.details.prompt_hash) == 64
    if api is LlmApi.LLAMA_CPP:
        assert all(sent == [] for sent in llm_stub.images)
        assert closed.details.frames == ()
        return
    last = llm_stub.images[-1]
    # The event records which uploads were shown: as many as the last request carried, each
    # one of the incident's uploads (by media id).
    assert len(closed.details.frames) == len(last)
    media = {str(number) for number in range(1, 4)}
    assert set(closed.details.frames) <= media
    assert 1 <= len(last) <= PipelineOptions().llm_frames
    assert all(decoded(jpeg).size == (256, 192) for jpeg in last)
    assert "Frame 1 of" in llm_stub.prompts[-1]
    assert "Camera: Front Door" in llm_stub.prompts[-1]


async def test_no_pictures_when_turned_off(
    root: Path, sqlite_url: str, detector: DetectorServer, llm_stub: LlmStub
) -> None:
    """llm_frames 0: the text alone, as before pictures existed."""
    options = fast_options(llm_frames=0)
    cfg = config(
        root, sqlite_url, detector.url, llm_stub.url, options=options, llm_api=LlmApi.OPENAI
    )
    async with running(cfg) as (_pipeline, rec):
        await asyncio.to_thread(write, root / "Front Door" / "a.jpg", photo(640, 480))
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
    assert llm_stub.images
    assert all(sent == [] for sent in llm_stub.images)


async def test_owners_notes_reach_the_llm(
    root: Path, sqlite_url: str, detector: DetectorServer, llm_stub: LlmStub
) -> None:
    """A camera's notes go into its prompts, and only its own; changed notes apply at once."""
    cfg = config(root, sqlite_url, detector.url, llm_stub.url, llm_api=LlmApi.OPENAI)
    async with running(cfg) as (pipeline, rec):
        pipeline.set_camera_notes({"front_door": "Deliveries 10-12", "garden": " "})
        await asyncio.to_thread(write, root / "Front Door" / "a.jpg", jpeg(1, 640, 480))
        await wait_until(lambda: len(rec.closed) == 1, what="the front door's incident")
        assert "Owner's notes (what is normal here): Deliveries 10-12" in llm_stub.prompts[-1]
        await asyncio.to_thread(write, root / "Garden" / "a.jpg", jpeg(2, 640, 480))
        await wait_until(lambda: len(rec.closed) == 2, what="the garden's incident")
        assert "Owner's notes" not in llm_stub.prompts[-1]


async def test_an_answer_cut_off_for_the_pictures_gets_fewer(
    root: Path, sqlite_url: str, detector: DetectorServer, llm_stub: LlmStub
) -> None:
    """A context that holds the prompt but not the answer beside three pictures: fewer go.

    The verdict is asked again at once with the clearest picture, and the next verdicts send
    that many from the start: no verdict lost, no request refused twice for the same reason.
    """
    llm_stub.room_for_pictures = 1
    cfg = config(root, sqlite_url, detector.url, llm_stub.url, llm_api=LlmApi.OPENAI)
    async with running(cfg) as (_pipeline, rec):
        for n in range(3):
            await asyncio.to_thread(write, root / "Front Door" / f"{n}.jpg", jpeg(10 + n, 640, 480))
            await asyncio.sleep(0.05)
        await wait_until(lambda: len(rec.closed) == 1, what="the incident to close")
    assert rec.closed[0].source is EventSource.LLM
    counts = [len(sent) for sent in llm_stub.images]
    # The first judgement may see two frames or three (when the uploads are read together).
    first_cut = next(index for index, count in enumerate(counts) if count > 1)
    assert counts[first_cut + 1] == 1  # the same verdict, asked again with one picture
    assert all(count <= 1 for count in counts[first_cut + 1 :])


async def test_a_server_that_refused_pictures_gets_them_again_an_hour_later(
    llm_stub: LlmStub,
) -> None:
    """Refused: text at once, text for an hour, then one try; taken, the refusal is over."""
    clock = [1000.0]
    llm_stub.refuse_pictures = True
    pictures = (PromptImage(jpeg=photo(64, 48), caption="Frame 1"),)
    request = AnalysisRequest(
        camera_name="Front Door",
        started_at=START,
        ended_at=START,
        local_tz=UTC,
        detections=(found("a.jpg", 0.9, 0),),
    )
    async with aiohttp.ClientSession() as session:
        client = Analyzer(
            session,
            [llm_stub.url],
            LlmApi.OPENAI,
            thresholds=SeverityThresholds(),
            clock=lambda: clock[0],
        )
        assert (await client.analyze(request, pictures)).source is EventSource.LLM
        assert list(client.vision_refused) == [llm_stub.url]
        clock[0] += TRY_AGAIN - 1
        assert not client.may_see()
        await client.analyze(request, pictures)
        assert [len(sent) for sent in llm_stub.images] == [1, 0, 0]
        clock[0] += 1
        assert client.may_see()
        await client.analyze(request, pictures)  # tried, refused again: text, an hour more
        assert [len(sent) for sent in llm_stub.images] == [1, 0, 0, 1, 0]
        assert list(client.vision_refused) == [llm_stub.url]
        llm_stub.refuse_pictures = False  # given a vision model meanwhile
        clock[0] += TRY_AGAIN
        await client.analyze(request, pictures)
        assert [len(sent) for sent in llm_stub.images][-1] == 1
        assert client.vision_refused == {}
