"""What the dashboard card needs from the integration: its files, its commands, its media URLs.

The card itself runs in a browser (tests/e2e/test_card_browser.py); here a real Home Assistant
checks the server side: the card's modules are served and registered with the frontend under a
versioned URL, ai_security/cameras names each camera's entities, and ai_security/search_events
answers like the search_events action, with signed URLs that load without a token and stop
loading when tampered with, refuses bad input with the action's translated errors, and audits
nothing. Without Home Assistant: the card's modules stay small and import only what exists, and
a change to any of them is a new version. The harness's check that fails a test on Home
Assistant's reports of a deprecated call is shown to catch one here, where the card's command
used to make such a call.
"""

from pathlib import Path
import re
import shutil
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator, WebSocketGenerator
from yarl import URL

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.frontend import CARD_FILE, CARD_FOLDER, URL_BASE, card_version
from tests.conftest import FrameReports
from tests.pipeline_helpers import jpeg, wait_until, write
from tests.translations import STRINGS

from .test_pipeline_ha import detector_server, entry  # noqa: F401
from .test_services import call

MAX_MODULE_LINES = 400
"""The most lines a module of the card may have: each stays readable on its own."""
IMPORT = re.compile(r'^import\s+(?:\{([^}]*)\}\s+from\s+)?"([^"]+)";', re.MULTILINE)
"""A static import as the card's modules write them: `import { a, b } from "./x.js";`."""


async def set_up_with_event(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
) -> dict[str, Any]:
    """Set the entry up and upload one image; return its ai_security_event's data."""
    events = async_capture_events(hass, "ai_security_event")
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.async_add_executor_job(write, camera_root / "Front Door" / "a.jpg", jpeg(5))
    await wait_until(lambda: len(events) == 1, seconds=20, what="ai_security_event")
    return dict(events[0].data)


async def test_card_is_served_and_registered_with_a_versioned_url(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_client_no_auth: ClientSessionGenerator,
) -> None:
    """With the frontend loaded, the card's entry is registered in a folder named by its hash.

    Every module of the card is served from that folder, as it is on disk and for good (the
    relative imports resolve there); nothing outside the card's folder, nor another version.
    """
    assert await async_setup_component(hass, "frontend", {})
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    modules = hass.data["frontend_extra_module_url"].urls
    (url,) = [url for url in modules if CARD_FILE in url]
    version = await hass.async_add_executor_job(card_version)
    assert re.fullmatch(r"[0-9a-f]{12}", version), version
    assert url == f"{URL_BASE}/{version}/{CARD_FILE}"
    folder_url = url.removesuffix(f"/{CARD_FILE}")
    client = await hass_client_no_auth()
    served = sorted(CARD_FOLDER.glob("*.js"))
    assert {path.name for path in served} >= {CARD_FILE, "card.js", "editor.js"}
    for path in served:
        response = await client.get(f"{folder_url}/{path.name}")
        assert response.status == 200, path.name
        assert response.content_type == "text/javascript", path.name
        assert "max-age=" in response.headers["Cache-Control"], path.name
        assert await response.read() == path.read_bytes(), path.name
    response = await client.get(url)
    assert b'registry.define("ai-security-card", AiSecurityCard)' in await response.read()
    # Only the current version is served: a module of another one would not match its entry.
    response = await client.get(f"{URL_BASE}/{'0' * 12}/{CARD_FILE}")
    assert response.status == 404
    # Only the card's folder is served, not the integration's code beside it.
    for base in (folder_url, URL_BASE):
        for path in (f"{base}/%2e%2e/manifest.json", f"{base}/..%2fmanifest.json"):
            response = await client.get(URL(path, encoded=True))
            assert 400 <= response.status < 500, path
            assert b'"domain"' not in await response.read()
    response = await client.get(URL(f"{folder_url}/%2e%2e/frontend.py", encoded=True))
    assert 400 <= response.status < 500
    assert b"async_register_card" not in await response.read()

    # A second entry (or a reload) registers nothing twice.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert [u for u in hass.data["frontend_extra_module_url"].urls if CARD_FILE in u] == [url]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """Return the (specifier, imported names) of each static import in a module."""
    source = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
    found = []
    for names, specifier in IMPORT.findall(source):
        found.append((specifier, [name.strip() for name in names.split(",") if name.strip()]))
    return found


