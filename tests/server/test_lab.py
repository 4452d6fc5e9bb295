"""The lab carries the real programs later issues drive: ffmpeg, llama-server and PostgreSQL."""

import subprocess

import psycopg

from tests.programs import PostgresServer, require_program


def test_ffmpeg_runs() -> None:
    """Video key frames come from ffmpeg, so it must be there and run."""
    result = subprocess.run(
        [require_program("ffmpeg"), "-hide_banner", "-version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("ffmpeg version")
    ffprobe = subprocess.run(
        [require_program("ffprobe"), "-version"], capture_output=True, text=True, check=True
    )
    assert ffprobe.stdout.startswith("ffprobe version")


def test_llama_server_runs() -> None:
    """The LLM tests start a real llama-server; its --version must answer."""
    result = subprocess.run(
        [require_program("llama-server"), "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # llama-server prints its version on stderr ("version: 0.7.0 (build ...)").
    assert "version:" in result.stdout + result.stderr


def test_postgres_accepts_queries(postgres_server: PostgresServer) -> None:
    """A PostgreSQL server started for the run accepts connections and SQL."""
    with psycopg.connect(postgres_server.dsn, connect_timeout=10) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int, 6 * 7").fetchone()
    assert row is not None
    version, answer = row
    assert version >= 150000
    assert answer == 42
