"""Clip metadata from ffprobe and one key frame from ffmpeg, since the detector only sees images.

Both programs run as child processes on the event loop (never a shell, never blocking it), each
under a time limit; a child that overruns or whose caller is cancelled is killed together with
anything it started, and reaped. Every failure becomes a VideoError whose reason is written for
people: it ends up as the last error of a dead-lettered job.
"""

import asyncio
from dataclasses import dataclass
import json
import logging
import math
import os
from pathlib import Path
import re
import signal
from typing import Any, Final

_LOGGER = logging.getLogger(__name__)

PROBE_TIMEOUT: Final = 30.0
"""Seconds ffprobe or ffmpeg may take on one clip before it is considered stuck."""

_JPEG_MAGIC: Final = b"\xff\xd8"
_STDERR_PREFIX: Final = re.compile(r"^(?:\[[^\]]*\]\s*)+")
"""ffmpeg's "[mov,mp4,... @ 0x55d1c2] " context tags, which mean nothing to a user."""
_MAX_REASON: Final = 300

_IMAGE_FORMATS: Final = frozenset({"image2", "image2pipe"})
"""ffprobe reads still images as one-frame videos; these containers (and *_pipe) are images."""


class VideoError(Exception):
    """ffprobe or ffmpeg could not read a clip; reason says why in words a user understands."""

    def __init__(self, reason: str) -> None:
        """Keep reason, which is also the exception's text."""
        super().__init__(reason)
        self.reason = reason


class NoVideoStreamError(VideoError):
    """The file is readable but holds no picture (only sound, or only cover art).

    Nothing is wrong with it and retrying cannot help: there is simply nothing to look at, so the
    pipeline skips it rather than treating it as a failed clip.
    """

    def __init__(self) -> None:
        """Say so in the words every other VideoError uses."""
        super().__init__("no video stream")


@dataclass(frozen=True, kw_only=True, slots=True)
class VideoInfo:
    """What the pipeline needs to know about a clip before taking a frame from it."""

    duration: float
    """Seconds; 0.0 when neither the container nor the stream states it."""
    codec: str
    """ffmpeg's name of the video codec, such as "h264", "hevc" or "mpeg4"."""
    width: int
    """Of the picture as shown: after the rotation ffmpeg applies (see rotation)."""
    height: int
    mime_type: str
    """Derived from the container (and for the MP4/QuickTime family, the file's extension)."""
    rotation: int = 0
    """Degrees clockwise ffmpeg turns the stored picture to show it (0, 90, 180, 270, or another
    angle it turns within the same size); cameras mounted on their side record this way."""


def key_frame_time(duration: float) -> float:
    """Return where to take the frame sent to the detector: 10 % in, at most 1 s in.

    A camera's clip starts when motion starts, so the first second shows what triggered it, while
    the very first frame is often a grey or half-decoded one.
    """
    if not duration > 0:  # also catches NaN
        return 0.0
    return min(1.0, duration / 10)


def mime_type_for(format_name: str, path: str | Path) -> str:
    """Return the MIME type of a clip from ffprobe's format_name and the file's extension.

    ffprobe names the whole MP4 family "mov,mp4,m4a,3gp,3g2,mj2" and Matroska "matroska,webm",
    so the extension decides between the members of a family.
    """
    names = set(format_name.split(","))
    suffix = Path(path).suffix.lower()
    if names & {"mov", "mp4"}:
        return {
            ".mov": "video/quicktime",
            ".qt": "video/quicktime",
            ".3gp": "video/3gpp",
            ".3g2": "video/3gpp2",
        }.get(suffix, "video/mp4")
    if names & {"matroska", "webm"}:
        return "video/webm" if suffix == ".webm" else "video/x-matroska"
    for name, mime_type in (
        ("avi", "video/x-msvideo"),
        ("mpegts", "video/mp2t"),
        ("flv", "video/x-flv"),
        ("h264", "video/h264"),
        ("hevc", "video/h265"),
        ("mjpeg", "video/x-motion-jpeg"),
    ):
        if name in names:
            return mime_type
    return "application/octet-stream"


