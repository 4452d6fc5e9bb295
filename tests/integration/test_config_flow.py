"""The config, reconfigure and options flows, against model servers listening on 127.0.0.1."""

from pathlib import Path
from typing import Any
from unittest.mock import patch

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_ENTITY,
    CONF_LLM_URLS,
    DEFAULT_DETECTOR_URL,
    DEFAULT_LLM_URL,
    DOMAIN,
)
from tests.servers import ModelServer, free_port


def user_input(
    camera_root: Path | str, detector: ModelServer, llm: ModelServer, **overrides: Any
) -> dict[str, Any]:
    """Return a complete, valid user step input."""
    return {
        CONF_NAME: "Home",
        CONF_CAMERA_ROOT: str(camera_root),
        CONF_DETECTOR_URLS: [detector.url],
        CONF_LLM_URLS: [llm.url],
        CONF_LLM_API: "llama_cpp",
        **overrides,
    }


async def start_user_flow(hass: HomeAssistant) -> str:
    """Open the user step and return the flow id."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return result["flow_id"]


@pytest.mark.parametrize(("api", "route"), [("llama_cpp", "/health"), ("openai", "/v1/models")])
async def test_user_flow_creates_entry(
    hass: HomeAssistant,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
    api: str,
    route: str,
) -> None:
    """Valid settings create the entry; each server was asked on its health route."""
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        user_input(
            camera_root,
            detector,
            llm,
            **{CONF_LLM_API: api},
            **{
                CONF_DETECTOR_URLS: [f" {detector.url}/ ", detector.url],
            },
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home"
    assert result["data"] == {
        CONF_CAMERA_ROOT: str(camera_root),
        CONF_DETECTOR_URLS: [detector.url],
        CONF_LLM_URLS: [llm.url],
        CONF_LLM_API: api,
    }
    assert result["result"].unique_id == str(camera_root)
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED
    # By the flow and by the hub's first health check (setup itself waits for no server).
    assert detector.requests == ["/health", "/health"]
    assert llm.requests == [route, route]


@pytest.mark.parametrize("blank", [[], ["   ", ""]])
async def test_without_an_llm_server_events_are_scored_by_the_heuristic(
    hass: HomeAssistant,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
    caplog: pytest.LogCaptureFixture,
    blank: list[str],
) -> None:
    """No LLM URL (the field left out, empty or blank) is a choice: no LLM is asked, as logged."""
    flow_id = await start_user_flow(hass)
    fields = user_input(camera_root, detector, llm)
    del fields[CONF_LLM_URLS]
    result = await hass.config_entries.flow.async_configure(flow_id, fields)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_LLM_URLS] == []
    await hass.async_block_till_done()
    assert result["result"].state is ConfigEntryState.LOADED
    assert result["result"].runtime_data.pipeline.analyzer is None
    assert llm.requests == []
    assert "has no LLM server set: its events are scored by the built-in heuristic" in caplog.text

    # Reconfigured with an empty (or blank) list: still no LLM, still nothing asked of one.
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_RECONFIGURE, "entry_id": result["result"].entry_id},
    )
    # The form suggests what the entry has: no LLM server.
    suggested = {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }
    assert suggested[CONF_LLM_URLS] == []
    assert CONF_LLM_ENTITY not in suggested  # no AI Task entity either
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(camera_root, detector, llm, **{CONF_LLM_URLS: blank})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    assert entry.data[CONF_LLM_URLS] == []
    assert entry.state is ConfigEntryState.LOADED
    assert llm.requests == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_user_form_suggests_the_default_servers(hass: HomeAssistant) -> None:
    """A new hub is offered one detector and one LLM server on this machine's usual ports."""
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    schema = result["data_schema"].schema
    defaults = {str(key): key.default() for key in schema if callable(key.default)}
    suggested = {
        str(key): key.description["suggested_value"]
        for key in schema
        if key.description and "suggested_value" in key.description
    }
    assert defaults[CONF_DETECTOR_URLS] == [DEFAULT_DETECTOR_URL]
    assert suggested[CONF_LLM_URLS] == [DEFAULT_LLM_URL]
    assert CONF_LLM_URLS not in defaults  # optional: left empty, the heuristic judges


