"""core.derived: the media folder's layout, and that nothing reaches outside it."""

from datetime import UTC, datetime, timedelta, timezone
import os
from pathlib import Path

import pytest

from custom_components.ai_security.core.derived import (
    DerivedMedia,
    event_day,
    safe_component,
)

STARTED = datetime(2026, 10, 14, 22, 30, tzinfo=UTC)


@pytest.fixture
def media(tmp_path: Path) -> DerivedMedia:
    """Return derived media rooted in a fresh folder, next to a secrets file it must not reach."""
    (tmp_path / "secrets.yaml").write_text("password: hunter2\n")
    root = tmp_path / "ai_security" / "media" / "entry1"
    root.mkdir(parents=True)
    return DerivedMedia(root)


def test_layout(media: DerivedMedia) -> None:
    """One folder per event under camera and UTC day; fixed names inside it."""
    folder = media.root / "front_door" / "2026-10-14" / "ev1"
    assert media.event_dir("front_door", "ev1", STARTED) == folder
    assert media.key_frame_path("front_door", "ev1", STARTED) == folder / "key.jpg"
    assert media.clip_path("front_door", "ev1", STARTED) == folder / "clip.mp4"
    assert media.frame_path("front_door", "ev1", STARTED, 42) == folder / "frame_42.jpg"
    assert media.thumbnail_path("front_door", "ev1", STARTED, 42) == folder / "thumb_42.jpg"
    assert not folder.exists()  # building paths creates nothing


def test_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative root is made absolute once, so a later chdir cannot move the media."""
    monkeypatch.chdir(tmp_path)
    media = DerivedMedia("media")
    assert media.root == tmp_path / "media"


@pytest.mark.parametrize(
    ("started", "day"),
    [
        (STARTED, "2026-10-14"),
        (STARTED.astimezone(timezone(timedelta(hours=2))), "2026-10-14"),  # local 00:30 on 15th
        (datetime(2026, 10, 15, 0, 30, tzinfo=timezone(timedelta(hours=2))), "2026-10-14"),
        (datetime(2026, 10, 14, 23, 59), "2026-10-14"),  # naive: taken as UTC  # noqa: DTZ001
    ],
)
def test_day_in_utc(started: datetime, day: str) -> None:
    """The same instant gives the same day folder whatever time zone it is expressed in."""
    assert event_day(started) == day


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "..",
        ".hidden",
        "../etc",
        "a/b",
        "a\\b",
        "a\x00b",
        "a b",
        "-rf",
        "x" * 129,
        "é" * 128 + "",  # 128 characters but 256 bytes
        "a\n",
    ],
)
def test_unsafe_ids_refused(media: DerivedMedia, value: str) -> None:
    """Camera and event ids that are not one plain folder name are refused, not cleaned."""
    with pytest.raises(ValueError, match="unsafe"):
        media.event_dir(value, "ev1", STARTED)
    with pytest.raises(ValueError, match="unsafe"):
        media.clip_path("front_door", value, STARTED)


@pytest.mark.parametrize(
    "value", ["front_door", "camera_2", "камера", "カメラ", "a.b-c", "0f3c9a2e-1b2c", "x" * 128]
)
def test_safe_ids(value: str) -> None:
    """Ids as camera_id_for and the database make them pass unchanged."""
    assert safe_component(value) == value


@pytest.mark.parametrize("detection_id", [-1, True, 1.5, "7"])
def test_bad_detection_ids(media: DerivedMedia, detection_id: object) -> None:
    """Detection ids are non-negative ints: they become part of a file name."""
    with pytest.raises(ValueError, match="not a detection id"):
        media.frame_path("cam", "ev1", STARTED, detection_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a detection id"):
        media.thumbnail_path("cam", "ev1", STARTED, detection_id)  # type: ignore[arg-type]


def test_resolve_and_relative(media: DerivedMedia) -> None:
    """A path built here round-trips through relative() and resolve()."""
    clip = media.clip_path("front_door", "ev1", STARTED)
    relative = media.relative(clip)
    assert relative == "front_door/2026-10-14/ev1/clip.mp4"
    assert media.resolve(relative) == clip  # need not exist yet
    assert media.resolve("./front_door//2026-10-14/ev1/clip.mp4") == clip
    with pytest.raises(ValueError, match=r"not in the subpath|does not start with"):
        media.relative(media.root.parent / "secrets.yaml")
    with pytest.raises(ValueError, match="media root itself"):
        media.relative(media.root)


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("../../secrets.yaml", r"'\.\.'"),
        ("../../../secrets.yaml", r"'\.\.'"),
        ("front_door/../../../../secrets.yaml", r"'\.\.'"),
        ("front_door/..", r"'\.\.'"),
        ("/etc/passwd", "relative"),
        ("//etc/passwd", "relative"),
        ("~/secrets.yaml", "relative"),
        ("front_door/key.jpg\x00.png", "NUL"),
        ("\x00", "NUL"),
        ("", "empty"),
        (".", "empty"),
    ],
)
def test_resolve_refuses_escapes(media: DerivedMedia, relative: str, message: str) -> None:
    """Traversal, absolute paths, NUL bytes and the root itself are refused."""
    with pytest.raises(ValueError, match=message):
        media.resolve(relative)


def test_resolve_refuses_links_outside(media: DerivedMedia, tmp_path: Path) -> None:
    """A symbolic link in the root pointing outside is refused, file or folder, at any depth."""
    (media.root / "leak.yaml").symlink_to(tmp_path / "secrets.yaml")
    (media.root / "cam").mkdir()
    (media.root / "cam" / "outside").symlink_to(tmp_path)
    (media.root / "up").symlink_to("../..")
    for relative in ("leak.yaml", "cam/outside/secrets.yaml", "cam/outside", "up/secrets.yaml"):
        with pytest.raises(ValueError, match="outside the media folder"):
            media.resolve(relative)


def test_resolve_follows_links_inside(media: DerivedMedia, tmp_path: Path) -> None:
    """Links that stay inside the root are fine, and so is a root reached through a link."""
    (media.root / "cam").mkdir()
    (media.root / "cam" / "key.jpg").write_bytes(b"jpeg")
    (media.root / "alias").symlink_to("cam")
    assert media.resolve("alias/key.jpg") == (media.root / "cam" / "key.jpg").resolve()
    link = tmp_path / "media-link"
    link.symlink_to(media.root)
    via_link = DerivedMedia(link)
    assert via_link.resolve("cam/key.jpg").read_bytes() == b"jpeg"
    with pytest.raises(ValueError, match=r"'\.\.'"):
        via_link.resolve("../secrets.yaml")


def test_write_file(media: DerivedMedia) -> None:
    """Files are written whole under a hidden temporary name, folders created on the way."""
    key = media.key_frame_path("cam", "ev1", STARTED)
    assert media.write_file(key, b"first") == key
    assert media.write_file(key, b"second") == key
    assert key.read_bytes() == b"second"
    assert sorted(os.listdir(key.parent)) == ["key.jpg"]
    with pytest.raises(ValueError, match=r"not in the subpath|does not start with"):
        media.write_file(media.root.parent / "evil.jpg", b"x")


def test_write_file_failure_leaves_nothing(
    media: DerivedMedia, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the rename fails the temporary file goes, and the old file stays whole."""
    key = media.key_frame_path("cam", "ev1", STARTED)
    media.write_file(key, b"old")

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        media.write_file(key, b"new")
    assert sorted(os.listdir(key.parent)) == ["key.jpg"]
    assert key.read_bytes() == b"old"