def test_card_modules_are_small_and_import_only_what_exists() -> None:
    """Each module of the card stays under the line limit, and its imports all resolve.

    The browser fails the whole card, silently for the user, on an import of a file that is
    not there or of a name the file does not export; and an import that is not `./name.js`
    would leave the versioned folder, to a file that may be stale. Every module is reached
    from the entry, so nothing is served that the card does not use.
    """
    modules = {path.name: path for path in CARD_FOLDER.glob("*.js")}
    assert CARD_FILE in modules
    for name, path in modules.items():
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"
    reached: set[str] = set()
    pending = [CARD_FILE]
    while pending:
        name = pending.pop()
        if name in reached:
            continue
        reached.add(name)
        source = re.sub(r"/\*.*?\*/", "", modules[name].read_text(), flags=re.DOTALL)
        assert "import(" not in source, f"{name} imports dynamically"
        for specifier, names in _imports(modules[name]):
            assert re.fullmatch(r"\./[a-z][a-z0-9-]*\.js", specifier), (name, specifier)
            target = specifier.removeprefix("./")
            assert target in modules, f"{name} imports {specifier}, which does not exist"
            exported = modules[target].read_text()
            for imported in names:
                assert re.search(
                    rf"^export (?:async function|function|const|class) {imported}\b",
                    exported,
                    re.MULTILINE,
                ), f"{name} imports {imported} from {specifier}, which does not export it"
            pending.append(target)
    assert reached == set(modules), f"not imported by the card: {set(modules) - reached}"
    # Every import statement was understood: none is left for the browser alone to judge.
    for name, path in modules.items():
        source = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.DOTALL)
        statements = re.findall(r"^import\b", source, re.MULTILINE)
        assert len(statements) == len(_imports(path)), name


def test_the_served_version_changes_with_any_module(tmp_path: Path) -> None:
    """A change to any file of the card's folder, or a file added or renamed, is a new version.

    Browsers keep the card's files for good under a versioned URL, so a version that stayed
    the same across an update would leave them on the old modules.
    """
    folder = tmp_path / "frontend"
    shutil.copytree(CARD_FOLDER, folder)
    version = card_version(folder)
    assert version == card_version(CARD_FOLDER)  # where the folder lies does not count
    seen = {version}
    for path in sorted(folder.glob("*.js")):
        original = path.read_bytes()
        path.write_bytes(original + b"\n")
        seen.add(card_version(folder))
        path.write_bytes(original)
        assert card_version(folder) == version, path.name
    assert len(seen) == 1 + len(list(folder.glob("*.js")))
    (folder / "extra.js").write_text("export const extra = 1;\n")
    added = card_version(folder)
    (folder / "extra.js").rename(folder / "other.js")
    assert len({version, added, card_version(folder)} | seen) == len(seen) + 2


