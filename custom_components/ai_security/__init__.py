"""AI Security: local threat detection for upload-folder cameras, set up from the UI."""

import contextlib
from datetime import datetime
import os
import shutil

from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
)
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import CoreState, Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.typing import ConfigType
from homeassistant.util import dt as dt_util

from .ai_task_judge import AiTaskJudge, clear_frames
from .assist_api import async_register_api
from .assist_sentences import async_register_sentences
from .blueprint_install import async_install_blueprints
from .cleanup import DailyCleanup
from .const import (
    CONF_CAMERA_ROOT,
    CONF_DATABASE_URL,
    CONF_DETECTOR_URLS,
    CONF_HISTORY_BEFORE,
    CONF_LLM_API,
    CONF_LLM_ENTITY,
    CONF_LLM_URL,
    CONF_LLM_URLS,
    DOMAIN,
    LOGGER,
)
from .coordinator import AiSecurityConfigEntry, AiSecurityCoordinator, AiSecurityRuntimeData
from .core import operations
from .core.llm_provider import LlmAsker
from .core.pipeline import Pipeline, PipelineConfig
from .core.settings import LlmApi, PipelineOptions
from .core.storage import DatabaseError
from .frontend import async_register_card
from .hub import AiSecurityHub
from .media_paths import media_root
from .media_view import async_register_view
from .notes_flow import camera_notes
from .notify_actions import async_setup_notification_actions
from .repairs import RepairTracker, async_delete_issues
from .service_status import ServiceStatusAnnouncer
from .services import async_setup_services
from .websocket import async_register_commands
from .zone_flow import zone_maps

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.CAMERA,
    Platform.EVENT,
    Platform.IMAGE,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions, the media view, the card's commands and the card itself.

    They work on any loaded entry, so they exist once, before the first entry loads.
    """
    async_setup_services(hass)
    async_register_api(hass)
    await async_register_sentences(hass)
    await async_install_blueprints(hass)
    # The view serving event pictures must exist before anyone browses: saved thumbnail and
    # clip URLs are requested straight after a restart.
    async_register_view(hass)
    async_register_commands(hass)
    await async_register_card(hass)
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> bool:
    """Bring entries made by earlier versions up to date.

    1.1 -> 1.2: one detector URL ("detector_url") became a list ("detector_urls").
    1.2 -> 1.3: one LLM URL ("llm_url", "" for none) became a list ("llm_urls", [] for none).
    """
    if entry.version > 1:
        return False  # made by a newer version of the integration: leave it alone
    if entry.minor_version < 2:
        data = dict(entry.data)
        if "detector_url" in data:
            data[CONF_DETECTOR_URLS] = [data.pop("detector_url")]
        hass.config_entries.async_update_entry(entry, data=data, minor_version=2)
    if entry.minor_version < 3:
        data = dict(entry.data)
        if CONF_LLM_URL in data:
            llm_url = str(data.pop(CONF_LLM_URL) or "")
            data[CONF_LLM_URLS] = [llm_url] if llm_url else []
        hass.config_entries.async_update_entry(entry, data=data, minor_version=3)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> bool:
    """Start the hub once its folder and database are there; retry while either is missing.

    The model servers are not waited for: while the detectors are down, uploads are watched and
    queued durably (processed within seconds of one answering), and while the LLM is down
    events are scored by the heuristic and judged again once it is back. Holding setup back for
    them would leave the cameras unwatched instead.
    """
    camera_root: str = entry.data[CONF_CAMERA_ROOT]
    if not await hass.async_add_executor_job(os.path.isdir, camera_root):
        RepairTracker(hass, entry).camera_root(ok=False)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="camera_root_missing",
            translation_placeholders={"path": camera_root},
        )

    detector_urls: list[str] = list(entry.data[CONF_DETECTOR_URLS])
    llm_urls: list[str] = list(entry.data[CONF_LLM_URLS])
    llm_api = LlmApi(entry.data[CONF_LLM_API])
    llm_entity: str | None = entry.data.get(CONF_LLM_ENTITY) or None
    options = PipelineOptions.from_mapping(dict(entry.options))
    session = async_get_clientsession(hass)
    hub = AiSecurityHub(hass, entry)
    hub.register_hub_device()
    database_url = str(entry.options.get(CONF_DATABASE_URL) or "")
    if not database_url:
        database_url = await hass.async_add_executor_job(
            _default_database_url, hass, entry.entry_id
        )
    media = media_root(hass, entry.entry_id)
    askers = await _llm_askers(hass, entry, llm_entity, media, has_servers=bool(llm_urls))
    pipeline = Pipeline(
        PipelineConfig(
            camera_root=camera_root,
            database_url=database_url,
            detector_urls=tuple(detector_urls),
            llm_urls=tuple(llm_urls),
            llm_api=llm_api,
            options=options,
            local_tz=dt_util.get_default_time_zone(),
            media_root=media,
            history_before=_history_before(entry),
        ),
        session,
        run_blocking=hass.async_add_executor_job,
        create_task=lambda coro, name: entry.async_create_background_task(hass, coro, name),
        callbacks=hub.callbacks(),
        llm_askers=askers,
    )
    hub.pipeline = pipeline
    try:
        await pipeline.start()
    except DatabaseError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="database_unavailable",
            translation_placeholders={"error": str(err)},
        ) from err
    if hass.is_stopping or hass.state is CoreState.stopped:
        # Home Assistant began to stop (or stopped) while the pipeline started, as a reload
        # racing the shutdown does: the stop event has passed, so stop the pipeline here.
        await pipeline.stop()
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="stopping")
    coordinator = AiSecurityCoordinator(hass, entry, hub, options.health_interval)
    repairs = _listen_to_refreshes(hass, entry, coordinator)
    try:
        midnight = dt_util.start_of_local_day()
        cutoff = dt_util.utcnow()
        activity = await operations.camera_activity(pipeline.db, midnight, cutoff)
        await coordinator.async_config_entry_first_refresh()
    except BaseException:
        await pipeline.stop()
        await coordinator.async_shutdown()
        raise
    hub.start(activity, cutoff)
    _follow_zones(hass, entry, pipeline, hub)
    async_setup_notification_actions(hass, entry)
    entry.async_on_unload(hub.stop)
    entry.async_on_unload(repairs.clear)
    entry.runtime_data = AiSecurityRuntimeData(
        camera_root=camera_root,
        detector_urls=detector_urls,
        llm_urls=llm_urls,
        llm_entity=llm_entity,
        llm_api=llm_api,
        options=options,
        hub=hub,
        pipeline=pipeline,
        coordinator=coordinator,
        camera_coordinator=hub.camera_coordinator,
        cleanup=DailyCleanup(hass, entry, pipeline, coordinator.async_request_refresh),
    )
    _schedule_cleanup(entry, hub, options)

    async def _stop(_event: Event) -> None:
        # Home Assistant does not unload entries when it stops: close the database cleanly then.
        await pipeline.stop()

    entry.async_on_unload(hass.bus.async_listen_once(EVENT_HOMEASSISTANT_STOP, _stop))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def _llm_askers(
    hass: HomeAssistant,
    entry: AiSecurityConfigEntry,
    llm_entity: str | None,
    media: str,
    *,
    has_servers: bool,
) -> dict[str, LlmAsker]:
    """Return the LLMs Home Assistant reaches for the pipeline: the chosen AI Task entity."""
    if llm_entity is None:
        if not has_servers:
            LOGGER.warning(
                "%s has no LLM server set: its events are scored by the built-in heuristic "
                "(the detected objects, their number, the time of day and the zones) instead "
                "of by an LLM",
                entry.title,
            )
        return {}
    # A task cut short by a restart left its pictures: they were for that task only.
    await hass.async_add_executor_job(clear_frames, media)
    return {llm_entity: AiTaskJudge(hass, entry.entry_id, llm_entity, media)}


def _listen_to_refreshes(
    hass: HomeAssistant, entry: AiSecurityConfigEntry, coordinator: AiSecurityCoordinator
) -> RepairTracker:
    """Have the status announcements, then Repairs, follow every refresh, the first one too.

    The coordinator only fetches; what reacts to its figures listens to them, in this order
    (a server's going down is logged and on the bus before Repairs counts its outage). The
    announcements follow the health checks themselves, so a refresh that fails afterwards
    (the database down) still tells a server's change.
    """
    statuses = ServiceStatusAnnouncer(hass, entry.entry_id)
    entry.async_on_unload(coordinator.async_add_health_listener(statuses.announce))
    repairs = RepairTracker(hass, entry)
    entry.async_on_unload(coordinator.async_add_refresh_listener(repairs.async_refresh))
    return repairs


def _schedule_cleanup(
    entry: AiSecurityConfigEntry, hub: AiSecurityHub, options: PipelineOptions
) -> None:
    """Run the daily clean-up at the option's time; the hub's sensor shows its figures."""
    hub.cleanup = entry.runtime_data.cleanup
    hub.cleanup.start(*options.retention_clock())
    entry.async_on_unload(hub.cleanup.stop)


def _follow_zones(
    hass: HomeAssistant, entry: AiSecurityConfigEntry, pipeline: Pipeline, hub: AiSecurityHub
) -> None:
    """Use the entry's zones and cameras' notes now and whenever they change, without a reload.

    Both are subentries: adding, changing or deleting one updates the entry, which is
    announced on the config-entry signal. (An update listener would clash with the options
    flow's reload.)
    """
    pipeline.set_zones(zone_maps(entry))
    pipeline.set_camera_notes(camera_notes(entry))

    @callback
    def _entry_changed(change: ConfigEntryChange, changed: ConfigEntry) -> None:
        if change is ConfigEntryChange.UPDATED and changed.entry_id == entry.entry_id:
            pipeline.set_zones(zone_maps(entry))
            pipeline.set_camera_notes(camera_notes(entry))
            hub.refresh_cameras()

    entry.async_on_unload(
        async_dispatcher_connect(hass, SIGNAL_CONFIG_ENTRY_CHANGED, _entry_changed)
    )


def _history_before(entry: AiSecurityConfigEntry) -> datetime:
    """Return when the hub started on its folder and database: older uploads are history.

    The entry's creation, or later when it was reconfigured to another folder or moved to
    another database (both start a history of their own).
    """
    mark = entry.data.get(CONF_HISTORY_BEFORE)
    if not isinstance(mark, str) or (moved := dt_util.parse_datetime(mark)) is None:
        return entry.created_at
    return max(entry.created_at, moved)


def _default_database_url(hass: HomeAssistant, entry_id: str) -> str:
    """Return the SQLite database of an entry, in the config folder's ai_security/ (created)."""
    folder = hass.config.path(DOMAIN)
    os.makedirs(folder, exist_ok=True)
    return f"sqlite:///{os.path.join(folder, f'{entry_id}.db')}"


async def async_unload_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> bool:
    """Unload the platforms and stop the pipeline; nothing of the entry keeps running."""
    if not await hass.config_entries.async_unload_platforms(entry, PLATFORMS):
        return False
    await entry.runtime_data.pipeline.stop()
    return True


async def async_remove_entry(hass: HomeAssistant, entry: AiSecurityConfigEntry) -> None:
    """Delete what only this entry used: its Repairs issues, its SQLite database, its pictures.

    A hub set up again for the same folder starts a new history (its old snapshots are left
    alone as history, see the pipeline's history_before), so the old files would only take
    space. A PostgreSQL database is the user's own and is never touched.
    """
    async_delete_issues(hass, entry.entry_id)
    if not entry.options.get(CONF_DATABASE_URL):
        await hass.async_add_executor_job(_remove_entry_files, hass, entry.entry_id)


def _remove_entry_files(hass: HomeAssistant, entry_id: str) -> None:
    """Delete an entry's default database (with its WAL files) and derived media; blocking."""
    database = os.path.join(hass.config.path(DOMAIN), f"{entry_id}.db")
    for path in (database, f"{database}-wal", f"{database}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    shutil.rmtree(media_root(hass, entry_id), ignore_errors=True)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: AiSecurityConfigEntry, device_entry: dr.AnyDeviceEntry
) -> bool:
    """Let the user delete a camera's device once its folder is gone (never the hub's device).

    The camera is forgotten until an upload in its folder brings it back; its history stays.
    """
    if not isinstance(device_entry, dr.DeviceEntry) or entry.state is not ConfigEntryState.LOADED:
        return False
    return await entry.runtime_data.hub.async_remove_camera_device(device_entry)
