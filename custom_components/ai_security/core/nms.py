"""One object, one box: merge a detector's overlapping boxes of one class in one frame.

Detectors often answer with several boxes for one object: RT-DETRv2 now and then with two nearly
identical ones, OpenCV's HOG people detector (the reference server's backend without a GPU) with
a box around the whole person plus boxes around the upper body or the legs at smaller scales.
Stored as they come, one person would become "2 people" or "3 people" in summaries, prompts,
scores and baselines. So the integration merges them itself, whatever the detector does, before
anything is stored.

The rule is greedy non-maximum suppression per class, most confident box first: a box is dropped
when a box of the same class already kept overlaps it by IOU_THRESHOLD or more (intersection
over union), or when either of the two lies CONTAINED_SHARE or more inside the other. Containment
is checked both ways because HOG is often more confident of a part (the upper body) than of the
whole person around it: either way, one of the two is a duplicate. Boxes of different classes
never suppress each other (a person on a bicycle keeps both).

The price: two objects of one class whose boxes overlap that much (a child just in front of an
adult) count as one. Two separate boxes on one object that do not overlap each other (HOG's
upper body and legs, without the whole-person box between them) stay two: no overlap rule can
join them without also joining two people who stand side by side.

Pure functions over the detector client's Found items, deterministic and independent of the
order the server listed them in; a frame holds few boxes, so plain Python is fast enough.
"""

from collections.abc import Sequence
from typing import Final

from .detector import Found
from .models import BoundingBox

IOU_THRESHOLD: Final = 0.5
"""Boxes of one class overlapping by this intersection over union or more show one object.

0.5 is the usual choice of object detectors' own NMS: two people side by side rarely overlap
that much, two boxes of one person nearly always do."""
CONTAINED_SHARE: Final = 0.8
"""A box lying this share of its area or more inside another box of its class is a duplicate.

IoU misses a small box inside a large one (a head or torso box inside a whole-person box has an
IoU of 0.2 or less), so containment is checked on its own."""


def area(box: BoundingBox) -> float:
    """Return the box's area in square pixels (0 for a degenerate box)."""
    return max(0.0, box.w) * max(0.0, box.h)


def intersection(a: BoundingBox, b: BoundingBox) -> float:
    """Return the area two boxes share (0 when they do not touch)."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    return max(0.0, width) * max(0.0, height)


def iou(a: BoundingBox, b: BoundingBox) -> float:
    """Return the intersection over union of two boxes, 0 to 1 (0 when both are empty)."""
    shared = intersection(a, b)
    union = area(a) + area(b) - shared
    return shared / union if union > 0 else 0.0


def contained_share(a: BoundingBox, b: BoundingBox) -> float:
    """Return the share of the smaller box's area that lies inside the other box, 0 to 1.

    1 when one box lies wholly inside the other, whichever is larger; 0 when a box is empty.
    """
    smaller = min(area(a), area(b))
    return intersection(a, b) / smaller if smaller > 0 else 0.0


def same_object(a: Found, b: Found) -> bool:
    """Return whether two detections are one object seen twice: same class, boxes overlapping.

    Overlapping means an IoU of IOU_THRESHOLD or more, or one box lying CONTAINED_SHARE or more
    inside the other.
    """
    return a.label == b.label and (
        iou(a.bbox, b.bbox) >= IOU_THRESHOLD or contained_share(a.bbox, b.bbox) >= CONTAINED_SHARE
    )


def _rank(item: Found) -> tuple[float, float, float, float, float, float]:
    """Return the sort key deciding which box of a group is kept: the most confident.

    Ties go to the larger box (the fuller view of the object), then to the box further up and
    left, so the outcome never depends on the order of the server's reply.
    """
    box = item.bbox
    return (-item.confidence, -area(box), box.x, box.y, box.w, box.h)


def one_box_per_object(detections: Sequence[Found]) -> tuple[Found, ...]:
    """Return detections without the duplicate boxes of one object (see the module docstring).

    The boxes kept come back in the order they were given, so a reply with nothing to merge is
    returned as it was.
    """
    order = sorted(range(len(detections)), key=lambda index: _rank(detections[index]))
    kept: list[int] = []
    for index in order:
        candidate = detections[index]
        if not any(same_object(detections[other], candidate) for other in kept):
            kept.append(index)
    return tuple(detections[index] for index in sorted(kept))
