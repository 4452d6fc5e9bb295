"""Visits: how many incidents and notifications one visit makes, and whose picture they show.

demo: three cameras; on each a person appears for 2 minutes (an upload every 6 s, each a little
early or late, the cameras a third of that apart), then is gone for 3 minutes (no uploads).
standing: one camera per longest-incident option (10 and 5 minutes by default, each its own
entry in the same Home Assistant), a person standing still in view for 10 minutes, an upload
every 6 s. The integration's real defaults apply (idle 30 s, judging window 90 s, longest
incident 10 minutes); --speed divides every time, the uploads' and the options' alike, so
the visits look the same to the integration, only sooner.

The detector stub finds a person at 0.95 (fast path) in every upload; the LLM is the instant
stub (scripts.bench_lib.stubs, one fixed verdict), or none (--visit-llm none: the heuristic
only). Every upload is one colour (pictures.py), so the picture each notification links to is
loaded back over HTTP with its signed URL, as the phone loads it, and checked against the
incident's first upload: its event id in the URL must be the notification's own (the tag), and
its corner colour the colour of the upload that opened the incident.
"""

import argparse
import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import functools
import math
import os
import random
import threading
import time

import aiohttp

from custom_components.ai_security.core.settings import (
    BATCH_IDLE_TIMEOUT,
    BATCH_WINDOW,
    INCIDENT_MAX_MINUTES,
    PipelineOptions,
)
from scripts.bench_lib.feeder import CAMERA_FOLDER, FILE_NAME, index_of

from .home import LLMS, home, say
from .pictures import colour_of, corner_colour, fetch, flat_jpeg, same_colour
from .record import Incident, Notification, Record

CONFIDENCE = 0.95
INTERVAL = 6.0
"""Seconds between a visitor's uploads (before --speed)."""
DEMO_CAMERAS = 3
DEMO_VISIT = 120.0
DEMO_GONE = 180.0
STANDING = 600.0
STANDING_FOLDER = "Standing"
DEFAULTS = PipelineOptions()


@dataclass(frozen=True, slots=True)
class Upload:
    """One planned upload: when (seconds after the start), where, and its number."""

    at: float
    entry: str
    folder: str
    index: int