def test_write_file_refuses_links_outside(media: DerivedMedia, tmp_path: Path) -> None:
    """Writing through a link that leaves the root is refused; the target stays untouched."""
    (media.root / "cam").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="outside the media folder"):
        media.write_file(media.root / "cam" / "secrets.yaml", b"overwritten")
    assert (tmp_path / "secrets.yaml").read_text() == "password: hunter2\n"


def test_delete_event(media: DerivedMedia) -> None:
    """An event's folder goes with its files; the day folder goes once its last event has."""
    for event in ("ev1", "ev2"):
        media.write_file(media.key_frame_path("cam", event, STARTED), b"k")
        media.write_file(media.thumbnail_path("cam", event, STARTED, 1), b"t")
        media.write_file(media.clip_path("cam", event, STARTED), b"c")
    day = media.root / "cam" / "2026-10-14"
    assert media.delete_event("cam", "ev1", STARTED) is True
    assert sorted(os.listdir(day)) == ["ev2"]
    assert media.delete_event("cam", "ev1", STARTED) is False  # already gone
    assert media.delete_event("cam", "ev2", STARTED) is True
    assert not day.exists()
    assert (media.root / "cam").is_dir()  # the camera folder stays
    assert media.delete_event("other", "ev9", STARTED) is False


def test_delete_event_refuses_links(media: DerivedMedia, tmp_path: Path) -> None:
    """A camera folder that is a link to elsewhere is not deleted through."""
    outside = tmp_path / "elsewhere"
    (outside / "2026-10-14" / "ev1").mkdir(parents=True)
    (outside / "2026-10-14" / "ev1" / "precious.txt").write_text("keep")
    (media.root / "cam").symlink_to(outside)
    with pytest.raises(ValueError, match="symbolic link"):
        media.delete_event("cam", "ev1", STARTED)
    assert (outside / "2026-10-14" / "ev1" / "precious.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="unsafe"):
        media.delete_event("..", "ev1", STARTED)
