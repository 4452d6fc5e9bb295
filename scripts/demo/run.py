"""The live demo behind scripts/develop: everything a newcomer needs, started and set up at once.

Starts, in this order, and stops in reverse on Ctrl-C (or SIGTERM):

1. the reference detection server, hog backend (no model to download), on port 8090;
2. llama.cpp's llama-server on port 8080 when AI_SECURITY_LLM_MODEL names a GGUF file;
   otherwise the integration is set up without an LLM and scores events with its heuristic;
3. Home Assistant with the development configuration in config/;
4. on the first start only, through Home Assistant's own APIs (as clicking through the UI would):
   onboarding with a demo user, the integration's config flow, and a "Security" dashboard with
   the card; later starts reuse all of it;
5. the feeder, which writes camera uploads with people into config/cameras/ every few seconds.

Each process's output goes to a log file in config/demo/, so the terminal shows only what a
person needs: where to go, how to log in, and what is running.

Home Assistant listens on 127.0.0.1 only: the demo's login is published. configuration.yaml says
so, and a configuration folder whose Home Assistant stored another HTTP configuration before
(it reads configuration.yaml's http: section only once) is moved to 127.0.0.1 through Home
Assistant's own API.
"""

import argparse
import asyncio
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
import ipaddress
import os
from pathlib import Path
import shutil
import signal
import sys
from typing import Any, TextIO

import aiohttp

from . import hass_api

REPO = Path(__file__).resolve().parents[2]
USERNAME = "demo"
PASSWORD = "ai-security-demo"  # noqa: S105 - the demo's published login, printed at start
DASHBOARD = "ai-security"
LOOPBACK = "127.0.0.1"
_HTTP_META = ("created_at", "error", "error_message")
"""Keys of Home Assistant's stored HTTP configuration that are not settings."""


def _say(message: str) -> None:
    sys.stderr.write(f"demo: {message}\n")
    sys.stderr.flush()


@dataclass
class Child:
    """A process the demo started, with its log."""

    name: str
    process: asyncio.subprocess.Process
    log: TextIO = field(repr=False)

    async def stop(self, grace: float = 20.0) -> None:
        """Ask it to stop (SIGTERM), kill it after grace seconds, and close its log."""
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), grace)
            except TimeoutError:
                with suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        self.log.close()


async def start(name: str, command: list[str], logs: Path, **env: str) -> Child:
    """Start command with its output in logs/<name>.log."""
    log = (logs / f"{name}.log").open("a", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env},
        start_new_session=True,  # Ctrl-C reaches the demo, which stops each child in turn
    )
    return Child(name, process, log)


async def wait_for_json(
    http: aiohttp.ClientSession,
    url: str,
    child: Child,
    ready: Any,
    seconds: float,
) -> dict[str, Any]:
    """Poll url until ready(answer) holds; fail when child exits or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        if child.process.returncode is not None:
            raise hass_api.SetupError(f"{child.name} exited; see its log in config/demo/")
        with suppress(aiohttp.ClientError, ValueError):
            async with http.get(url) as response:
                if response.status == 200:
                    answer = await response.json(content_type=None)
                    if ready(answer):
                        return dict(answer)
        if loop.time() > deadline:
            raise hass_api.SetupError(f"{child.name} did not become ready at {url}")
        await asyncio.sleep(0.5)


async def set_up_home_assistant(
    http: aiohttp.ClientSession,
    base_url: str,
    *,
    cameras: Path,
    detector_url: str,
    llm_url: str,
) -> hass_api.Session | None:
    """Onboard, add the integration and the dashboard, unless an earlier start did.

    Return the demo user's session, or None when Home Assistant was set up with another user.
    """
    if await hass_api.onboarding_done(http, base_url):
        try:
            session = await hass_api.log_in(http, base_url, username=USERNAME, password=PASSWORD)
        except hass_api.SetupError:
            _say(
                "Home Assistant was set up before with another user: the demo leaves it as it "
                "is (delete config/.storage to start the demo afresh)"
            )
            return None
    else:
        _say(f"first start: onboarding with the user {USERNAME!r}")
        session = await hass_api.onboard(
            http, base_url, name="Demo", username=USERNAME, password=PASSWORD
        )
    # An http: section in configuration.yaml is a pending trial until kept (as its dialog asks).
    await hass_api.keep_http_config(http, session)
    if not await hass_api.entries(http, session):
        _say("adding the AI Security integration through its config flow")
        await hass_api.add_entry(
            http,
            session,
            {
                "name": "Home",
                "camera_root": str(cameras),
                "detector_urls": [detector_url],
                "llm_urls": [llm_url] if llm_url else [],
                "llm_api": "llama_cpp",
            },
        )
    if llm_url and not await hass_api.entries(http, session, domain="llama_cpp"):
        # Home Assistant's own llama.cpp agent on the same server, with the cameras' tools
        # ticked beside Assist's: a conversation agent to ask in words (a real model answers
        # sensibly; the tests' tiny one only shows the wiring).
        _say("adding Home Assistant's llama.cpp conversation agent with the AI Security tools")
        await hass_api.add_llama_agent(http, session, f"{llm_url}/v1", ["assist", hass_api.DOMAIN])
    await hass_api.ensure_dashboard(
        http,
        session,
        url_path=DASHBOARD,
        title="Security",
        config=hass_api.CARD_DASHBOARD,
    )
    return session


def active_http_config(state: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the HTTP configuration Home Assistant runs with, from http/config's answer."""
    slot = str(state.get("active_config_type") or "default")
    config = state.get(slot if slot in ("stable", "pending") else "default")
    return config if isinstance(config, Mapping) else {}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listens_beyond_loopback(config: Mapping[str, Any]) -> bool:
    """Return whether an HTTP configuration binds more than loopback (none named: all)."""
    hosts = config.get("server_host") or []
    return not hosts or not all(_is_loopback(str(host)) for host in hosts)


