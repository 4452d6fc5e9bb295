"""What happened, as the bus, the pipeline and the phone saw it, with monotonic times.

The callbacks run on Home Assistant's loop: each incident from its ai_security_event (and the
upload whose detection opened it: the camera's last detected upload when the event fired, since
the pipeline reports an upload's detections just before the incident they open), its
ai_security_event_updated changes, and each call of the phone's notify action. Times are
CLOCK_MONOTONIC, which the feeder's close times share.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
import time
from typing import Any

from homeassistant.core import Event, ServiceCall, callback

from custom_components.ai_security.core.models import Camera, Detection

TAG_PREFIX = "ai_security_"
"""The blueprint tags each notification ai_security_<event id>: a later one replaces it."""


@dataclass(slots=True)
class Incident:
    """One incident as the bus announced it."""

    event_id: str
    entry_id: str
    camera_id: str
    opened_at: float
    upload: str | None
    """The upload whose detection opened it (its path), or None when none was seen."""
    image_url: str | None
    level: str
    verdicts: int = 0
    """ai_security_event_updated events with "verdict" in changed."""
    llm_verdicts: int = 0
    """...of which the LLM gave the verdict."""
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One call of the phone's notify action."""

    at: float
    event_id: str | None
    sound: bool
    """False for a silent replacement (the blueprint sets push.sound to none)."""
    image: str | None


class Record:
    """What the bus, the pipeline and the phone saw (callbacks on the loop, so cheap)."""

    def __init__(self) -> None:
        """Start with nothing seen."""
        self.incidents: dict[str, Incident] = {}
        self.notifications: list[Notification] = []
        self.last_upload: dict[tuple[str, str], str] = {}
        self.detected_at: dict[str, float] = {}
        """When each upload's detections were stored and reported (first time), by path."""
        self.changed = asyncio.Event()

    def detections_of(self, entry_id: str) -> Callable[[Camera, list[Detection]], None]:
        """Return the listener of one entry's detections signal."""

        @callback
        def detected(camera: Camera, detections: list[Detection]) -> None:
            if detections:
                path = detections[-1].path
                self.last_upload[entry_id, camera.camera_id] = path
                self.detected_at.setdefault(path, time.monotonic())

        return detected

    @callback
    def on_event(self, event: Event) -> None:
        """Record an incident that opened."""
        data = event.data
        key = (str(data["entry_id"]), str(data["camera_id"]))
        self.incidents[data["event_id"]] = Incident(
            event_id=data["event_id"],
            entry_id=key[0],
            camera_id=key[1],
            opened_at=time.monotonic(),
            upload=self.last_upload.get(key),
            image_url=data.get("image_url"),
            level=str(data.get("risk_level")),
        )
        self.changed.set()

    @callback
    def on_update(self, event: Event) -> None:
        """Record an incident's new verdict or its end."""
        data = event.data
        incident = self.incidents.get(data["event_id"])
        if incident is None:
            return
        changed = data.get("changed") or []
        if "verdict" in changed:
            incident.verdicts += 1
            incident.llm_verdicts += data.get("source") == "llm"
        if ("ended" in changed or not data.get("ongoing", True)) and incident.ended_at is None:
            incident.ended_at = time.monotonic()
        self.changed.set()

    @callback
    def on_notify(self, call: ServiceCall) -> None:
        """Record a call of the phone's notify action."""
        data: dict[str, Any] = dict(call.data.get("data") or {})
        tag = str(data.get("tag", ""))
        push = data.get("push") or {}
        self.notifications.append(
            Notification(
                at=time.monotonic(),
                event_id=tag.removeprefix(TAG_PREFIX) if tag.startswith(TAG_PREFIX) else None,
                sound=push.get("sound") != "none",
                image=data.get("image"),
            )
        )
        self.changed.set()

    def first_sound(self) -> dict[str, Notification]:
        """Return each incident's first notification with sound (the blueprint's stage 1)."""
        first: dict[str, Notification] = {}
        for sent in self.notifications:
            if sent.sound and sent.event_id is not None:
                first.setdefault(sent.event_id, sent)
        return first

    async def wait(self, done: Callable[[], bool], seconds: float) -> bool:
        """Return True once done() holds, False after seconds without it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not done():
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                async with asyncio.timeout(min(left, 0.5)):
                    await self.changed.wait()
            except TimeoutError:
                pass
        return True
