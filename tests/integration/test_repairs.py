"""Repairs issues: raised when the user must act, deleted as soon as the cause is gone."""

from datetime import UTC, datetime, timedelta
import json
from pathlib import Path
import re
import shutil
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ai_security.const import (
    CONF_CAMERA_ROOT,
    CONF_DATABASE_URL,
    CONF_DETECTOR_URLS,
    CONF_LLM_API,
    CONF_LLM_URLS,
    DOMAIN,
)
from custom_components.ai_security.coordinator import HubData
from custom_components.ai_security.core.llm_slots import SlotUsage
from custom_components.ai_security.core.load import LoadCondition, LoadKind, LoadLevel
from custom_components.ai_security.core.monitor import (
    EndpointHealth,
    HealthReport,
    ServiceKind,
    ServiceStatus,
    endpoint_key,
)
from custom_components.ai_security.core.resilience import CircuitState
from custom_components.ai_security.media_source import media_root
from custom_components.ai_security.repairs import (
    ISSUES,
    DiskUsage,
    RepairTracker,
    async_delete_issues,
    database_folder,
    disk_usage,
    issue_id,
)
from tests.hub_helpers import hub_entry
from tests.servers import ModelServer
from tests.translations import INTEGRATION, STRINGS

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DETECTOR_URL = "http://10.0.0.5:8090"
LLM_URL = "http://10.0.0.6:8080"
OTHER_LLM_URL = "http://10.0.0.8:8080"


def endpoint(
    kind: ServiceKind,
    url: str,
    status: ServiceStatus,
    error: str | None = None,
    slots: SlotUsage | None = None,
) -> EndpointHealth:
    return EndpointHealth(
        slots=slots,
        key=endpoint_key(kind, url),
        kind=kind,
        url=url,
        status=status,
        circuit=CircuitState.OPEN if status is ServiceStatus.UNHEALTHY else CircuitState.CLOSED,
        last_error=error,
        latency_ms=None,
        latency_p50_ms=None,
        checked_at=0.0,
    )


def hub_data(
    detector: ServiceStatus = ServiceStatus.HEALTHY,
    llm: ServiceStatus = ServiceStatus.HEALTHY,
    *,
    dead: int = 0,
    error: str | None = "connection refused",
    implausible: dict[str, str] | None = None,
    pictures_refused: dict[str, str] | None = None,
    load: tuple[LoadCondition, ...] = (),
    slots: SlotUsage | None = None,
) -> HubData:
    return HubData(
        implausible_replies=implausible or {},
        pictures_refused=pictures_refused or {},
        load=load,
        health=HealthReport(
            endpoints=(
                endpoint(
                    ServiceKind.DETECTOR,
                    DETECTOR_URL,
                    detector,
                    error if detector is ServiceStatus.UNHEALTHY else None,
                ),
                endpoint(
                    ServiceKind.LLM,
                    LLM_URL,
                    llm,
                    error if llm is ServiceStatus.UNHEALTHY else None,
                    slots,
                ),
            ),
            detector_latency_p50_ms=None,
            llm_latency_p50_ms=None,
            gpu=None,
        ),
        queue={"detect_queued": 0, "detect_dead": dead, "analyze_dead": 0},
        gpu=None,
        images_processed=0,
    )


@pytest.fixture
def entry(hass: HomeAssistant, tmp_path: Path) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="Home",
        data={
            CONF_CAMERA_ROOT: str(tmp_path / "cameras"),
            CONF_DETECTOR_URLS: [DETECTOR_URL],
            CONF_LLM_URLS: [LLM_URL],
            CONF_LLM_API: "llama_cpp",
        },
        version=1,
        minor_version=3,
    )
    entry.add_to_hass(hass)
    return entry


def issue(hass: HomeAssistant, key: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, issue_id(key, entry.entry_id))