@dataclass(slots=True)
class Visit:
    """What one visit (a camera's uploads in one scenario) brought about."""

    entry: str
    folder: str
    uploads: int
    expected: int
    """Incidents the visit should make."""
    incidents: int = 0
    sound: int = 0
    """Notifications with sound: the blueprint's stage 1 (and any rise to critical)."""
    silent: int = 0
    """Silent replacements."""
    pictures: int = 0
    pictures_ok: int = 0
    verdicts: int = 0
    llm_verdicts: int = 0
    first_alert_ms: float | None = None
    """The visit's first upload closed -> the phone's first notification."""
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class VisitsRun:
    """One scenario's visits and how it was run."""

    scenario: str
    speed: float
    llm: str
    options: dict[str, dict[str, float]]
    """Per entry: idle, window (s) and longest incident (min) as given to the entry."""
    seconds: float
    visits: list[Visit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def demo_plan(speed: float, seed: int = 1) -> list[Upload]:
    """Return the demo's uploads: three cameras, each visited once, in time order."""
    rng = random.Random(seed)  # noqa: S311 - a schedule, not cryptography
    timed: list[tuple[float, str]] = []
    interval = INTERVAL / speed
    for camera in range(DEMO_CAMERAS):
        start = camera * interval / DEMO_CAMERAS
        at = start
        while at < start + DEMO_VISIT / speed:
            timed.append((at, CAMERA_FOLDER.format(camera + 1)))
            at += interval * rng.uniform(0.85, 1.15)
    timed.sort()
    return [Upload(at=at, entry="demo", folder=f, index=i) for i, (at, f) in enumerate(timed)]


def standing_plan(speed: float, caps: list[float]) -> list[Upload]:
    """Return one standing visit per longest-incident option, side by side."""
    interval = INTERVAL / speed
    count = math.ceil(STANDING / INTERVAL)
    timed = [(k * interval, cap_entry(cap)) for k in range(count) for cap in caps]
    return [
        Upload(at=at, entry=entry, folder=STANDING_FOLDER, index=i)
        for i, (at, entry) in enumerate(timed)
    ]


def cap_entry(cap: float) -> str:
    """Return the name of the standing scenario's entry with longest incident cap (minutes)."""
    return f"cap {cap:g} min"


def _write_plan(
    plan: list[Upload],
    *,
    roots: dict[str, str],
    contents: dict[int, bytes],
    closed: dict[int, float],
    go: float,
    stop: threading.Event,
) -> None:
    """Write the plan's uploads on time (in a thread): written, closed, time taken."""
    for upload in plan:
        delay = go + upload.at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        path = os.path.join(roots[upload.entry], upload.folder, FILE_NAME.format(upload.index))
        with open(path, "wb") as file:
            file.write(contents[upload.index])
        closed[upload.index] = time.monotonic()


async def _play(
    plan: list[Upload], roots: dict[str, str], contents: dict[int, bytes], seconds: float
) -> dict[int, float]:
    """Write the plan on time, then let the rest of seconds pass; return the close times."""
    closed: dict[int, float] = {}
    stop = threading.Event()
    go = time.monotonic()
    write = functools.partial(
        _write_plan, plan, roots=roots, contents=contents, closed=closed, go=go, stop=stop
    )
    try:
        await asyncio.get_running_loop().run_in_executor(None, write)
        await asyncio.sleep(max(0.0, go + seconds - time.monotonic()))
    finally:
        stop.set()
    return closed


def _contents(plan: list[Upload], count: int) -> dict[int, bytes]:
    """Return every upload's JPEG by index (count in all: the warm-ups' follow the plan's)."""
    run = f"bench_alerts {time.time()}"
    return {index: flat_jpeg(colour_of(index), f"{run} {index}") for index in range(count)}


async def run(args: argparse.Namespace, scenario: str) -> VisitsRun:
    """Run the demo or the standing scenario; return its visits."""
    speed: float = args.speed
    if scenario == "demo":
        plan = demo_plan(speed)
        caps = {"demo": DEFAULTS.incident_max_minutes}
        seconds = (DEMO_VISIT + DEMO_GONE) / speed
    else:
        plan = standing_plan(speed, args.standing_caps)
        caps = {cap_entry(cap): cap for cap in args.standing_caps}
        seconds = STANDING / speed
    idle = DEFAULTS.batch_idle_timeout / speed
    window = DEFAULTS.batch_window / speed
    result = VisitsRun(
        scenario=scenario,
        speed=speed,
        llm=LLMS[args.visit_llm],
        options={
            name: {"idle": idle, "window": window, "cap": cap / speed} for name, cap in caps.items()
        },
        seconds=seconds,
    )
    folders: dict[str, list[str]] = defaultdict(list)
    for upload in plan:
        if upload.folder not in folders[upload.entry]:
            folders[upload.entry].append(upload.folder)
    async with home(args.visit_llm, confidence=CONFIDENCE) as bench:
        say(f"{scenario}: the entries, and a warm-up upload per camera (idle {idle:g} s)")
        roots = {name: os.path.join(bench.work, f"cameras {n}") for n, name in enumerate(caps)}
        for name, root in roots.items():
            for folder in folders[name]:
                os.makedirs(os.path.join(root, folder))
        contents = await bench.hass.async_add_executor_job(_contents, plan, len(plan) + 10)
        entries = {
            name: await bench.add_hub(
                roots[name],
                DEFAULTS.as_mapping()
                | {
                    BATCH_IDLE_TIMEOUT: idle,
                    BATCH_WINDOW: window,
                    INCIDENT_MAX_MINUTES: cap / speed,
                },
            )
            for name, cap in caps.items()
        }
        warm = iter(range(len(plan), len(plan) + 10))
        cameras = await asyncio.gather(
            *(
                bench.warm_up(
                    entries[name],
                    [
                        (os.path.join(roots[name], folder, "warmup.jpg"), contents[next(warm)])
                        for folder in folders[name]
                    ],
                    idle,
                )
                for name in caps
            )
        )
        await bench.alert_phone(
            [
                (entries[name], camera)
                for name, ids in zip(caps, cameras, strict=True)
                for camera in ids
            ]
        )
        record = bench.record
        warm_ids = set(record.incidents)
        say(f"{scenario}: {len(plan)} uploads over {seconds:g} s (speed {speed:g})")
        closed = await _play(plan, roots, contents, seconds)

        def ours() -> list[Incident]:
            return [i for i in record.incidents.values() if i.event_id not in warm_ids]

        if not await record.wait(lambda: all(i.ended_at for i in ours()), idle + 60):
            result.notes.append("an incident had not ended 60 s after its idle timeout")
        await asyncio.sleep(1.0)  # the automation's queue: replacements of the last verdicts
        await bench.hass.async_block_till_done()
        async with aiohttp.ClientSession() as session:
            result.visits = await _visits(
                plan,
                record,
                incidents=ours(),
                closed=closed,
                names={entry.entry_id: name for name, entry in entries.items()},
                pictures=functools.partial(fetch, session, bench.base_url),
            )
    for visit in result.visits:
        visit.expected = 1 if scenario == "demo" else math.ceil(STANDING / 60 / caps[visit.entry])
    return result


async def _visits(
    plan: list[Upload],
    record: Record,
    *,
    incidents: list[Incident],
    closed: dict[int, float],
    names: dict[str, str],
    pictures: Callable[[str], Awaitable[bytes | None]],
) -> list[Visit]:
    """Return each visit's incidents, notifications and whether their pictures are their own."""
    visits: dict[tuple[str, str], Visit] = {}
    first_upload: dict[tuple[str, str], int] = {}
    for upload in plan:
        key = (upload.entry, upload.folder)
        if key not in visits:
            visits[key] = Visit(entry=upload.entry, folder=upload.folder, uploads=0, expected=1)
            first_upload[key] = upload.index
        visits[key].uploads += 1
    visit_of: dict[str, Visit] = {}
    for incident in incidents:
        folder = os.path.basename(os.path.dirname(incident.upload or ""))
        visit = visits.get((names.get(incident.entry_id, "?"), folder))
        if visit is not None:
            visit_of[incident.event_id] = visit
            visit.incidents += 1
            visit.verdicts += incident.verdicts
            visit.llm_verdicts += incident.llm_verdicts
    loaded: dict[str, bytes | None] = {}
    for sent in record.notifications:
        visit = visit_of.get(sent.event_id or "")
        if visit is None:
            continue  # a warm-up incident's
        if sent.sound:
            visit.sound += 1
        else:
            visit.silent += 1
        visit.pictures += 1
        if sent.image is not None and sent.image not in loaded:
            loaded[sent.image] = await pictures(sent.image)
        if _own_picture(sent, record.incidents[sent.event_id or ""], loaded, visit):
            visit.pictures_ok += 1
    for key, visit in visits.items():
        start = closed.get(first_upload[key])
        firsts = [
            s.at
            for s in record.notifications
            if s.sound and visit_of.get(s.event_id or "") is visit
        ]
        if start is not None and firsts:
            visit.first_alert_ms = (min(firsts) - start) * 1000
    return list(visits.values())


def _own_picture(
    sent: Notification, incident: Incident, loaded: dict[str, bytes | None], visit: Visit
) -> bool:
    """Return whether a notification's picture is its incident's (notes on visit why not)."""
    index = index_of(incident.upload or "")
    if sent.image is None or index is None:
        visit.notes.append(f"a notification of {incident.event_id} has no picture")
        return False
    if incident.event_id not in sent.image.split("?")[0]:
        visit.notes.append(f"a notification of {incident.event_id} links another's picture")
        return False
    picture = loaded.get(sent.image)
    if picture is None:
        visit.notes.append(f"the picture of {incident.event_id} did not load")
        return False
    if not same_colour(corner_colour(picture), colour_of(index)):
        visit.notes.append(f"the picture of {incident.event_id} shows another upload")
        return False
    return True
