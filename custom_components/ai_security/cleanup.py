"""The daily clean-up: events, detections, pictures, jobs and audit rows past retention.

It runs at the option's local time (03:00 by default) as a background task of the entry, in
chunks (core.retention), so neither the database nor Home Assistant's loop stalls on a large
history. Each run is logged, shown on the hub's "Last clean-up" sensor and recorded in the audit
trail.

The clean-up is part of an entry's runtime data and the hub shows its figures, so it is handed
what it works on (the pipeline, and what to refresh once it ran) instead of reading the entry's
runtime data: that keeps this module free of the config entry type and out of an import cycle.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from .audit_record import async_record
from .const import LOGGER
from .core import operations
from .core.retention import RetentionStats, run_retention

if TYPE_CHECKING:
    from .core.pipeline import Pipeline


class DailyCleanup:
    """Schedules and runs one entry's clean-up; keeps the last run's figures."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        pipeline: Pipeline,
        refresh: Callable[[], Awaitable[None]],
    ) -> None:
        """Prepare to clean up pipeline's history; start() schedules it.

        The run is a background task of entry; refresh is awaited after each run that
        succeeded, so the hub's sensors show the new figures at once.
        """
        self.hass = hass
        self.entry = entry
        self.pipeline = pipeline
        self._refresh = refresh
        self.last: RetentionStats | None = None
        self._unsubscribe: CALLBACK_TYPE | None = None
        self._running: asyncio.Task[RetentionStats | None] | None = None

    @callback
    def start(self, hour: int, minute: int) -> None:
        """Run every day at hour:minute local time."""
        self._unsubscribe = async_track_time_change(
            self.hass, self._due, hour=hour, minute=minute, second=0
        )

    @callback
    def stop(self) -> None:
        """Stop scheduling (a run under way is cancelled with the entry's background tasks)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @callback
    def _due(self, _now: datetime) -> None:
        if self._running is not None and not self._running.done():
            LOGGER.warning("The previous clean-up is still running; skipping today's start")
            return
        self._running = self.entry.async_create_background_task(
            self.hass, self.async_run(), "ai_security daily clean-up"
        )

    async def async_run(self) -> RetentionStats | None:
        """Clean up now; return the figures (None when it failed, which is logged)."""
        pipeline = self.pipeline
        options = pipeline.config.options
        now = dt_util.utcnow()
        try:
            stats = await run_retention(
                pipeline.db,
                now=now,
                days=options.retention_days,
                media=pipeline.media,
                delete_uploads=options.delete_uploads,
                camera_root=pipeline.config.camera_root,
                run_blocking=self.hass.async_add_executor_job,
            )
            await operations.prune_baseline(pipeline.db, now)
        except Exception as err:  # noqa: BLE001 - logged and recorded; tomorrow's run retries
            LOGGER.exception("The daily clean-up failed")
            await async_record(
                self.hass,
                lambda: pipeline.db,
                action="retention_run",
                context=None,
                arguments={"days": options.retention_days},
                error=str(err) or type(err).__name__,
            )
            return None
        self.last = stats
        await async_record(
            self.hass,
            lambda: pipeline.db,
            action="retention_run",
            context=None,
            arguments={"days": options.retention_days, "delete_uploads": options.delete_uploads},
            result=stats.as_dict(),
        )
        await self._refresh()
        return stats
