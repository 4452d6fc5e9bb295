"""A Home Assistant with the integration, the notification blueprint and a phone that records.

On top of scripts.bench_lib.hass (a real Home Assistant in this process, the integration's entry
as its config flow stores it): HTTP on a free loopback port, so the bus events carry the signed
picture URLs a phone loads; the detector stub (scripts.bench_lib.stubs, its own process), which
finds one person in every upload; an LLM: none (llm_url "": the heuristic only), the instant
LLM stub, or a real llama-server on the tiny random-weight model the tests write
(tests/llama.py); a companion-app phone (a mobile_app device and the notify action the app
registers, notify.mobile_app_bench_phone) whose calls are recorded; and an automation made from
the copied notification blueprint, as tests/integration/test_blueprints.py makes it.
"""

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field
import os
from pathlib import Path
import shutil
import socket
import sys
import tempfile
from types import MappingProxyType
from typing import Any

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.setup import async_setup_component
import pytest

from custom_components.ai_security.const import DOMAIN
from custom_components.ai_security.hub import EVENT_SECURITY, EVENT_UPDATED, SIGNAL_DETECTIONS
from scripts.bench_lib.cli import Child
from scripts.bench_lib.hass import (
    BenchSetupError,
    add_entry,
    start_home_assistant,
    stop_home_assistant,
)
from tests.llama import LlamaServer, write_tiny_gguf
from tests.programs import require_program

from .record import Incident, Record

BLUEPRINT = "ai_security/notify_security_event.yaml"
"""The notification blueprint, as the integration copies it into <config>/blueprints/automation."""
PHONE_NAME = "Bench Phone"
PHONE_SERVICE = "mobile_app_bench_phone"
"""The notify action the companion app registers for a phone of that name."""
AUTOMATION = "automation.security_alerts"
WARM_UP_SECONDS = 60
LLMS = {
    "none": "none (heuristic)",
    "stub": "LLM stub (instant)",
    "llama": "llama-server, tiny random model",
}


def say(message: str) -> None:
    """Print a progress line (stderr, so stdout carries only the report)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@dataclass(kw_only=True, slots=True)
class Home:
    """A running Home Assistant of the benchmark, its model servers and its record."""

    hass: HomeAssistant
    work: str
    """A temporary folder for camera folders (removed afterwards)."""
    record: Record
    base_url: str
    detector_url: str
    llm_url: str
    llama: LlamaServer | None = None
    entries: list[ConfigEntry] = field(default_factory=list)

    def llama_cpu_seconds(self) -> float | None:
        """Return the CPU time llama-server has used so far (None without one)."""
        pid = self.llama.pid if self.llama is not None else None
        if pid is None:
            return None
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def add_hub(self, camera_root: str, options: dict[str, Any]) -> ConfigEntry:
        """Add an entry of the integration on camera_root and follow its detections."""
        entry = await add_entry(
            self.hass,
            camera_root=camera_root,
            detector_url=self.detector_url,
            llm_url=self.llm_url,
            llm_api="llama_cpp",
            options=options,
        )
        self.entries.append(entry)
        entry.async_on_unload(
            async_dispatcher_connect(
                self.hass,
                SIGNAL_DETECTIONS.format(entry.entry_id),
                self.record.detections_of(entry.entry_id),
            )
        )
        return entry

    async def warm_up(
        self, entry: ConfigEntry, uploads: list[tuple[str, bytes]], idle: float
    ) -> list[str]:
        """Make cameras known with one upload each; return their ids once those incidents closed.

        A camera is known long before anyone visits it: its device and entities exist, so the
        automation can name them. The warm-up incidents open, and close after the idle timeout,
        before the automation exists and anything is measured. Their end is not waited for: it
        is announced with their last judgement, which an LLM answering garbage holds back by
        its retries (tens of seconds), while the next detection opens a new incident already.
        """

        def write_all() -> None:
            for path, content in uploads:
                with open(path, "wb") as file:
                    file.write(content)

        await self.hass.async_add_executor_job(write_all)

        def ours() -> list[Incident]:
            return [i for i in self.record.incidents.values() if i.entry_id == entry.entry_id]

        if not await self.record.wait(lambda: len(ours()) >= len(uploads), WARM_UP_SECONDS):
            raise BenchSetupError(
                f"the warm-up uploads did not each open an incident within {WARM_UP_SECONDS} s"
                f" ({len(ours())} of {len(uploads)} opened)"
            )
        await asyncio.sleep(2 * idle)
        return sorted({incident.camera_id for incident in ours()})

    async def alert_phone(self, cameras: list[tuple[ConfigEntry, str]]) -> None:
        """Add the phone and the blueprint's automation for cameras: every level, no cooldown.

        Minimum level low, so every incident matches; cooldown 0, so each incident is sent (a
        cooldown would hide a second incident of one visit instead of showing it).
        """
        phone = _add_phone(self.hass, self.record)
        entities = [_camera_event_entity(self.hass, entry, camera) for entry, camera in cameras]
        inputs = {
            "cameras": entities,
            "min_level": "low",
            "cooldown": 0,
            "notify_devices": [phone],
        }
        automation = {
            "alias": "Security alerts",
            "use_blueprint": {"path": BLUEPRINT, "input": inputs},
        }
        if not await async_setup_component(self.hass, "automation", {"automation": [automation]}):
            raise BenchSetupError("the automation component did not set up")
        await self.hass.async_block_till_done()
        state = self.hass.states.get(AUTOMATION)
        if state is None or state.state != "on":
            found = state.state if state is not None else "missing"
            raise BenchSetupError(f"the notification blueprint's automation is not on: {found}")


@contextlib.asynccontextmanager
async def home(llm: str, *, confidence: float) -> AsyncIterator[Home]:
    """Yield a started Home Assistant with HTTP, the detector stub and llm; then take it down."""
    work = tempfile.mkdtemp(prefix="bench_alerts_")
    children: list[Child] = []
    llama: LlamaServer | None = None
    hass: HomeAssistant | None = None
    made: Home | None = None
    try:
        detector = await Child.start(
            "detector stub", "scripts.bench_lib.stubs", "detector", f"--confidence={confidence}"
        )
        children.append(detector)
        llm_url = ""
        if llm == "stub":
            stub = await Child.start("LLM stub", "scripts.bench_lib.stubs", "llm")
            children.append(stub)
            llm_url = f"http://127.0.0.1:{await stub.expect('PORT', 30)}"
        elif llm == "llama":
            say("starting llama-server on the tiny random model")
            llama = await _start_llama(Path(work, "llama"))
            llm_url = llama.url
        detector_url = f"http://127.0.0.1:{await detector.expect('PORT', 30)}"
        say("starting Home Assistant")
        config_dir = os.path.join(work, "config")
        os.makedirs(config_dir)
        hass = await start_home_assistant(config_dir, [work])
        base_url = await _serve_http(hass)
        record = Record()
        hass.bus.async_listen(EVENT_SECURITY, record.on_event)
        hass.bus.async_listen(EVENT_UPDATED, record.on_update)
        made = Home(
            hass=hass,
            work=work,
            record=record,
            base_url=base_url,
            detector_url=detector_url,
            llm_url=llm_url,
            llama=llama,
        )
        yield made
    finally:
        say("shutting down")
        if hass is not None:
            await _shut_down(hass, made.entries if made is not None else [])
        for child in reversed(children):
            await child.stop()
        if llama is not None:
            await asyncio.to_thread(llama.stop)
        await asyncio.to_thread(shutil.rmtree, work, True)


async def _start_llama(folder: Path) -> LlamaServer:
    """Start a real llama-server on the tests' tiny random-weight model, written in folder."""

    def start() -> LlamaServer:
        try:
            program = require_program("llama-server")
            folder.mkdir()
            server = LlamaServer(
                program=program, model=folder / "tiny-random-llama.gguf", workdir=folder
            )
            write_tiny_gguf(server.model)
            server.start()
        except (pytest.fail.Exception, pytest.skip.Exception) as err:
            raise BenchSetupError(f"llama-server did not start: {err}") from None
        return server

    return await asyncio.to_thread(start)