def _input_arg(path: str | Path) -> str:
    """Return path as ffmpeg's input argument, read as a plain file whatever its name.

    Without "file:" a name starting with "-" would be an option and "rtsp:x.mp4" a protocol.
    """
    return "file:" + os.fspath(path)


def _last_line(stderr: bytes) -> str:
    """Return the last non-empty line ffmpeg printed, without its context tags."""
    for line in reversed(stderr.decode("utf-8", errors="replace").splitlines()):
        if text := _STDERR_PREFIX.sub("", line).strip():
            return text[:_MAX_REASON]
    return "no error message"


def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the child and everything it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the child and its group are already gone
    except PermissionError:  # pragma: no cover - a setuid wrapper; kill what we may
        if process.returncode is None:
            process.kill()


async def _run(
    program: str, binary: str, args: list[str], time_limit: float
) -> tuple[int, bytes, bytes]:
    """Run binary with args; return its exit status, standard output and standard error.

    program ("ffprobe", "ffmpeg") names the binary in error reasons. The child gets its own
    process group, so that on a time-out or a cancellation a wrapper script and whatever it
    started die too and cannot keep the pipes (and the loop's transports) open.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
        where = "" if binary == program else f" ({binary}: {err.strerror})"
        raise VideoError(f"{program} is not installed{where}") from err
    try:
        async with asyncio.timeout(time_limit):
            stdout, stderr = await process.communicate()
    except TimeoutError as err:
        _kill(process)
        await process.wait()
        raise VideoError(f"{program} timed out after {time_limit:g} s") from err
    except BaseException:  # cancelled: leave no child behind, then let the cancellation go on
        _kill(process)
        await asyncio.shield(process.wait())
        raise
    returncode = process.returncode
    if returncode is None:  # pragma: no cover - communicate() returns after the child exited
        returncode = await process.wait()
    return returncode, stdout, stderr


def _read_failure(program: str, path: str | Path, stderr: bytes) -> VideoError:
    """Return the error for a clip the program could not open or decode."""
    if b"matches no streams" in stderr:  # ffmpeg's -map 0:V:0 on a clip without video
        return NoVideoStreamError()
    line = _last_line(stderr)
    if line.endswith("No such file or directory"):
        return VideoError(f"the clip does not exist: {path}")
    if line.endswith("Permission denied"):
        return VideoError(f"{program} may not read the clip: {path}")
    return VideoError(f"corrupt or truncated clip: {line}")


def _number(value: object) -> float | None:
    """Return ffprobe's number (given as text or a number) as a finite float >= 0, else None."""
    number = _signed(value)
    return number if number is not None and number >= 0 else None


def _rotation(video: dict[str, Any]) -> int:
    """Return the degrees clockwise ffmpeg turns the stream's picture to show it, 0 to 359.

    ffmpeg (and so every frame taken here, and every clip cut here) turns the picture upright by
    the stream's display matrix, which ffprobe reports as "rotation" in degrees counterclockwise;
    older ffprobe versions give the MP4 "rotate" tag in degrees clockwise instead. The angle is
    rounded and wrapped as ffmpeg's get_rotation does, so both agree on the frame's size.
    """
    angle: float | None = None
    side_data = video.get("side_data_list")
    for item in side_data if isinstance(side_data, list) else []:
        if isinstance(item, dict) and item.get("side_data_type") == "Display Matrix":
            counterclockwise = _signed(item.get("rotation"))
            if counterclockwise is not None:
                angle = -counterclockwise
            break
    if angle is None:
        tags = video.get("tags")
        angle = _signed(tags.get("rotate")) if isinstance(tags, dict) else None
    if angle is None:
        return 0
    # C's round(): halves away from zero (Python's round() would send 0.5 to 0).
    whole = math.copysign(math.floor(abs(angle) + 0.5), angle)
    return int(whole - 360 * math.floor(whole / 360 + 0.9 / 360)) % 360


