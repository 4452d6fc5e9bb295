"""The LLM client: asks a llama.cpp or OpenAI-compatible server to judge a batch, checks the answer.

One Analyzer talks to a pool of servers (core.endpoint_pool: the next batch goes to the one with
the fewest in flight, a circuit breaker each); a server that cannot be reached is passed over for
the next one within the same judgement, so one dead server of several costs no verdict. It sends
the prompt of
core.prompts with the verdict's JSON schema (which llama.cpp turns into a grammar, so the answer
has the right shape), parses and checks what comes back, and derives the stored level from the
score by the user's thresholds. Its errors tell the pipeline what to do next:

- LlmUnavailableError: no server can be reached (connection refused, DNS, every breaker is
  open); the pipeline falls back to the heuristic scorer.
- LlmRejectedError: the server answered 4xx (such as 400 for a prompt over its context); the
  same request will not succeed later, and the breaker does not count it (the server is up).
- AnalyzerError (the others): worth retrying later: a time-out, HTTP 5xx, an answer that is not
  a valid verdict. These, like unreachability, count towards opening the breaker.

What differs between kinds of server (the route, the body, where the text sits in the reply,
the readiness check) is the provider's (core/llm_<name>.py), chosen by the configured API.
"""

from collections.abc import Callable, Mapping, Sequence
import json
import logging
import re
import time
from typing import Any, Final

import aiohttp

from .endpoint_pool import EndpointPool
from .health import redact_url
from .llm_providers import Prompt, provider_for
from .models import EventSource
from .prompts import (
    MAX_PROMPT_CHARS,
    RISK_LEVELS,
    AnalysisRequest,
    build_messages,
    verdict_schema,
)
from .resilience import CircuitBreaker, CircuitOpenError, describe_error
from .risk import Verdict, level_for
from .settings import LlmApi, SeverityThresholds

_LOGGER = logging.getLogger(__name__)

RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
"""4xx answers that mean 'not now' rather than 'never': treated like 5xx."""
SNIPPET: Final = 120
"""Characters of a bad answer quoted in an error message."""
MAX_MODEL_LEVEL: Final = 32
"""Characters kept of a level the model named that disagrees with the derived one."""

_FENCE = re.compile(r"^```[A-Za-z]*\s*(?P<body>.*?)\s*```$", re.DOTALL)
"""A Markdown code fence around the whole answer, with or without a language tag."""


class AnalyzerError(Exception):
    """The LLM did not give a usable verdict this time; worth retrying later."""


class LlmUnavailableError(AnalyzerError):
    """The LLM server cannot be reached at all (or its breaker is open): use the heuristic."""


class LlmRejectedError(AnalyzerError):
    """The server refused the request with HTTP 4xx; retrying the same request will not help.

    The breaker counts it as an answer (the server is up), not as a failure.
    """

    def __init__(self, message: str, status: int) -> None:
        """Remember the HTTP status besides the message."""
        super().__init__(message)
        self.status = status


def snippet(text: str) -> str:
    """Return the start of text on one line, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET else f"{flat[: SNIPPET - 3]}..."


def _score(value: object) -> int:
    """Return the risk score as an int: an integer, or a float with an integral value, 0-100."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnalyzerError(f"risk_score is not a number: {snippet(repr(value))}")
    if isinstance(value, float):
        if not value.is_integer():
            raise AnalyzerError(f"risk_score is not a whole number: {value!r}")
        value = int(value)
    if not 0 <= value <= 100:
        raise AnalyzerError(f"risk score out of range (0-100): {value}")
    return value


_LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _text(data: Mapping[str, object], key: str, limit: int) -> str:
    """Return the stripped string at key, cut to limit characters; empty or not text fails."""
    value = data[key]
    if not isinstance(value, str):
        raise AnalyzerError(f"{key} is not a string: {snippet(repr(value))}")
    # JSON may escape half a character ("\ud83d" alone): text the database, the bus and the
    # phone cannot carry. Each such half becomes U+FFFD, the rest of the verdict stays.
    text = _LONE_SURROGATE.sub("\ufffd", value).strip()
    if not text:
        raise AnalyzerError(f"{key} is empty")
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[:limit]
    return f"{text[: limit - 3].rstrip()}..."


