"""Named areas of a camera's view (driveway, entry point...), so events say where, not only what.

A zone is a polygon in normalised coordinates (0..1 of the frame's width and height, origin top
left, as the frame is shown after its EXIF orientation), so it survives a change of resolution.
Users type it as "x1,y1 x2,y2 ..."; everything typed or stored is validated here and rejected with
a ZoneError that carries a translation key, because a wrong polygon would silently put events in
the wrong place. A detection is in the zone that holds the bottom centre of its box: that is
where a person or car touches the ground, while the top of the box often hangs over the next
zone. Where zones overlap the higher priority wins, then the zone listed first.

Looking a detection up runs for every detection of every event, so a ZoneMap precomputes each
zone's bounding box (most zones are rejected with four comparisons) and its edges (the inner loop
only unpacks tuples and does float arithmetic). scripts/bench_zones measures it. The polygon
arithmetic itself is zone_geometry's, and the picture of a camera's zones zone_drawing's.
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import math
import re
from typing import Any, Final, Literal

from .errors import AiSecurityError
from .models import Detection
from .zone_geometry import Edge, Point, crossing_sides, inside, orientation, polygon_edges

MIN_POINTS: Final = 3
MAX_POINTS: Final = 100
"""More than anyone draws by hand; it bounds the per-detection cost, which grows with the edges."""

type ZoneErrorKey = Literal[
    "zone_bad_data",
    "zone_bad_kind",
    "zone_bad_points_text",
    "zone_duplicate_name",
    "zone_name_empty",
    "zone_not_a_number",
    "zone_point_out_of_range",
    "zone_self_intersecting",
    "zone_too_few_points",
    "zone_too_many_points",
    "zone_zero_area",
]

_MESSAGES: Final[dict[str, str]] = {
    "zone_bad_data": "stored zone is malformed ({field})",
    "zone_bad_kind": "unknown zone kind {kind!r}",
    "zone_bad_points_text": "{token!r} is not a point; write points as x,y pairs like 0.1,0.9",
    "zone_duplicate_name": "two zones are named {name!r}",
    "zone_name_empty": "a zone needs a name",
    "zone_not_a_number": "point {point} is not a finite number",
    "zone_point_out_of_range": "point {point} is outside the frame (0 to 1)",
    "zone_self_intersecting": "zone {name!r} crosses itself: {first} and {second} meet",
    "zone_too_few_points": "zone {name!r} has {count} different points, needs at least {minimum}",
    "zone_too_many_points": "zone {name!r} has {count} points, at most {maximum} are allowed",
    "zone_zero_area": "zone {name!r} has no area: its points lie on one line",
}
"""English text of each key, for logs; the Home Assistant layer shows the translated one."""

_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NOT_FINITE: Final = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_COMMA: Final = re.compile(r"\s*,\s*")


class ZoneKind(StrEnum):
    """What a zone is, so the LLM and alert rules weigh a person at a door over one on a path."""

    ENTRY_POINT = "entry_point"
    DRIVEWAY = "driveway"
    SIDEWALK = "sidewalk"
    YARD = "yard"
    OTHER = "other"


class ZoneError(AiSecurityError, ValueError):
    """A zone as typed or stored is not usable; its key names a form error of the zone flow.

    str() gives the English text for logs.
    """

    translation_key: ZoneErrorKey

    def __init__(self, key: ZoneErrorKey, placeholders: Mapping[str, str] | None = None) -> None:
        """Keep the translation key and its placeholders (all strings, as translations need)."""
        shown = dict(placeholders or {})
        try:
            message = _MESSAGES[key].format(**shown)
        except KeyError:  # a placeholder missing: still say which error it is
            message = f"{key} {shown}"
        super().__init__(key, message, **shown)


@dataclass(frozen=True, kw_only=True, slots=True)
class Zone:
    """One named polygon of a camera's view; always valid, because constructing it validates it.

    The name is tidied (whitespace collapsed, control characters dropped): it goes into prompts
    and labels on one line. Points are kept without a repeated closing point or repeated
    neighbours, which people type but which add nothing. bbox and edges are derived, for lookups.
    """

    name: str
    kind: ZoneKind
    priority: int = 0
    points: tuple[Point, ...]
    bbox: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)
    """(x_min, y_min, x_max, y_max): a point outside it is outside the zone, four comparisons."""
    edges: tuple[Edge, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate and tidy the fields, then precompute what lookups need."""
        name = _clean_name(self.name)
        if not name:
            raise ZoneError("zone_name_empty")
        kind = _kind(self.kind, name)
        points = _validated_points(name, self.points)
        xs, ys = [x for x, _ in points], [y for _, y in points]
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "bbox", (min(xs), min(ys), max(xs), max(ys)))
        object.__setattr__(self, "edges", polygon_edges(points))

    def contains(self, x: float, y: float) -> bool:
        """Return whether the normalised point is inside the zone; points on its outline are.

        Inside on the outline, so a polygon drawn along the frame's edge (x = 1) holds boxes that
        touch it. Exact for points and for horizontal and vertical sides; on a slanted side,
        up to float rounding (1e-16 of the frame, far below a pixel).
        """
        x_min, y_min, x_max, y_max = self.bbox
        if not (x_min <= x <= x_max and y_min <= y <= y_max):  # also False for NaN
            return False
        return inside(self.edges, x, y)


