"""The detector endpoints as a pool that also remembers which servers send boxes that make no sense.

Choosing an endpoint (least in flight, a breaker each) is the generic pool's job
(endpoint_pool); a detector's reply can moreover be well-formed and still absurd (boxes outside
the image, in the wrong units), which the pool keeps per endpoint so the user is warned once and
told when it is over.
"""

from collections.abc import Callable, Sequence
import logging
import time

from .endpoint_pool import EndpointPool

_LOGGER = logging.getLogger(__name__)


class DetectorPool(EndpointPool):
    """The configured detector URLs, each with its breaker, in-flight count and plausibility.

    Not thread-safe: use it from the event loop.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        failure_threshold: int,
        reset_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the pool of detector URLs (see EndpointPool); nothing is implausible yet."""
        super().__init__(
            urls,
            service="Detector",
            failure_threshold=failure_threshold,
            reset_timeout=reset_timeout,
            clock=clock,
        )
        self.implausible: dict[str, str] = {}
        """Endpoints (redacted URL) whose latest reply with boxes made no sense, and why."""

    def note_plausibility(self, endpoint: str, problem: str | None, answered: bool) -> None:
        """Warn once when an endpoint's replies stop making sense, and say when they do again.

        Only a reply with boxes can show either way: an empty one leaves the verdict as it was.
        """
        if problem is not None:
            if self.implausible.get(endpoint) != problem:
                _LOGGER.warning(
                    "Detector %s sent boxes that make no sense for the image: %s. Its replies "
                    "are refused, and the images wait, until they fit the image",
                    endpoint,
                    problem,
                )
            self.implausible[endpoint] = problem
        elif answered and self.implausible.pop(endpoint, None) is not None:
            _LOGGER.info("Detector %s sends plausible boxes again", endpoint)
