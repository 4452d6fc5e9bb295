"""A throw-away PostgreSQL server for --database postgresql (the lab carries its binaries).

Initialised in a temporary folder and served on 127.0.0.1 with PostgreSQL's default durability
(fsync and synchronous_commit on), as a user's server would run; as root (the lab) it runs as the
'postgres' user, which PostgreSQL insists on.
"""

from collections.abc import Iterator
import contextlib
from dataclasses import dataclass
import glob
import os
import random
import shutil
import subprocess
import tempfile
import time

_BIN_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/local/opt/postgresql*/bin")


@dataclass(frozen=True, slots=True)
class Postgres:
    """Where the server listens and the database made for the run."""

    port: int
    database: str

    @property
    def url(self) -> str:
        """Return the database URL the integration takes in its options."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"


def _program(name: str) -> str:
    if found := shutil.which(name):
        return found
    for pattern in _BIN_DIRS:
        for candidate in sorted(glob.glob(os.path.join(pattern, name)), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    raise FileNotFoundError(f"{name} (PostgreSQL) is not installed; run scripts/setup")


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - our own arguments


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """Run a PostgreSQL server with an empty database 'bench' for the block, then remove it."""
    initdb = _program("initdb")
    bindir = os.path.dirname(initdb)
    workdir = tempfile.mkdtemp(prefix="ai_security_bench_pg_")
    data, sockets = os.path.join(workdir, "data"), os.path.join(workdir, "run")
    os.mkdir(sockets)
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres")
        shutil.chown(sockets, "postgres")
    server: subprocess.Popen[bytes] | None = None
    try:
        _run(_as_postgres([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]))
        for _attempt in range(10):
            port = random.randint(20000, 60000)  # noqa: S311 - a port, not a secret
            server = subprocess.Popen(  # noqa: S603 - our own arguments
                _as_postgres(
                    [
                        os.path.join(bindir, "postgres"),
                        *("-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", sockets),
                    ]
                ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if _ready(server, os.path.join(bindir, "pg_isready"), port):
                break
            server.wait()
            server = None
        else:
            raise RuntimeError("PostgreSQL did not start on any of 10 random ports")
        _run(
            [
                os.path.join(bindir, "psql"),
                *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres"),
                *("-q", "-c", "CREATE DATABASE bench"),
            ]
        )
        yield Postgres(port=port, database="bench")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _ready(server: subprocess.Popen[bytes], pg_isready: str, port: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        probe = subprocess.run(  # noqa: S603 - our own arguments
            [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(port)], check=False
        )
        if probe.returncode == 0:
            return True
        time.sleep(0.1)
    return False