def issue_keys(hass: HomeAssistant) -> set[str]:
    return {
        issue_id.rsplit("_", 1)[0]
        for (domain, issue_id) in ir.async_get(hass).issues
        if domain == DOMAIN
    }


async def test_camera_root_missing(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A missing (or forbidden) camera folder is an error until it is back."""
    tracker = RepairTracker(hass, entry)
    tracker.update(hub_data(), camera_root_ok=False, now=T0)
    found = issue(hass, "camera_root_missing", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.ERROR
    assert not found.is_fixable
    assert found.translation_key == "camera_root_missing"
    assert found.translation_placeholders == {
        "title": "Home",
        "path": entry.data[CONF_CAMERA_ROOT],
    }
    tracker.update(hub_data(), camera_root_ok=True, now=T0)
    assert issue(hass, "camera_root_missing", entry) is None
    # Setup reports it before any refresh, when the folder is missing at start.
    RepairTracker(hass, entry).camera_root(ok=False)
    assert issue(hass, "camera_root_missing", entry) is not None


@pytest.mark.parametrize(
    ("kind", "key", "url_placeholder", "url"),
    [
        (ServiceKind.DETECTOR, "detector_unreachable", "urls", DETECTOR_URL),
        (ServiceKind.LLM, "llm_unreachable", "urls", LLM_URL),
    ],
)
async def test_server_unreachable_for_five_minutes(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    kind: ServiceKind,
    key: str,
    url_placeholder: str,
    url: str,
) -> None:
    """A server is reported once it stayed unreachable 5 minutes; its recovery clears it."""
    tracker = RepairTracker(hass, entry)

    def data(status: ServiceStatus) -> HubData:
        if kind is ServiceKind.DETECTOR:
            return hub_data(detector=status)
        return hub_data(llm=status)

    tracker.update(data(ServiceStatus.UNHEALTHY), camera_root_ok=True, now=T0)
    tracker.update(
        data(ServiceStatus.UNHEALTHY),
        camera_root_ok=True,
        now=T0 + timedelta(minutes=4, seconds=59),
    )
    assert issue(hass, key, entry) is None
    tracker.update(
        data(ServiceStatus.UNHEALTHY), camera_root_ok=True, now=T0 + timedelta(minutes=5)
    )
    found = issue(hass, key, entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.ERROR
    assert found.translation_placeholders == {
        "title": "Home",
        "since": dt_util.as_local(T0).strftime("%Y-%m-%d %H:%M"),
        url_placeholder: url,
        "error": "connection refused",
    }
    assert issue_keys(hass) == {key}

    # Half-open (one trial request let through) is not "unreachable".
    later = T0 + timedelta(minutes=10)
    tracker.update(data(ServiceStatus.DEGRADED), camera_root_ok=True, now=later)
    assert issue(hass, key, entry) is None
    # Down again: the five minutes start over.
    tracker.update(data(ServiceStatus.UNHEALTHY), camera_root_ok=True, now=later)
    tracker.update(
        data(ServiceStatus.UNHEALTHY), camera_root_ok=True, now=later + timedelta(minutes=1)
    )
    assert issue(hass, key, entry) is None
    tracker.update(data(ServiceStatus.HEALTHY), camera_root_ok=True, now=later + timedelta(hours=1))
    assert issue(hass, key, entry) is None


async def test_several_detectors_one_answering_is_enough(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """One detector of two down is no issue: the other does the work."""
    tracker = RepairTracker(hass, entry)
    data = HubData(
        health=HealthReport(
            endpoints=(
                endpoint(ServiceKind.DETECTOR, DETECTOR_URL, ServiceStatus.UNHEALTHY, "refused"),
                endpoint(ServiceKind.DETECTOR, "http://10.0.0.7:8090", ServiceStatus.HEALTHY),
                endpoint(ServiceKind.LLM, LLM_URL, ServiceStatus.HEALTHY),
            ),
            detector_latency_p50_ms=None,
            llm_latency_p50_ms=None,
            gpu=None,
        ),
        queue={},
        gpu=None,
        images_processed=0,
    )
    tracker.update(data, camera_root_ok=True, now=T0)
    tracker.update(data, camera_root_ok=True, now=T0 + timedelta(hours=1))
    assert issue_keys(hass) == set()


def llm_pool(first: ServiceStatus, second: ServiceStatus) -> HubData:
    """Return figures of a hub with one detector (answering) and two LLM servers."""
    return HubData(
        health=HealthReport(
            endpoints=(
                endpoint(ServiceKind.DETECTOR, DETECTOR_URL, ServiceStatus.HEALTHY),
                *(
                    endpoint(
                        ServiceKind.LLM,
                        url,
                        status,
                        "connection refused" if status is ServiceStatus.UNHEALTHY else None,
                    )
                    for url, status in ((LLM_URL, first), (OTHER_LLM_URL, second))
                ),
            ),
            detector_latency_p50_ms=None,
            llm_latency_p50_ms=None,
            gpu=None,
        ),
        queue={},
        gpu=None,
        images_processed=0,
    )


async def test_several_llm_servers_reported_only_when_every_one_is_down(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """One LLM server of two down is no issue (the other judges); both down is, naming both."""
    tracker = RepairTracker(hass, entry)
    up, down = ServiceStatus.HEALTHY, ServiceStatus.UNHEALTHY
    for first, second in ((down, up), (up, down)):
        tracker.update(llm_pool(first, second), camera_root_ok=True, now=T0)
        tracker.update(llm_pool(first, second), camera_root_ok=True, now=T0 + timedelta(hours=1))
        assert issue_keys(hass) == set()

    later = T0 + timedelta(hours=2)
    tracker.update(llm_pool(down, down), camera_root_ok=True, now=later)
    tracker.update(
        llm_pool(down, down), camera_root_ok=True, now=later + timedelta(minutes=4, seconds=59)
    )
    assert issue(hass, "llm_unreachable", entry) is None
    tracker.update(llm_pool(down, down), camera_root_ok=True, now=later + timedelta(minutes=5))
    found = issue(hass, "llm_unreachable", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.ERROR
    assert found.translation_placeholders == {
        "title": "Home",
        "since": dt_util.as_local(later).strftime("%Y-%m-%d %H:%M"),
        "urls": f"{LLM_URL}, {OTHER_LLM_URL}",
        "error": "connection refused",
    }
    assert issue_keys(hass) == {"llm_unreachable"}
    # One answering again is enough to withdraw it.
    tracker.update(
        llm_pool(down, ServiceStatus.DEGRADED),
        camera_root_ok=True,
        now=later + timedelta(minutes=6),
    )
    assert issue_keys(hass) == set()


async def test_unknown_error_text(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A server down without a recorded error still gets a readable issue."""
    tracker = RepairTracker(hass, entry)
    data = hub_data(detector=ServiceStatus.UNHEALTHY, error=None)
    tracker.update(data, camera_root_ok=True, now=T0)
    tracker.update(data, camera_root_ok=True, now=T0 + timedelta(minutes=6))
    found = issue(hass, "detector_unreachable", entry)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["error"] == "no answer"


async def test_dead_letter_jobs(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Failed jobs are a warning with their count, gone once they are re-queued."""
    tracker = RepairTracker(hass, entry)
    tracker.update(hub_data(dead=3), camera_root_ok=True, now=T0)
    found = issue(hass, "dead_letter_jobs", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_placeholders == {"title": "Home", "count": "3"}
    tracker.update(hub_data(dead=4), camera_root_ok=True, now=T0)
    found = issue(hass, "dead_letter_jobs", entry)
    assert found is not None
    assert found.translation_placeholders == {"title": "Home", "count": "4"}
    tracker.update(hub_data(dead=0), camera_root_ok=True, now=T0)
    assert issue(hass, "dead_letter_jobs", entry) is None


async def test_low_disk_space(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Below 5% free on a disk holding the media or the database: a warning naming it."""
    tracker = RepairTracker(hass, entry)
    giga = 1_000_000_000
    tracker.update_disk(
        [
            DiskUsage(paths=("/media/ai",), total=100 * giga, free=6 * giga),
            DiskUsage(paths=("/db", "/db2"), total=1000 * giga, free=int(12.3 * giga)),
        ]
    )
    found = issue(hass, "low_disk_space", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert found.translation_placeholders == {
        "title": "Home",
        "paths": "/db, /db2",
        "free": "12.3 GB",
        "percent": "1.2",
    }
    tracker.update_disk([DiskUsage(paths=("/nas",), total=100_000 * giga, free=2_000 * giga)])
    found = issue(hass, "low_disk_space", entry)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["free"] == "2.0 TB"
    tracker.update_disk([DiskUsage(paths=("/db",), total=1000 * giga, free=100 * giga)])
    assert issue(hass, "low_disk_space", entry) is None
    # A disk that reports no size at all (some pseudo file systems) is never "full".
    tracker.update_disk([DiskUsage(paths=("/proc",), total=0, free=0)])
    assert issue(hass, "low_disk_space", entry) is None


async def test_check_disk_measures_in_the_executor(
    hass: HomeAssistant, entry: MockConfigEntry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """async_check_disk measures the folders' disks (here, a disk that is 98% full)."""
    real = shutil.disk_usage

    def almost_full(path: str) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total - usage.total // 50, usage.total // 50)

    monkeypatch.setattr(shutil, "disk_usage", almost_full)
    tracker = RepairTracker(hass, entry)
    await tracker.async_check_disk([str(tmp_path / "not" / "made" / "yet")])
    found = issue(hass, "low_disk_space", entry)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["percent"] == "2.0"
    assert found.translation_placeholders["paths"] == str(tmp_path / "not" / "made" / "yet")


def test_disk_usage_once_per_disk(tmp_path: Path) -> None:
    """Folders on one disk are measured once; folders not made yet at their nearest parent."""
    (tmp_path / "a").mkdir()
    usages = disk_usage([str(tmp_path / "a"), str(tmp_path / "b" / "c")])
    assert len(usages) == 1
    assert usages[0].paths == (str(tmp_path / "a"), str(tmp_path / "b" / "c"))
    assert usages[0].total > 0


def test_disk_usage_skips_what_cannot_be_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_path: str) -> Any:
        raise PermissionError("no")

    monkeypatch.setattr(shutil, "disk_usage", refuse)
    assert disk_usage([str(tmp_path)]) == []


@pytest.mark.parametrize(
    ("url", "folder"),
    [
        ("sqlite:////config/ai_security/abc.db", "/config/ai_security"),
        ("sqlite+pysqlite:////data/x.db", "/data"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://user:secret@db:5432/ai_security", None),
        ("not a url", None),
    ],
)
def test_database_folder(url: str, folder: str | None) -> None:
    assert database_folder(url) == folder


async def test_disk_paths(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """The media folder always; the database's folder when it is a SQLite file."""
    tracker = RepairTracker(hass, entry)
    media = media_root(hass, entry.entry_id)
    assert tracker.disk_paths() == [media, hass.config.path(DOMAIN)]
    hass.config_entries.async_update_entry(
        entry, options={CONF_DATABASE_URL: "sqlite:////srv/db/events.db"}
    )
    assert tracker.disk_paths() == [media, "/srv/db"]
    hass.config_entries.async_update_entry(
        entry, options={CONF_DATABASE_URL: "postgresql://u:p@db/ai"}
    )
    assert tracker.disk_paths() == [media]


async def test_clear_and_delete(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """clear() removes every issue of the entry, and only of that entry."""
    other = MockConfigEntry(domain=DOMAIN, title="Other", data=dict(entry.data))
    other.add_to_hass(hass)
    tracker = RepairTracker(hass, entry)
    other_tracker = RepairTracker(hass, other)
    data = hub_data(detector=ServiceStatus.UNHEALTHY, dead=1)
    for each in (tracker, other_tracker):
        each.update(data, camera_root_ok=False, now=T0)
        each.update(data, camera_root_ok=False, now=T0 + timedelta(minutes=5))
        each.update_disk([DiskUsage(paths=("/",), total=100, free=1)])
    assert issue(hass, "low_disk_space", entry) is not None
    tracker.clear()
    for key in ("camera_root_missing", "detector_unreachable", "dead_letter_jobs"):
        assert issue(hass, key, entry) is None
        assert issue(hass, key, other) is not None
    assert issue(hass, "low_disk_space", entry) is None
    # The timers start over after a clear.
    tracker.update(data, camera_root_ok=True, now=T0 + timedelta(minutes=6))
    assert issue(hass, "detector_unreachable", entry) is None
    async_delete_issues(hass, other.entry_id)
    assert issue_keys(hass) == {"dead_letter_jobs"}


async def test_through_a_running_hub(
    hass: HomeAssistant,
    init_integration: MockConfigEntry,
    detector: ModelServer,
) -> None:
    """A real hub: its detector stays down over 5 minutes, its folder is refused; then both end."""
    entry = init_integration
    coordinator = entry.runtime_data.coordinator
    tracker = RepairTracker(hass, entry)
    await coordinator.async_refresh()
    await tracker.async_refresh(coordinator.data, now=T0)
    assert issue_keys(hass) <= {"low_disk_space"}  # (only if this machine's disk is that full)

    await detector.stop()
    allowed = hass.config.allowlist_external_dirs
    hass.config.allowlist_external_dirs = set()  # the folder no longer allowed
    await coordinator.async_refresh()
    assert coordinator.data.health.status_of(ServiceKind.DETECTOR) is ServiceStatus.UNHEALTHY
    await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=1))
    assert issue(hass, "camera_root_missing", entry) is not None
    assert issue(hass, "detector_unreachable", entry) is None
    await coordinator.async_refresh()
    await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=6, seconds=1))
    found = issue(hass, "detector_unreachable", entry)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["urls"] == detector.url
    assert found.translation_placeholders["since"] == dt_util.as_local(
        T0 + timedelta(minutes=1)
    ).strftime("%Y-%m-%d %H:%M")

    await detector.start()
    hass.config.allowlist_external_dirs = allowed
    await coordinator.async_refresh()
    await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=7))
    assert issue(hass, "detector_unreachable", entry) is None
    assert issue(hass, "camera_root_missing", entry) is None
    tracker.clear()


