"""core.zones: parsing and validating polygons, placing detections, drawing zones on a frame."""

import dataclasses
import io
import json
import math
import random
from typing import Any

from PIL import Image
import pytest

from custom_components.ai_security.core.annotate import AnnotateError
from custom_components.ai_security.core.models import BoundingBox, Detection
from custom_components.ai_security.core.zone_drawing import ZONE_COLORS, draw_zones
from custom_components.ai_security.core.zones import (
    MAX_POINTS,
    Zone,
    ZoneError,
    ZoneKind,
    ZoneMap,
    describe,
    format_points,
    make_zone,
    parse_points,
    zone_from_dict,
    zone_to_dict,
)

GREY = (128, 128, 128)
SQUARE = "0.2,0.2 0.6,0.2 0.6,0.6 0.2,0.6"
U_SHAPE = "0.1,0.1 0.3,0.1 0.3,0.7 0.7,0.7 0.7,0.1 0.9,0.1 0.9,0.9 0.1,0.9"
"""Concave: two arms up from a base, with a notch between them (x 0.3..0.7, y 0.1..0.7)."""


def zone(name: str, points: str, *, kind: str = "yard", priority: int = 0) -> Zone:
    return make_zone(name, kind, priority, points)


def detection(
    x: float, y: float, w: float, h: float, *, width: int = 1000, height: int = 1000
) -> Detection:
    return Detection(
        label="person",
        confidence=0.9,
        bbox=BoundingBox(x=x, y=y, w=w, h=h),
        frame_width=width,
        frame_height=height,
    )


