"""The real programs the lab provides (ffmpeg, llama-server, PostgreSQL), found or required.

Outside CI a missing program skips the test that needs it, with the reason in pytest's summary;
with CI=true it fails the test, so CI can never pass on a lab that lacks one.
"""

from collections.abc import Iterator
from dataclasses import dataclass
import glob
import os
from pathlib import Path
import random
import shutil
import subprocess
import tempfile
import time

import pytest


def in_ci() -> bool:
    """Return whether the run is CI's, where every real program must be present."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    """Fail in CI, skip elsewhere, because a real program the test drives is not installed."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: real programs must be present; run scripts/setup)")
    pytest.skip(reason)


def require_program(name: str, *extra_dirs: str) -> str:
    """Return the path of program name, looking on PATH and then in extra_dirs (glob patterns)."""
    if found := shutil.which(name):
        return found
    for pattern in extra_dirs:
        for candidate in sorted(glob.glob(os.path.join(pattern, name)), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    missing(f"{name} is not installed")
    raise AssertionError("unreachable")  # pragma: no cover - missing() raises


@dataclass(frozen=True, kw_only=True)
class PostgresServer:
    """A throw-away PostgreSQL server for one test session."""

    host: str
    port: int
    user: str
    database: str

    @property
    def dsn(self) -> str:
        """Return a libpq connection string."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: when root (as in the lab), run it as 'postgres'."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:  # pragma: no cover - util-linux is part of every Debian
        missing("runuser is needed to start PostgreSQL as root")
    return [str(runuser), "-u", "postgres", "--", *command]


def _wait_until_ready(server: subprocess.Popen[bytes], pg_isready: str, port: int) -> bool:
    """Return True once PostgreSQL accepts connections, False when it exited (port taken)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        ready = subprocess.run([pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False)
        if ready.returncode == 0:
            return True
        time.sleep(0.1)
    server.terminate()
    return False


def start_postgres() -> Iterator[PostgresServer]:
    """Initialise a cluster in a temporary folder, serve it on 127.0.0.1, remove it afterwards."""
    bin_dirs = ("/usr/lib/postgresql/*/bin", "/usr/local/opt/postgresql*/bin")
    initdb = require_program("initdb", *bin_dirs)
    postgres = require_program("postgres", str(Path(initdb).parent))
    workdir = Path(tempfile.mkdtemp(prefix="ai_security_pg_"))
    data, sockets = workdir / "data", workdir / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    subprocess.run(
        _as_postgres_user(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )
    # A random port, retried when taken: probing for a free one would need a Python socket,
    # which the Home Assistant test harness blocks outside a test's own socket_enabled scope.
    pg_isready = shutil.which("pg_isready") or str(Path(initdb).parent / "pg_isready")
    log_path = workdir / "postgres.log"
    server, port = None, 0
    for _attempt in range(10):
        port = random.randint(20000, 60000)  # noqa: S311 - not cryptography
        with log_path.open("ab") as log:
            server = subprocess.Popen(
                _as_postgres_user(
                    [
                        postgres,
                        "-D",
                        str(data),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                        "-k",
                        str(sockets),
                        "-c",
                        "fsync=off",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_until_ready(server, pg_isready, port):
            break
        server.wait()
    else:
        log_text = log_path.read_text(errors="replace")
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{log_text}")
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", database="postgres")
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when PostgreSQL hangs
            server.kill()
            server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
