"""Diagnostics: settings without secrets or paths, the pipeline's figures and its failures."""

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Final

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util

from .const import CONF_CAMERA_ROOT, CONF_DATABASE_URL, CONF_DETECTOR_URLS, CONF_LLM_URLS
from .core.database_url import describe_database_url
from .core.health import redact_url

if TYPE_CHECKING:
    from .coordinator import AiSecurityConfigEntry

TO_REDACT: Final = {CONF_CAMERA_ROOT, CONF_DATABASE_URL, "user_id", "username", "password"}
DEAD_JOBS_SHOWN: Final = 10


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: AiSecurityConfigEntry
) -> dict[str, Any]:
    """Return diagnostics for a config entry."""
    runtime = entry.runtime_data
    pipeline = runtime.pipeline
    scrub = _Scrubber([runtime.camera_root, hass.config.config_dir])
    data = dict(entry.data)
    data[CONF_DETECTOR_URLS] = [redact_url(url) for url in data.get(CONF_DETECTOR_URLS, [])]
    data[CONF_LLM_URLS] = [redact_url(url) for url in data.get(CONF_LLM_URLS, [])]
    hub_data = runtime.coordinator.data
    health = hub_data.health
    dead = await pipeline.queue.dead_jobs(limit=DEAD_JOBS_SHOWN)
    return {
        "entry": {
            "title": entry.title,
            "version": f"{entry.version}.{entry.minor_version}",
            "data": async_redact_data(data, TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
        },
        "pipeline": {
            "database": describe_database_url(pipeline.config.database_url).dialect,
            "images_processed": pipeline.images_processed,
            "cameras": len(runtime.hub.cameras),
            "events_today": runtime.hub.events_today,
            "queue": await pipeline.queue_depths(),
        },
        "endpoints": [
            {
                "kind": endpoint.kind.value,
                "url": endpoint.url,
                "status": endpoint.status.value,
                "circuit": endpoint.circuit.value,
                "last_error": scrub(endpoint.last_error),
                "latency_ms": endpoint.latency_ms,
                "latency_p50_ms": endpoint.latency_p50_ms,
                "slots": asdict(endpoint.slots) if endpoint.slots is not None else None,
                "report": async_redact_data(dict(endpoint.report), TO_REDACT),
            }
            for endpoint in health.endpoints
        ],
        "latency_p50_ms": {
            "detector": health.detector_latency_p50_ms,
            "llm": health.llm_latency_p50_ms,
        },
        "gpu": asdict(hub_data.gpu) if hub_data.gpu is not None else None,
        "load": {
            "detector_queue_depth": health.detector_queue_depth,
            "llm_slots": asdict(slots) if (slots := health.llm_slots) is not None else None,
            "conditions": [
                {
                    "kind": condition.kind.value,
                    "level": condition.level.value,
                    "value": condition.value,
                    "limit": condition.limit,
                    "since": dt_util.utc_from_timestamp(condition.since).isoformat(),
                }
                for condition in hub_data.load
            ],
        },
        "dead_jobs": [
            {
                "kind": job.kind.value,
                "attempts": job.attempts,
                "last_error": scrub(job.last_error),
            }
            for job in dead
        ],
    }


class _Scrubber:
    """Replaces the user's folders in error messages (they name files under them)."""

    def __init__(self, folders: list[str]) -> None:
        # The longest first, so a folder inside another is replaced whole.
        self._folders = sorted({f.rstrip("/") for f in folders if f.strip("/")}, key=len)[::-1]

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for folder in self._folders:
            text = text.replace(folder, REDACTED)
        return text