async def _http_state(http: aiohttp.ClientSession, session: hass_api.Session) -> Any:
    ws, connection = await hass_api.websocket(http, session)
    try:
        return await ws.command({"type": "http/config"})
    finally:
        await connection.close()


async def move_to_loopback(http: aiohttp.ClientSession, session: hass_api.Session) -> bool:
    """Have Home Assistant listen on 127.0.0.1 only if it listens on more; True if it must restart.

    Setting the HTTP configuration through Home Assistant's API makes Home Assistant stop with
    its restart exit code (100), to run the new configuration as a trial; start it again, then
    keep the trial as the http: section of configuration.yaml is kept (keep_http_config).
    """
    config = active_http_config(await _http_state(http, session))
    if not listens_beyond_loopback(config):
        return False
    hosts = ", ".join(config.get("server_host") or ["every interface"])
    _say(
        f"Home Assistant listens on {hosts} and the demo's login is published: moving it to "
        f"{LOOPBACK}"
    )
    settings = {key: value for key, value in config.items() if key not in _HTTP_META}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 600
    while True:
        ws, connection = await hass_api.websocket(http, session)
        try:
            await ws.command(
                {"type": "http/config/configure", "config": {**settings, "server_host": [LOOPBACK]}}
            )
        except hass_api.SetupError as err:
            # Refused (not_running) until Home Assistant has finished starting.
            if "not_running" not in str(err) or loop.time() > deadline:
                raise
        else:
            return True
        finally:
            await connection.close()
        await asyncio.sleep(1)