async def test_llm_pool_through_a_running_hub(
    hass: HomeAssistant, camera_root: Path, detector: ModelServer, llm: ModelServer
) -> None:
    """A real hub with two LLM servers: one down raises nothing, both down for 5 minutes does."""
    other = ModelServer()
    await other.start()
    try:
        entry = hub_entry(
            hass, camera_root, detector.url, [llm.url, other.url], llm_api="llama_cpp"
        )
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        coordinator = entry.runtime_data.coordinator
        tracker = RepairTracker(hass, entry)

        await other.stop()
        for minutes in (0, 10):
            await coordinator.async_refresh()
            await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=minutes))
        assert issue(hass, "llm_unreachable", entry) is None

        await llm.stop()
        for minutes in (11, 16):
            await coordinator.async_refresh()
            await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=minutes))
        found = issue(hass, "llm_unreachable", entry)
        assert found is not None
        assert found.translation_placeholders is not None
        assert found.translation_placeholders["urls"] == f"{llm.url}, {other.url}"

        await other.start()
        await coordinator.async_refresh()
        await tracker.async_refresh(coordinator.data, now=T0 + timedelta(minutes=17))
        assert issue(hass, "llm_unreachable", entry) is None
        tracker.clear()
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await other.stop()


async def test_every_issue_is_translated_with_its_placeholders(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Each issue has a title and a description naming exactly the placeholders it is given."""
    tracker = RepairTracker(hass, entry)
    data = hub_data(
        ServiceStatus.UNHEALTHY,
        ServiceStatus.UNHEALTHY,
        dead=2,
        implausible={DETECTOR_URL: "every box lies inside the unit square"},
        pictures_refused={LLM_URL: "HTTP 500: image input is not supported"},
        load=tuple(condition(kind, LoadLevel.WARNING, 100.0) for kind in LoadKind),
        slots=SlotUsage(busy=2, total=2),
    )
    tracker.update(data, camera_root_ok=False, now=T0)
    tracker.update(data, camera_root_ok=False, now=T0 + timedelta(minutes=5))
    tracker.update_disk([DiskUsage(paths=("/",), total=100, free=1)])
    issues = [i for (domain, _), i in ir.async_get(hass).issues.items() if domain == DOMAIN]
    assert {i.translation_key for i in issues} == set(ISSUES)
    assert set(STRINGS["issues"]) >= set(ISSUES)
    for found in issues:
        texts = STRINGS["issues"][found.translation_key]
        named = set(re.findall(r"\{(\w+)\}", texts["title"] + texts["description"]))
        assert named <= set(found.translation_placeholders or {}), found.translation_key
        assert set(found.translation_placeholders or {}) - named <= {"title"}, found.translation_key
    # The actions the texts point to exist.
    actions = set(re.findall(r"`ai_security\.(\w+)`", json.dumps(STRINGS["issues"])))
    assert actions == {"list_dead_jobs", "requeue_dead_letters"}
    assert actions <= set(STRINGS["services"])


def test_media_source_errors_are_translated() -> None:
    source = (INTEGRATION / "media_source.py").read_text()
    keys = set(re.findall(r'translation_key="(\w+)"', source))
    assert keys == {"media_entry_not_loaded", "invalid_media_id", "media_not_found"}
    assert keys <= set(STRINGS["exceptions"])


async def test_an_llm_that_refuses_pictures_is_a_warning_while_it_does(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """Raised (a warning: verdicts still come, from text) naming the server; cleared after."""
    tracker = RepairTracker(hass, entry)
    refused = {LLM_URL: "HTTP 500 from http://10.0.0.6:8080/v1/chat/completions: image input"}
    tracker.update(hub_data(pictures_refused=refused), camera_root_ok=True, now=T0)
    issue = ir.async_get(hass).async_get_issue(
        DOMAIN, issue_id("llm_pictures_refused", entry.entry_id)
    )
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["endpoints"] == LLM_URL
    assert "image input" in issue.translation_placeholders["error"]
    tracker.update(hub_data(), camera_root_ok=True, now=T0 + timedelta(minutes=1))
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, issue_id("llm_pictures_refused", entry.entry_id))
        is None
    )


def condition(
    kind: LoadKind, level: LoadLevel, value: float, limit: float = 75.0, server: str = DETECTOR_URL
) -> LoadCondition:
    return LoadCondition(
        kind=kind, level=level, value=value, limit=limit, since=T0.timestamp(), server=server
    )


async def test_load_issue_follows_its_condition(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    """A warning at the warning level, an error at the critical one, gone when it ends.

    The issue is written when the condition starts and when its level changes, not with every
    refresh's figure (which would save the registry every few seconds).
    """
    tracker = RepairTracker(hass, entry)
    updates: list[str] = []
    hass.bus.async_listen(
        ir.EVENT_REPAIRS_ISSUE_REGISTRY_UPDATED, lambda e: updates.append(e.data["action"])
    )
    hot = LoadKind.GPU_TEMPERATURE
    tracker.update(
        hub_data(load=(condition(hot, LoadLevel.WARNING, 77.4),)), camera_root_ok=True, now=T0
    )
    found = issue(hass, "gpu_temperature", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.WARNING
    assert not found.is_fixable
    assert found.translation_key == "gpu_temperature"
    assert found.translation_placeholders == {
        "title": "Home",
        "value": "77.4",
        "level": "75",
        "server": DETECTOR_URL,
    }
    assert issue_keys(hass) == {"gpu_temperature"}

    tracker.update(
        hub_data(load=(condition(hot, LoadLevel.WARNING, 78.0),)), camera_root_ok=True, now=T0
    )
    found = issue(hass, "gpu_temperature", entry)
    assert found is not None
    assert found.translation_placeholders is not None
    assert found.translation_placeholders["value"] == "77.4"  # not rewritten

    tracker.update(
        hub_data(load=(condition(hot, LoadLevel.CRITICAL, 86.0, limit=85.0),)),
        camera_root_ok=True,
        now=T0,
    )
    found = issue(hass, "gpu_temperature", entry)
    assert found is not None
    assert found.severity is ir.IssueSeverity.ERROR
    assert found.translation_placeholders is not None
    assert (found.translation_placeholders["value"], found.translation_placeholders["level"]) == (
        "86",
        "85",
    )

    tracker.update(hub_data(), camera_root_ok=True, now=T0)
    assert issue(hass, "gpu_temperature", entry) is None
    await hass.async_block_till_done()
    assert updates == ["create", "update", "remove"]

    # Raised again after it ended, and deleted with the entry's other issues on unload.
    tracker.update(
        hub_data(load=(condition(hot, LoadLevel.WARNING, 80.0),)), camera_root_ok=True, now=T0
    )
    assert issue(hass, "gpu_temperature", entry) is not None
    tracker.clear()
    assert issue(hass, "gpu_temperature", entry) is None
    tracker.update(
        hub_data(load=(condition(hot, LoadLevel.WARNING, 80.0),)), camera_root_ok=True, now=T0
    )
    assert issue(hass, "gpu_temperature", entry) is not None


async def test_one_issue_per_load_kind(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Each kind has its own issue; the LLM's names its busy slots against the pool's total."""
    tracker = RepairTracker(hass, entry)
    data = hub_data(
        load=(
            condition(LoadKind.GPU_UTILIZATION, LoadLevel.CRITICAL, 99.0, limit=98.0),
            condition(LoadKind.GPU_MEMORY, LoadLevel.WARNING, 91.66, limit=90.0),
            condition(LoadKind.LLM_SLOTS, LoadLevel.WARNING, 100.0, limit=100.0, server=LLM_URL),
        ),
        slots=SlotUsage(busy=4, total=4),
    )
    tracker.update(data, camera_root_ok=True, now=T0)
    assert issue_keys(hass) == {"gpu_utilization", "gpu_memory", "llm_slots"}
    severities = {
        key: found.severity
        for key in ("gpu_utilization", "gpu_memory", "llm_slots")
        if (found := issue(hass, key, entry)) is not None
    }
    assert severities == {
        "gpu_utilization": ir.IssueSeverity.ERROR,
        "gpu_memory": ir.IssueSeverity.WARNING,
        "llm_slots": ir.IssueSeverity.WARNING,
    }
    memory = issue(hass, "gpu_memory", entry)
    assert memory is not None
    assert memory.translation_placeholders is not None
    assert memory.translation_placeholders["value"] == "91.7"
    slots = issue(hass, "llm_slots", entry)
    assert slots is not None
    assert slots.translation_placeholders == {
        "title": "Home",
        "value": "4",
        "level": "4",
        "server": LLM_URL,
    }
    tracker.update(
        hub_data(load=data.load[2:], slots=SlotUsage(busy=4, total=4)), camera_root_ok=True, now=T0
    )
    assert issue_keys(hass) == {"llm_slots"}
