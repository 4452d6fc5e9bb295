"""Plain data passed between the pipeline's stages, so stages depend on data, not on each other."""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class MediaType(StrEnum):
    """What a camera uploaded."""

    IMAGE = "image"
    VIDEO = "video"


class RiskLevel(StrEnum):
    """How worrying an event is, derived from its risk score by the configured thresholds."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class EventSource(StrEnum):
    """Who judged an event: the LLM, or the heuristic scorer while the LLM was unavailable."""

    LLM = "llm"
    HEURISTIC = "heuristic"


@dataclass(frozen=True, kw_only=True, slots=True)
class Camera:
    """A camera: one folder directly under the camera root."""

    camera_id: str
    name: str
    folder: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MediaFile:
    """An upload that passed intake: readable, hashed, not seen before."""

    media_id: int
    camera_id: str
    path: str
    sha256: str
    media_type: MediaType
    size: int
    received_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class BoundingBox:
    """A box in pixels of the analysed frame: left, top, width, height."""

    x: float
    y: float
    w: float
    h: float

    def as_list(self) -> list[float]:
        """Return [x, y, w, h], the detector protocol's order."""
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True, kw_only=True, slots=True)
class Detection:
    """One object the detector found in an image or a video's key frame."""

    label: str
    confidence: float
    bbox: BoundingBox
    detection_id: int | None = None
    media_id: int | None = None
    camera_id: str = ""
    detected_at: datetime | None = None
    frame_width: int = 0
    frame_height: int = 0
    frame_time: float | None = None
    """Seconds into the clip when the frame came from a video; None for images."""
    path: str = ""
    zone: str | None = None
    """The camera zone the box's bottom centre lies in, if the camera has zones."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VerdictDetails:
    """What an LLM verdict says beyond its score, how it was checked, and what it was shown.

    The model's own words (title, observations, confidence, concerns, the objects it names) are
    bounded text; unverified and contradiction are the verifier's (verdict_check.py), so a user
    can see which claims no detector backs; frames, prompt_hash and server record what was sent,
    for a later audit of why a verdict said what it said. A heuristic verdict has none of these.
    """

    title: str = ""
    """A few words for a list or a notification's title."""
    observations: str = ""
    """What the model says it sees."""
    confidence: float | None = None
    """How sure the model says it is, 0-1 (None: it did not say)."""
    concerns: tuple[str, ...] = ()
    """Other things worth the owner's attention (an open gate, a parcel left at the door)."""
    objects: tuple[str, ...] = ()
    """The objects the model names in the scene."""
    unverified: tuple[str, ...] = ()
    """Objects the model names that no detector saw in the incident."""
    contradiction: str = ""
    """Why the verdict contradicts the detections (empty when it does not)."""
    frames: tuple[str, ...] = ()
    """The pictures sent with the prompt (media id, and seconds into a clip: "12", "15@3.2")."""
    prompt_hash: str = ""
    """SHA-256 of the text and pictures sent, to match a verdict with a prompt later."""
    server: str = ""
    """Who answered: a server's URL without credentials, or an AI Task entity."""

    def as_dict(self) -> dict[str, object]:
        """Return the fields as JSON data (what is stored, and what the host shows)."""
        return {
            "title": self.title,
            "observations": self.observations,
            "confidence": self.confidence,
            "concerns": list(self.concerns),
            "objects": list(self.objects),
            "unverified": list(self.unverified),
            "contradiction": self.contradiction,
            "frames": list(self.frames),
            "prompt_hash": self.prompt_hash,
            "server": self.server,
        }

    @classmethod
    def from_dict(cls, data: object) -> VerdictDetails | None:
        """Return the details stored as as_dict() wrote them (None for none, or unreadable)."""
        if not isinstance(data, dict):
            return None

        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        def texts(key: str) -> tuple[str, ...]:
            value = data.get(key)
            if not isinstance(value, list):
                return ()
            return tuple(item for item in value if isinstance(item, str))

        confidence = data.get("confidence")
        return cls(
            title=text("title"),
            observations=text("observations"),
            confidence=(
                float(confidence)
                if isinstance(confidence, int | float) and not isinstance(confidence, bool)
                else None
            ),
            concerns=texts("concerns"),
            objects=texts("objects"),
            unverified=texts("unverified"),
            contradiction=text("contradiction"),
            frames=texts("frames"),
            prompt_hash=text("prompt_hash"),
            server=text("server"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityEvent:
    """One incident of a camera (a visit) and the verdict on it.

    It opens at the camera's first detection with an instant verdict, is judged again while it
    lasts and once more when it closes (ongoing False); its end time follows its detections.
    """

    event_id: str
    camera_id: str
    started_at: datetime
    ended_at: datetime
    risk_score: int
    risk_level: RiskLevel
    summary: str
    reasoning: str
    object_types: tuple[str, ...]
    detection_count: int
    is_fast_path: bool
    source: EventSource
    detection_ids: tuple[int, ...] = field(default=())
    reviewed: bool = False
    dismissed: bool = False
    """The user reviewed it and judged it a false alarm."""
    missed: bool = False
    """The user reviewed it and judged its verdict too low (or missing what mattered)."""
    review_note: str | None = None
    zones: tuple[str, ...] = ()
    """The zones its detections were in (names), for prompts, rules and notifications."""
    keep: bool = False
    """Flagged to survive retention."""
    anomaly_score: float | None = None
    """How unusual the batch was for the camera and hour (0 = typical); not stored."""
    anomaly_note: str = ""
    """The baseline's words for it ("unusual: 4 person, typical 0.2 at this hour")."""
    anomaly_learning: bool = False
    ongoing: bool = False
    """Whether the incident is still open: more detections may join it and change its verdict."""
    details: VerdictDetails | None = None
    """The LLM verdict's title, observations, checks and what it was shown (None: heuristic)."""
    raw_score: int | None = None
    """The verdict's own score when the user's reviews moved it (None: not moved)."""
    calibration: str = ""
    """Why the reviews moved it ("lowered by 25: 8 of the last 9 similar ... false alarms")."""
