"""core.video: ffprobe metadata and key frames from clips made by the lab's real ffmpeg."""

import asyncio
from dataclasses import dataclass
import io
import json
from pathlib import Path
import stat
import subprocess
import time

from PIL import Image
import pytest

from custom_components.ai_security.core.video import (
    NoVideoStreamError,
    VideoError,
    extract_frame,
    key_frame_time,
    mime_type_for,
    probe_video,
)
from tests.programs import require_program

WIDTH, HEIGHT, SECONDS = 1280, 720, 3


@dataclass(frozen=True, kw_only=True)
class Tools:
    """The lab's ffmpeg and ffprobe."""

    ffmpeg: str
    ffprobe: str


@dataclass(frozen=True, kw_only=True)
class Clips:
    """Clips made once for the whole module."""

    mp4: Path
    """H.264 in MP4, index (moov) at the end, as ffmpeg and most cameras write it."""
    faststart: Path
    """The same with the index at the start (-movflags +faststart)."""
    mkv: Path
    """MPEG-4 part 2 in Matroska, with an audio stream before the video stream."""
    avi: Path
    mov: Path
    audio_only: Path
    """AAC in an .mp4, no video."""
    folder: Path


@pytest.fixture(scope="module")
def tools() -> Tools:
    """Return the lab's ffmpeg and ffprobe (skipped outside CI when missing)."""
    return Tools(ffmpeg=require_program("ffmpeg"), ffprobe=require_program("ffprobe"))


