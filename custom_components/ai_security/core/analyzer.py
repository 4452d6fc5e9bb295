"""The LLM client: asks a llama.cpp or OpenAI-compatible server to judge a batch, checks the answer.

One Analyzer talks to a pool of servers (core.endpoint_pool: the next batch goes to the one with
the fewest in flight, a circuit breaker each); a server that cannot be reached is passed over for
the next one within the same judgement, so one dead server of several costs no verdict. It sends
the prompt of core.prompts, with the incident's pictures where a server takes them
(llm_vision), and the verdict's JSON schema (which llama.cpp turns into a grammar, so the answer
has the right shape), parses and checks what comes back, and derives the stored level from the
score by the user's thresholds (verdict_parser). Its errors (llm_errors, re-exported here)
tell the pipeline what to do next.

What differs between kinds of server (the route, the body, where the text sits in the reply,
the readiness check) is the provider's (core/llm_<name>.py), chosen by the configured API.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
import hashlib
import json
import logging
import time
from typing import Any, Final

import aiohttp

from .endpoint_pool import EndpointPool
from .health import ServiceUnavailableError, redact_url
from .llm_budget import ContextBudget, text_only
from .llm_errors import AnalyzerError, AnswerCutOffError, LlmRejectedError, LlmUnavailableError
from .llm_provider import UNKNOWN_TRAITS, LlmAsker, PromptImage, ServerTraits
from .llm_providers import Prompt, provider_for
from .llm_vision import ServerVision, is_over_context
from .models import VerdictDetails
from .prompts import (
    MAX_PROMPT_CHARS,
    AnalysisRequest,
    build_messages,
    verdict_schema,
)
from .resilience import CircuitBreaker, CircuitOpenError, describe_error
from .risk import Verdict
from .settings import LlmApi, SeverityThresholds
from .verdict_parser import parse_verdict, snippet

__all__ = [
    "Analyzer",
    "AnalyzerError",
    "LlmRejectedError",
    "LlmUnavailableError",
    "parse_verdict",
]

_LOGGER = logging.getLogger(__name__)

RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
"""4xx answers that mean 'not now' rather than 'never': treated like 5xx."""


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
        max_tokens: int = 1024,
        temperature: float = 0.2,
        max_detections: int = 40,
        max_prompt_chars: int = MAX_PROMPT_CHARS,
        model: str | None = None,
        extra_params: Mapping[str, Any] | None = None,
        pool: EndpointPool | None = None,
        askers: Mapping[str, LlmAsker] | None = None,
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
        clients of the same servers with different settings must. askers are LLMs the host
        reaches (an AI Task entity, by its name), asked before the servers when equally busy.
        Raises ValueError for no URLs and no askers.
        """
        self._session = session
        self._askers = dict(askers or {})
        self._pool = pool or EndpointPool(
            [*self._askers, *urls],
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
        self._vision_time_limit = min(time_limit, 5.0)
        self._vision = ServerVision(self._provider, session, self._vision_time_limit, clock)
        self._budget = ContextBudget()

    def may_see(self) -> bool:
        """Return whether some server might take pictures (worth making them for a verdict)."""
        return any(
            asker.takes_pictures()
            if (asker := self._askers.get(url))
            else self._vision.may_see(url)
            for url in self._pool.urls
        )

    @property
    def vision_refused(self) -> Mapping[str, str]:
        """Return the servers (redacted URL) that refused pictures, and how."""
        return self._vision.refused

    @property
    def pool(self) -> EndpointPool:
        """Return the servers, their breakers (shared with the health checks) and loads."""
        return self._pool

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Return one breaker per server, keyed by its URL as configured."""
        return self._pool.breakers

    def prompt(self, request: AnalysisRequest, images: Sequence[PromptImage] = ()) -> Prompt:
        """Return what every provider is given for request, with the incident's pictures."""
        system, user = build_messages(
            request,
            max_detections=self._max_detections,
            max_chars=self._max_prompt_chars,
            thresholds=self._thresholds,
            summary_max=self._summary_max,
            reasoning_max=self._reasoning_max,
            pictures=bool(images),
        )
        return Prompt(
            system=system,
            user=user,
            schema=self._schema,
            max_tokens=self._max_tokens,
            temperature=self._temperature,
            model=self._model,
            images=tuple(images),
        )

    def request(
        self,
        request: AnalysisRequest,
        images: Sequence[PromptImage] = (),
        traits: ServerTraits = UNKNOWN_TRAITS,
    ) -> tuple[str, dict[str, Any]]:
        """Return the route and the JSON body that analyze() sends for request to a server."""
        return self._body(self.prompt(request, images), traits)

    def _body(self, prompt: Prompt, traits: ServerTraits) -> tuple[str, dict[str, Any]]:
        path, body = self._provider.request(prompt, traits)
        body.update(self._extra_params)
        return path, body

    async def analyze(
        self, request: AnalysisRequest, images: Sequence[PromptImage] = ()
    ) -> Verdict:
        """Return the LLM's verdict on request, and which server gave it.

        The least busy server that its breaker lets by is asked; one that cannot be reached is
        passed over for the next, so a verdict is lost only when none can be. Raises
        LlmUnavailableError when no server can be reached or every breaker is open (no request
        is sent then), LlmRejectedError on HTTP 4xx, AnalyzerError for everything else that
        yields no valid verdict (a time-out or a bad answer is not retried elsewhere at once:
        the job is, later, and may go to another server then). images go to a server that may
        take them; one that refuses them gets the text alone (see llm_vision).
        """
        verdict, _url = await self.analyze_at(request, images)
        return verdict

    async def analyze_at(
        self, request: AnalysisRequest, images: Sequence[PromptImage] = ()
    ) -> tuple[Verdict, str]:
        """Return the LLM's verdict on request and the URL (as configured) of the server asked.

        See analyze() for the errors.
        """
        prompt = self.prompt(request, images)
        tried: list[str] = []
        unreachable: LlmUnavailableError | None = None
        while True:
            try:
                async with self._pool.request(exclude=tried, answered=(LlmRejectedError,)) as url:
                    tried.append(url)
                    verdict, shown = await self._ask_prompt(url, prompt)
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
        verdict = with_audit(verdict, prompt, shown, redact_url(url))
        _LOGGER.debug(
            "LLM verdict for %s from %s: %s (%s)",
            request.camera_name,
            redact_url(url),
            verdict.risk_score,
            verdict.risk_level,
        )
        return verdict, url

    async def write(
        self, system: str, user: str, schema: Mapping[str, Any], max_tokens: int
    ) -> str:
        """Return a server's answer (JSON text of schema's shape) to a text-only prompt.

        For what is not a verdict (a digest of a period): the same servers, breakers and
        failover as analyze(), and the same errors; the caller parses the answer.
        """
        prompt = Prompt(
            system=system,
            user=user,
            schema=schema,
            max_tokens=max_tokens,
            temperature=self._temperature,
            model=self._model,
        )
        tried: list[str] = []
        while True:
            try:
                async with self._pool.request(exclude=tried, answered=(LlmRejectedError,)) as url:
                    tried.append(url)
                    if (asker := self._askers.get(url)) is not None:
                        return await asker.ask(prompt)
                    content, _cut_off, _tokens = await self._post(
                        url, *self._body(prompt, UNKNOWN_TRAITS)
                    )
                    return content
            except CircuitOpenError as err:
                raise LlmUnavailableError(str(err)) from err
            except LlmUnavailableError:
                if len(tried) == len(self._pool.urls):
                    raise
                continue

    async def _ask_prompt(
        self, url: str, prompt: Prompt
    ) -> tuple[Verdict, tuple[PromptImage, ...]]:
        """Ask url about prompt: with its pictures if url may take them, else the text alone.

        Returns the verdict and the pictures that went with the request it answered.

        A request with pictures that the server refuses (an HTTP error, not a bad answer) is
        not lost: over its context, or with an answer cut off for want of room, it goes again
        with half the pictures (the most telling kept, and remembered for the next verdicts);
        otherwise the server is asked about itself once (a restarted llama-server has a new
        marker) and gets the pictures again, or is remembered as text-only for a while (see
        llm_vision.TRY_AGAIN) and gets the text.
        """
        if (asker := self._askers.get(url)) is not None:
            shown = prompt.images if asker.takes_pictures() else ()
            content = await asker.ask(replace(prompt, images=shown))
            return self._verdict(content, cut_off=False), shown
        text_only = self._body(replace(prompt, images=()), UNKNOWN_TRAITS)
        if not prompt.images:
            return await self._ask(url, *text_only), ()
        traits = await self._vision.traits(url)
        fitting = self._vision.fitting(url, prompt.images)
        fitting = self._budget.fitting(url, traits.context_tokens, prompt, fitting)
        attempt = replace(prompt, images=fitting)
        relearned = False
        while True:
            path, body = self._body(attempt, traits)
            if (path, body) == text_only:  # no pictures go to this server (or none fit)
                return await self._ask(url, path, body), ()
            try:
                verdict, prompt_tokens = await self._ask_counted(url, path, body)
            except LlmUnavailableError:
                raise
            except AnalyzerError as err:
                if is_over_context(err) or isinstance(err, AnswerCutOffError):
                    # No room left for the verdict beside the pictures: fewer of them.
                    attempt = replace(attempt, images=self._vision.fewer(url, attempt.images))
                    continue
                if err.status is None:
                    raise  # it answered: the answer was bad, not the pictures
                if not relearned and (fresh := await self._vision.relearn(url)) is not None:
                    relearned, traits = True, fresh
                    continue
                self._vision.refuse(url, err)
                return await self._ask(url, *text_only), ()
            self._vision.took(url)
            if traits.context_tokens and prompt_tokens and self._budget.cost(url) is None:
                await self._measure(url, attempt, prompt_tokens)
            return verdict, attempt.images

    async def _measure(self, url: str, sent: Prompt, prompt_tokens: int) -> None:
        """Learn what a picture costs at url from a request it answered (see llm_budget)."""
        text = text_only(sent)
        try:
            tokens = await self._provider.count_tokens(
                self._session, url.rstrip("/"), text, self._vision_time_limit
            )
        except ServiceUnavailableError as err:
            _LOGGER.debug("Cannot count the prompt's tokens at %s: %s", redact_url(url), err)
            return
        if tokens is not None:
            self._budget.learn(
                url,
                prompt_tokens=prompt_tokens,
                text_tokens=tokens,
                text_chars=len(text),
                pictures=len(sent.images),
            )

    async def _ask(self, url: str, path: str, body: dict[str, Any]) -> Verdict:
        """Send one request to url and return the verdict in its answer."""
        verdict, _tokens = await self._ask_counted(url, path, body)
        return verdict

    async def _ask_counted(
        self, url: str, path: str, body: dict[str, Any]
    ) -> tuple[Verdict, int | None]:
        """Send one request to url; return its verdict and the prompt tokens it counted."""
        content, cut_off, tokens = await self._post(url, path, body)
        return self._verdict(content, cut_off=cut_off), tokens

    def _verdict(self, content: str, *, cut_off: bool) -> Verdict:
        """Return the verdict in the model's answer; one cut off says so in its error."""
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
            raise AnswerCutOffError(
                f"{err} (the answer was cut off at {self._max_tokens} tokens)"
            ) from err

    async def _post(
        self, url: str, path: str, body: dict[str, Any]
    ) -> tuple[str, bool, int | None]:
        """Send body to url's path; return the answer's text, whether it was cut off, tokens.

        The tokens are the prompt's as the server counted them (None when it does not say);
        cut off means max_tokens stopped the answer.
        """
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
            raise AnalyzerError(message, status)
        return self._content(where, text)

    def _content(self, where: str, text: str) -> tuple[str, bool, int | None]:
        """Return the model's text from the server's JSON envelope, and whether it was cut off."""
        try:
            envelope = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise AnalyzerError(
                f"{where} answered with something that is not JSON: "
                f"{snippet(text) or 'an empty body'}"
            ) from err
        found = self._provider.reply(envelope)
        content = found.content
        if not isinstance(content, str):
            raise AnalyzerError(f"{where} answered without the model's text: {snippet(text)}")
        return content, found.cut_off, found.prompt_tokens


def prompt_hash(prompt: Prompt, shown: Sequence[PromptImage]) -> str:
    """Return the SHA-256 (hex) of what was sent: the two texts and the pictures' digests.

    The pictures' own digests were made where they were drawn (in the executor), so this hashes
    a few kilobytes of text on the event loop, never the pictures.
    """
    digest = hashlib.sha256()
    for part in (prompt.system, prompt.user, *(image.digest for image in shown)):
        digest.update(part.encode("utf-8", errors="replace"))
        digest.update(b"\0")
    return digest.hexdigest()


def with_audit(
    verdict: Verdict, prompt: Prompt, shown: Sequence[PromptImage], server: str
) -> Verdict:
    """Return verdict with the record of what it was shown: frames, the prompt's hash, server."""
    details = verdict.details or VerdictDetails()
    return replace(
        verdict,
        details=replace(
            details,
            frames=tuple(image.frame for image in shown),
            prompt_hash=prompt_hash(prompt, shown),
            server=server,
        ),
    )


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