def parse_verdict(
    text: str,
    thresholds: SeverityThresholds,
    *,
    summary_max: int = 200,
    reasoning_max: int = 1000,
) -> Verdict:
    """Return the verdict in the model's answer text, or raise AnalyzerError saying what is wrong.

    Tolerated: blanks and a Markdown code fence around the JSON, extra keys, a float score with
    an integral value, a risk_level in any case or unknown (the stored level is derived from the
    score; a disagreeing one is kept as model_level), over-long summary or reasoning (cut).
    Refused: no JSON object, a missing key, a score that is not a number or not in 0-100, an
    empty summary or reasoning.
    """
    body = text.strip()
    if fenced := _FENCE.match(body):
        body = fenced["body"]
    if not body:
        raise AnalyzerError("the answer is empty")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise AnalyzerError(f"the answer is not JSON: {snippet(body)}") from err
    if not isinstance(data, dict):
        raise AnalyzerError(f"the answer is not a JSON object: {snippet(body)}")
    if missing := [
        key for key in ("risk_score", "risk_level", "summary", "reasoning") if key not in data
    ]:
        raise AnalyzerError(f"the answer lacks {', '.join(missing)}: {snippet(body)}")
    score = _score(data["risk_score"])
    said = data["risk_level"]
    if not isinstance(said, str):
        raise AnalyzerError(f"risk_level is not a string: {snippet(repr(said))}")
    summary = _text(data, "summary", summary_max)
    reasoning = _text(data, "reasoning", reasoning_max)
    level = level_for(score, thresholds)
    said = said.strip().lower()
    model_level: str | None = None
    if said != level.value:
        model_level = said[:MAX_MODEL_LEVEL]
        _LOGGER.debug(
            "The LLM named level %r for score %d; the thresholds make it %s%s",
            model_level,
            score,
            level,
            "" if said in RISK_LEVELS else " (not a known level)",
        )
    return Verdict(
        risk_score=score,
        risk_level=level,
        summary=summary,
        reasoning=reasoning,
        source=EventSource.LLM,
        model_level=model_level,
    )