@pytest.fixture(scope="module")
def clips(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> Clips:
    """Make 3 s 1280x720 test clips in each container with one ffmpeg run, plus an audio file."""
    folder = tmp_path_factory.mktemp("clips")
    clips = Clips(
        mp4=folder / "clip.mp4",
        faststart=folder / "faststart.mp4",
        mkv=folder / "clip.mkv",
        avi=folder / "clip.avi",
        mov=folder / "clip.mov",
        audio_only=folder / "audio.mp4",
        folder=folder,
    )
    quiet = [tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run(
        [
            *quiet,
            "-f",
            "lavfi",
            "-i",
            f"testsrc=duration={SECONDS}:size={WIDTH}x{HEIGHT}:rate=25",
            "-f",
            "lavfi",
            "-i",
            f"sine=duration={SECONDS}",
            *("-map", "0:v", *h264, str(clips.mp4)),
            *("-map", "0:v", *h264, "-movflags", "+faststart", str(clips.faststart)),
            *("-map", "1:a", "-map", "0:v", "-c:v", "mpeg4", "-c:a", "aac", str(clips.mkv)),
            *("-map", "0:v", "-c:v", "mpeg4", str(clips.avi)),
            *("-map", "0:v", "-c:v", "mpeg4", str(clips.mov)),
            *("-map", "1:a", "-c:a", "aac", str(clips.audio_only)),
        ],
        check=True,
        timeout=60,
    )
    return clips


def truncated_copy(clip: Path, share: float, name: str) -> Path:
    """Write the first share of clip's bytes next to it, as an upload cut short would leave it."""
    data = clip.read_bytes()
    target = clip.with_name(name)
    target.write_bytes(data[: int(len(data) * share)])
    return target


def alive(pid: int) -> bool:
    """Return whether process pid exists and is not a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rpartition(")")[2].split()[0] != "Z"


def hanging_program(folder: Path) -> tuple[Path, Path]:
    """Write a script that starts a child and waits 10 s; it records both process ids."""
    pids = folder / "pids"
    script = folder / "hang.sh"
    script.write_text(f'#!/bin/sh\nsleep 10 &\necho "$$ $!" > "{pids}"\nwait\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, pids


def fake_program(folder: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> str:
    """Write a stand-in for ffprobe or ffmpeg that prints canned output and exits with code."""
    script = folder / f"fake-{len(list(folder.glob('fake-*')))}.sh"
    script.write_text(
        f"#!/bin/sh\ncat <<'OUT'\n{stdout}\nOUT\ncat >&2 <<'ERR'\n{stderr}\nERR\nexit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def probe_report(*, container: dict[str, object], streams: list[dict[str, object]]) -> str:
    """Return ffprobe's JSON report with the given format and streams sections."""
    return json.dumps({"format": container, "streams": streams})


def written_pids(pids: Path) -> list[int] | None:
    """Return the process ids the hanging script wrote, or None while it has not yet."""
    if pids.exists() and (text := pids.read_text()).endswith("\n"):
        return [int(pid) for pid in text.split()]
    return None


def reaped(pid: int) -> bool:
    """Return whether process pid is gone entirely (killed and reaped, not a zombie)."""
    return not Path(f"/proc/{pid}").exists()


async def read_pids(pids: Path) -> list[int]:
    """Wait until the hanging script has written its process ids, and return them."""
    for _ in range(200):
        if found := written_pids(pids):
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("the script did not start")


async def assert_gone(pids: list[int]) -> None:
    """Assert the processes are gone: the direct child reaped at once, its child soon after."""
    child, grandchild = pids
    assert reaped(child)
    for _ in range(200):  # the orphaned grandchild is reaped by init, not by us
        if not alive(grandchild):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"process {grandchild} started by the script still runs")


@pytest.mark.parametrize(
    ("duration", "expected"),
    [(3.0, 0.3), (30, 1.0), (10, 1.0), (0.5, 0.05), (0, 0.0), (-4, 0.0), (float("nan"), 0.0)],
)
def test_key_frame_time(duration: float, expected: float) -> None:
    """The frame is taken 10 % into the clip but at most 1 s in, never before the start."""
    assert key_frame_time(duration) == expected


@pytest.mark.parametrize(
    ("format_name", "name", "expected"),
    [
        ("mov,mp4,m4a,3gp,3g2,mj2", "a.mp4", "video/mp4"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "A.MOV", "video/quicktime"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "a.3gp", "video/3gpp"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "upload.bin", "video/mp4"),
        ("matroska,webm", "a.mkv", "video/x-matroska"),
        ("matroska,webm", "a.webm", "video/webm"),
        ("avi", "a.avi", "video/x-msvideo"),
        ("mpegts", "a.ts", "video/mp2t"),
        ("something_new", "a.xyz", "application/octet-stream"),
    ],
)
def test_mime_type_for(format_name: str, name: str, expected: str) -> None:
    """The container names the type; the extension picks within the MP4 and Matroska families."""
    assert mime_type_for(format_name, name) == expected


@pytest.mark.parametrize(
    ("attribute", "codec", "mime_type"),
    [
        ("mp4", "h264", "video/mp4"),
        ("faststart", "h264", "video/mp4"),
        ("mkv", "mpeg4", "video/x-matroska"),
        ("avi", "mpeg4", "video/x-msvideo"),
        ("mov", "mpeg4", "video/quicktime"),
    ],
)
async def test_probe_video(
    tools: Tools, clips: Clips, attribute: str, codec: str, mime_type: str
) -> None:
    """Duration, codec, picture size and MIME type of each container, video stream found."""
    path: Path = getattr(clips, attribute)
    info = await probe_video(path, ffprobe=tools.ffprobe)
    assert info.duration == pytest.approx(SECONDS, abs=0.1)
    assert (info.codec, info.width, info.height, info.mime_type) == (
        codec,
        WIDTH,
        HEIGHT,
        mime_type,
    )


async def test_probe_video_accepts_str_and_finds_ffprobe_on_path(clips: Clips) -> None:
    """A str path works too, and the default binary name is looked up on PATH."""
    info = await probe_video(str(clips.mp4))
    assert (info.width, info.height) == (WIDTH, HEIGHT)


async def test_odd_file_names_are_files(
    tools: Tools, clips: Clips, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative name starting with '-' or holding ':' is read as a file, not an option."""
    odd = clips.folder / "-front door:12.mp4"
    odd.write_bytes(clips.mp4.read_bytes())
    monkeypatch.chdir(clips.folder)
    info = await probe_video("-front door:12.mp4", ffprobe=tools.ffprobe)
    assert info.codec == "h264"
    frame = await extract_frame("-front door:12.mp4", 0.3, ffmpeg=tools.ffmpeg)
    assert frame.startswith(b"\xff\xd8")


@pytest.fixture(scope="module")
def rotated(tools: Tools, clips: Clips) -> dict[int, Path]:
    """Return the MP4 clip with a display matrix turning it 90, 180 and 270 degrees clockwise.

    Set without re-encoding (-display_rotation, counterclockwise), as phones and cameras mounted
    on their side write it; ffprobe must show the matrix, or the clips would test nothing.
    """
    made = {}
    for clockwise in (90, 180, 270):
        path = clips.folder / f"rotated_{clockwise}.mp4"
        subprocess.run(
            [
                *(tools.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"),
                *("-display_rotation", str(360 - clockwise), "-i", str(clips.mp4)),
                *("-c", "copy", str(path)),
            ],
            check=True,
            timeout=60,
        )
        report = subprocess.run(
            [tools.ffprobe, "-v", "error", "-show_streams", "-of", "json", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        ).stdout
        (stream,) = json.loads(report)["streams"]
        assert (stream["width"], stream["height"]) == (WIDTH, HEIGHT)  # stored as it was
        assert [item["side_data_type"] for item in stream["side_data_list"]] == ["Display Matrix"]
        made[clockwise] = path
    return made


@pytest.mark.parametrize(
    ("clockwise", "size"), [(90, (HEIGHT, WIDTH)), (180, (WIDTH, HEIGHT)), (270, (HEIGHT, WIDTH))]
)
async def test_rotated_clip_probed_and_taken_upright(
    tools: Tools, clips: Clips, rotated: dict[int, Path], clockwise: int, size: tuple[int, int]
) -> None:
    """A clip with rotation metadata reports the size of the upright frame ffmpeg takes from it.

    testsrc's colour bars run left to right across the top of the stored picture: once turned,
    they run down the side or leftwards, which tells the frame is the turned one.
    """
    info = await probe_video(rotated[clockwise], ffprobe=tools.ffprobe)
    assert (info.width, info.height, info.rotation) == (*size, clockwise)
    plain = await extract_frame(clips.mp4, 1.0, ffmpeg=tools.ffmpeg)
    data = await extract_frame(rotated[clockwise], 1.0, ffmpeg=tools.ffmpeg)
    with Image.open(io.BytesIO(plain)) as stored, Image.open(io.BytesIO(data)) as image:
        assert image.size == size
        turned = {
            90: Image.Transpose.ROTATE_270,  # Pillow turns counterclockwise
            180: Image.Transpose.ROTATE_180,
            270: Image.Transpose.ROTATE_90,
        }[clockwise]
        expected = stored.convert("RGB").transpose(turned)
        for at in ((size[0] // 5, size[1] // 5), (size[0] // 2, size[1] // 3)):
            got, want = image.convert("RGB").getpixel(at), expected.getpixel(at)
            assert all(abs(a - b) <= 40 for a, b in zip(got, want, strict=True)), (at, got, want)  # type: ignore[arg-type]


@pytest.mark.parametrize("attribute", ["mp4", "mkv", "avi", "mov"])
async def test_extract_frame(tools: Tools, clips: Clips, attribute: str) -> None:
    """The key frame comes back as a JPEG of the clip's full size."""
    path: Path = getattr(clips, attribute)
    data = await extract_frame(path, key_frame_time(SECONDS), ffmpeg=tools.ffmpeg)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.size == (WIDTH, HEIGHT)


async def test_extract_frame_past_the_end(tools: Tools, clips: Clips) -> None:
    """Asking for a time after the clip ends is an error, not an empty image."""
    with pytest.raises(VideoError, match=r"Nothing was written into output file"):
        await extract_frame(clips.mp4, 10, ffmpeg=tools.ffmpeg)


async def test_truncated_clip(tools: Tools, clips: Clips) -> None:
    """An MP4 cut short before its index (written at the end) cannot be read at all."""
    cut = truncated_copy(clips.mp4, 0.3, "cut.mp4")
    with pytest.raises(VideoError, match=r"corrupt or truncated clip: .*Invalid data") as caught:
        await probe_video(cut, ffprobe=tools.ffprobe)
    assert caught.value.reason == str(caught.value)
    with pytest.raises(VideoError, match=r"corrupt or truncated clip: .*Invalid data"):
        await extract_frame(cut, 0.3, ffmpeg=tools.ffmpeg)


async def test_truncated_faststart_clip(tools: Tools, clips: Clips) -> None:
    """With the index first, a cut clip still probes as whole but has no frames past the cut."""
    cut = truncated_copy(clips.faststart, 0.3, "cut-faststart.mp4")
    info = await probe_video(cut, ffprobe=tools.ffprobe)
    assert info.duration == pytest.approx(SECONDS, abs=0.1)  # from the index, not the data
    with pytest.raises(VideoError, match=r"corrupt or truncated clip"):
        await extract_frame(cut, 2.5, ffmpeg=tools.ffmpeg)


async def test_text_file_is_not_a_clip(tools: Tools, tmp_path: Path) -> None:
    """A text file named .mp4 is refused by both programs."""
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match=r"corrupt or truncated clip: .*Invalid data"):
        await probe_video(fake, ffprobe=tools.ffprobe)
    with pytest.raises(VideoError, match=r"corrupt or truncated clip: .*Invalid data"):
        await extract_frame(fake, 0, ffmpeg=tools.ffmpeg)


async def test_still_image_is_not_a_clip(tools: Tools, clips: Clips, tmp_path: Path) -> None:
    """A JPEG named .mp4 reads as a one-frame video in ffprobe; it is refused as an image."""
    still = tmp_path / "snapshot.mp4"
    still.write_bytes(await extract_frame(clips.mp4, 0.3, ffmpeg=tools.ffmpeg))
    with pytest.raises(VideoError, match=r"not a video clip but a still image \(jpeg_pipe\)"):
        await probe_video(still, ffprobe=tools.ffprobe)


async def test_audio_only(tools: Tools, clips: Clips) -> None:
    """A clip without a video stream says so, with its own error: the pipeline skips it."""
    with pytest.raises(NoVideoStreamError, match=r"^no video stream$"):
        await probe_video(clips.audio_only, ffprobe=tools.ffprobe)
    with pytest.raises(NoVideoStreamError, match=r"^no video stream$"):
        await extract_frame(clips.audio_only, 0.3, ffmpeg=tools.ffmpeg)


async def test_missing_clip(tools: Tools, tmp_path: Path) -> None:
    """A clip removed before it is read is named as missing, not as corrupt."""
    gone = tmp_path / "gone.mp4"
    with pytest.raises(VideoError, match=r"^the clip does not exist: .*gone.mp4$"):
        await probe_video(gone, ffprobe=tools.ffprobe)
    with pytest.raises(VideoError, match=r"^the clip does not exist: .*gone.mp4$"):
        await extract_frame(gone, 0.3, ffmpeg=tools.ffmpeg)


VIDEO_STREAM: dict[str, object] = {
    "codec_type": "video",
    "codec_name": "hevc",
    "width": 2560,
    "height": 1440,
}
MATROSKA: dict[str, object] = {"format_name": "matroska,webm"}


@pytest.mark.parametrize(
    ("container", "streams", "duration", "codec"),
    [
        ({**MATROSKA, "duration": "12.5"}, [VIDEO_STREAM], 12.5, "hevc"),
        (MATROSKA, [{**VIDEO_STREAM, "duration": "7.25"}], 7.25, "hevc"),
        (MATROSKA, [{**VIDEO_STREAM, "duration": "N/A"}], 0.0, "hevc"),
        ({**MATROSKA, "duration": "nan"}, [{**VIDEO_STREAM, "codec_name": None}], 0.0, "unknown"),
        (
            {**MATROSKA, "duration": 4},
            [
                {"codec_type": "audio", "codec_name": "aac"},
                {**VIDEO_STREAM, "codec_name": "mjpeg", "disposition": {"attached_pic": 1}},
                VIDEO_STREAM,
            ],
            4.0,
            "hevc",
        ),
    ],
)
async def test_probe_report_parsing(
    tmp_path: Path,
    container: dict[str, object],
    streams: list[dict[str, object]],
    duration: float,
    codec: str,
) -> None:
    """Duration from the container or else the stream (0 when unknown); cover art is skipped."""
    ffprobe = fake_program(tmp_path, stdout=probe_report(container=container, streams=streams))
    info = await probe_video(tmp_path / "cam.mkv", ffprobe=ffprobe)
    assert (info.duration, info.codec, info.width, info.height) == (duration, codec, 2560, 1440)
    assert info.mime_type == "video/x-matroska"


def display_matrix(rotation: object) -> dict[str, object]:
    """Return ffprobe's side data entry of a display matrix (rotation counterclockwise)."""
    return {"side_data_type": "Display Matrix", "displaymatrix": "...", "rotation": rotation}


@pytest.mark.parametrize(
    ("extra", "rotation", "size"),
    [
        ({}, 0, (2560, 1440)),
        ({"side_data_list": [display_matrix(-90)]}, 90, (1440, 2560)),
        ({"side_data_list": [display_matrix(90)]}, 270, (1440, 2560)),
        ({"side_data_list": [display_matrix(180)]}, 180, (2560, 1440)),
        ({"side_data_list": [display_matrix(-180)]}, 180, (2560, 1440)),
        ({"side_data_list": [display_matrix(-89.6)]}, 90, (1440, 2560)),
        ({"side_data_list": [display_matrix(-45)]}, 45, (2560, 1440)),  # turned within its size
        ({"side_data_list": [display_matrix(-0.4)]}, 0, (2560, 1440)),
        ({"side_data_list": [display_matrix("N/A")]}, 0, (2560, 1440)),
        ({"side_data_list": "odd"}, 0, (2560, 1440)),
        (
            {"side_data_list": [{"side_data_type": "Stereo 3D"}, display_matrix(-270)]},
            270,
            (1440, 2560),
        ),
        ({"tags": {"rotate": "90"}}, 90, (1440, 2560)),  # older ffprobe: the MP4 tag, clockwise
        ({"tags": {"rotate": "-90"}}, 270, (1440, 2560)),
        ({"tags": {"rotate": "180"}}, 180, (2560, 1440)),
        ({"tags": {"rotate": "sideways"}}, 0, (2560, 1440)),
        ({"tags": "odd"}, 0, (2560, 1440)),
    ],
)
async def test_rotation_in_probe_reports(
    tmp_path: Path, extra: dict[str, object], rotation: int, size: tuple[int, int]
) -> None:
    """The display matrix (or the old rotate tag) turns the size as ffmpeg turns the frames."""
    stream = {**VIDEO_STREAM, **extra}
    ffprobe = fake_program(tmp_path, stdout=probe_report(container=MATROSKA, streams=[stream]))
    info = await probe_video(tmp_path / "cam.mkv", ffprobe=ffprobe)
    assert (info.rotation, (info.width, info.height)) == (rotation, size)


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [
        ("not json", "ffprobe printed something that is not JSON"),
        ("[1, 2]", "ffprobe printed something that is not JSON"),
        ("{}", "no video stream"),
        (
            probe_report(container=MATROSKA, streams=[{**VIDEO_STREAM, "width": 0}]),
            "the video stream has no picture size",
        ),
        (
            probe_report(container={"format_name": "image2"}, streams=[VIDEO_STREAM]),
            "not a video clip but a still image (image2)",
        ),
    ],
)
async def test_unusable_probe_reports(tmp_path: Path, stdout: str, reason: str) -> None:
    """A report the pipeline cannot use is a VideoError that says what is wrong with it."""
    ffprobe = fake_program(tmp_path, stdout=stdout)
    with pytest.raises(VideoError) as caught:
        await probe_video(tmp_path / "cam.mkv", ffprobe=ffprobe)
    assert caught.value.reason == reason


