"""The re-score stage: a heuristic's verdict judged again by the LLM once it answers.

An incident judged while the LLM was down keeps the heuristic's verdict; a re-score job asks
the LLM again (its worker runs only while the LLM's breaker lets a request by), if the event is
still recent enough to matter, and the new verdict replaces the old in place, the host told of
the change (a higher level is worth a new alert).
"""

from dataclasses import replace
import logging

from sqlalchemy.orm import Session

from .analyze import AnalyzeStage
from .analyzer import LlmRejectedError, LlmUnavailableError
from .announce import Announcer
from .context import EventUpdate, StageContext
from .event_rows import details_json
from .jobs import Job, JobResult
from .models import EventSource
from .payloads import RescorePayload, payload_of
from .records import peak_of, stored_event, update
from .risk import LEVEL_ORDER
from .storage import EventRow

_LOGGER = logging.getLogger(__name__)


class RescoreStage:
    """Handles re-score jobs with the analyze stage's LLM."""

    def __init__(self, ctx: StageContext, analyze: AnalyzeStage, announcer: Announcer) -> None:
        """Use the shared context and the analyze stage's way of asking the LLM."""
        self._ctx = ctx
        self._analyze = analyze
        self._announcer = announcer

    def is_outage(self, error: BaseException) -> bool:
        """Return whether a failure means the LLM cannot answer now (retry later, unspent)."""
        return isinstance(error, LlmUnavailableError) or self._analyze.is_outage(error)

    async def handle(self, job: Job) -> JobResult | None:
        """Judge a heuristic event again with the LLM, if it is still recent enough to matter."""
        ctx = self._ctx
        event_id = payload_of(RescorePayload, job).event_id
        found = await ctx.db.run(lambda s: stored_event(s, event_id))
        if found is None:
            return None  # deleted meanwhile (retention)
        camera, old, created_at, detections = found
        await self._announcer.announced(event_id)
        if (
            old.source is not EventSource.HEURISTIC
            or ctx.clock() - created_at > self._analyze.rescore_limit()
        ):
            _LOGGER.debug("Not re-scoring event %s: no longer recent", event_id)
            return None
        request = self._analyze.request(
            camera, old.started_at, old.ended_at, detections, is_fast_path=old.is_fast_path
        )
        try:
            verdict = await self._analyze.calibrated(
                camera, request, await self._analyze.judge(request)
            )
        except LlmRejectedError as err:
            _LOGGER.info("The LLM refused to re-score event %s (%s); score kept", event_id, err)
            return None
        new = replace(
            old,
            risk_score=verdict.risk_score,
            risk_level=verdict.risk_level,
            summary=verdict.summary,
            reasoning=verdict.reasoning,
            source=verdict.source,
            details=verdict.details,
            raw_score=verdict.raw_score,
            calibration=verdict.calibration,
        )

        def store(session: Session) -> EventUpdate | None:
            row = session.get(EventRow, event_id)
            if row is None:
                return None
            peak = peak_of(row) or old.risk_level
            rose = LEVEL_ORDER.index(new.risk_level) > LEVEL_ORDER.index(peak)
            row.risk_score = new.risk_score
            row.risk_level = new.risk_level.value
            row.summary = new.summary
            row.reasoning = new.reasoning
            row.source = new.source.value
            row.details = details_json(new.details)
            row.raw_score = new.raw_score
            row.calibration = new.calibration or None
            row.updated_at = ctx.clock()
            if rose:
                row.peak_level = new.risk_level.value
            return update(old, new, level_rose=rose)

        def after(stored: EventUpdate | None) -> None:
            if stored is not None and stored.changed:
                ctx.callbacks.event_updated(camera, stored)

        return JobResult(store=store, after=after)