def parse_points(text: str) -> tuple[Point, ...]:
    """Return the points of "x1,y1 x2,y2 ...": pairs split by spaces or newlines, a comma inside.

    Spaces around the comma are allowed ("0.1, 0.2"). Checks each point (a finite number, inside
    0..1) and names the first bad one; the polygon's shape is checked by Zone. Raises ZoneError.
    """
    points = []
    for token in _COMMA.sub(",", text.strip()).split():
        parts = token.split(",")
        if len(parts) != 2 or not all(parts):
            raise ZoneError("zone_bad_points_text", {"token": _short(token)})
        values = []
        for part in parts:
            if _NOT_FINITE.fullmatch(part):
                raise ZoneError("zone_not_a_number", {"point": _short(token)})
            if not _NUMBER.fullmatch(part):
                raise ZoneError("zone_bad_points_text", {"token": _short(token)})
            value = float(part)
            if not math.isfinite(value):  # 1e999 reads as inf
                raise ZoneError("zone_not_a_number", {"point": _short(token)})
            values.append(value)
        points.append(_checked_point(values[0], values[1]))
    return tuple(points)


def format_points(points: Iterable[Point]) -> str:
    """Return points as parse_points reads them, exactly ("0.1,0.2 1,0.5"): for editing forms."""
    return " ".join(f"{_number(x)},{_number(y)}" for x, y in points)


def make_zone(name: str, kind: ZoneKind | str, priority: int, points_text: str) -> Zone:
    """Return the zone a user typed in a form; raises ZoneError naming what is wrong."""
    try:
        points = parse_points(points_text)
    except ZoneError as err:
        raise ZoneError(
            err.translation_key, {**err.placeholders, "name": _clean_name(name)}
        ) from None
    return Zone(name=name, kind=_kind(kind, name), priority=priority, points=points)


def zone_to_dict(zone: Zone) -> dict[str, Any]:
    """Return the zone as JSON-able data, for the config entry's options."""
    return {
        "name": zone.name,
        "kind": zone.kind.value,
        "priority": zone.priority,
        "points": [[x, y] for x, y in zone.points],
    }


def zone_from_dict(data: object) -> Zone:
    """Return the zone zone_to_dict stored; validated again, because stored data can be edited."""
    if not isinstance(data, Mapping):
        raise ZoneError("zone_bad_data", {"field": "zone"})
    name, kind = data.get("name"), data.get("kind")
    priority, raw_points = data.get("priority", 0), data.get("points")
    if not isinstance(name, str):
        raise ZoneError("zone_bad_data", {"field": "name"})
    if not isinstance(kind, str):
        raise ZoneError("zone_bad_data", {"field": "kind"})
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ZoneError("zone_bad_data", {"field": "priority"})
    if not isinstance(raw_points, list | tuple) or not all(
        isinstance(point, list | tuple)
        and len(point) == 2
        and all(_is_number(value) for value in point)
        for point in raw_points
    ):
        raise ZoneError("zone_bad_data", {"field": "points"})
    points = tuple((float(x), float(y)) for x, y in raw_points)
    return Zone(name=name, kind=_kind(kind, name), priority=priority, points=points)


def describe(zone: Zone) -> str:
    """Return "Driveway (entry point)": how prompts and summaries name the zone."""
    return f"{zone.name} ({zone.kind.value.replace('_', ' ')})"


