"""The daily clean-up: events, detections, pictures, jobs and audit rows past retention.

It runs at the option's local time (03:00 by default) as a background task of the entry, in
chunks (core.retention), so neither the database nor Home Assistant's loop stalls on a large
history. Each run is logged, shown on the hub's "Last clean-up" sensor and recorded in the audit
trail.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_time_change
from homeassistant.util import dt as dt_util

from .audit import async_record
from .const import LOGGER
from .core.baseline import prune_baseline
from .core.retention import RetentionStats, run_retention

if TYPE_CHECKING:
    from . import AiSecurityConfigEntry


class DailyCleanup:
    """Schedules and runs one entry's clean-up; keeps the last run's figures."""

    def __init__(self, hass: HomeAssistant, entry: AiSecurityConfigEntry) -> None:
        """Prepare; start() schedules it."""
        self.hass = hass
        self.entry = entry
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
        runtime = self.entry.runtime_data
        pipeline = runtime.pipeline
        options = runtime.options
        now = dt_util.utcnow()
        try:
            stats = await run_retention(
                pipeline.db,
                now=now,
                days=options.retention_days,
                media=pipeline.media,
                delete_uploads=options.delete_uploads,
                camera_root=runtime.camera_root,
                run_blocking=self.hass.async_add_executor_job,
            )
            await pipeline.db.run(lambda session: prune_baseline(session, now))
        except Exception as err:  # noqa: BLE001 - logged and recorded; tomorrow's run retries
            LOGGER.exception("The daily clean-up failed")
            await async_record(
                self.hass,
                self.entry,
                action="retention_run",
                context=None,
                arguments={"days": options.retention_days},
                error=str(err) or type(err).__name__,
            )
            return None
        self.last = stats
        await async_record(
            self.hass,
            self.entry,
            action="retention_run",
            context=None,
            arguments={"days": options.retention_days, "delete_uploads": options.delete_uploads},
            result=stats.as_dict(),
        )
        await runtime.coordinator.async_request_refresh()
        return stats
