"""Reachability probes for the model servers: the detector's /health (an LLM's: its provider).

The config flow uses them to reject a wrong URL while the user is still looking at the form, and
setup uses them to retry later instead of starting a pipeline whose servers are down.
"""

from collections.abc import Mapping
import json
from typing import Final

import aiohttp
from yarl import URL

PROBE_TIMEOUT: Final = 10.0
"""Seconds a probe may take; a server that does not answer /health this fast is not usable."""


class InvalidUrlError(ValueError):
    """The text given as a server URL is not an http(s) URL with a host."""


class ServiceUnavailableError(Exception):
    """The server did not answer its health route, or answered that it is not ready."""


def normalize_url(text: str) -> str:
    """Return the URL as stored: http(s) with a host, no trailing slash, query or fragment.

    Raises InvalidUrlError for anything else, so a typo is caught before it is saved.
    """
    text = text.strip()
    try:
        url = URL(text)  # also rejects out-of-range ports and broken IPv6 literals
    except ValueError as err:
        raise InvalidUrlError(text) from err
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise InvalidUrlError(text)
    return str(url).rstrip("/")


def redact_url(url: str) -> str:
    """Return url without user name and password, for logs, errors and diagnostics."""
    try:
        parsed = URL(url)
    except ValueError:
        return "<invalid url>"
    if parsed.user is None and parsed.password is None:
        return url
    return str(parsed.with_user(None))


async def get_json(session: aiohttp.ClientSession, url: str, time_limit: float) -> object:
    """GET url and return its JSON body (None when the body is not JSON).

    Raises ServiceUnavailableError for connection errors, time-outs and non-2xx answers.
    """
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=time_limit)) as response:
            body = await response.text()
            if response.status >= 300:
                raise ServiceUnavailableError(f"HTTP {response.status} from {redact_url(url)}")
    except TimeoutError as err:
        raise ServiceUnavailableError(
            f"no answer from {redact_url(url)} within {time_limit:g} s"
        ) from err
    except aiohttp.ClientError as err:
        raise ServiceUnavailableError(f"{redact_url(url)}: {err}") from err
    try:
        return json.loads(body)
    except ValueError:
        return None


def queue_depth_of(report: Mapping[str, object]) -> int | None:
    """Return the images waiting for the detector's model, as its /health says in queue_depth.

    None when the answer has no such count (an older or another server): no figure, not zero.
    """
    depth = report.get("queue_depth")
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= 0:
        return depth
    return None


async def probe_detector(
    session: aiohttp.ClientSession, base_url: str, *, time_limit: float = PROBE_TIMEOUT
) -> dict[str, object]:
    """Check the detector server's GET /health and return what it reported.

    A server that answers 2xx is usable even while it loads its model ("loading"); one that
    reports status "error" is not.
    """
    payload = await get_json(session, f"{base_url}/health", time_limit)
    report = payload if isinstance(payload, dict) else {}
    if report.get("status") == "error":
        detail = report.get("error") or report.get("detail") or "status error"
        raise ServiceUnavailableError(f"detector reports an error: {detail}")
    return report