def jpeg(size: tuple[int, int] = (640, 480), *, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, GREY)
    buffer = io.BytesIO()
    if orientation is None:
        image.save(buffer, "JPEG", quality=95)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def pixel(image: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    """Return the RGB pixel at normalised (x, y)."""
    value = image.getpixel((round(x * (image.width - 1)), round(y * (image.height - 1))))
    assert isinstance(value, tuple)
    return (int(value[0]), int(value[1]), int(value[2]))


def near(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 8) -> bool:
    return all(abs(p - q) <= tolerance for p, q in zip(a, b, strict=True))


def reference_inside(points: tuple[tuple[float, float], ...], x: float, y: float) -> bool:
    """Return the textbook crossing-number answer, written apart from the module's edge tables."""
    inside = False
    for index, (xi, yi) in enumerate(points):
        xj, yj = points[index - 1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
    return inside


# Parsing


@pytest.mark.parametrize(
    "text",
    [
        "0.1,0.2 0.5,0.2 0.5,0.8",
        "  0.1,0.2\n0.5,0.2\n\n0.5,0.8  ",
        "0.1,0.2\t0.5,0.2\r\n0.5,0.8",
        "0.1 , 0.2 0.5,  0.2 0.5 ,0.8",
        "+0.1,.2 5e-1,0.2 0.5,8E-1",
    ],
)
def test_parse_points_variants(text: str) -> None:
    assert parse_points(text) == ((0.1, 0.2), (0.5, 0.2), (0.5, 0.8))


def test_parse_points_edges_of_the_range() -> None:
    assert parse_points("0,0 1,0 1.,1 -0,1") == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert math.copysign(1.0, parse_points("-0,0")[0][0]) == 1.0  # no negative zero kept
    assert parse_points("") == ()


@pytest.mark.parametrize(
    ("text", "key", "placeholder"),
    [
        ("abc", "zone_bad_points_text", {"token": "abc"}),
        ("0.1,0.2 0.3", "zone_bad_points_text", {"token": "0.3"}),
        ("0.1,0.2 0.3,", "zone_bad_points_text", {"token": "0.3,"}),
        ("0.1,0.2,0.3,0.4", "zone_bad_points_text", {"token": "0.1,0.2,0.3,0.4"}),
        ("(0.1,0.2)", "zone_bad_points_text", {"token": "(0.1,0.2)"}),
        ("0.1;0.2", "zone_bad_points_text", {"token": "0.1;0.2"}),
        ("0x1,0", "zone_bad_points_text", {"token": "0x1,0"}),
        ("1_0,0", "zone_bad_points_text", {"token": "1_0,0"}),
        ("0,0 1.5,0.5 1,1", "zone_point_out_of_range", {"point": "1.5,0.5"}),
        ("0,0 0.5,-0.1 1,1", "zone_point_out_of_range", {"point": "0.5,-0.1"}),
        ("0,0 NaN,0.5 1,1", "zone_not_a_number", {"point": "NaN,0.5"}),
        ("0,0 0.5,inf 1,1", "zone_not_a_number", {"point": "0.5,inf"}),
        ("0,0 0.5,-Infinity 1,1", "zone_not_a_number", {"point": "0.5,-Infinity"}),
        ("0,0 1e999,0.5 1,1", "zone_not_a_number", {"point": "1e999,0.5"}),
    ],
)
def test_parse_points_rejects(text: str, key: str, placeholder: dict[str, str]) -> None:
    with pytest.raises(ZoneError) as caught:
        parse_points(text)
    assert caught.value.translation_key == key
    assert caught.value.placeholders == placeholder
    assert isinstance(caught.value, ValueError)


def test_long_junk_is_cut_in_the_error() -> None:
    with pytest.raises(ZoneError) as caught:
        parse_points("x" * 500)
    assert len(caught.value.placeholders["token"]) == 40
    assert caught.value.placeholders["token"].endswith("...")


@pytest.mark.parametrize(
    "points",
    [
        ((0.1, 0.2), (0.5, 0.2), (0.5, 0.8)),
        ((1 / 3, 2 / 3), (1.0, 0.0), (1e-7, 0.999999999999), (0.0, 1.0)),
        ((0.30000000000000004, 0.0), (1.0, 1.0), (0.0, 0.7)),
    ],
)
def test_format_points_round_trips_exactly(points: tuple[tuple[float, float], ...]) -> None:
    assert parse_points(format_points(points)) == points


def test_format_points_is_short() -> None:
    assert format_points(((0.0, 1.0), (0.25, 0.5))) == "0,1 0.25,0.5"


# Validation of whole zones


def test_make_zone() -> None:
    made = make_zone("  Front\n door\t", "entry_point", 3, SQUARE)
    assert made.name == "Front door"
    assert made.kind is ZoneKind.ENTRY_POINT
    assert made.priority == 3
    assert made.points == ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
    assert made.bbox == (0.2, 0.2, 0.6, 0.6)
    assert len(made.edges) == 4
    assert make_zone("a", ZoneKind.YARD, 0, SQUARE).kind is ZoneKind.YARD


def test_closing_and_repeated_points_are_dropped() -> None:
    made = zone("a", "0.2,0.2 0.2,0.2 0.6,0.2 0.6,0.6 0.2,0.6 0.2,0.2")
    assert made.points == zone("a", SQUARE).points


def test_zone_is_frozen() -> None:
    made = zone("a", SQUARE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.name = "b"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("points", "key", "placeholders"),
    [
        ("0.1,0.1 0.9,0.9", "zone_too_few_points", {"count": "2", "minimum": "3"}),
        ("", "zone_too_few_points", {"count": "0", "minimum": "3"}),
        ("0.1,0.1 0.9,0.9 0.1,0.1", "zone_too_few_points", {"count": "2", "minimum": "3"}),
        # The bow-tie: its two triangles' areas cancel, yet the answer is "crosses itself".
        (
            "0.1,0.1 0.9,0.9 0.9,0.1 0.1,0.9",
            "zone_self_intersecting",
            {"first": "0.1,0.1 0.9,0.9", "second": "0.9,0.1 0.1,0.9"},
        ),
        # A figure eight pinched at one shared point.
        ("0,0 0.5,0.5 1,0 1,1 0.5,0.5 0,1", "zone_self_intersecting", None),
        # A side that doubles back along the one before it (a spike).
        ("0,0 1,0 0.5,0 0.5,1", "zone_self_intersecting", None),
        # A corner touching a side that is not its neighbour.
        ("0,0 1,0 1,1 0.5,0 0,1", "zone_self_intersecting", None),
        ("0.1,0.1 0.5,0.5 0.9,0.9", "zone_zero_area", {}),
        ("0,0.5 1,0.5 0.5,0.5", "zone_zero_area", {}),
        ("0,0 1.5,0 1,1", "zone_point_out_of_range", {"point": "1.5,0"}),
        ("0,0 nan,0 1,1", "zone_not_a_number", {"point": "nan,0"}),
        ("0,0 0.5,inf 1,1", "zone_not_a_number", {"point": "0.5,inf"}),
        ("three points", "zone_bad_points_text", {"token": "three"}),
    ],
)
def test_make_zone_rejects(points: str, key: str, placeholders: dict[str, str] | None) -> None:
    with pytest.raises(ZoneError) as caught:
        zone("Porch", points)
    assert caught.value.translation_key == key
    assert caught.value.placeholders["name"] == "Porch"
    if placeholders is not None:
        assert caught.value.placeholders == {"name": "Porch", **placeholders}
    assert str(caught.value)  # English text for logs, whatever the key


def test_too_many_points() -> None:
    count = MAX_POINTS + 1
    circle = " ".join(
        f"{0.5 + 0.4 * math.cos(2 * math.pi * i / count)},"
        f"{0.5 + 0.4 * math.sin(2 * math.pi * i / count)}"
        for i in range(count)
    )
    with pytest.raises(ZoneError) as caught:
        zone("Round", circle)
    assert caught.value.translation_key == "zone_too_many_points"
    assert caught.value.placeholders["count"] == str(count)
    fewer = " ".join(circle.split()[:MAX_POINTS])
    assert len(zone("Round", fewer).points) == MAX_POINTS


def test_nearly_straight_corner_is_exact() -> None:
    """Collinearity below float noise is decided exactly, not by a tolerance."""
    tiny = 2.0**-45  # area ~1e-14: far below what floats resolve in the cross product
    assert zone("thin", f"0,0 1,1 0.5,{0.5 + tiny}").points[2] == (0.5, 0.5 + tiny)
    with pytest.raises(ZoneError) as caught:
        zone("flat", "0,0 1,1 0.5,0.5")
    assert caught.value.translation_key == "zone_zero_area"


@pytest.mark.parametrize("name", ["", "   ", "\n\t", "\x00\x1b"])
def test_empty_name(name: str) -> None:
    with pytest.raises(ZoneError) as caught:
        zone(name, SQUARE)
    assert caught.value.translation_key == "zone_name_empty"
    assert caught.value.placeholders == {}
    assert str(caught.value) == "a zone needs a name"


def test_bad_kind() -> None:
    with pytest.raises(ZoneError) as caught:
        zone("Roof", SQUARE, kind="roof")
    assert caught.value.translation_key == "zone_bad_kind"
    assert caught.value.placeholders == {"kind": "roof", "name": "Roof"}


def test_duplicate_names() -> None:
    with pytest.raises(ZoneError) as caught:
        ZoneMap([zone("Driveway", SQUARE), zone("Yard", U_SHAPE), zone("driveway ", U_SHAPE)])
    assert caught.value.translation_key == "zone_duplicate_name"
    assert caught.value.placeholders == {"name": "driveway"}


def test_zone_error_message_without_its_placeholders() -> None:
    error = ZoneError("zone_duplicate_name")
    assert "zone_duplicate_name" in str(error)
    assert error.placeholders == {}


def test_zone_constructed_directly_is_validated() -> None:
    with pytest.raises(ZoneError) as caught:
        Zone(name="a", kind=ZoneKind.YARD, points=((0.0, 0.0), (1.0, 1.0)))
    assert caught.value.translation_key == "zone_too_few_points"
    made = Zone(name="a", kind=ZoneKind.YARD, points=((0, 0), (1, 0), (0, 1)))
    assert made.points == ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    assert all(isinstance(value, float) for point in made.points for value in point)


def test_describe() -> None:
    assert describe(zone("Driveway", SQUARE, kind="entry_point")) == "Driveway (entry point)"
    assert describe(zone("Lawn", SQUARE, kind="yard")) == "Lawn (yard)"
    assert f"person in {describe(zone('Path', SQUARE, kind='sidewalk'))}" == (
        "person in Path (sidewalk)"
    )


# Storage


def test_dict_round_trip() -> None:
    original = make_zone("Driveway", "driveway", -2, "0.1,0.5 1,0.5 1,1 1e-7,1")
    data = zone_to_dict(original)
    assert data == {
        "name": "Driveway",
        "kind": "driveway",
        "priority": -2,
        "points": [[0.1, 0.5], [1.0, 0.5], [1.0, 1.0], [1e-7, 1.0]],
    }
    restored = zone_from_dict(json.loads(json.dumps(data)))
    assert restored == original
    assert restored.bbox == original.bbox
    assert restored.edges == original.edges


def test_from_dict_priority_defaults_to_zero() -> None:
    data = zone_to_dict(zone("a", SQUARE, priority=4))
    del data["priority"]
    assert zone_from_dict(data).priority == 0


@pytest.mark.parametrize(
    ("change", "key", "field"),
    [
        (lambda d: ["not", "a", "mapping"], "zone_bad_data", "zone"),
        (lambda d: {**d, "name": None}, "zone_bad_data", "name"),
        (lambda d: {k: v for k, v in d.items() if k != "name"}, "zone_bad_data", "name"),
        (lambda d: {**d, "kind": 3}, "zone_bad_data", "kind"),
        (lambda d: {**d, "priority": True}, "zone_bad_data", "priority"),
        (lambda d: {**d, "priority": 1.5}, "zone_bad_data", "priority"),
        (lambda d: {**d, "points": "0,0 1,0 1,1"}, "zone_bad_data", "points"),
        (lambda d: {**d, "points": [[0, 0], [1, 0], [1]]}, "zone_bad_data", "points"),
        (lambda d: {**d, "points": [[0, 0], [1, 0], ["1", 1]]}, "zone_bad_data", "points"),
        (lambda d: {**d, "points": [[0, 0], [1, 0], [True, 1]]}, "zone_bad_data", "points"),
        (lambda d: {**d, "kind": "roof"}, "zone_bad_kind", None),
        (lambda d: {**d, "name": " "}, "zone_name_empty", None),
        (lambda d: {**d, "points": [[0, 0], [1.5, 0], [1, 1]]}, "zone_point_out_of_range", None),
        (lambda d: {**d, "points": [[0, 0], [math.nan, 0], [1, 1]]}, "zone_not_a_number", None),
        (lambda d: {**d, "points": [[0, 0], [1, 1]]}, "zone_too_few_points", None),
        (
            lambda d: {**d, "points": [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]},
            "zone_self_intersecting",
            None,
        ),
    ],
)
def test_from_dict_rejects_bad_stored_data(change: Any, key: str, field: str | None) -> None:
    with pytest.raises(ZoneError) as caught:
        zone_from_dict(change(zone_to_dict(zone("Lawn", SQUARE))))
    assert caught.value.translation_key == key
    if field is not None:
        assert caught.value.placeholders == {"field": field}


# Point in polygon


def test_square_inside_outside_and_outline() -> None:
    square = zone("a", SQUARE)
    assert square.contains(0.4, 0.4)
    assert not square.contains(0.1, 0.4)
    assert not square.contains(0.61, 0.4)
    assert not square.contains(0.4, 0.65)
    # On the outline counts as inside: corners and every side.
    for x, y in [(0.2, 0.2), (0.6, 0.6), (0.4, 0.2), (0.4, 0.6), (0.2, 0.4), (0.6, 0.4)]:
        assert square.contains(x, y), (x, y)
    assert not square.contains(math.nan, 0.4)
    assert not square.contains(0.4, math.inf)


def test_concave_polygon() -> None:
    u = zone("U", U_SHAPE)
    assert u.contains(0.2, 0.5)  # left arm
    assert u.contains(0.8, 0.5)  # right arm
    assert u.contains(0.5, 0.8)  # base
    assert not u.contains(0.5, 0.5)  # the notch: inside the bounding box, outside the zone
    assert not u.contains(0.5, 0.2)
    assert not u.contains(0.5, 0.1)  # level with the arms' tops, in the notch's opening
    assert u.contains(0.5, 0.7)  # the notch's floor is the outline
    assert u.contains(0.3, 0.4)  # the notch's walls too
    assert not u.contains(0.5, 0.95)


def test_slanted_sides_and_corners_on_the_ray() -> None:
    """A ray through corners (y of a vertex) counts each crossing once."""
    diamond = zone("d", "0.5,0.1 0.9,0.5 0.5,0.9 0.1,0.5")
    assert diamond.contains(0.5, 0.5)
    assert diamond.contains(0.3, 0.5)  # level with two corners
    assert not diamond.contains(0.05, 0.5)  # left of them, ray through both corners
    assert not diamond.contains(0.95, 0.5)
    assert not diamond.contains(0.2, 0.2)
    assert diamond.contains(0.1, 0.5)  # a corner
    assert diamond.contains(0.7, 0.3)  # on a slanted side, exactly representable
    arrow = zone("arrow", "0.1,0.1 0.5,0.5 0.1,0.9 0.9,0.5")  # concave corner at 0.5,0.5
    assert not arrow.contains(0.3, 0.5)
    assert arrow.contains(0.7, 0.5)
    assert arrow.contains(0.5, 0.5)


def test_lookup_agrees_with_a_reference_on_random_points() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible points, not a secret
    shapes = [
        zone("u", U_SHAPE),
        zone("star", "0.5,0 0.6,0.4 1,0.5 0.6,0.6 0.5,1 0.4,0.6 0,0.5 0.4,0.4"),
        zone("zig", "0,0 0.25,0.8 0.5,0.1 0.75,0.8 1,0 1,1 0,1"),
    ]
    for shape in shapes:
        disagreements = [
            (x, y)
            for x, y in ((rng.random(), rng.random()) for _ in range(4000))
            if shape.contains(x, y) != reference_inside(shape.points, x, y)
        ]
        assert disagreements == [], shape.name
        hits = sum(shape.contains(rng.random(), rng.random()) for _ in range(1000))
        assert 100 < hits < 900  # the sample really exercises both answers


# ZoneMap


def test_bottom_centre_decides() -> None:
    """A standing person whose head is in the upper zone is where their feet are."""
    upper = zone("Street", "0,0 1,0 1,0.5 0,0.5", kind="sidewalk")
    lower = zone("Lawn", "0,0.5 1,0.5 1,1 0,1", kind="yard")
    zones = ZoneMap([upper, lower])
    tall = detection(100, 100, 100, 500)  # top at 0.1, bottom centre at (0.15, 0.6)
    assert zones.zone_for(tall) is lower
    short = detection(100, 100, 100, 200)  # bottom centre at (0.15, 0.3)
    assert zones.zone_for(short) is upper
    # Horizontal position is the centre: left edge outside a narrow zone, centre inside it.
    narrow = ZoneMap([zone("Door", "0.4,0 0.6,0 0.6,1 0.4,1")])
    assert narrow.zone_for(detection(300, 0, 300, 500)) is not None  # centre x 0.45
    assert narrow.zone_for(detection(100, 0, 300, 500)) is None  # centre x 0.25, right edge 0.4


def test_frame_size_is_used_for_normalising() -> None:
    right = ZoneMap([zone("Right", "0.5,0 1,0 1,1 0.5,1")])
    box = detection(1200, 100, 200, 300, width=1920, height=1080)  # centre x 1300 / 1920 = 0.68
    assert right.zone_for(box) is not None
    assert right.zone_for(detection(1200, 100, 200, 300, width=4000, height=1080)) is None


def test_zone_for_without_a_usable_frame_or_box() -> None:
    zones = ZoneMap([zone("All", "0,0 1,0 1,1 0,1")])
    assert zones.zone_for(detection(10, 10, 10, 10, width=0, height=0)) is None
    assert zones.zone_for(detection(10, 10, 10, 10, width=100, height=0)) is None
    assert zones.zone_for(detection(math.nan, 10, 10, 10)) is None
    assert zones.zone_for(detection(10, 10, 10, math.inf)) is None
    assert zones.zone_for(detection(10, 10, 10, 10)) is not None
    assert ZoneMap().zone_for(detection(10, 10, 10, 10)) is None


def test_box_sticking_out_counts_at_the_frame_edge() -> None:
    bottom = ZoneMap([zone("Bottom", "0,0.8 1,0.8 1,1 0,1")])
    assert bottom.zone_for(detection(100, 900, 100, 200)) is not None  # bottom at 1.1 -> 1.0
    assert bottom.zone_for(detection(-300, 900, 200, 100)) is not None  # centre x -0.2 -> 0
    assert bottom.zone_at(0.5, 1.1) is None  # zone_at itself does not clamp


def test_higher_priority_wins_where_zones_overlap() -> None:
    big = zone("Yard", "0,0 1,0 1,1 0,1", kind="yard", priority=0)
    door = zone("Door", SQUARE, kind="entry_point", priority=5)
    for order in ([big, door], [door, big]):
        zones = ZoneMap(order)
        assert zones.zone_at(0.4, 0.4) is door
        assert zones.zone_at(0.9, 0.9) is big
    low = zone("Path", SQUARE, priority=-1)
    assert ZoneMap([low, big]).zone_at(0.4, 0.4) is big


def test_equal_priority_goes_to_the_zone_listed_first() -> None:
    first = zone("First", "0,0 0.6,0 0.6,0.6 0,0.6", priority=2)
    second = zone("Second", "0.4,0.4 1,0.4 1,1 0.4,1", priority=2)
    assert ZoneMap([first, second]).zone_at(0.5, 0.5) is first
    assert ZoneMap([second, first]).zone_at(0.5, 0.5) is second
    assert ZoneMap([first, second]).zone_at(0.9, 0.9) is second


def test_zone_map_keeps_the_given_order() -> None:
    zones = [zone("b", SQUARE, priority=1), zone("a", U_SHAPE, priority=9)]
    mapped = ZoneMap(zones)
    assert mapped.zones == tuple(zones)
    assert list(mapped) == zones
    assert len(mapped) == 2
    assert len(ZoneMap()) == 0


# Drawing


def test_draw_zones_tints_inside_and_leaves_outside() -> None:
    lawn = zone("Lawn", "0.1,0.3 0.5,0.3 0.5,0.9 0.1,0.9", kind="yard")
    drawn = Image.open(io.BytesIO(draw_zones(jpeg(), [lawn])))
    assert drawn.format == "JPEG"
    assert drawn.size == (640, 480)
    frame = drawn.convert("RGB")
    inside = pixel(frame, 0.3, 0.6)
    assert not near(inside, GREY, 10)
    assert ZONE_COLORS[ZoneKind.YARD] == "#76B900"
    # Tinted towards the yard colour: more green, much less blue than the grey.
    assert inside[1] > GREY[1] + 8, inside
    assert inside[2] < GREY[2] - 20, inside
    for x, y in [(0.8, 0.6), (0.05, 0.5), (0.3, 0.95), (0.9, 0.1)]:
        assert near(pixel(frame, x, y), GREY), (x, y)
    # The outline is drawn in the zone's colour, not only the fill.
    edge = pixel(frame, 0.5, 0.6)
    assert edge[2] < 60


def test_draw_zones_shows_the_winning_zone_on_top() -> None:
    yard = zone("Yard", "0,0 1,0 1,1 0,1", kind="yard", priority=0)
    door = zone("Door", "0.3,0.3 0.7,0.3 0.7,0.7 0.3,0.7", kind="entry_point", priority=5)
    frame = Image.open(io.BytesIO(draw_zones(jpeg(), [door, yard]))).convert("RGB")
    red, green, _blue = pixel(frame, 0.5, 0.55)
    assert red > green  # the door's red tint, not the yard's green under it
    red, green, _blue = pixel(frame, 0.15, 0.85)
    assert green > red


def test_draw_zones_without_zones_keeps_the_picture() -> None:
    frame = Image.open(io.BytesIO(draw_zones(jpeg((320, 200)), []))).convert("RGB")
    assert frame.size == (320, 200)
    assert all(near(pixel(frame, x / 10, y / 10), GREY, 4) for x in range(11) for y in range(11))


def test_draw_zones_applies_exif_orientation_first() -> None:
    """Orientation 6: a 640x480 upload is shown as 480x640; zones are drawn on that."""
    top = zone("Top", "0,0 1,0 1,0.25 0,0.25", kind="driveway")
    frame = Image.open(io.BytesIO(draw_zones(jpeg(orientation=6), [top])))
    assert frame.size == (480, 640)
    assert frame.getexif().get(0x0112) is None
    rgb = frame.convert("RGB")
    assert not near(pixel(rgb, 0.5, 0.15), GREY, 10)
    assert near(pixel(rgb, 0.5, 0.7), GREY)


@pytest.mark.parametrize("data", [b"", b"not an image", jpeg()[:200]])
def test_draw_zones_refuses_undecodable_input(data: bytes) -> None:
    with pytest.raises(AnnotateError):
        draw_zones(data, [zone("a", SQUARE)])


def test_draw_zones_labels_at_the_frame_edge_and_quality() -> None:
    """A zone in the top right corner gets its tag inside the frame, pushed left to fit."""
    corner = zone("A rather long zone name", "0.95,0 1,0 1,0.05", kind="other")
    low = draw_zones(jpeg(), [corner], quality=20)
    high = draw_zones(jpeg(), [corner], quality=95)
    assert len(low) < len(high)
    frame = Image.open(io.BytesIO(high)).convert("RGB")
    row = [frame.getpixel((x, 4)) for x in range(round(0.6 * 640), round(0.94 * 640))]
    tagged = sum(not near(value, GREY, 20) for value in row if isinstance(value, tuple))
    assert tagged > 80  # left of the zone: only the tag can have coloured these
    assert near(pixel(frame, 0.5, 0.5), GREY)
