"""core.health: URL rules and the probes, on their own (no Home Assistant)."""

import aiohttp
import pytest

from custom_components.ai_security.core.health import (
    InvalidUrlError,
    ServiceUnavailableError,
    normalize_url,
    probe_detector,
    redact_url,
)
from custom_components.ai_security.core.llm_providers import probe_llm
from custom_components.ai_security.core.settings import LlmApi
from tests.servers import ModelServer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
        ("  https://gpu.lan:8443/  ", "https://gpu.lan:8443"),
        ("http://gpu.lan/detector/", "http://gpu.lan/detector"),
        ("http://user:pw@[::1]:8080", "http://user:pw@[::1]:8080"),
    ],
)
def test_normalize_url_accepts(text: str, expected: str) -> None:
    """Usable addresses are stored without surrounding blanks or a trailing slash."""
    assert normalize_url(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gpu.lan:8090",
        "ftp://gpu.lan",
        "http://",
        "http://h:70000",
        "http://[::1",
        "http://h/?a=1",
        "http://h/#top",
    ],
)
def test_normalize_url_rejects(text: str) -> None:
    """Anything but http(s) with a host, no query and no fragment is refused."""
    with pytest.raises(InvalidUrlError):
        normalize_url(text)


def test_redact_url() -> None:
    """Credentials never reach logs, errors or diagnostics."""
    assert redact_url("http://admin:secret@gpu.lan:8080/x") == "http://gpu.lan:8080/x"
    assert redact_url("http://token@gpu.lan") == "http://gpu.lan"
    assert redact_url("http://gpu.lan:8080") == "http://gpu.lan:8080"
    assert redact_url("http://[::1") == "<invalid url>"


async def test_probe_times_out(socket_enabled: None) -> None:
    """A server that accepts but never answers in time counts as unavailable."""
    server = ModelServer(delay=2)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ServiceUnavailableError, match=r"no answer .* within 0\.2 s"):
                await probe_detector(session, server.url, time_limit=0.2)
    finally:
        await server.stop()


async def test_probes_report_what_servers_say(socket_enabled: None) -> None:
    """The detector's and llama.cpp's health reports come back; non-JSON 2xx is an empty report."""
    server = ModelServer(health_body={"status": "loading", "model": "rtdetr"})
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            assert await probe_detector(session, server.url) == {
                "status": "loading",
                "model": "rtdetr",
            }
            server.health_body = "OK"
            assert await probe_llm(session, server.url, LlmApi.LLAMA_CPP) == {}
            models = await probe_llm(session, server.url, LlmApi.OPENAI)
            assert models["data"] == [{"id": "tiny", "object": "model"}]
            server.health_status = 503
            with pytest.raises(ServiceUnavailableError):
                await probe_detector(session, server.url)
    finally:
        await server.stop()


async def test_probes_do_not_hide_bugs(socket_enabled: None) -> None:
    """Only unavailability is reported as ServiceUnavailableError; a programming error raises."""
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(RuntimeError, match="Session is closed"):
        await probe_detector(session, "http://127.0.0.1:1")
