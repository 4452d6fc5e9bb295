"""What a job is: its kinds and states, the record a worker sees, its result and its failures.

The queue (job_queue.py), the workers (jobs.py) and every stage that handles a job speak of jobs
in these terms; kept apart from both so that a stage's job and its result can be described
without pulling in the database's statements or the workers' asyncio machinery.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
import os
from typing import Any

from sqlalchemy.orm import Session

from .uploads import shown


class JobKind(StrEnum):
    """What a job does."""

    DETECT = "detect"
    ANALYZE = "analyze"
    RESCORE = "rescore"
    """Judge again, with the LLM, an event the heuristic scored while the LLM was unreachable."""


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


class PermanentJobError(Exception):
    """Retrying cannot help (a corrupt clip, ffmpeg missing): the job goes dead at once."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Job:
    """A job as a worker sees it."""

    job_id: int
    kind: JobKind
    payload: dict[str, Any]
    state: JobState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


def describe(job: Job) -> str:
    """Return how log lines name a job: its kind, id and the upload it is about, if any.

    "detect job 12 (Front/2024-06-01_03-14.jpg)": whoever reads the log can find the file.
    """
    path = job.payload.get("path")
    if isinstance(path, str) and path:
        folder, name = os.path.split(path)
        return (
            f"{job.kind} job {job.job_id} ({shown(os.path.join(os.path.basename(folder), name))})"
        )
    return f"{job.kind} job {job.job_id}"


@dataclass(frozen=True, kw_only=True, slots=True)
class JobResult:
    """What a finished job leaves: writes that commit with its completion, and what follows them.

    store(session) runs in the transaction that marks the job done, so a job's results are
    stored exactly once or not at all; after(stored) then runs on the loop with store's return
    value, to announce what was committed (never before it is).
    """

    store: Callable[[Session], Any] | None = None
    after: Callable[[Any], None] | None = None