def _signed(value: object) -> float | None:
    """Return ffprobe's number (text or a number, negative allowed) as a finite float, else None."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_probe(path: str | Path, output: bytes) -> VideoInfo:
    """Turn ffprobe's JSON into VideoInfo, using the first video stream that is not cover art."""
    try:
        report = json.loads(output)
    except ValueError as err:
        raise VideoError("ffprobe printed something that is not JSON") from err
    if not isinstance(report, dict):
        raise VideoError("ffprobe printed something that is not JSON")
    container = report.get("format")
    container = container if isinstance(container, dict) else {}
    format_name = str(container.get("format_name") or "")
    if format_name in _IMAGE_FORMATS or format_name.endswith("_pipe"):
        raise VideoError(f"not a video clip but a still image ({format_name})")
    streams = report.get("streams")
    video = next(
        (
            stream
            for stream in (streams if isinstance(streams, list) else [])
            if isinstance(stream, dict)
            and stream.get("codec_type") == "video"
            and not (stream.get("disposition") or {}).get("attached_pic")
        ),
        None,
    )
    if video is None:
        raise NoVideoStreamError
    width, height = video.get("width"), video.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        raise VideoError("the video stream has no picture size")
    rotation = _rotation(video)
    if rotation in {90, 270}:  # turned on its side: what is shown is as wide as it is stored high
        width, height = height, width
    duration = _number(container.get("duration"))
    if duration is None:
        duration = _number(video.get("duration"))
    return VideoInfo(
        duration=duration or 0.0,
        codec=str(video.get("codec_name") or "unknown"),
        width=width,
        height=height,
        mime_type=mime_type_for(format_name, path),
        rotation=rotation,
    )


async def probe_video(
    path: str | Path, *, ffprobe: str = "ffprobe", time_limit: float = PROBE_TIMEOUT
) -> VideoInfo:
    """Return a clip's duration, video codec, picture size and MIME type, read by ffprobe.

    The size is the upright one, of the frames extract_frame returns (ffmpeg turns them by the
    stream's rotation), so detections and the frame they are checked against agree. Raises
    NoVideoStreamError for a file without a picture (sound only), VideoError when ffprobe is
    missing, overruns time_limit, or cannot read the clip (corrupt, truncated, a still image).
    """
    returncode, stdout, stderr = await _run(
        "ffprobe",
        ffprobe,
        [
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            _input_arg(path),
        ],
        time_limit,
    )
    if returncode != 0:
        raise _read_failure("ffprobe", path, stderr)
    info = _parse_probe(path, stdout)
    _LOGGER.debug("Probed %s: %s", path, info)
    return info


async def extract_frame(
    path: str | Path, at: float, *, ffmpeg: str = "ffmpeg", time_limit: float = PROBE_TIMEOUT
) -> bytes:
    """Return the clip's frame at `at` seconds as JPEG bytes, decoded by ffmpeg.

    The frame is upright: ffmpeg applies the stream's rotation by default (never -noautorotate),
    so it has the size probe_video reports. Raises VideoError when ffmpeg is missing, overruns
    time_limit, cannot decode the clip, or finds no frame at that time (past the end, or in a
    truncated part).
    """
    returncode, stdout, stderr = await _run(
        "ffmpeg",
        ffmpeg,
        [
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-ss",
            f"{max(at, 0.0):.3f}",
            "-i",
            _input_arg(path),
            "-map",
            "0:V:0",  # the first video stream that is not cover art, as probe_video reads
            "-an",
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-c:v",
            "mjpeg",
            "-q:v",
            "3",
            "-",
        ],
        time_limit,
    )
    if returncode != 0:
        raise _read_failure("ffmpeg", path, stderr)
    if not stdout.startswith(_JPEG_MAGIC):
        raise VideoError(f"no frame at {at:g} s: {_last_line(stderr)}")
    return stdout
