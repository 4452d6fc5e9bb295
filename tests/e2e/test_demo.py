"""The live demo (scripts/develop's scripts.demo.run) from nothing, as a newcomer starts it.

A process runs the demo on a fresh configuration folder with free ports: the detection server,
Home Assistant, the onboarding, the config flow, the dashboard and the feeder. The test logs in
with the demo's printed credentials and waits until the feeder's uploads are events scored by
the heuristic (no LLM model given); then Ctrl-C must stop every process the demo started.
"""

import asyncio
import json
import os
from pathlib import Path
import random
import signal
import sys

import aiohttp
import pytest

from scripts.demo import hass_api
from scripts.demo.run import DASHBOARD, PASSWORD, USERNAME
from tests.live_hass import CONFIGURATION, REPO
from tests.llama import write_tiny_gguf
from tests.llama_vision import write_tiny_mmproj
from tests.programs import require_program

pytestmark = pytest.mark.slow


async def test_demo_sets_everything_up_and_ctrl_c_stops_it(
    tmp_path: Path, socket_enabled: None
) -> None:
    """Events appear within a minute of the first start; SIGINT ends it all; a rerun reuses it."""
    config = tmp_path / "config"
    config.mkdir()
    port, detector_port = random.sample(range(20000, 60000), 2)
    (config / "configuration.yaml").write_text(
        CONFIGURATION.format(cameras=config / "cameras", port=port)
    )
    log = (tmp_path / "demo.log").open("wb")
    arguments = [
        sys.executable,
        "-m",
        "scripts.demo.run",
        "--config",
        str(config),
        "--port",
        str(port),
        "--detector-port",
        str(detector_port),
        "--interval",
        "2",
    ]
    demo = await asyncio.create_subprocess_exec(
        *arguments,
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await hass_api.wait_until_up(http, base_url, 300)
            # Set up through the APIs by the demo: wait until its user can log in.
            session = None
            for _attempt in range(240):
                assert demo.returncode is None, (tmp_path / "demo.log").read_text()
                try:
                    session = await hass_api.log_in(
                        http, base_url, username=USERNAME, password=PASSWORD
                    )
                    if await hass_api.entries(http, session):
                        break
                except hass_api.SetupError, aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
            assert session is not None
            (entry,) = await hass_api.entries(http, session)
            ws, connection = await hass_api.websocket(http, session)
            try:
                events: list[dict[str, object]] = []
                for _attempt in range(240):
                    cameras = (await ws.command({"type": "ai_security/cameras"}))["cameras"]
                    if len(cameras) < 3:  # the hub is still loading
                        await asyncio.sleep(0.5)
                        continue
                    found = await ws.command(
                        {
                            "type": "execute_script",
                            "sequence": [
                                {
                                    "action": "ai_security.search_events",
                                    "data": {"config_entry_id": entry["entry_id"]},
                                    "response_variable": "found",
                                },
                                {"stop": "done", "response_variable": "found"},
                            ],
                        }
                    )
                    events = found["response"]["events"]
                    if len(cameras) == 3 and events:
                        break
                    await asyncio.sleep(0.5)
                assert sorted(camera["name"] for camera in cameras) == [
                    "Driveway",
                    "Front Door",
                    "Garden",
                ]
                assert events, "no event within two minutes"
                assert {event["source"] for event in events} == {"heuristic"}
                dashboards = await ws.command({"type": "lovelace/dashboards/list"})
                assert DASHBOARD in [item["url_path"] for item in dashboards]
                saved = await ws.command({"type": "lovelace/config", "url_path": DASHBOARD})
                assert saved["views"][0]["cards"][0]["type"] == "custom:ai-security-card"
            finally:
                await connection.close()
    finally:
        if demo.returncode is None:
            demo.send_signal(signal.SIGINT)
        status = await asyncio.wait_for(demo.wait(), 90)
        log.close()
    text = (tmp_path / "demo.log").read_text()
    assert status == 0, text
    assert "no LLM model given" in text
    assert f"log in as {USERNAME!r} with {PASSWORD!r}" in text
    # Every child is gone: nothing answers on the demo's ports any more.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        for url in (f"{base_url}/api/", f"http://127.0.0.1:{detector_port}/health"):
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.get(url)

    # Started again, it reuses everything: no second onboarding, entry or dashboard.
    again = await asyncio.create_subprocess_exec(
        *arguments,
        "--exit-after-setup",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(again.communicate(), 300)
    text = output.decode()
    assert again.returncode == 0, text
    assert "open http" in text
    assert "onboarding with the user" not in text
    assert "adding the AI Security integration" not in text
    entries = (config / ".storage" / "core.config_entries").read_text()
    assert entries.count('"domain":"ai_security"') + entries.count('"domain": "ai_security"') == 1


async def test_demo_with_a_model_starts_llama_server_and_uses_it(
    tmp_path: Path, socket_enabled: None
) -> None:
    """AI_SECURITY_LLM_MODEL and _MMPROJ: llama-server sees, and the hub is set up with it.

    The demo starts llama-server on the model with its vision projector, and adds Home
    Assistant's llama.cpp conversation agent on it with the AI Security tools ticked.
    """
    require_program("llama-server")
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    mmproj = write_tiny_mmproj(tmp_path / "tiny-mmproj.gguf")
    config = tmp_path / "config"
    config.mkdir()
    port, detector_port, llm_port = random.sample(range(20000, 60000), 3)
    (config / "configuration.yaml").write_text(
        CONFIGURATION.format(cameras=config / "cameras", port=port)
    )
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scripts.demo.run",
        "--config",
        str(config),
        "--port",
        str(port),
        "--detector-port",
        str(detector_port),
        "--llm-port",
        str(llm_port),
        "--exit-after-setup",
        "1",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={
            **os.environ,
            "AI_SECURITY_LLM_MODEL": str(model),
            "AI_SECURITY_LLM_MMPROJ": str(mmproj),
        },
    )
    output, _ = await asyncio.wait_for(demo.communicate(), 300)
    text = output.decode()
    assert demo.returncode == 0, text
    assert (
        f"llama-server with {model} and its vision projector on http://127.0.0.1:{llm_port}" in text
    )
    log = (config / "demo" / "llama-server.log").read_text(errors="replace")
    assert f"loaded multimodal model, '{mmproj}'" in log
    assert "no LLM model given" not in text
    entries = json.loads((config / ".storage" / "core.config_entries").read_text())
    (entry,) = [item for item in entries["data"]["entries"] if item["domain"] == "ai_security"]
    assert entry["data"]["llm_urls"] == [f"http://127.0.0.1:{llm_port}"]
    # Home Assistant's own llama.cpp agent on the same server, the cameras' tools ticked.
    (agent,) = [item for item in entries["data"]["entries"] if item["domain"] == "llama_cpp"]
    assert agent["data"]["base_url"] == f"http://127.0.0.1:{llm_port}/v1"
    (conversation,) = agent["subentries"]
    assert conversation["data"]["llm_hass_api"] == ["assist", "ai_security"]


async def test_demo_moves_home_assistant_to_loopback(tmp_path: Path, socket_enabled: None) -> None:
    """A configuration whose Home Assistant listens on every interface is moved to 127.0.0.1.

    Home Assistant reads configuration.yaml's http: section once, so a configuration folder made
    before it said server_host keeps listening everywhere; the demo, whose login is published,
    sets 127.0.0.1 through Home Assistant's API, starts it again on it and keeps it.
    """
    config = tmp_path / "config"
    config.mkdir()
    port, detector_port = random.sample(range(20000, 60000), 2)
    everywhere = CONFIGURATION.replace("  server_host: 127.0.0.1\n", "")
    assert "server_host" not in everywhere
    (config / "configuration.yaml").write_text(
        everywhere.format(cameras=config / "cameras", port=port)
    )
    arguments = [
        sys.executable,
        "-m",
        "scripts.demo.run",
        "--config",
        str(config),
        "--port",
        str(port),
        "--detector-port",
        str(detector_port),
        "--exit-after-setup",
        "1",
    ]

    async def demo() -> str:
        process = await asyncio.create_subprocess_exec(
            *arguments, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), 600)
        text = output.decode()
        assert process.returncode == 0, text
        return text

    text = await demo()
    assert "moving it to 127.0.0.1" in text
    assert "listens on 127.0.0.1 only now" in text
    stored = json.loads((config / ".storage" / "http").read_text())["data"]
    assert stored["stable"]["server_host"] == ["127.0.0.1"]
    assert stored["stable"]["server_port"] == port
    assert stored["pending"] is None

    text = await demo()  # started again: it stays on 127.0.0.1 without a restart
    assert "moving it to" not in text
