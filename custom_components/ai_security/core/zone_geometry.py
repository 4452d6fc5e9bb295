"""Polygon geometry for zones: orientation, crossing sides, and the point-in-polygon lookup.

Exact where it matters: near zero, the sign of a cross product is taken from fractions, so
validation never calls a touching polygon simple; the lookup's sides are precomputed as tuples
so that its inner loop, run for every detection, only unpacks floats. It is separate from
zones.py (what a zone is, how it is typed, stored and validated) because this is plain
arithmetic on points, with no names, kinds or errors; scripts/bench_zones measures the lookup.
"""

from collections.abc import Sequence
from fractions import Fraction
from typing import Final

type Point = tuple[float, float]
type Edge = tuple[float, float, float, float, float, float, float]
"""(y_low, y_high, x_a, y_a, dx/dy, x_low, x_high) of one polygon side, ready for the lookup."""

_EXACT_BELOW: Final = 1e-12
"""Cross products of points in 0..1 are off by at most ~1e-15 in floats; closer to zero than this,
the sign is taken from exact fractions, so validation never calls a touching polygon simple."""


def orientation(a: Point, b: Point, c: Point) -> int:
    """Return the sign of the cross product (b - a) x (c - a): 1 left turn, -1 right, 0 straight.

    Exact: near zero, floats could call touching sides apart (or the reverse), so the sign is
    then computed with fractions (slow, but only for nearly straight triples).
    """
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    if abs(cross) > _EXACT_BELOW:
        return 1 if cross > 0 else -1
    ax, ay = Fraction(a[0]), Fraction(a[1])
    exact = (Fraction(b[0]) - ax) * (Fraction(c[1]) - ay) - (Fraction(b[1]) - ay) * (
        Fraction(c[0]) - ax
    )
    return (exact > 0) - (exact < 0)


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    """Return whether p, known to be on the line through a and b, lies between them."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Return whether the closed segments ab and cd share any point (crossing or touching)."""
    o1, o2 = orientation(a, b, c), orientation(a, b, d)
    o3, o4 = orientation(c, d, a), orientation(c, d, b)
    if o1 != o2 and o3 != o4 and 0 not in (o1, o2, o3, o4):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def crossing_sides(points: Sequence[Point]) -> tuple[int, int] | None:
    """Return the indexes of two sides that meet where they should not, or None if simple.

    Neighbouring sides share a point by design; they only go wrong when the second doubles back
    along the first. Other sides must not meet at all, not even at a point (a figure eight
    pinched at one point is two zones, and its inside is ambiguous).
    """
    count = len(points)
    for i in range(count):
        a, b, c = points[i], points[(i + 1) % count], points[(i + 2) % count]
        if (
            orientation(a, b, c) == 0
            and (b[0] - a[0]) * (c[0] - b[0]) + (b[1] - a[1]) * (c[1] - b[1]) < 0
        ):
            return i, (i + 1) % count
    for i in range(count):
        a, b = points[i], points[(i + 1) % count]
        for j in range(i + 2, count):
            if i == 0 and j == count - 1:  # the closing side is the first one's neighbour
                continue
            if _segments_meet(a, b, points[j], points[(j + 1) % count]):
                return i, j
    return None


def polygon_edges(points: Sequence[Point]) -> tuple[Edge, ...]:
    """Return each side as the tuple inside() unpacks, so the lookup computes nothing twice."""
    edges = []
    for index, (x_a, y_a) in enumerate(points):
        x_b, y_b = points[(index + 1) % len(points)]
        slope = 0.0 if y_a == y_b else (x_b - x_a) / (y_b - y_a)
        edges.append((min(y_a, y_b), max(y_a, y_b), x_a, y_a, slope, min(x_a, x_b), max(x_a, x_b)))
    return tuple(edges)


def inside(edges: tuple[Edge, ...], x: float, y: float) -> bool:
    """Return whether the point is inside the polygon or on its outline (even-odd rule).

    A ray from the point to the right crosses the outline an odd number of times from inside.
    Each side counts for y_low <= y < y_high, so a ray through a corner counts it once. A point
    on a side is inside: found where the ray would start on it. The loop allocates nothing but
    floats: it runs for every detection.
    """
    inside = False
    for y_low, y_high, x_a, y_a, slope, x_low, x_high in edges:
        if y < y_low or y > y_high:
            continue
        if y_low == y_high:  # horizontal: the ray runs along it, only points on it matter
            if x_low <= x <= x_high:
                return True
            continue
        crossing = x_a + (y - y_a) * slope
        if x == crossing:
            return True
        if x < crossing and y < y_high:
            inside = not inside
    return inside
