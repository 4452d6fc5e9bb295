"""The media source: cameras, days and events to browse; clips and key frames served with auth."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus
import os
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.components import media_source
from homeassistant.components.media_player import BrowseError, MediaClass
from homeassistant.components.media_source import Unresolvable
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator
from sqlalchemy.orm import Session
from yarl import URL

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)
from custom_components.ai_security.core.derived import DerivedMedia
from custom_components.ai_security.core.events import event_from_row
from custom_components.ai_security.core.models import Camera, RiskLevel
from custom_components.ai_security.core.storage import EventRow
from custom_components.ai_security.event_files import EventFiles, find_event_files
from custom_components.ai_security.media_source import (
    PAGE_SIZE,
    async_register_view,
    media_root,
    media_url,
)
from tests.detector_server import DetectorServer
from tests.hub_helpers import hub_entry
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.servers import LlmStub, ModelServer

from .test_entities import detector_server  # noqa: F401

PREFIX = f"media-source://{DOMAIN}"
# 14:05 UTC on 1 March is 06:05 in the test time zone (US/Pacific, UTC-8): the same local day.
T0 = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
CLIP_BYTES = b"\x00\x00\x00\x18ftypmp42 not really a clip"


@pytest.fixture
def pipeline_entry(
    hass: HomeAssistant,
    camera_root: Path,
    detector_server: DetectorServer,  # noqa: F811
    llm_stub: LlmStub,
) -> MockConfigEntry:
    """Return an entry whose servers detect a person and judge it, with short batches."""
    return hub_entry(hass, camera_root, detector_server.url, llm_stub.url)


@pytest.fixture(autouse=True)
async def media_components(hass: HomeAssistant) -> None:
    """Set up http and media_source, as the frontend has them."""
    assert await async_setup_component(hass, "media_source", {})
    await hass.async_block_till_done()


def event_row(
    event_id: str,
    started_at: datetime,
    *,
    camera_id: str = "front_door",
    level: RiskLevel = RiskLevel.HIGH,
    summary: str = "A person near the entrance",
) -> EventRow:
    return EventRow(
        event_id=event_id,
        camera_id=camera_id,
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=30),
        risk_score=70,
        risk_level=level.value,
        summary=summary,
        reasoning="Someone at the door",
        object_types=["person"],
        detection_count=1,
        is_fast_path=False,
        source="llm",
        reviewed=False,
        created_at=started_at,
    )


async def add_events(entry: MockConfigEntry, rows: Iterable[EventRow]) -> None:
    stored = list(rows)

    def _add(session: Session) -> None:
        session.add_all(stored)

    await entry.runtime_data.pipeline.db.run(_add)


def add_camera(entry: MockConfigEntry, camera_id: str, name: str) -> None:
    """Announce a camera as the pipeline does when its folder appears."""
    camera = Camera(camera_id=camera_id, name=name, folder=name)
    entry.runtime_data.pipeline.callbacks.camera_added(camera)


async def write_media(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    row: EventRow,
    *,
    key_frame: bytes | None = None,
    clip: bytes | None = None,
) -> DerivedMedia:
    media = DerivedMedia(media_root(hass, entry.entry_id))

    def _write() -> None:
        if key_frame is not None:
            path = media.key_frame_path(row.camera_id, row.event_id, row.started_at)
            media.write_file(path, key_frame)
        if clip is not None:
            media.write_file(media.clip_path(row.camera_id, row.event_id, row.started_at), clip)

    await hass.async_add_executor_job(_write)
    return media


async def http_client(hass: HomeAssistant, hass_client: ClientSessionGenerator) -> TestClient:
    """Return a signed-in client, once the media source (and with it its view) is loaded.

    The test server freezes the router when it starts; Home Assistant's own server keeps it open
    for integrations loaded later, as the media source platform is (on first use).
    """
    await browse(hass)
    return await hass_client()


async def browse(hass: HomeAssistant, identifier: str = "") -> dict[str, Any]:
    content_id = f"{PREFIX}/{identifier}" if identifier else PREFIX
    result: dict[str, Any] = (await media_source.async_browse_media(hass, content_id)).as_dict()
    return result


async def resolve(hass: HomeAssistant, identifier: str) -> media_source.PlayMedia:
    return await media_source.async_resolve_media(hass, f"{PREFIX}/{identifier}", None)


async def test_browse_cameras_days_and_events(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """One hub: its cameras at the top, their days newest first, each day's events."""
    entry = init_integration
    add_camera(entry, "front_door", "Front Door")
    add_camera(entry, "yard", "Yard")
    with_clip = event_row("e1", T0, summary="A **person** near\nthe   entrance")
    key_only = event_row("e2", T0 + timedelta(hours=1), level=RiskLevel.LOW, summary="x" * 200)
    no_files = event_row("e3", T0 + timedelta(hours=2), level=RiskLevel.CRITICAL)
    earlier = event_row("e4", T0 - timedelta(days=3))
    await add_events(entry, [with_clip, key_only, no_files, earlier])
    await write_media(hass, entry, with_clip, key_frame=jpeg(1), clip=CLIP_BYTES)
    await write_media(hass, entry, key_only, key_frame=jpeg(2))

    root = await browse(hass)
    assert root["title"] == "AI Security"
    assert root["can_expand"]
    assert [(c["title"], c["media_content_id"]) for c in root["children"]] == [
        ("Front Door (4)", f"{PREFIX}/{entry.entry_id}/front_door"),
        ("Yard (0)", f"{PREFIX}/{entry.entry_id}/yard"),
    ]

    camera = await browse(hass, f"{entry.entry_id}/front_door")
    assert camera["title"] == "Front Door"
    day = dt_util.as_local(T0).date()
    earlier_day = dt_util.as_local(earlier.started_at).date()
    assert [c["title"] for c in camera["children"]] == [day.isoformat(), earlier_day.isoformat()]

    events = await browse(hass, f"{entry.entry_id}/front_door/{day.isoformat()}")
    children = events["children"]
    # Newest first.
    assert [c["media_content_id"].rsplit("/", 1)[1] for c in children] == ["e3", "e2", "e1"]
    critical, low, high = children
    local = dt_util.as_local(T0)
    assert high["title"] == f"{local:%H:%M} · High · A person near the entrance"
    assert high["media_class"] == MediaClass.VIDEO
    assert high["media_content_type"] == "video/mp4"
    assert high["can_play"]
    assert not high["can_expand"]
    thumbnail = URL(high["thumbnail"])
    assert thumbnail.path == media_url(entry.entry_id, "front_door/2026-03-01/e1/key.jpg")
    assert "authSig" in thumbnail.query
    assert low["media_class"] == MediaClass.IMAGE
    assert low["media_content_type"] == "image/jpeg"
    assert low["can_play"]
    assert len(low["title"]) < 110
    assert low["title"].endswith("x…")
    assert " · Low · " in low["title"]
    assert critical["title"].split(" · ")[1] == "Critical"
    assert not critical["can_play"]
    assert critical["thumbnail"] is None


