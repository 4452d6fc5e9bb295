"""A real Home Assistant process on a real port, for tests that drive it with a real browser.

The usual test harness runs Home Assistant inside pytest without a listening HTTP server and
without the frontend's files; a browser needs both. So this starts `python -m homeassistant`
on a fresh configuration folder with the working tree's integration linked in, waits until it
answers HTTP, and stops it (SIGTERM, then SIGKILL) afterwards, keeping its log for failures.
"""

import asyncio
from dataclasses import dataclass, field
import os
from pathlib import Path
import random
import subprocess
import sys

import aiohttp

REPO = Path(__file__).resolve().parent.parent
FRAME_REPORT = "Detected that custom integration 'ai_security'"

CONFIGURATION = """\
homeassistant:
  name: AI Security test
  time_zone: UTC
  unit_system: metric
  allowlist_external_dirs:
    - {cameras}
http:
  server_host: 127.0.0.1
  server_port: {port}
frontend:
config:
person:
media_source:
logger:
  default: warning
  logs:
    custom_components.ai_security: info
"""


@dataclass
class LiveHomeAssistant:
    """One Home Assistant process serving its frontend on 127.0.0.1."""

    config_dir: Path
    cameras: Path
    port: int = field(default_factory=lambda: random.randint(20000, 60000))  # noqa: S311
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Return the base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the file the process writes its output to."""
        return self.config_dir / "process.log"

    def log_tail(self, lines: int = 60) -> str:
        """Return the end of the log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def frame_reports(self) -> list[str]:
        """Return the log's reports of this integration using an API in a way that will break.

        Home Assistant's frame helper logs them ("Detected that custom integration
        'ai_security' calls ..."); in the test process the harness fails on them, here the
        browser test asks.
        """
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if FRAME_REPORT in line]

    def _prepare(self) -> None:
        self.cameras.mkdir(parents=True, exist_ok=True)
        (self.config_dir / "custom_components").mkdir(parents=True, exist_ok=True)
        link = self.config_dir / "custom_components" / "ai_security"
        if not link.exists():
            link.symlink_to(REPO / "custom_components" / "ai_security")
        (self.config_dir / "configuration.yaml").write_text(
            CONFIGURATION.format(cameras=self.cameras, port=self.port)
        )

    def _spawn(self) -> None:
        self._prepare()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "homeassistant",
                    "--config",
                    str(self.config_dir),
                    "--skip-pip",
                ],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )

    async def start(self, seconds: float = 180.0) -> None:
        """Start the process and wait until its HTTP server answers."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._spawn)
        deadline = loop.time() + seconds
        async with aiohttp.ClientSession() as http:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise AssertionError(f"Home Assistant exited:\n{self.log_tail()}")
                try:
                    async with http.get(f"{self.url}/api/onboarding") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"Home Assistant did not start:\n{self.log_tail()}")
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        """Terminate the process and reap it (killed after 30 s)."""
        process, self._process = self._process, None
        if process is None:
            return

        def reap() -> None:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

        await asyncio.get_running_loop().run_in_executor(None, reap)