async def test_reasons_from_ffmpeg_output(tmp_path: Path) -> None:
    """Context tags are dropped from ffmpeg's message; silence and non-JPEG output are errors."""
    ffmpeg = fake_program(
        tmp_path, stderr="[h264 @ 0x55d1c2] [in#0 @ 0x1] broken NAL unit\n\n", code=1
    )
    with pytest.raises(VideoError, match=r"^corrupt or truncated clip: broken NAL unit$"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=ffmpeg)
    ffmpeg = fake_program(tmp_path, stderr="file:/cams/a.mp4: Permission denied", code=1)
    with pytest.raises(VideoError, match=r"^ffmpeg may not read the clip: .*a.mp4$"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=ffmpeg)
    ffmpeg = fake_program(tmp_path, code=1)
    with pytest.raises(VideoError, match=r"^corrupt or truncated clip: no error message$"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=ffmpeg)
    ffmpeg = fake_program(tmp_path, stdout="GIF89a", stderr="odd")
    with pytest.raises(VideoError, match=r"^no frame at 0\.3 s: odd$"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=ffmpeg)


async def test_missing_binary(tmp_path: Path) -> None:
    """A missing or non-executable program is reported as not installed."""
    with pytest.raises(VideoError, match=r"^ffprobe is not installed") as caught:
        await probe_video(tmp_path / "a.mp4", ffprobe="/nonexistent/ffprobe")
    assert "/nonexistent/ffprobe" in caught.value.reason
    with pytest.raises(VideoError, match=r"^ffmpeg is not installed"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg="/nonexistent/ffmpeg")
    not_executable = tmp_path / "ffmpeg"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(VideoError, match=r"^ffmpeg is not installed"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=str(not_executable))


