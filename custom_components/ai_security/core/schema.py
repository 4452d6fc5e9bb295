"""The database's tables: one mapped class per table, and the column types they share.

Kept apart from the migrations (which say how an older database becomes this one) and from the
database thread (which runs the queries): almost every stage reads or writes these rows, and
none of them needs to know how the tables got there or which thread touches them.
"""

import base64
from datetime import UTC, datetime
import os
from typing import Any, Final, override

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as naive UTC (SQLite keeps no zone) and always returned timezone-aware."""

    impl = DateTime(timezone=False)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    @override
    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class FsText(TypeDecorator[str]):
    """A file or folder name as the file system gave it, even when it is not valid UTF-8.

    Linux names are bytes; Python hands the bytes that are not UTF-8 over as lone surrogates,
    which neither SQLite nor PostgreSQL can store. Such a name is stored as "//b64:" and the
    base64 of its bytes, and given back exactly as it was, so the file can still be opened. No
    real value starts so: a folder name holds no "/", and the paths stored are resolved ones,
    which never start with two slashes.
    """

    impl = Text
    cache_ok = True

    @override
    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        if value is None:
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _FS_PREFIX + base64.b64encode(os.fsencode(value)).decode("ascii")
        return value

    @override
    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        if value is None or not value.startswith(_FS_PREFIX):
            return value
        return os.fsdecode(base64.b64decode(value[len(_FS_PREFIX) :]))


_FS_PREFIX: Final = "//b64:"


class Base(DeclarativeBase):
    """Declarative base of the integration's tables."""


class MetaRow(Base):
    """Key-value facts about the database itself, such as its schema version."""

    __tablename__ = "ai_security_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CameraRow(Base):
    """A camera, one per folder under the camera root; the id never changes once given."""

    __tablename__ = "ai_security_cameras"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    folder: Mapped[str] = mapped_column(FsText, unique=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Schema version 5: the user reset what the camera learned from reviews; only reviews made
    # since count for its calibration (None: every review counts).
    learning_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    spots_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    """When its learned spots were last forgotten (None: never)."""


class MediaRow(Base):
    """An accepted upload. The unique content hash is the persistent dedupe index."""

    __tablename__ = "ai_security_media"
    media_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey(CameraRow.camera_id), index=True)
    path: Mapped[str] = mapped_column(FsText)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    media_type: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class DetectionRow(Base):
    """One object found in an upload (in a video: in its key frame)."""

    __tablename__ = "ai_security_detections"
    detection_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    media_id: Mapped[int] = mapped_column(ForeignKey(MediaRow.media_id), index=True)
    camera_id: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
    w: Mapped[float] = mapped_column(Float)
    h: Mapped[float] = mapped_column(Float)
    frame_width: Mapped[int] = mapped_column(Integer)
    frame_height: Mapped[int] = mapped_column(Integer)
    frame_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    batch_key: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Schema version 3: the camera zone the box's bottom centre lies in, if any."""
    """The batch the detection joined; the batch's event is judged from all of them."""
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Schema version 5: taken for a learned spot (learned_spots.py): stored, joins nothing."""


class EventRow(Base):
    """An incident of a camera (one visit) and its latest verdict: the security event users see."""

    __tablename__ = "ai_security_events"
    event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    risk_score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str] = mapped_column(Text)
    object_types: Mapped[list[str]] = mapped_column(JSON)
    detection_count: Mapped[int] = mapped_column(Integer)
    is_fast_path: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16))
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Schema version 2: the user's review. The server default fills rows that predate it.
    dismissed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Schema version 3: retention spares events flagged keep; the zones the event happened in.
    keep: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    zones: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # Schema version 4: incidents. An open one is judged again as it grows; each judgement says
    # how many of its detections it saw, so a slower, older judgement never overwrites a newer.
    ongoing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    judged_detections: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    peak_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The highest level the incident has had: a rise above it is news, a fall and rise is not."""
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Schema version 5: the LLM verdict's further words, the verifier's marks and what the
    # model was shown (models.VerdictDetails.as_dict); None for a heuristic verdict. And the
    # third review outcome: the verdict was too low, or missed what mattered.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    missed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # And calibration: the verdict's own score when similar reviews moved it, and why.
    raw_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    calibration: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_ai_security_events_camera_started", "camera_id", "started_at"),
        # Newest first over all cameras, and date ranges; event_id breaks ties so that pages
        # of equal timestamps neither repeat nor skip an event.
        Index("ix_ai_security_events_started", "started_at", "event_id"),
    )


class EventDetectionRow(Base):
    """Which detections an event was judged from."""

    __tablename__ = "ai_security_event_detections"
    event_id: Mapped[str] = mapped_column(ForeignKey(EventRow.event_id), primary_key=True)
    detection_id: Mapped[int] = mapped_column(
        ForeignKey(DetectionRow.detection_id), primary_key=True
    )

    # Schema version 3: deleting a detection checks its links (the foreign key), and the
    # clean-up asks which detections no event needs; without it each is a scan of all links.
    __table_args__ = (Index("ix_ai_security_event_detections_detection", "detection_id"),)


class JobRow(Base):
    """A unit of durable work (detect an upload, analyze a batch) and its retry state."""

    __tablename__ = "ai_security_jobs"
    job_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_ai_security_jobs_due", "state", "kind", "next_attempt_at"),
        # Schema version 3: retention finds finished and dead jobs by age.
        Index("ix_ai_security_jobs_state_updated", "state", "updated_at"),
    )


class BaselineRow(Base):
    """Schema version 3: a camera's usual detection rate of a class in one hour of the week.

    An exponentially decayed count of detections per hour (core.baseline): unusual activity is
    activity well above it.
    """

    __tablename__ = "ai_security_baselines"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hour_of_week: Mapped[int] = mapped_column(Integer, primary_key=True)
    """0 = Monday 00:00-01:00 local time, 167 = Sunday 23:00-24:00."""
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    rate: Mapped[float] = mapped_column(Float)
    """Detections per hour, decayed."""
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditRow(Base):
    """Schema version 3: one sensitive action: who did what, with which arguments, and how."""

    __tablename__ = "ai_security_audit"
    audit_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    success: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class BatchRow(Base):
    """A camera's open incident, stored so a restart resumes it with its original deadlines.

    Its detections carry its batch_key, so adding one never rewrites a growing list here. A row
    without event_id is a batch left by schema version 3 (judged into one event when it closes).
    """

    __tablename__ = "ai_security_batches"
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    batch_key: Mapped[str] = mapped_column(String(32), unique=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_detection_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detection_count: Mapped[int] = mapped_column(Integer)
    # Schema version 4: the incident's event, its current judging window, and how many of its
    # detections the last queued judgement covers.
    event_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    window_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    judged_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    fast_judged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC (the only kind the database accepts)."""
    return datetime.now(UTC)
