"""How many pictures fit a server's context: measured once, then checked before each request.

A llama-server publishes a slot's context (GET /props, n_ctx) and counts a prompt's tokens
(POST /tokenize for text; every answer says how many prompt tokens it evaluated). After the
first verdict that carried pictures, the server's own figures give what a picture costs there
(the prompt's tokens, less its text's, per picture) and how many tokens a character of this
prompt makes. From then on each request is sized before it is sent: the text, the answer's
room (max_tokens) and as many of the most telling pictures as the rest of the context holds.
A request the server would refuse, or an answer it would cut off, is not sent at all.

Servers that publish no context (OpenAI-compatible ones) are sized by their refusals instead
(llm_vision.ServerVision.fewer), as is the first request to any server.
"""

from collections.abc import Sequence
from dataclasses import dataclass
import logging
import math
from typing import Final

from .health import redact_url
from .llm_provider import Prompt, PromptImage

_LOGGER = logging.getLogger(__name__)

TEXT_MARGIN: Final = 1.03
"""The prompt's text is estimated from its length at the measured rate, plus this share: the
prompts are alike (the same instructions, detections as data), so the rate varies little."""


@dataclass(frozen=True, slots=True)
class PictureCost:
    """What one server's context spends on this integration's prompts."""

    per_picture: float
    """Tokens a picture takes (its embedding, with its caption's share and its marker)."""
    per_char: float
    """Tokens a character of the prompt's text takes."""


def text_only(prompt: Prompt) -> str:
    """Return the prompt's text without the pictures' captions."""
    return f"{prompt.system}\n\n{prompt.user}"


class ContextBudget:
    """The measured picture cost of each server, by URL as configured."""

    def __init__(self) -> None:
        """Start knowing nothing: every server is measured on its first pictures."""
        self._costs: dict[str, PictureCost] = {}

    def cost(self, url: str) -> PictureCost | None:
        """Return what url's context spends on a picture and a character, once measured."""
        return self._costs.get(url)

    def learn(
        self, url: str, *, prompt_tokens: int, text_tokens: int, text_chars: int, pictures: int
    ) -> None:
        """Remember a measurement of one request that url answered.

        Its text without the pictures' captions (text_only) has text_chars characters and
        text_tokens tokens; with its pictures, the server counted prompt_tokens: the rest is
        the pictures' (embeddings, captions and markers), shared equally.
        """
        if pictures <= 0 or text_chars <= 0 or text_tokens <= 0 or prompt_tokens <= text_tokens:
            return
        cost = PictureCost(
            per_picture=(prompt_tokens - text_tokens) / pictures,
            per_char=text_tokens / text_chars,
        )
        if url not in self._costs:
            _LOGGER.info(
                "The LLM server %s spends about %d tokens on a picture",
                redact_url(url),
                round(cost.per_picture),
            )
        self._costs[url] = cost

    def fitting(
        self,
        url: str,
        context_tokens: int | None,
        prompt: Prompt,
        images: Sequence[PromptImage],
    ) -> tuple[PromptImage, ...]:
        """Return the most telling of images that fit url's context beside prompt's answer.

        All of them while url's cost or context is not known (the server's refusal will say).
        """
        cost = self._costs.get(url)
        if cost is None or context_tokens is None or not images:
            return tuple(images)
        text = math.ceil(len(text_only(prompt)) * cost.per_char * TEXT_MARGIN)
        room = context_tokens - text - prompt.max_tokens
        count = max(0, min(len(images), int(room // max(cost.per_picture, 1.0))))
        if count < len(images):
            _LOGGER.debug(
                "%s: %d of %d pictures fit its %d-token context (text about %d, answer %d)",
                redact_url(url),
                count,
                len(images),
                context_tokens,
                text,
                prompt.max_tokens,
            )
        return most_telling(images, count)


def most_telling(images: Sequence[PromptImage], count: int) -> tuple[PromptImage, ...]:
    """Return the count pictures of lowest rank, in their original order."""
    if count >= len(images):
        return tuple(images)
    kept = sorted(range(len(images)), key=lambda index: (images[index].rank, index))[:count]
    return tuple(images[index] for index in sorted(kept))
