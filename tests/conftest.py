"""Shared fixtures: the integration enabled, model servers on 127.0.0.1, a folder, an entry."""

from collections.abc import AsyncIterator, Iterator
import logging
from pathlib import Path
import uuid

from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
import psycopg
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)

from .programs import PostgresServer, start_postgres
from .servers import LlmStub, ModelServer

FRAME_REPORT = f"Detected that custom integration '{DOMAIN}' "
"""How Home Assistant's frame helper starts a report of this integration misusing an API."""


class FrameReports(logging.Handler):
    """Collect the frame helper's reports about this integration, to fail the test on them.

    Home Assistant reports a deprecated or wrong call from a custom integration only as a log
    warning ("Detected that custom integration 'ai_security' calls ..."), until the release
    where the call stops working. Failing the test turns that into a failure today.
    """

    def __init__(self) -> None:
        """Start with no reports."""
        super().__init__()
        self.reports: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep a report about this integration; ignore everything else."""
        if (message := record.getMessage()).startswith(FRAME_REPORT):
            self.reports.append(message)

    def check(self) -> None:
        """Fail the test when anything was reported."""
        if self.reports:
            pytest.fail(
                "Home Assistant reported the integration's use of its API:\n"
                + "\n".join(self.reports),
                pytrace=False,
            )


@pytest.fixture(autouse=True)
def fail_on_frame_reports() -> Iterator[FrameReports]:
    """Fail any test during which Home Assistant reports this integration misusing its API.

    Defined before the fixtures that bring Home Assistant up, so it outlives them and also
    sees what unloading reports. The frame helper reports each place once per run; the
    harness forgets them after each test, so every offending test fails, not only the first.
    """
    reports = FrameReports()
    logger = logging.getLogger(frame.__name__)
    logger.addHandler(reports)
    try:
        yield reports
    finally:
        logger.removeHandler(reports)
    reports.check()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load integrations from custom_components/ in every test."""


@pytest.fixture
async def detector(socket_enabled: None) -> AsyncIterator[ModelServer]:
    """Return a detector server answering GET /health (loopback sockets allowed for it)."""
    server = ModelServer(health_body={"status": "ok", "model": "rtdetr_v2_r18vd", "device": "cpu"})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def llm(socket_enabled: None) -> AsyncIterator[ModelServer]:
    """Return an LLM server answering GET /health (llama.cpp) and GET /v1/models (OpenAI)."""
    server = ModelServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def llm_stub(socket_enabled: None) -> AsyncIterator[LlmStub]:
    """Return an LLM server that answers every completion with one fixed verdict."""
    server = LlmStub()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Return an empty camera root for the core tests (no Home Assistant)."""
    folder = tmp_path / "cameras"
    folder.mkdir()
    return folder


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Return the URL of a SQLite database file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'ai_security.db'}"


@pytest.fixture
def camera_root(hass: HomeAssistant, tmp_path: Path) -> Path:
    """Return an upload folder that Home Assistant is allowed to read."""
    root = tmp_path / "cameras"
    root.mkdir()
    hass.config.allowlist_external_dirs = {str(tmp_path)}
    return root


@pytest.fixture
def mock_config_entry(
    camera_root: Path, detector: ModelServer, llm: ModelServer
) -> MockConfigEntry:
    """Return an entry as the config flow would have made it."""
    return MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        unique_id=str(camera_root),
        data={
            CONF_CAMERA_ROOT: str(camera_root),
            CONF_DETECTOR_URLS: [detector.url],
            CONF_LLM_URLS: [llm.url],
            CONF_LLM_API: "llama_cpp",
        },
        version=1,
        minor_version=3,
    )


@pytest.fixture
async def init_integration(
    hass: HomeAssistant, mock_config_entry: MockConfigEntry
) -> MockConfigEntry:
    """Return the entry, set up."""
    mock_config_entry.add_to_hass(hass)
    await hass.config_entries.async_setup(mock_config_entry.entry_id)
    await hass.async_block_till_done()
    return mock_config_entry


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Return a PostgreSQL server started for this test run."""
    yield from start_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the URL of an empty database: SQLite in a file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ai_security.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> Iterator[str]:
    """Return the URL of a new, empty database on the test run's PostgreSQL server."""
    server = postgres_server
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{server.user}@{server.host}:{server.port}/{name}"
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