async def test_relative_camera_root_is_inside_config_folder(
    hass: HomeAssistant, tmp_path: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """A relative folder is resolved under the Home Assistant configuration folder."""
    config_dir = tmp_path / "config"
    (config_dir / "cameras").mkdir(parents=True)
    hass.config.config_dir = str(config_dir)
    hass.config.allowlist_external_dirs = {str(config_dir)}
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input("cameras", detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"][CONF_CAMERA_ROOT] == str(config_dir / "cameras")


def _break_folder(kind: str, camera_root: Path, tmp_path: Path, hass: HomeAssistant) -> str:
    """Return a camera root text that fails the given way."""
    if kind == "missing":
        return str(camera_root / "nope")
    if kind == "file":
        (tmp_path / "a_file.jpg").write_bytes(b"x")
        return str(tmp_path / "a_file.jpg")
    hass.config.allowlist_external_dirs = set()
    return str(camera_root)


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("missing", "not_a_directory"),
        ("file", "not_a_directory"),
        ("not_allowed", "path_not_allowed"),
    ],
)
async def test_camera_root_errors_then_recover(
    hass: HomeAssistant,
    camera_root: Path,
    tmp_path: Path,
    detector: ModelServer,
    llm: ModelServer,
    kind: str,
    error: str,
) -> None:
    """A bad folder is named on its field; fixing it creates the entry."""
    flow_id = await start_user_flow(hass)
    bad = _break_folder(kind, camera_root, tmp_path, hass)
    result = await hass.config_entries.flow.async_configure(flow_id, user_input(bad, detector, llm))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CAMERA_ROOT: error}

    hass.config.allowlist_external_dirs = {str(tmp_path)}
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    "bad_url",
    [
        "ftp://127.0.0.1:8090",
        "127.0.0.1:8090",
        "http://",
        "not a url",
        "http://host:99999",
        "http://127.0.0.1:8090/?x=1",
        "http://[::1",
    ],
)
@pytest.mark.parametrize("field", [CONF_DETECTOR_URLS, CONF_LLM_URLS])
async def test_invalid_url_then_recover(
    hass: HomeAssistant,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
    field: str,
    bad_url: str,
) -> None:
    """A malformed address is rejected on its field without contacting anything."""
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm, **{field: [bad_url]})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: "invalid_url"}
    bad_server, good_server = (detector, llm) if field == CONF_DETECTOR_URLS else (llm, detector)
    assert bad_server.requests == []
    assert len(good_server.requests) == 1

    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def _make_detector_fail(server: ModelServer, how: str) -> None:
    """Make the server fail its health check the given way."""
    if how == "refused":
        await server.stop()
    elif how == "http_500":
        server.health_status = 500
        server.health_body = "Internal Server Error"
    elif how == "status_error":
        server.health_body = {"status": "error", "error": "CUDA out of memory"}


async def _restore(server: ModelServer) -> None:
    """Undo _make_detector_fail."""
    server.health_status = 200
    server.health_body = {"status": "ok"}
    if server._runner is None:
        await server.start()


@pytest.mark.parametrize("how", ["refused", "http_500", "status_error"])
async def test_detector_unreachable_then_recover(
    hass: HomeAssistant, camera_root: Path, detector: ModelServer, llm: ModelServer, how: str
) -> None:
    """A detector that is down or reports an error is named on its field, until it is back."""
    flow_id = await start_user_flow(hass)
    await _make_detector_fail(detector, how)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm)
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_DETECTOR_URLS: "cannot_connect"}

    await _restore(detector)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize(
    ("api", "failure"),
    [
        (
            "llama_cpp",
            {
                "health_status": 503,
                "health_body": {"error": {"code": 503, "message": "Loading model"}},
            },
        ),
        ("openai", {"models_status": 404, "models_body": "not found"}),
        ("openai", {"models_body": {"object": "list"}}),
        ("openai", {"models_body": "plain text, not JSON"}),
    ],
)
async def test_llm_unavailable_then_recover(
    hass: HomeAssistant,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
    api: str,
    failure: dict[str, Any],
) -> None:
    """An LLM server that is loading or does not speak the chosen API is named on its field."""
    healthy = {key: getattr(llm, key) for key in failure}
    for key, value in failure.items():
        setattr(llm, key, value)
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm, **{CONF_LLM_API: api})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_LLM_URLS: "cannot_connect"}

    for key, value in healthy.items():
        setattr(llm, key, value)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm, **{CONF_LLM_API: api})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_every_problem_reported_at_once(
    hass: HomeAssistant, tmp_path: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """Several wrong fields are all flagged in one round trip; valid URLs are still probed."""
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        user_input(
            tmp_path / "missing",
            detector,
            llm,
            **{
                CONF_DETECTOR_URLS: [f"http://127.0.0.1:{free_port()}"],
                CONF_LLM_URLS: ["nonsense"],
            },
        ),
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {
        CONF_CAMERA_ROOT: "not_a_directory",
        CONF_DETECTOR_URLS: "cannot_connect",
        CONF_LLM_URLS: "invalid_url",
    }


async def test_several_detectors(
    hass: HomeAssistant, camera_root: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """Several detectors can be given (one per field, or pasted with commas); each is checked."""
    other = ModelServer()
    await other.start()
    try:
        flow_id = await start_user_flow(hass)
        down = f"http://127.0.0.1:{free_port()}"
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            user_input(camera_root, detector, llm, **{CONF_DETECTOR_URLS: [detector.url, down]}),
        )
        assert result["errors"] == {CONF_DETECTOR_URLS: "cannot_connect"}
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(camera_root, detector, llm, **{CONF_DETECTOR_URLS: []})
        )
        assert result["errors"] == {CONF_DETECTOR_URLS: "invalid_url"}
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            user_input(
                camera_root,
                detector,
                llm,
                **{CONF_DETECTOR_URLS: [f"{detector.url}, {other.url}/"]},
            ),
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"][CONF_DETECTOR_URLS] == [detector.url, other.url]
        await hass.async_block_till_done()
        assert other.requests == ["/health", "/health"]
    finally:
        await hass.config_entries.async_unload(result["result"].entry_id)
        await other.stop()


