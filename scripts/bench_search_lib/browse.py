"""The media browser timed through a real Home Assistant (scripts/bench_search --media-browser).

The database is filled as for the search figures, then Home Assistant starts with the
integration set up on it (model-server stubs in this process, only their health routes are
asked) and media_source's own async_browse_media is timed, as the frontend calls it: a camera's
list of days and one day's first page of 50 events, the URL signing and file checks included.
"""

import argparse
from datetime import UTC, datetime
import os
import random
import statistics
import tempfile
import time
from typing import Any

from aiohttp import web
from homeassistant.components.media_source import async_browse_media
from homeassistant.setup import async_setup_component

from custom_components.ai_security.core.storage import CameraRow, Database
from scripts.bench_lib.hass import add_entry, start_home_assistant, stop_home_assistant
from scripts.bench_lib.stubs import Stub

from .__main__ import BROWSER_TARGET_MS, fill, generate, line, say


async def _serve(kind: str) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(Stub(kind, 0.8).app(), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def _timed(identifier: str, hass: Any, repeat: int) -> tuple[list[float], Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = await async_browse_media(hass, identifier)
        times.append((time.perf_counter() - began) * 1000)
    return times, result


async def browse(args: argparse.Namespace) -> list[str]:
    """Fill SQLite, start Home Assistant on it, time the media browser; return report lines."""
    work = tempfile.mkdtemp(prefix="ai_security_bench_browse_")
    config_dir, camera_root = os.path.join(work, "config"), os.path.join(work, "cameras")
    names = [f"cam{n}" for n in range(args.cameras)]
    for folder in [config_dir, *(os.path.join(camera_root, name) for name in names)]:
        os.makedirs(folder)
    url = f"sqlite:///{work}/events.db"
    db = Database(url)
    await db.start()
    try:
        rng = random.Random(args.seed)  # noqa: S311 - made-up data, not secrets
        say(f"Filling SQLite with {args.events:,} events for the media browser...")
        await fill(
            db, generate(rng, args.events, args.cameras, args.camera_events, args.days), args.events
        )
        created = datetime(2026, 1, 1, tzinfo=UTC)
        await db.run(
            lambda s: s.add_all(
                CameraRow(camera_id=name, folder=name, name=name, created_at=created)
                for name in names
            )
        )
    finally:
        await db.close()
    detector, detector_url = await _serve("detector")
    llm, llm_url = await _serve("llm")
    hass = entry = None
    try:
        say("Starting Home Assistant...")
        hass = await start_home_assistant(config_dir, [camera_root])
        await async_setup_component(hass, "media_source", {})
        entry = await add_entry(
            hass,
            camera_root=camera_root,
            detector_url=detector_url,
            llm_url=llm_url,
            llm_api="llama_cpp",
            options={"database_url": url},
        )
        camera = f"media-source://ai_security/{entry.entry_id}/cam0"
        await async_browse_media(hass, camera)  # warm the caches, as a running system has them
        days_ms, days = await _timed(camera, hass, 20)
        newest = days.children[0]  # about 55 events a day: a full first page of 50
        page_ms, page = await _timed(newest.media_content_id, hass, 20)
    finally:
        if hass is not None:
            await stop_home_assistant(hass, entry)
        await detector.cleanup()
        await llm.cleanup()
    return [
        f"Media browser through Home Assistant: camera cam0 with {args.camera_events:,} events "
        f"over {args.days} days ({len(days.children)} days listed)",
        line("camera: its list of days", days_ms, BROWSER_TARGET_MS),
        line(f"day page ({len(page.children)} events)", page_ms, BROWSER_TARGET_MS),
        line(
            "a page: days + one day's events (sum of p50s)",
            [statistics.median(days_ms) + statistics.median(page_ms)],
            BROWSER_TARGET_MS,
        ),
    ]
