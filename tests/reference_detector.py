"""The reference detection server (scripts/detection_server) as a real process for tests.

Why a process and not the app in the test's loop: that is how users run it, its model loads on
its own threads (torch, OpenCV), and a crash or a hang in it must not take the test run down.
The server logs "listening on" once bound and "ready" once its model answers; start() waits for
both by reading its log, without a Python socket (the Home Assistant test harness blocks those
outside socket_enabled, and module fixtures start servers outside any test).

Test images are made here too: a 1280x720 scene with the astronaut photo that ships inside
scikit-image (a real person, no download), and the hostile uploads of the bad-input tests.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
import io
import os
from pathlib import Path
import random
import struct
import subprocess
import sys
import time
import zlib

from PIL import Image
import pytest

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0


@dataclass
class ReferenceDetector:
    """One server process: its command line options, port and log."""

    workdir: Path
    options: list[str]
    port: int = 0
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Return the base URL."""
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the server's log file."""
        return self.workdir / "detection-server.log"

    @property
    def running(self) -> bool:
        """Return whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """Return the whole log."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the log, for failure messages."""
        return "\n".join(self.log().splitlines()[-lines:])

    def start(self, *, wait_ready: bool = True) -> None:
        """Start on a random free port (retried when taken); wait until bound (and ready)."""
        for _attempt in range(10):
            port = random.randint(20000, 60000)  # noqa: S311 - not cryptography
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "scripts.detection_server",
                        "--host",
                        HOST,
                        "--port",
                        str(port),
                        *self.options,
                    ],
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "INFO"},
                )
            outcome = self._wait_for(offset, f"listening on http://{HOST}:{port}")
            if outcome == "found":
                self.port = port
                break
            self.stop()
            if outcome != "bind":
                pytest.fail(f"the detection server did not start:\n{self.log_tail()}")
        else:
            pytest.fail(f"no free port for the detection server:\n{self.log_tail()}")
        if wait_ready and self._wait_for(offset, " ready on ") != "found":
            pytest.fail(f"the detection server's model did not load:\n{self.log_tail()}")

    def _wait_for(self, offset: int, text: str) -> str:
        """Return "found" once text is in the log, "bind" or "exited" when the process ended."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                output = log.read().decode(errors="replace")
            if text in output:
                return "found"
            if "failed to load" in output:
                return "exited"
            if self._process.poll() is not None:
                return "bind" if "could not bind" in output else "exited"
            time.sleep(0.05)
        return "timeout"

    def stop(self) -> int | None:
        """Send SIGTERM and reap the process (killed after STOP_TIMEOUT); return its status."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
        try:
            return process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - only when the server hangs
            process.kill()
            return process.wait()


def reference_detector(
    workdir: Path, *options: str, wait_ready: bool = True
) -> Iterator[ReferenceDetector]:
    """Yield a started server with options; stop it afterwards (for fixtures)."""
    server = ReferenceDetector(workdir=workdir, options=list(options))
    server.start(wait_ready=wait_ready)
    try:
        yield server
    finally:
        server.stop()


# --- images ---------------------------------------------------------------------------------------

CANVAS = (1280, 720)
ASTRONAUT_PERSON = (18, 12, 365, 512)
"""The person's box (left, top, right, bottom) in skimage.data.astronaut()'s 512x512 pixels."""


def astronaut() -> Image.Image:
    """Return the astronaut photo that ships inside scikit-image (Eileen Collins, NASA)."""
    from skimage import data  # noqa: PLC0415 - heavy, and only the image tests need it

    return Image.fromarray(data.astronaut())


def astronaut_scene(
    size: int = 160, at: tuple[int, int] = (600, 400), scale: int = 1
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Return the photo, size px tall, on a plain 1280x720 canvas (times scale), and its person box.

    The box is [x, y, w, h] of the person in the returned image's pixels.
    """
    side = size * scale
    photo = astronaut().resize((side, side), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (CANVAS[0] * scale, CANVAS[1] * scale), (90, 110, 90))
    x0, y0 = at[0] * scale, at[1] * scale
    canvas.paste(photo, (x0, y0))
    k = side / 512
    left, top, right, bottom = ASTRONAUT_PERSON
    return canvas, (x0 + left * k, y0 + top * k, (right - left) * k, (bottom - top) * k)


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    """Return image encoded in fmt."""
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def with_exif_rotation(image: Image.Image, fmt: str = "JPEG") -> bytes:
    """Return a JPEG whose pixels are image turned 90 degrees left, tagged to be shown upright.

    EXIF orientation 6 means "rotate 90 degrees clockwise to display": a viewer (and the
    server) shows exactly image again; a server that ignores the tag sees it on its side.
    PNG (its eXIf chunk) keeps the pixels exact; JPEG is what cameras write.
    """
    stored = image.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, fmt, exif=exif.tobytes())


def iou(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float:
    """Return the intersection over union of two [x, y, w, h] boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """Return a valid 1-bit PNG of width x height black pixels: about 100 KB, 900 megapixels.

    Written chunk by chunk (Pillow would need the whole image in memory to write it).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    parts = [packer.compress(row * 1000) for _ in range(height // 1000)]
    parts.append(packer.compress(row * (height % 1000)))
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