async def test_several_llm_servers(
    hass: HomeAssistant, camera_root: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """Several LLM servers share the judging: each is checked, and each problem is named.

    One that does not answer, or an address that is not one, is reported on the LLM field (the
    others are not enough: the user asked for every one); repeats are dropped.
    """
    other = ModelServer()
    await other.start()
    try:
        flow_id = await start_user_flow(hass)
        down = f"http://127.0.0.1:{free_port()}"
        result = await hass.config_entries.flow.async_configure(
            flow_id,
            user_input(camera_root, detector, llm, **{CONF_LLM_URLS: [llm.url, down]}),
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_LLM_URLS: "cannot_connect"}
        assert llm.requests == ["/health"]

        result = await hass.config_entries.flow.async_configure(
            flow_id,
            user_input(camera_root, detector, llm, **{CONF_LLM_URLS: [other.url, "nonsense"]}),
        )
        assert result["errors"] == {CONF_LLM_URLS: "invalid_url"}
        assert other.requests == []  # a bad address stops the field's checks before any request

        result = await hass.config_entries.flow.async_configure(
            flow_id,
            user_input(
                camera_root,
                detector,
                llm,
                **{CONF_LLM_URLS: [f" {llm.url}/ ", f"{other.url}, {llm.url}"]},
            ),
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"][CONF_LLM_URLS] == [llm.url, other.url]
        await hass.async_block_till_done()
        entry = result["result"]
        assert entry.state is ConfigEntryState.LOADED
        assert set(entry.runtime_data.pipeline.llm_breakers) == {llm.url, other.url}
        # By the flow and by the hub's first health check, each server once.
        assert other.requests == ["/health", "/health"]
        assert llm.requests == ["/health", "/health", "/health"]
    finally:
        for made in hass.config_entries.async_entries(DOMAIN):
            await hass.config_entries.async_unload(made.entry_id)
        await other.stop()


async def test_unexpected_error_then_recover(
    hass: HomeAssistant, camera_root: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """A bug while checking shows the generic error instead of a stack trace, and is logged."""
    flow_id = await start_user_flow(hass)
    with patch(
        "custom_components.ai_security.config_flow.probe_detector",
        side_effect=RuntimeError("boom"),
    ):
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(camera_root, detector, llm)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(camera_root, detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_already_configured(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """The same camera folder (even spelled differently) cannot be set up twice."""
    mock_config_entry.add_to_hass(hass)
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(f"{camera_root}/../{camera_root.name}/", detector, llm)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_overlapping_camera_roots_are_refused(
    hass: HomeAssistant,
    mock_config_entry: MockConfigEntry,
    camera_root: Path,
    tmp_path: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """A folder inside another hub's folder, or holding it, would judge every upload twice."""
    mock_config_entry.add_to_hass(hass)
    inside = camera_root / "Front"
    inside.mkdir()
    flow_id = await start_user_flow(hass)
    for folder in (inside, tmp_path):
        result = await hass.config_entries.flow.async_configure(
            flow_id, user_input(folder, detector, llm)
        )
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {CONF_CAMERA_ROOT: "overlapping_root"}
    beside = tmp_path / "elsewhere"
    beside.mkdir()
    result = await hass.config_entries.flow.async_configure(
        flow_id, user_input(beside, detector, llm)
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_reconfigure(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    tmp_path: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """Reconfigure shows the current values, rejects a bad field, then saves and reloads."""
    entry = init_integration
    result = await entry.start_reconfigure_flow(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    schema = result["data_schema"].schema
    suggested = {
        str(key): key.description["suggested_value"]
        for key in schema
        if key.description and "suggested_value" in key.description
    }
    assert suggested[CONF_CAMERA_ROOT] == entry.data[CONF_CAMERA_ROOT]
    assert suggested[CONF_NAME] == "Home"
    assert suggested[CONF_LLM_URLS] == [llm.url]

    new_root = tmp_path / "other"
    new_root.mkdir()
    await detector.stop()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(new_root, detector, llm, **{CONF_NAME: "Garden"})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_DETECTOR_URLS: "cannot_connect"}

    await detector.start()
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        user_input(new_root, detector, llm, **{CONF_NAME: "Garden", CONF_LLM_API: "openai"}),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.title == "Garden"
    # Another folder: what it holds so far is its history, not news (see test_hardening_ha).
    assert "history_before" in entry.data
    assert entry.unique_id == str(new_root)
    assert entry.data[CONF_CAMERA_ROOT] == str(new_root)
    assert entry.data[CONF_LLM_API] == "openai"
    assert entry.state is ConfigEntryState.LOADED


async def test_hub_offers_zone_subentries(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """Camera zones and cameras' notes are a hub's subentries, added and changed from its page."""
    assert init_integration.supported_subentry_types == {
        "zone": {"supports_reconfigure": True},
        "camera_notes": {"supports_reconfigure": True},
    }


async def test_reconfigure_keeps_own_folder(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """Saving an entry's own folder again is not a conflict with itself."""
    result = await init_integration.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(camera_root, detector, llm, **{CONF_NAME: " "})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert init_integration.title == "Home"
    assert "history_before" not in init_integration.data  # the same folder: nothing new
    assert init_integration.state is ConfigEntryState.LOADED


async def test_reconfigure_to_another_entrys_folder(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    tmp_path: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """A folder another entry owns is refused."""
    other_root = tmp_path / "other"
    other_root.mkdir()
    MockConfigEntry(domain=DOMAIN, unique_id=str(other_root), data={}).add_to_hass(hass)
    result = await init_integration.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], user_input(other_root, detector, llm)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert init_integration.unique_id != str(other_root)


async def test_reconfigure_unexpected_error(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    camera_root: Path,
    detector: ModelServer,
    llm: ModelServer,
) -> None:
    """A bug during reconfigure shows the generic error and keeps the form."""
    result = await init_integration.start_reconfigure_flow(hass)
    with patch(
        "custom_components.ai_security.config_flow.probe_llm", side_effect=RuntimeError("boom")
    ):
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"], user_input(camera_root, detector, llm)
        )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "unknown"}


VALID_OPTIONS: dict[str, Any] = {
    "confidence_threshold": 0.6,
    "batch_window": 120,
    "batch_idle_timeout": 20,
    "incident_max_minutes": 15,
    "fast_path_confidence": 0.95,
    "fast_path_objects": ["person", " Dog ", ""],
    "debounce": 1.5,
    "polling_observer": True,
    "retention_days": 14,
    "threshold_medium": 25,
    "threshold_high": 50,
    "threshold_critical": 80,
    "detector_concurrency": 3,
    "llm_concurrency": 2,
    "rescore_minutes": 0,
    "llm_frames": 2,
    "llm_frame_size": 512,
    "health_interval": 30,
    "retention_time": "04:30:00",
    "delete_uploads": True,
    "detection_events": True,
}


async def test_options_defaults_and_save(
    hass: HomeAssistant, init_integration: MockConfigEntry
) -> None:
    """The form shows the documented defaults; saving stores clean values and reloads the entry."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    assert result["type"] is FlowResultType.FORM
    suggested = {
        str(key): key.description["suggested_value"] for key in result["data_schema"].schema
    }
    assert suggested == {
        "confidence_threshold": 0.5,
        "batch_window": 90.0,
        "batch_idle_timeout": 30.0,
        "incident_max_minutes": 10.0,
        "fast_path_confidence": 0.9,
        "fast_path_objects": ["person"],
        "debounce": 0.5,
        "polling_observer": False,
        "retention_days": 30,
        "threshold_medium": 30,
        "threshold_high": 60,
        "threshold_critical": 85,
        "detector_concurrency": 2,
        "llm_concurrency": 1,
        "rescore_minutes": 30,
        "llm_frames": 3,
        "llm_frame_size": 768,
        "health_interval": 15.0,
        "retention_time": "03:00",
        "delete_uploads": False,
        "detection_events": False,
        "database_url": "",
    }
    runtime_before = init_integration.runtime_data
    result = await hass.config_entries.options.async_configure(result["flow_id"], VALID_OPTIONS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options == {
        **VALID_OPTIONS,
        "confidence_threshold": 0.6,
        "batch_window": 120.0,
        "batch_idle_timeout": 20.0,
        "incident_max_minutes": 15.0,
        "fast_path_objects": ["person", "dog"],
        "database_url": "",
    }
    # The entry reloaded with the new options.
    assert init_integration.state is ConfigEntryState.LOADED
    assert init_integration.runtime_data is not runtime_before
    assert init_integration.runtime_data.options.batch_window == 120.0
    assert init_integration.runtime_data.options.severity.critical == 80


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"confidence_threshold": 1.5}, {"confidence_threshold": "out_of_range"}),
        ({"confidence_threshold": 0}, {"confidence_threshold": "out_of_range"}),
        ({"batch_window": 5}, {"batch_window": "out_of_range"}),
        ({"batch_idle_timeout": 100000}, {"batch_idle_timeout": "out_of_range"}),
        ({"fast_path_confidence": 0.1}, {"fast_path_confidence": "out_of_range"}),
        ({"debounce": -1}, {"debounce": "out_of_range"}),
        ({"retention_days": 0}, {"retention_days": "out_of_range"}),
        ({"threshold_critical": 101}, {"threshold_critical": "out_of_range"}),
        (
            {"batch_window": 60, "batch_idle_timeout": 61},
            {"batch_idle_timeout": "idle_longer_than_window"},
        ),
        (
            {"batch_window": 600, "incident_max_minutes": 5},
            {"incident_max_minutes": "incident_shorter_than_window"},
        ),
        (
            {"threshold_medium": 60, "threshold_high": 60},
            {"threshold_high": "thresholds_not_increasing"},
        ),
        (
            {"threshold_high": 90, "threshold_critical": 85},
            {"threshold_high": "thresholds_not_increasing"},
        ),
        ({"fast_path_objects": [" "]}, {"fast_path_objects": "no_object_types"}),
        ({"detector_concurrency": 0}, {"detector_concurrency": "out_of_range"}),
        ({"llm_concurrency": 9}, {"llm_concurrency": "out_of_range"}),
        ({"rescore_minutes": -1}, {"rescore_minutes": "out_of_range"}),
        ({"llm_frames": 9}, {"llm_frames": "out_of_range"}),
        ({"llm_frame_size": 100}, {"llm_frame_size": "out_of_range"}),
        ({"health_interval": 2}, {"health_interval": "out_of_range"}),
        ({"database_url": "mysql://u@h/db"}, {"database_url": "invalid_database_url"}),
        ({"database_url": "not a url at all"}, {"database_url": "invalid_database_url"}),
        (
            {"database_url": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"},
            {"database_url": "cannot_connect_database"},
        ),
    ],
)
async def test_options_rejected_then_fixed(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    changes: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """Out-of-range or inconsistent options get a translated error on their field; none saved."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**VALID_OPTIONS, **changes}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert init_integration.options == {}
    result = await hass.config_entries.options.async_configure(result["flow_id"], VALID_OPTIONS)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.state is ConfigEntryState.LOADED


async def test_options_not_a_number(hass: HomeAssistant, init_integration: MockConfigEntry) -> None:
    """Text where a number belongs is refused by the form's schema."""
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    with pytest.raises(InvalidData) as err:
        await hass.config_entries.options.async_configure(
            result["flow_id"], {**VALID_OPTIONS, "batch_window": "soon"}
        )
    assert "batch_window" in err.value.schema_errors
    assert init_integration.options == {}


async def test_options_move_to_postgresql(
    hass: HomeAssistant, init_integration: MockConfigEntry, postgres_database: str
) -> None:
    """A reachable PostgreSQL URL is accepted and the reloaded entry keeps its events there."""
    database_url = postgres_database
    result = await hass.config_entries.options.async_init(init_integration.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {**VALID_OPTIONS, "database_url": f"  {database_url} "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert init_integration.options["database_url"] == database_url
    # A new database knows no upload: the folder's snapshots so far are history.
    assert "history_before" in init_integration.data
    assert init_integration.state is ConfigEntryState.LOADED
    assert init_integration.runtime_data.pipeline.db.dialect == "postgresql"
