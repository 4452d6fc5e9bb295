"""Actions on the job queue: list the jobs that gave up, and give them another chance.

Dead jobs are never dropped silently; these actions are how a user sees them (with the reason
each one failed) and re-queues them once the cause is fixed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from homeassistant.const import ATTR_CONFIG_ENTRY_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers.service import async_get_config_entry, async_register_admin_service
import probatio

from .const import DOMAIN

if TYPE_CHECKING:
    from . import AiSecurityConfigEntry

SERVICE_LIST_DEAD_JOBS: Final = "list_dead_jobs"
SERVICE_REQUEUE_DEAD_JOBS: Final = "requeue_dead_jobs"
ATTR_JOB_IDS: Final = "job_ids"

ENTRY_SCHEMA = probatio.Schema({probatio.Required(ATTR_CONFIG_ENTRY_ID): cv.string})
REQUEUE_SCHEMA = ENTRY_SCHEMA.extend(
    {probatio.Optional(ATTR_JOB_IDS): probatio.All(cv.ensure_list, [cv.positive_int])}
)


def _entry(hass: HomeAssistant, call: ServiceCall) -> AiSecurityConfigEntry:
    entry: AiSecurityConfigEntry = async_get_config_entry(
        hass, DOMAIN, call.data[ATTR_CONFIG_ENTRY_ID]
    )
    return entry


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the job-queue actions (once, for every entry)."""

    async def _list_dead_jobs(call: ServiceCall) -> ServiceResponse:
        entry = _entry(hass, call)
        try:
            jobs = await entry.runtime_data.pipeline.queue.dead_jobs(limit=500)
        except Exception as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="queue_unavailable",
                translation_placeholders={"error": str(err)},
            ) from err
        return {
            "jobs": [
                {
                    "job_id": job.job_id,
                    "kind": job.kind.value,
                    "attempts": job.attempts,
                    "last_error": job.last_error,
                    "payload": job.payload,
                    "updated_at": job.next_attempt_at.isoformat(),
                }
                for job in jobs
            ]
        }

    async def _requeue_dead_jobs(call: ServiceCall) -> ServiceResponse:
        entry = _entry(hass, call)
        job_ids: list[int] | None = call.data.get(ATTR_JOB_IDS)
        try:
            count = await entry.runtime_data.pipeline.queue.requeue_dead(job_ids)
        except Exception as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="queue_unavailable",
                translation_placeholders={"error": str(err)},
            ) from err
        return {"requeued": count}

    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_LIST_DEAD_JOBS,
        _list_dead_jobs,
        schema=ENTRY_SCHEMA,
        supports_response=SupportsResponse.ONLY,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        SERVICE_REQUEUE_DEAD_JOBS,
        _requeue_dead_jobs,
        schema=REQUEUE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
