"""Pipeline settings with their defaults and allowed ranges, shared by the pipeline and the UI."""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class LlmApi(StrEnum):
    """How the LLM server is spoken to."""

    LLAMA_CPP = "llama_cpp"
    """llama.cpp's native API: POST /completion, GET /health."""
    OPENAI = "openai"
    """The OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limit:
    """The allowed closed range of a numeric option, and its step in the UI."""

    minimum: float
    maximum: float
    step: float

    def contains(self, value: float) -> bool:
        """Return whether value lies inside the range."""
        return self.minimum <= value <= self.maximum


# Option keys; the same strings are the keys in the config entry's options.
CONFIDENCE_THRESHOLD: Final = "confidence_threshold"
BATCH_WINDOW: Final = "batch_window"
BATCH_IDLE_TIMEOUT: Final = "batch_idle_timeout"
INCIDENT_MAX_MINUTES: Final = "incident_max_minutes"
FAST_PATH_CONFIDENCE: Final = "fast_path_confidence"
FAST_PATH_OBJECTS: Final = "fast_path_objects"
DEBOUNCE: Final = "debounce"
POLLING_OBSERVER: Final = "polling_observer"
RETENTION_DAYS: Final = "retention_days"
THRESHOLD_MEDIUM: Final = "threshold_medium"
THRESHOLD_HIGH: Final = "threshold_high"
THRESHOLD_CRITICAL: Final = "threshold_critical"
DETECTOR_CONCURRENCY: Final = "detector_concurrency"
LLM_CONCURRENCY: Final = "llm_concurrency"
RESCORE_MINUTES: Final = "rescore_minutes"
LLM_FRAMES: Final = "llm_frames"
LLM_FRAME_SIZE: Final = "llm_frame_size"
HEALTH_INTERVAL: Final = "health_interval"
RETENTION_TIME: Final = "retention_time"
DELETE_UPLOADS: Final = "delete_uploads"
DETECTION_EVENTS: Final = "detection_events"

LIMITS: Final[dict[str, Limit]] = {
    CONFIDENCE_THRESHOLD: Limit(minimum=0.05, maximum=0.99, step=0.01),
    BATCH_WINDOW: Limit(minimum=10, maximum=900, step=1),
    BATCH_IDLE_TIMEOUT: Limit(minimum=5, maximum=600, step=1),
    INCIDENT_MAX_MINUTES: Limit(minimum=1, maximum=120, step=1),
    FAST_PATH_CONFIDENCE: Limit(minimum=0.5, maximum=1.0, step=0.01),
    DEBOUNCE: Limit(minimum=0.1, maximum=10, step=0.1),
    RETENTION_DAYS: Limit(minimum=1, maximum=3650, step=1),
    THRESHOLD_MEDIUM: Limit(minimum=1, maximum=99, step=1),
    THRESHOLD_HIGH: Limit(minimum=1, maximum=99, step=1),
    THRESHOLD_CRITICAL: Limit(minimum=1, maximum=100, step=1),
    DETECTOR_CONCURRENCY: Limit(minimum=1, maximum=16, step=1),
    LLM_CONCURRENCY: Limit(minimum=1, maximum=8, step=1),
    RESCORE_MINUTES: Limit(minimum=0, maximum=1440, step=1),
    LLM_FRAMES: Limit(minimum=0, maximum=8, step=1),
    LLM_FRAME_SIZE: Limit(minimum=224, maximum=2048, step=32),
    HEALTH_INTERVAL: Limit(minimum=5, maximum=300, step=1),
}

# Object classes the fast-path picker offers (COCO names, as RT-DETRv2 reports them); users may
# type others.
COMMON_OBJECT_TYPES: Final = (
    "person",
    "car",
    "truck",
    "bus",
    "motorcycle",
    "bicycle",
    "dog",
    "cat",
    "bird",
    "backpack",
    "handbag",
    "suitcase",
    "knife",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SeverityThresholds:
    """Risk scores (0-100) where each level starts; below medium is low."""

    medium: int = 30
    high: int = 60
    critical: int = 85

    def problem(self) -> str | None:
        """Return why the thresholds are unusable; None when 0 < medium < high < critical <= 100."""
        if not 0 < self.medium < self.high < self.critical <= 100:
            return "thresholds_not_increasing"
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineOptions:
    """The tunable behaviour of the pipeline (the integration's options)."""

    confidence_threshold: float = 0.5
    batch_window: float = 90.0
    batch_idle_timeout: float = 30.0
    """Seconds without a detection after which a camera's incident closes."""
    incident_max_minutes: float = 10.0
    """The longest incident: one still going after this closes, and the next detection opens a
    new one (someone standing in view for an hour is six incidents, not one hidden for an hour)."""
    fast_path_confidence: float = 0.9
    fast_path_objects: tuple[str, ...] = ("person",)
    debounce: float = 0.5
    polling_observer: bool = False
    retention_days: int = 30
    severity: SeverityThresholds = field(default_factory=SeverityThresholds)
    detector_concurrency: int = 2
    """Detector requests in flight at once (over all detector servers)."""
    llm_concurrency: int = 1
    """LLM requests in flight at once."""
    rescore_minutes: int = 30
    """Heuristic events younger than this are judged again by the LLM once it is back; 0: never."""
    llm_frames: int = 3
    """Pictures of an incident sent to a vision model (first, clearest, last ...); 0: text only."""
    llm_frame_size: int = 768
    """Long side, in pixels, of each picture sent to a vision model (its tokens grow with it)."""
    health_interval: float = 15.0
    """Seconds between health checks of the model servers (and the hub's sensor updates)."""
    retention_time: str = "03:00"
    """Local time of day (HH:MM) the daily clean-up runs."""
    delete_uploads: bool = False
    """Whether the clean-up also deletes the cameras' own uploads past retention."""
    detection_events: bool = False
    """Whether every detected object is also fired as an `ai_security_detection` bus event.

    Off by default: Home Assistant's recorder stores every bus event, and a busy camera detects
    thousands of objects a day. Entities and device triggers do not need the bus event.
    """

    def retention_clock(self) -> tuple[int, int]:
        """Return (hour, minute) of retention_time; raise ValueError when it is not HH:MM[:SS]."""
        parts = self.retention_time.split(":")
        if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
            raise ValueError(f"not a time of day: {self.retention_time!r}")
        hour, minute = int(parts[0]), int(parts[1])
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError(f"not a time of day: {self.retention_time!r}")
        return hour, minute

    def problems(self) -> dict[str, str]:
        """Return an error key per option that is out of range or inconsistent; empty when valid."""
        errors: dict[str, str] = {}
        values: dict[str, float] = {
            CONFIDENCE_THRESHOLD: self.confidence_threshold,
            BATCH_WINDOW: self.batch_window,
            BATCH_IDLE_TIMEOUT: self.batch_idle_timeout,
            INCIDENT_MAX_MINUTES: self.incident_max_minutes,
            FAST_PATH_CONFIDENCE: self.fast_path_confidence,
            DEBOUNCE: self.debounce,
            RETENTION_DAYS: self.retention_days,
            THRESHOLD_MEDIUM: self.severity.medium,
            THRESHOLD_HIGH: self.severity.high,
            THRESHOLD_CRITICAL: self.severity.critical,
            DETECTOR_CONCURRENCY: self.detector_concurrency,
            LLM_CONCURRENCY: self.llm_concurrency,
            RESCORE_MINUTES: self.rescore_minutes,
            LLM_FRAMES: self.llm_frames,
            LLM_FRAME_SIZE: self.llm_frame_size,
            HEALTH_INTERVAL: self.health_interval,
        }
        for key, value in values.items():
            if not LIMITS[key].contains(value):
                errors[key] = "out_of_range"
        if (
            not {BATCH_WINDOW, BATCH_IDLE_TIMEOUT} & errors.keys()
            and self.batch_idle_timeout > self.batch_window
        ):
            errors[BATCH_IDLE_TIMEOUT] = "idle_longer_than_window"
        if (
            not {BATCH_WINDOW, INCIDENT_MAX_MINUTES} & errors.keys()
            and self.incident_max_minutes * 60 < self.batch_window
        ):
            errors[INCIDENT_MAX_MINUTES] = "incident_shorter_than_window"
        if not {THRESHOLD_MEDIUM, THRESHOLD_HIGH, THRESHOLD_CRITICAL} & errors.keys() and (
            problem := self.severity.problem()
        ):
            errors[THRESHOLD_HIGH] = problem
        if not self.fast_path_objects:
            errors[FAST_PATH_OBJECTS] = "no_object_types"
        try:
            self.retention_clock()
        except ValueError:
            errors[RETENTION_TIME] = "invalid_time"
        return errors

    @classmethod
    def from_mapping(cls, options: dict[str, object]) -> PipelineOptions:
        """Build options from stored config entry options, filling in defaults for missing keys."""
        default = cls()

        def number(key: str, fallback: float) -> float:
            value = options.get(key, fallback)
            return float(value) if isinstance(value, int | float) else fallback

        objects = options.get(FAST_PATH_OBJECTS, default.fast_path_objects)
        return cls(
            confidence_threshold=number(CONFIDENCE_THRESHOLD, default.confidence_threshold),
            batch_window=number(BATCH_WINDOW, default.batch_window),
            batch_idle_timeout=number(BATCH_IDLE_TIMEOUT, default.batch_idle_timeout),
            incident_max_minutes=number(INCIDENT_MAX_MINUTES, default.incident_max_minutes),
            fast_path_confidence=number(FAST_PATH_CONFIDENCE, default.fast_path_confidence),
            fast_path_objects=tuple(
                str(item).strip().lower()
                for item in (objects if isinstance(objects, list | tuple) else ())
                if str(item).strip()
            ),
            debounce=number(DEBOUNCE, default.debounce),
            polling_observer=bool(options.get(POLLING_OBSERVER, default.polling_observer)),
            retention_days=int(number(RETENTION_DAYS, default.retention_days)),
            severity=SeverityThresholds(
                medium=int(number(THRESHOLD_MEDIUM, default.severity.medium)),
                high=int(number(THRESHOLD_HIGH, default.severity.high)),
                critical=int(number(THRESHOLD_CRITICAL, default.severity.critical)),
            ),
            detector_concurrency=int(number(DETECTOR_CONCURRENCY, default.detector_concurrency)),
            llm_concurrency=int(number(LLM_CONCURRENCY, default.llm_concurrency)),
            rescore_minutes=int(number(RESCORE_MINUTES, default.rescore_minutes)),
            llm_frames=int(number(LLM_FRAMES, default.llm_frames)),
            llm_frame_size=int(number(LLM_FRAME_SIZE, default.llm_frame_size)),
            health_interval=number(HEALTH_INTERVAL, default.health_interval),
            retention_time=str(options.get(RETENTION_TIME, default.retention_time)),
            delete_uploads=bool(options.get(DELETE_UPLOADS, default.delete_uploads)),
            detection_events=bool(options.get(DETECTION_EVENTS, default.detection_events)),
        )

    def as_mapping(self) -> dict[str, object]:
        """Return the options as stored in the config entry (JSON-friendly)."""
        return {
            CONFIDENCE_THRESHOLD: self.confidence_threshold,
            BATCH_WINDOW: self.batch_window,
            BATCH_IDLE_TIMEOUT: self.batch_idle_timeout,
            INCIDENT_MAX_MINUTES: self.incident_max_minutes,
            FAST_PATH_CONFIDENCE: self.fast_path_confidence,
            FAST_PATH_OBJECTS: list(self.fast_path_objects),
            DEBOUNCE: self.debounce,
            POLLING_OBSERVER: self.polling_observer,
            RETENTION_DAYS: self.retention_days,
            THRESHOLD_MEDIUM: self.severity.medium,
            THRESHOLD_HIGH: self.severity.high,
            THRESHOLD_CRITICAL: self.severity.critical,
            DETECTOR_CONCURRENCY: self.detector_concurrency,
            LLM_CONCURRENCY: self.llm_concurrency,
            RESCORE_MINUTES: self.rescore_minutes,
            LLM_FRAMES: self.llm_frames,
            LLM_FRAME_SIZE: self.llm_frame_size,
            HEALTH_INTERVAL: self.health_interval,
            RETENTION_TIME: self.retention_time,
            DELETE_UPLOADS: self.delete_uploads,
            DETECTION_EVENTS: self.detection_events,
        }