async def test_probe_times_out_and_kills(tmp_path: Path) -> None:
    """A stuck ffprobe is killed with everything it started after time_limit, and reaped."""
    script, pids = hanging_program(tmp_path)
    started = time.monotonic()
    with pytest.raises(VideoError, match=r"^ffprobe timed out after 0\.5 s$"):
        await probe_video(tmp_path / "a.mp4", ffprobe=str(script), time_limit=0.5)
    assert time.monotonic() - started < 3
    await assert_gone(await read_pids(pids))


async def test_extract_frame_times_out_and_kills(tmp_path: Path) -> None:
    """A stuck ffmpeg is killed with everything it started after time_limit, and reaped."""
    script, pids = hanging_program(tmp_path)
    started = time.monotonic()
    with pytest.raises(VideoError, match=r"^ffmpeg timed out after 0\.5 s$"):
        await extract_frame(tmp_path / "a.mp4", 0.3, ffmpeg=str(script), time_limit=0.5)
    assert time.monotonic() - started < 3
    await assert_gone(await read_pids(pids))


async def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    """Cancelling the caller kills the child (and its children) before the cancellation ends."""
    script, pids = hanging_program(tmp_path)
    task = asyncio.create_task(probe_video(tmp_path / "a.mp4", ffprobe=str(script)))
    running = await read_pids(pids)
    assert all(alive(pid) for pid in running)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_gone(running)