async def start_detector(http: aiohttp.ClientSession, port: int, logs: Path) -> Child:
    """Start the reference detection server (hog backend) and wait until it answers."""
    detector = await start(
        "detector",
        [
            sys.executable,
            "-m",
            "scripts.detection_server",
            "--backend",
            "hog",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        logs,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_json(http, f"{url}/health", detector, lambda h: h["status"] == "ok", 60)
    except BaseException:
        await detector.stop()
        raise
    _say(f"detection server (hog backend) on {url}")
    return detector


async def start_llm(
    http: aiohttp.ClientSession, model: str, port: int, logs: Path, mmproj: str = ""
) -> Child:
    """Start llama-server on model (and its vision projector) and wait until it has loaded it.

    A vision model gets a larger context: each picture costs it tokens beside the text.
    """
    program = shutil.which("llama-server")
    if program is None:
        raise hass_api.SetupError("AI_SECURITY_LLM_MODEL is set but llama-server is missing")
    command = [program, "-m", model, "--host", "127.0.0.1", "--port", str(port)]
    if mmproj:
        command += ["--mmproj", mmproj]
    context = "16384" if mmproj else "4096"
    llm = await start(
        "llama-server", [*command, "-c", context, "--parallel", "2", "-ngl", "99"], logs
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_for_json(http, f"{url}/health", llm, lambda h: h.get("status") == "ok", 600)
    except BaseException:
        await llm.stop()
        raise
    _say(f"llama-server with {model}{' and its vision projector' if mmproj else ''} on {url}")
    return llm


async def start_home_assistant(
    http: aiohttp.ClientSession,
    args: argparse.Namespace,
    children: list[Child],
    *,
    base_url: str,
    detector_url: str,
    llm_url: str,
) -> None:
    """Start Home Assistant (appended to children) and set it up, on 127.0.0.1 only."""
    config = args.config.resolve()
    command = [sys.executable, "-m", "homeassistant", "--config", str(config), *args.hass_args]
    env = {"AI_SECURITY_CAMERA_ROOT": str(config / "cameras")}
    home = await start("home-assistant", command, config / "demo", **env)
    children.append(home)
    _say("Home Assistant is starting (the very first start takes a few minutes)")
    await hass_api.wait_until_up(http, base_url, 900)
    session = await set_up_home_assistant(
        http, base_url, cameras=config / "cameras", detector_url=detector_url, llm_url=llm_url
    )
    if session is None or not await move_to_loopback(http, session):
        return
    await asyncio.wait_for(home.process.wait(), 120)  # it stops with its restart exit code
    home.log.close()
    children.remove(home)
    home = await start("home-assistant", command, config / "demo", **env)
    children.append(home)
    await hass_api.wait_until_up(http, base_url, 900)
    # The trial configuration is kept as the http: section of configuration.yaml is.
    await hass_api.keep_http_config(http, session)
    _say(f"Home Assistant listens on {LOOPBACK} only now")


async def run(args: argparse.Namespace) -> int:
    """Start everything, set it up, and wait for Ctrl-C; return the exit status."""
    config = args.config.resolve()
    cameras = config / "cameras"
    logs = config / "demo"
    cameras.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    model = os.environ.get("AI_SECURITY_LLM_MODEL", "")
    detector_url = f"http://127.0.0.1:{args.detector_port}"
    llm_url = f"http://127.0.0.1:{args.llm_port}" if model else ""
    base_url = f"http://127.0.0.1:{args.port}"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    children: list[Child] = []
    status = 0
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            children.append(await start_detector(http, args.detector_port, logs))
            if model:
                mmproj = os.environ.get("AI_SECURITY_LLM_MMPROJ", "")
                children.append(await start_llm(http, model, args.llm_port, logs, mmproj))
            else:
                _say(
                    "no LLM model given (set AI_SECURITY_LLM_MODEL to a .gguf file): events are "
                    "scored by the integration's heuristic"
                )

            # The feeder writes one round first, so the cameras exist when the hub starts.
            first = await start(
                "feeder",
                [sys.executable, "-m", "scripts.demo.feeder", "--root", str(cameras), "--once"],
                logs,
            )
            await first.process.wait()
            first.log.close()

            await start_home_assistant(
                http, args, children, base_url=base_url, detector_url=detector_url, llm_url=llm_url
            )
            feeder = await start(
                "feeder",
                [
                    sys.executable,
                    "-m",
                    "scripts.demo.feeder",
                    "--root",
                    str(cameras),
                    "--interval",
                    str(args.interval),
                ],
                logs,
            )
            children.append(feeder)
            _say(f"open {base_url}/{DASHBOARD} and log in as {USERNAME!r} with {PASSWORD!r}")
            _say(f"uploads go to {cameras}; logs in {logs}; Ctrl-C stops everything")
            if args.exit_after_setup:
                await asyncio.sleep(args.exit_after_setup)
                return 0
            waits = [asyncio.ensure_future(stop.wait())] + [
                asyncio.ensure_future(child.process.wait()) for child in children
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for pending in waits:
                pending.cancel()
            for child in children:
                if child.process.returncode is not None and not stop.is_set():
                    _say(f"{child.name} exited with status {child.process.returncode}; stopping")
                    status = 1
    except hass_api.SetupError as err:
        _say(f"error: {err}")
        status = 1
    finally:
        _say("stopping")
        for child in reversed(children):
            await child.stop()
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the demo."""
    parser = argparse.ArgumentParser(prog="scripts/develop", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO / "config")
    parser.add_argument(
        "--port",
        type=int,
        default=8123,
        help="the port Home Assistant listens on, as its configuration sets it (default 8123)",
    )
    parser.add_argument("--detector-port", type=int, default=8090)
    parser.add_argument("--llm-port", type=int, default=8080)
    parser.add_argument("--interval", type=float, default=6.0, help="seconds between uploads")
    parser.add_argument(
        "--exit-after-setup",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="stop that many seconds after everything is set up (for tests)",
    )
    parser.add_argument("hass_args", nargs="*", help="more arguments for Home Assistant")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