class ZoneMap:
    """A camera's zones, ready to place detections: highest priority first, then as listed."""

    __slots__ = ("_ordered", "_zones")

    def __init__(self, zones: Iterable[Zone] = ()) -> None:
        """Keep the zones; names must differ (ignoring case), as alert rules refer to them."""
        self._zones = tuple(zones)
        seen: set[str] = set()
        for zone in self._zones:
            folded = zone.name.casefold()
            if folded in seen:
                raise ZoneError("zone_duplicate_name", {"name": zone.name})
            seen.add(folded)
        # sorted() is stable: equal priorities keep the order they were listed in.
        self._ordered: tuple[tuple[float, float, float, float, tuple[Edge, ...], Zone], ...] = (
            tuple(
                (*zone.bbox, zone.edges, zone)
                for zone in sorted(self._zones, key=lambda z: -z.priority)
            )
        )

    @property
    def zones(self) -> tuple[Zone, ...]:
        """The zones in the order they were given (the order to show and store them in)."""
        return self._zones

    def __len__(self) -> int:
        """Return how many zones there are."""
        return len(self._zones)

    def __iter__(self) -> Iterator[Zone]:
        """Iterate over the zones in the order they were given."""
        return iter(self._zones)

    def zone_at(self, x: float, y: float) -> Zone | None:
        """Return the zone holding the normalised point (the highest priority one), or None."""
        for x_min, y_min, x_max, y_max, edges, zone in self._ordered:
            # Chained comparisons are False for NaN, so a NaN point is in no zone.
            if x_min <= x <= x_max and y_min <= y <= y_max and inside(edges, x, y):
                return zone
        return None

    def zone_for(self, detection: Detection) -> Zone | None:
        """Return the zone of the detection's bottom centre (where it stands), or None.

        None when the detection does not know its frame's size. A box sticking out of the frame
        (detectors pad boxes) counts at the frame's edge, where its visible part ends.
        """
        width, height = detection.frame_width, detection.frame_height
        if width <= 0 or height <= 0:
            return None
        box = detection.bbox
        x = (box.x + box.w / 2) / width
        y = (box.y + box.h) / height
        if not (-math.inf < x < math.inf and -math.inf < y < math.inf):
            return None
        return self.zone_at(min(1.0, max(0.0, x)), min(1.0, max(0.0, y)))


def _kind(kind: ZoneKind | str, name: str) -> ZoneKind:
    """Return the kind as the enum; a form or stored data gives its value as text."""
    try:
        return ZoneKind(kind)
    except ValueError:
        raise ZoneError("zone_bad_kind", {"kind": str(kind), "name": _clean_name(name)}) from None


MAX_ZONE_NAME: Final = 64
"""Characters a zone name keeps: each detection stores its zone's name in a 64-character column."""


def _clean_name(name: str) -> str:
    """Return the name on one line (control characters dropped, whitespace collapsed), bounded."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    return flat[:MAX_ZONE_NAME].rstrip()


def _short(text: str, limit: int = 40) -> str:
    """Return text cut for an error message: a pasted essay should not fill the form."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: float) -> str:
    """Return the shortest text that reads back as exactly value, "1" rather than "1.0"."""
    text = repr(value)
    return text.removesuffix(".0")


def _is_number(value: object) -> bool:
    """Return whether stored data holds a number (bool is an int to Python, not to us)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked_point(x: float, y: float) -> Point:
    """Return the point if both values are finite and inside 0..1; raises ZoneError."""
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ZoneError("zone_not_a_number", {"point": f"{_number(x)},{_number(y)}"})
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        raise ZoneError("zone_point_out_of_range", {"point": f"{_number(x)},{_number(y)}"})
    return (x + 0.0, y + 0.0)


def _validated_points(name: str, raw: Iterable[Sequence[float]]) -> tuple[Point, ...]:
    """Return the polygon's points tidied, or raise ZoneError for the first problem found.

    Order of checks: each point, then count, then a flat polygon (zero area) and last crossing
    sides, so the error names the cause a user would fix first.
    """
    points: list[Point] = []
    for x, y in raw:
        try:
            point = _checked_point(float(x), float(y))
        except ZoneError as err:
            raise ZoneError(err.translation_key, {**err.placeholders, "name": name}) from None
        if not points or points[-1] != point:
            points.append(point)
    while len(points) > 1 and points[-1] == points[0]:  # "closed" by repeating the first point
        points.pop()
    count = len(points)
    if count < MIN_POINTS:
        raise ZoneError(
            "zone_too_few_points", {"name": name, "count": str(count), "minimum": str(MIN_POINTS)}
        )
    if count > MAX_POINTS:
        raise ZoneError(
            "zone_too_many_points", {"name": name, "count": str(count), "maximum": str(MAX_POINTS)}
        )
    first = points[0]
    if all(orientation(first, points[1], point) == 0 for point in points[2:]):
        raise ZoneError("zone_zero_area", {"name": name})
    crossing = crossing_sides(points)
    if crossing is not None:
        i, j = crossing
        raise ZoneError(
            "zone_self_intersecting",
            {
                "name": name,
                "first": format_points((points[i], points[(i + 1) % count])),
                "second": format_points((points[j], points[(j + 1) % count])),
            },
        )
    return tuple(points)