class Analyzer:
    """Ask a pool of LLM servers for verdicts, each through its circuit breaker.

    Stateless apart from the pool, so one Analyzer serves concurrent batches. It uses the
    session it is given (Home Assistant's shared one) and never closes it.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        urls: Sequence[str],
        api: LlmApi,
        *,
        thresholds: SeverityThresholds,
        time_limit: float = 120.0,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        summary_max: int = 200,
        reasoning_max: int = 1000,
        max_tokens: int = 512,
        temperature: float = 0.2,
        max_detections: int = 40,
        max_prompt_chars: int = MAX_PROMPT_CHARS,
        model: str | None = None,
        extra_params: Mapping[str, Any] | None = None,
        pool: EndpointPool | None = None,
    ) -> None:
        """Set up the client and its pool; nothing is sent until analyze().

        urls are the servers' base URLs (credentials in them never reach logs or errors; repeats
        are ignored); every server runs the same API. time_limit bounds one request in seconds;
        failure_threshold, reset_timeout and clock configure each server's breaker; max_tokens
        bounds the answer (it must leave room for the longest verdict the schema allows);
        max_detections and max_prompt_chars bound the prompt (see prompts.build_messages); model
        is sent as the OpenAI "model" field when given (servers such as Ollama and vLLM pick the
        model by it); extra_params are merged into every request body last (sampling settings
        such as seed or logit_bias). pool, when given, is another Analyzer's: the servers, their
        breakers and loads are then shared (urls and the breaker settings are ignored), as two
        clients of the same servers with different settings must. Raises ValueError for no URLs.
        """
        self._session = session
        self._pool = pool or EndpointPool(
            urls,
            service="LLM",
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
        )
        self._provider = provider_for(api)
        self._thresholds = thresholds
        self._time_limit = time_limit
        self._summary_max = summary_max
        self._reasoning_max = reasoning_max
        self._max_tokens = max_tokens
        self._temperature = temperature
        self._max_detections = max_detections
        self._max_prompt_chars = max_prompt_chars
        self._model = model
        self._extra_params = dict(extra_params or {})
        self._schema = verdict_schema(summary_max=summary_max, reasoning_max=reasoning_max)

    @property
    def pool(self) -> EndpointPool:
        """Return the servers, their breakers (shared with the health checks) and loads."""
        return self._pool

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Return one breaker per server, keyed by its URL as configured."""
        return self._pool.breakers

    def request(self, request: AnalysisRequest) -> tuple[str, dict[str, Any]]:
        """Return the route and the JSON body that analyze() sends for request."""
        system, user = build_messages(
            request,
            max_detections=self._max_detections,
            max_chars=self._max_prompt_chars,
            thresholds=self._thresholds,
            summary_max=self._summary_max,
            reasoning_max=self._reasoning_max,
        )
        path, body = self._provider.request(
            Prompt(
                system=system,
                user=user,
                schema=self._schema,
                max_tokens=self._max_tokens,
                temperature=self._temperature,
                model=self._model,
            )
        )
        body.update(self._extra_params)
        return path, body

    async def analyze(self, request: AnalysisRequest) -> Verdict:
        """Return the LLM's verdict on request, and which server gave it.

        The least busy server that its breaker lets by is asked; one that cannot be reached is
        passed over for the next, so a verdict is lost only when none can be. Raises
        LlmUnavailableError when no server can be reached or every breaker is open (no request
        is sent then), LlmRejectedError on HTTP 4xx, AnalyzerError for everything else that
        yields no valid verdict (a time-out or a bad answer is not retried elsewhere at once:
        the job is, later, and may go to another server then).
        """
        verdict, _url = await self.analyze_at(request)
        return verdict

    async def analyze_at(self, request: AnalysisRequest) -> tuple[Verdict, str]:
        """Return the LLM's verdict on request and the URL (as configured) of the server asked.

        See analyze() for the errors.
        """
        path, body = self.request(request)
        tried: list[str] = []
        unreachable: LlmUnavailableError | None = None
        while True:
            try:
                async with self._pool.request(exclude=tried, answered=(LlmRejectedError,)) as url:
                    tried.append(url)
                    verdict = await self._ask(url, path, body)
            except CircuitOpenError as err:
                # Nobody left to ask: the last server that could not be reached says why.
                if unreachable is not None:
                    raise unreachable from err
                raise LlmUnavailableError(str(err)) from err
            except LlmUnavailableError as err:
                unreachable = err
                if len(tried) == len(self._pool.urls):
                    raise
                _LOGGER.debug("%s; asking the next LLM server", err)
                continue
            break
        _LOGGER.debug(
            "LLM verdict for %s from %s: %s (%s)",
            request.camera_name,
            redact_url(url),
            verdict.risk_score,
            verdict.risk_level,
        )
        return verdict, url

    async def _ask(self, url: str, path: str, body: dict[str, Any]) -> Verdict:
        """Send one request to url and return the verdict in its answer."""
        content, cut_off = await self._post(url, path, body)
        try:
            return parse_verdict(
                content,
                self._thresholds,
                summary_max=self._summary_max,
                reasoning_max=self._reasoning_max,
            )
        except AnalyzerError as err:
            if not cut_off:
                raise
            raise AnalyzerError(
                f"{err} (the answer was cut off at {self._max_tokens} tokens)"
            ) from err

    async def _post(self, url: str, path: str, body: dict[str, Any]) -> tuple[str, bool]:
        """Send body to url's path; return the answer's text and whether max_tokens cut it off."""
        public = redact_url(url).rstrip("/")
        where = f"{public}{path}"
        try:
            async with self._session.post(
                f"{url.rstrip('/')}{path}",
                json=body,
                timeout=aiohttp.ClientTimeout(total=self._time_limit),
            ) as response:
                status = response.status
                text = (await response.read()).decode("utf-8", errors="replace")
        except aiohttp.ConnectionTimeoutError as err:
            raise LlmUnavailableError(
                f"cannot connect to {where} within {self._time_limit:g} s"
            ) from err
        except TimeoutError as err:
            raise AnalyzerError(f"no answer from {where} within {self._time_limit:g} s") from err
        except aiohttp.ClientConnectorError as err:
            raise LlmUnavailableError(f"cannot reach {where}: {_redact(err, url, public)}") from err
        except aiohttp.ClientError as err:
            raise AnalyzerError(f"{where}: {_redact(err, url, public)}") from err
        if not 200 <= status < 300:
            message = f"HTTP {status} from {where}: {_error_detail(text)}"
            if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
                raise LlmRejectedError(message, status)
            raise AnalyzerError(message)
        return self._content(where, text)

    def _content(self, where: str, text: str) -> tuple[str, bool]:
        """Return the model's text from the server's JSON envelope, and whether it was cut off."""
        try:
            envelope = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise AnalyzerError(
                f"{where} answered with something that is not JSON: "
                f"{snippet(text) or 'an empty body'}"
            ) from err
        found = self._provider.reply(envelope)
        content, cut_off = found.content, found.cut_off
        if not isinstance(content, str):
            raise AnalyzerError(f"{where} answered without the model's text: {snippet(text)}")
        return content, cut_off


def _redact(error: BaseException, url: str, public: str) -> str:
    """Return an error's text with the URL's credentials removed."""
    return describe_error(error).replace(url, public)


def _error_detail(text: str) -> str:
    """Return the message of an error body ({"error": {"message": ...}}), else its start."""
    try:
        payload = json.loads(text)
    except ValueError:
        return snippet(text) or "no body"
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return snippet(error["message"])
    if isinstance(error, str):
        return snippet(error)
    return snippet(text)