async def test_cameras_command_names_each_cameras_entities(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """ai_security/cameras lists the camera with the entity ids the card shows, as renamed."""
    await set_up_with_event(hass, entry, camera_root)
    registry = er.async_get(hass)
    risk_id = registry.async_get_entity_id(
        "sensor", DOMAIN, f"{entry.entry_id}_front_door_risk_level"
    )
    assert risk_id is not None
    registry.async_update_entity(risk_id, new_entity_id="sensor.porch_risk")
    await hass.async_block_till_done()

    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": f"{DOMAIN}/cameras"})
    reply = await client.receive_json()
    assert reply["success"], reply
    (camera,) = reply["result"]["cameras"]
    assert camera["config_entry_id"] == entry.entry_id
    assert camera["hub_name"] == entry.title
    assert (camera["camera_id"], camera["name"]) == ("front_door", "Front Door")
    assert camera["device_id"] is not None
    entities = camera["entities"]
    assert entities["risk_level"] == "sensor.porch_risk"
    assert set(entities) == {
        "latest_detection",
        "last_event",
        "risk_level",
        "risk_score",
        "activity",
        "suppressed_today",
    }
    for entity_id in entities.values():
        assert entity_id is not None
        assert hass.states.get(entity_id) is not None, entity_id
    assert entities["latest_detection"].startswith("camera.")
    assert entities["last_event"].startswith("image.")

    # A disabled entity is left out rather than pointing the card at nothing.
    registry.async_update_entity(entities["activity"], disabled_by=er.RegistryEntryDisabler.USER)
    await client.send_json_auto_id({"type": f"{DOMAIN}/cameras"})
    reply = await client.receive_json()
    assert reply["result"]["cameras"][0]["entities"]["activity"] is None


async def test_search_command_answers_like_the_action_with_signed_media_urls(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    camera_root: Path,
    hass_client_no_auth: ClientSessionGenerator,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The card's read gives the action's answer; its image URL loads without a token."""
    data = await set_up_with_event(hass, entry, camera_root)
    # The event's pictures are made after it is announced.
    await entry.runtime_data.pipeline.wait_for_media()
    query = {"config_entry_id": entry.entry_id, "cameras": ["front_door"], "page_size": 5}
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": f"{DOMAIN}/search_events", **query})
    reply = await client.receive_json()
    assert reply["success"], reply
    found = reply["result"]
    (event,) = found["events"]
    assert (found["total"], found["page"], found["page_size"]) == (1, 1, 5)
    assert event["event_id"] == data["event_id"]
    assert event["clip_url"] is None  # a still image makes no clip
    image_url = event["image_url"]
    assert image_url.startswith(f"/api/{DOMAIN}/media/{entry.entry_id}/")
    assert "authSig=" in image_url
    # The same answer as the action's, field for field (the signatures differ in time).
    action = await call(hass, "search_events", query)
    assert isinstance(action, dict)
    unsigned = {key: value for key, value in event.items() if not key.endswith("_url")}
    (expected,) = action["events"]
    assert unsigned == {key: value for key, value in expected.items() if not key.endswith("_url")}
    assert set(event) == set(expected)

    http = await hass_client_no_auth()
    loaded = await http.get(image_url)
    assert loaded.status == 200
    assert loaded.headers["Content-Type"] == "image/jpeg"
    assert (await loaded.read())[:2] == b"\xff\xd8"
    forged = re.sub(r"authSig=[^&]+", "authSig=forged", image_url)
    assert (await http.get(forged)).status == 401
    assert (await http.get(image_url.split("?")[0])).status == 401


@pytest.mark.parametrize(
    ("fields", "code", "key"),
    [
        ({"page_size": 0}, "service_validation_error", "invalid_page_size"),
        ({"cameras": ["garage"]}, "service_validation_error", "unknown_camera"),
        ({"start": "2026-05-02T10:00:00", "end": "2026-05-01T10:00:00"}, None, None),
        ({"min_level": "apocalyptic"}, "invalid_format", None),
        ({"config_entry_id": "not-an-entry"}, "service_validation_error", None),
    ],
)
async def test_search_command_refuses_bad_input_like_the_action(
    hass: HomeAssistant,
    entry: MockConfigEntry,  # noqa: F811
    hass_ws_client: WebSocketGenerator,
    fields: dict[str, Any],
    code: str | None,
    key: str | None,
) -> None:
    """Bad fields get the action's own checks and translated messages, as errors, not results."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {"type": f"{DOMAIN}/search_events", "config_entry_id": entry.entry_id, **fields}
    )
    reply = await client.receive_json()
    assert not reply["success"], reply
    error = reply["error"]
    assert error["message"]
    if code is None:  # a reversed range: the library's check, translated
        assert error["code"] == "service_validation_error"
        assert error["translation_key"] in STRINGS["exceptions"]
        return
    assert error["code"] == code
    if key is not None:
        assert (error["translation_domain"], error["translation_key"]) == (DOMAIN, key)
        assert error["message"] != key  # the English text, not the bare key


@pytest.mark.parametrize("integration_frame_path", ["custom_components/ai_security"])
async def test_a_deprecated_call_fails_the_test(
    hass: HomeAssistant,
    mock_integration_frame: Any,
    fail_on_frame_reports: FrameReports,
) -> None:
    """The harness's check catches Home Assistant's report of a deprecated call.

    The call is the one ai_security/cameras made before (device_registry.async_get_device,
    which stops working in 2027.8), made as if from the integration's own code.
    """
    dr.async_get(hass).async_get_device(identifiers={(DOMAIN, "front_door")})
    (report,) = fail_on_frame_reports.reports
    assert report.startswith("Detected that custom integration 'ai_security' calls")
    assert "async_get_device" in report
    with pytest.raises(pytest.fail.Exception, match="async_get_device"):
        fail_on_frame_reports.check()
    # Caught on purpose here: this test passes only because the check did its job.
    fail_on_frame_reports.reports.clear()