async def test_pages_of_fifty(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """A busy day lists 50 events and a "More…" node leading to the next 50."""
    entry = init_integration
    add_camera(entry, "front_door", "Front Door")
    await add_events(
        entry, [event_row(f"e{n:03d}", T0 + timedelta(seconds=n)) for n in range(2 * PAGE_SIZE + 7)]
    )
    day = f"{entry.entry_id}/front_door/2026-03-01"

    first = (await browse(hass, day))["children"]
    assert len(first) == PAGE_SIZE + 1
    assert first[0]["media_content_id"].endswith("/e106")
    more = first[-1]
    assert more["title"] == "More…"
    assert more["can_expand"]
    assert more["media_content_id"] == f"{PREFIX}/{day}/page/2"

    second = (await browse(hass, f"{day}/page/2"))["children"]
    assert len(second) == PAGE_SIZE + 1
    assert second[0]["media_content_id"].endswith("/e056")
    third = (await browse(hass, f"{day}/page/3"))["children"]
    assert [c["media_content_id"].rsplit("/", 1)[1] for c in third] == [
        f"e{n:03d}" for n in range(6, -1, -1)
    ]


async def test_resolve_and_serve(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """An event plays its clip, else its key frame; both come from the authenticated view."""
    entry = init_integration
    add_camera(entry, "front_door", "Front Door")
    with_clip = event_row("e1", T0)
    key_only = event_row("e2", T0 + timedelta(minutes=5))
    await add_events(entry, [with_clip, key_only])
    media = await write_media(hass, entry, with_clip, key_frame=jpeg(1), clip=CLIP_BYTES)
    key_bytes = jpeg(2)
    await write_media(hass, entry, key_only, key_frame=key_bytes)
    client = await http_client(hass, hass_client)

    played = await resolve(hass, f"{entry.entry_id}/front_door/2026-03-01/e1")
    assert played.mime_type == "video/mp4"
    assert played.url == media_url(entry.entry_id, "front_door/2026-03-01/e1/clip.mp4")
    assert played.path == media.clip_path("front_door", "e1", T0)  # for local players
    response = await client.get(played.url)
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"] == "video/mp4"
    assert await response.read() == CLIP_BYTES

    shown = await resolve(hass, f"{entry.entry_id}/front_door/2026-03-01/e2")
    assert shown.mime_type == "image/jpeg"
    response = await client.get(shown.url)
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"] == "image/jpeg"
    assert await response.read() == key_bytes

    # Thumbnails handed out while browsing load with their signature alone (no header).
    events = await browse(hass, f"{entry.entry_id}/front_door/2026-03-01")
    thumbnail = events["children"][0]["thumbnail"]
    anonymous = await hass_client_no_auth()
    signed = await anonymous.get(URL(thumbnail, encoded=True))
    assert signed.status == HTTPStatus.OK
    assert await signed.read() == key_bytes  # the newest event first: e2
    unsigned = await anonymous.get(shown.url)
    assert unsigned.status == HTTPStatus.UNAUTHORIZED

    # The files deleted (retention, or by hand): unresolvable, and the view answers 404.
    await hass.async_add_executor_job(media.delete_event, "front_door", "e2", key_only.started_at)
    with pytest.raises(Unresolvable):
        await resolve(hass, f"{entry.entry_id}/front_door/2026-03-01/e2")
    response = await client.get(shown.url)
    assert response.status == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(
    "identifier",
    [
        "not-an-entry",
        "{entry}/front_door/2026-03-01/e1/extra",
        "{entry}/unknown_camera",
        "{entry}/../../secrets.yaml",
        "{entry}/front_door/..",
        "{entry}/front_door/2026-02-30",
        "{entry}/front_door/01-03-2026",
        "{entry}/front_door/2026-03-01/page/0",
        "{entry}/front_door/2026-03-01/page/x",
        "{entry}/front_door/2026-03-01/page/99999999",
        "{entry}/front_door/2026-03-01/page/20000",
        "{entry}/front_door/2026-03-01/e1",
    ],
)
async def test_browse_refuses_malformed_ids(
    hass: HomeAssistant, init_integration: MockConfigEntry, identifier: str
) -> None:
    """An id that names no node is a BrowseError, never a crash or a path outside the tree."""
    add_camera(init_integration, "front_door", "Front Door")
    with pytest.raises(BrowseError):
        await browse(hass, identifier.format(entry=init_integration.entry_id))


@pytest.mark.parametrize(
    "identifier",
    [
        "",
        "not-an-entry/front_door/2026-03-01/e1",
        "{entry}",
        "{entry}/front_door",
        "{entry}/front_door/2026-03-01",
        "{entry}/front_door/2026-03-01/unknown",
        "{entry}/yard/2026-03-01/e1",
        "{entry}/front_door/2026-03-01/../../../secrets.yaml",
        "{entry}/../2026-03-01/e1",
        "{entry}/front_door/2026-03-01/.e1",
        "{entry}/front_door/not-a-day/e1",
        "{entry}/front_door/2026-03-01/e1/key.jpg",
    ],
)
async def test_resolve_refuses_malformed_ids(
    hass: HomeAssistant, init_integration: MockConfigEntry, identifier: str
) -> None:
    """Only an existing event of the named camera resolves."""
    entry = init_integration
    add_camera(entry, "front_door", "Front Door")
    row = event_row("e1", T0)
    await add_events(entry, [row])
    await write_media(hass, entry, row, key_frame=jpeg(1))
    with pytest.raises(Unresolvable):
        await media_source.async_resolve_media(
            hass, f"{PREFIX}/{identifier.format(entry=entry.entry_id)}".rstrip("/"), None
        )


async def test_linked_out_files_count_as_missing(
    hass: HomeAssistant, init_integration: MockConfigEntry, tmp_path: Path
) -> None:
    """A key frame that is a link leading out of the media folder is neither shown nor played."""
    entry = init_integration
    add_camera(entry, "front_door", "Front Door")
    row = event_row("e1", T0)
    await add_events(entry, [row])
    media = await write_media(hass, entry, row, clip=CLIP_BYTES)
    outside = tmp_path / "outside.jpg"

    def _link() -> None:
        outside.write_bytes(jpeg(3))
        os.symlink(outside, media.key_frame_path("front_door", "e1", T0))
        os.unlink(media.clip_path("front_door", "e1", T0))

    await hass.async_add_executor_job(_link)
    (node,) = (await browse(hass, f"{entry.entry_id}/front_door/2026-03-01"))["children"]
    assert node["thumbnail"] is None
    assert not node["can_play"]
    with pytest.raises(Unresolvable):
        await resolve(hass, f"{entry.entry_id}/front_door/2026-03-01/e1")


def test_event_files_of_unsafe_ids(tmp_path: Path) -> None:
    """An event whose ids cannot name a folder simply has no files (never a path elsewhere)."""
    event = event_from_row(event_row("../e1", T0))
    assert find_event_files(DerivedMedia(tmp_path), event) == EventFiles()


async def test_view_refuses_paths_outside_the_media_folder(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    hass_client: ClientSessionGenerator,
    tmp_path: Path,
) -> None:
    """Dots, encoded dots, absolute paths, links out and non-media files are never served."""
    entry = init_integration
    row = event_row("e1", T0)
    media = await write_media(hass, entry, row, key_frame=jpeg(1))
    secret = tmp_path / "secret.jpg"

    def _plant() -> None:
        secret.write_bytes(b"secret")
        (Path(hass.config.config_dir) / "secrets.yaml").write_text("password: hunter2\n")
        folder = media.event_dir("front_door", "e1", T0)
        os.symlink(secret, folder / "link.jpg")
        (folder / "notes.txt").write_text("not media")
        (folder / ".key.jpg.123.part").write_bytes(b"half")

    await hass.async_add_executor_job(_plant)
    client = await http_client(hass, hass_client)
    base = f"/api/{DOMAIN}/media/{entry.entry_id}"
    ok = await client.get(f"{base}/front_door/2026-03-01/e1/key.jpg")
    assert ok.status == HTTPStatus.OK

    refused = [
        f"{base}/../../secrets.yaml",
        f"{base}/%2e%2e/%2e%2e/%2e%2e/secrets.yaml",
        f"{base}/front_door/%2E%2E/%2E%2E/%2E%2E/%2E%2E/secrets.yaml",
        f"{base}/..%2f..%2f..%2fsecrets.yaml",
        f"{base}/%2fetc%2fpasswd",
        f"{base}//etc/passwd",
        f"{base}/front_door/2026-03-01/e1/link.jpg",
        f"{base}/front_door/2026-03-01/e1/notes.txt",
        f"{base}/front_door/2026-03-01/e1/.key.jpg.123.part",
        f"{base}/front_door/2026-03-01/e1/missing.jpg",
        f"{base}/front_door/2026-03-01/e1",
        f"{base}/",
        f"/api/{DOMAIN}/media/not_an_entry/front_door/2026-03-01/e1/key.jpg",
        f"/api/{DOMAIN}/media/%2e%2e/front_door/2026-03-01/e1/key.jpg",
    ]
    for path in refused:
        response = await client.get(URL(path, encoded=True))
        assert response.status in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND), path
        assert b"hunter2" not in await response.read()
        assert await response.read() != b"secret"


async def test_hubs_at_the_top_when_several(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    tmp_path: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """With two hubs loaded the root lists the hubs, each leading to its cameras."""
    other_root = tmp_path / "garage"
    await hass.async_add_executor_job(other_root.mkdir)
    other = MockConfigEntry(
        domain=DOMAIN,
        title="Garage",
        unique_id=str(other_root),
        data={
            CONF_CAMERA_ROOT: str(other_root),
            CONF_DETECTOR_URLS: [detector.url],
            CONF_LLM_URLS: [llm.url],
            CONF_LLM_API: "llama_cpp",
        },
        version=1,
        minor_version=3,
    )
    other.add_to_hass(hass)
    assert await hass.config_entries.async_setup(other.entry_id)
    await hass.async_block_till_done()
    add_camera(other, "door", "Door")

    root = await browse(hass)
    assert [(c["title"], c["media_content_id"]) for c in root["children"]] == [
        ("Garage", f"{PREFIX}/{other.entry_id}"),
        ("Home", f"{PREFIX}/{init_integration.entry_id}"),
    ]
    hub = await browse(hass, other.entry_id)
    assert hub["title"] == "Garage"
    assert [c["title"] for c in hub["children"]] == ["Door (0)"]

    # An unloaded hub is no longer browsable.
    assert await hass.config_entries.async_unload(other.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(BrowseError):
        await browse(hass, other.entry_id)


async def test_register_view_once_and_without_http(hass: HomeAssistant) -> None:
    """Registering the view again is harmless."""
    async_register_view(hass)
    async_register_view(hass)
    routes = [
        route
        for route in hass.http.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(f"/api/{DOMAIN}/media")
    ]
    assert len(routes) == 2  # GET and its HEAD


async def test_a_real_event_plays_its_key_frame(
    hass: HomeAssistant,
    pipeline_entry: MockConfigEntry,
    camera_root: Path,
    hass_client: ClientSessionGenerator,
) -> None:
    """An upload's event, as the pipeline stores it, browses and plays from its derived media."""
    entry = pipeline_entry
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    security_events = async_capture_events(hass, "ai_security_event")
    await hass.async_add_executor_job(write, camera_root / "Porch" / "a.jpg", jpeg(4, 320, 240))
    await wait_until(lambda: len(security_events) == 1, seconds=20, what="event")
    await entry.runtime_data.pipeline.wait_for_media()
    event_id = security_events[0].data["event_id"]
    started = datetime.fromisoformat(security_events[0].data["started_at"])
    day: date = dt_util.as_local(started).date()

    events = await browse(hass, f"{entry.entry_id}/porch/{day.isoformat()}")
    (node,) = events["children"]
    assert node["media_content_id"] == f"{PREFIX}/{entry.entry_id}/porch/{day}/{event_id}"
    assert node["can_play"]
    played = await resolve(hass, f"{entry.entry_id}/porch/{day}/{event_id}")
    client = await http_client(hass, hass_client)
    response = await client.get(played.url)
    assert response.status == HTTPStatus.OK
    assert response.headers["Content-Type"] == played.mime_type
    assert len(await response.read()) > 1000