async def _serve_http(hass: HomeAssistant) -> str:
    """Serve Home Assistant's HTTP on a free loopback port; return its base URL.

    Before the integration (which depends on http and would otherwise take port 8123 on every
    address): the signed picture URLs in the bus events exist only when HTTP is set up, and a
    phone (here the benchmark) loads them from the server.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    config = {"http": {"server_host": ["127.0.0.1"], "server_port": port}}
    if not await async_setup_component(hass, "http", config):
        raise BenchSetupError(f"Home Assistant's HTTP server did not set up on port {port}")
    # It serves once the frontend is set up (or at start, which has passed): start it now.
    await hass.http.start()
    return f"http://127.0.0.1:{port}"


def _add_phone(hass: HomeAssistant, record: Record) -> str:
    """Add a companion-app phone whose notify action records each call; return its device id.

    The mobile_app entry is only registered (as Home Assistant's test helper MockConfigEntry
    does), not set up: the phone's device needs an entry, and its notify action is ours.
    """
    app_entry = ConfigEntry(
        data={},
        discovery_keys=MappingProxyType({}),
        domain="mobile_app",
        minor_version=1,
        options={},
        source=config_entries.SOURCE_USER,
        subentries_data=None,
        title=PHONE_NAME,
        unique_id="bench-phone",
        version=1,
    )
    hass.config_entries._entries[app_entry.entry_id] = app_entry  # noqa: SLF001
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=app_entry.entry_id,
        identifiers={("mobile_app", "bench-phone")},
        name=PHONE_NAME,
    )
    hass.services.async_register("notify", PHONE_SERVICE, record.on_notify)
    return device.id


def _camera_event_entity(hass: HomeAssistant, entry: ConfigEntry, camera_id: str) -> str:
    """Return the entity id of a camera's Security event entity (the blueprint's input)."""
    found = er.async_get(hass).async_get_entity_id(
        "event", DOMAIN, f"{entry.entry_id}_{camera_id}_security_event"
    )
    if found is None:
        raise BenchSetupError(f"camera {camera_id} has no Security event entity")
    return found


async def _shut_down(hass: HomeAssistant, entries: list[ConfigEntry]) -> None:
    """Unload the entries (their watcher and database threads end), then stop Home Assistant."""
    for entry in entries[:-1]:
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await stop_home_assistant(hass, entries[-1] if entries else None)
