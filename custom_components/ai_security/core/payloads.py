"""What each kind of job carries, defined once, with its JSON form.

A job's payload is stored as JSON in its row (job_queue.py) and read back by the stage that
handles it, by retention (which uploads and detections pending work still needs) and by the
dead-letter list the user sees. Each kind has one class here: to_json() is what is stored,
from_json() reads it back and raises PayloadError for a payload no version of this integration
wrote, so a corrupt row ends as a dead job with the reason instead of a crash in a worker.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .jobs import Job, PermanentJobError
from .models import MediaType


class PayloadError(ValueError):
    """A job's payload is not one this integration writes; the text says what is wrong."""


def _get[T](payload: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = payload.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(f"{key!r} is {value!r}, not {kind.__name__}")
    return value


def _number(payload: Mapping[str, Any], key: str) -> int:
    return _get(payload, key, int)


@dataclass(frozen=True, kw_only=True, slots=True)
class DetectPayload:
    """Look at an upload: everything the detect stage needs, so it looks nothing up."""

    media_id: int
    camera_id: str
    path: str
    media_type: MediaType
    width: int
    """Of the upright frame, as the intake read it (a clip's are read again from the clip)."""
    height: int

    def to_json(self) -> dict[str, Any]:
        """Return the payload as stored."""
        return {
            "media_id": self.media_id,
            "camera_id": self.camera_id,
            "path": self.path,
            "media_type": self.media_type.value,
            "width": self.width,
            "height": self.height,
        }

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> DetectPayload:
        """Read a stored payload; raise PayloadError when it is not one."""
        media_id = _number(payload, "media_id")
        camera_id = _get(payload, "camera_id", str)
        path = _get(payload, "path", str)
        value: Any = payload.get("media_type")
        try:
            media_type = MediaType(value)
        except ValueError as err:
            raise PayloadError(f"media_type is {value!r}") from err
        return cls(
            media_id=media_id,
            camera_id=camera_id,
            path=path,
            media_type=media_type,
            width=_number(payload, "width"),
            height=_number(payload, "height"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalyzePayload:
    """Judge an incident (event_id set), or a version-3 batch or fast-path list into a new event.

    An incident's judgement covers every detection of its batch so far: final when it closed,
    fast_path when asked at once about a fast-path object; judged is how many detections it
    covers. Without event_id (jobs a version-3 database left queued): the batch's detections
    (batch_key) or the listed ones (detection_ids) are judged into an event of their own.
    """

    camera_id: str
    started_at: datetime
    ended_at: datetime
    fast_path: bool = False
    batch_key: str | None = None
    detection_ids: tuple[int, ...] = ()
    event_id: str | None = None
    final: bool = True
    judged: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the payload as stored."""
        payload: dict[str, Any] = {
            "camera_id": self.camera_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "fast_path": self.fast_path,
        }
        if self.event_id is not None:
            payload["event_id"] = self.event_id
            payload["final"] = self.final
            payload["judged"] = self.judged
        if self.batch_key is not None:
            payload["batch_key"] = self.batch_key
        else:
            payload["detection_ids"] = list(self.detection_ids)
        return payload

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> AnalyzePayload:
        """Read a stored payload; raise PayloadError when it is not one."""
        try:
            started_at = datetime.fromisoformat(_get(payload, "started_at", str))
            ended_at = datetime.fromisoformat(_get(payload, "ended_at", str))
        except ValueError as err:
            raise PayloadError(f"a time is not ISO 8601 ({err})") from err
        event_id = payload.get("event_id") or None
        batch_key = payload.get("batch_key")
        if event_id is not None and not isinstance(event_id, str):
            raise PayloadError(f"'event_id' is {event_id!r}, not str")
        if batch_key is not None and not isinstance(batch_key, str):
            raise PayloadError(f"'batch_key' is {batch_key!r}, not str")
        if event_id is not None and batch_key is None:
            raise PayloadError("an incident's judgement has no 'batch_key'")
        ids = payload.get("detection_ids", ())
        if not isinstance(ids, Iterable) or isinstance(ids, (str, bytes)):
            raise PayloadError(f"'detection_ids' is {ids!r}, not a list")
        try:
            detection_ids = tuple(int(i) for i in ids)
        except (TypeError, ValueError) as err:
            raise PayloadError(f"'detection_ids' holds a non-number ({err})") from err
        return cls(
            camera_id=_get(payload, "camera_id", str),
            started_at=started_at,
            ended_at=ended_at,
            fast_path=bool(payload.get("fast_path")),
            batch_key=batch_key,
            detection_ids=detection_ids,
            event_id=event_id,
            final=bool(payload.get("final", True)),
            judged=int(payload.get("judged") or 0),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class RescorePayload:
    """Judge a heuristic's verdict again with the LLM, once it answers."""

    event_id: str

    def to_json(self) -> dict[str, Any]:
        """Return the payload as stored."""
        return {"event_id": self.event_id}

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> RescorePayload:
        """Read a stored payload; raise PayloadError when it is not one."""
        return cls(event_id=_get(payload, "event_id", str))


def payload_of[P: (DetectPayload, AnalyzePayload, RescorePayload)](kind: type[P], job: Job) -> P:
    """Return a job's payload as kind; an unreadable one makes the job dead, with the reason."""
    try:
        return kind.from_json(job.payload)
    except PayloadError as err:
        raise PermanentJobError(f"its payload cannot be read: {err}") from err
