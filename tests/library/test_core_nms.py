"""core.nms: one box per object and class in a frame, whatever duplicates a detector sends."""

from itertools import permutations

import pytest

from custom_components.ai_security.core.detector import Found
from custom_components.ai_security.core.models import BoundingBox
from custom_components.ai_security.core.nms import (
    CONTAINED_SHARE,
    IOU_THRESHOLD,
    contained_share,
    iou,
    one_box_per_object,
    same_object,
)


def found(
    x: float, y: float, w: float, h: float, confidence: float = 0.9, label: str = "person"
) -> Found:
    """Return a detection of label with the box [x, y, w, h]."""
    return Found(label=label, confidence=confidence, bbox=BoundingBox(x=x, y=y, w=w, h=h))


def test_overlap_measures() -> None:
    """IoU and the share of the smaller box inside the other, on boxes worked out by hand."""
    a, b = BoundingBox(x=0, y=0, w=10, h=10), BoundingBox(x=5, y=0, w=10, h=10)
    assert iou(a, b) == pytest.approx(50 / 150)
    assert contained_share(a, b) == pytest.approx(0.5)
    inner = BoundingBox(x=2, y=2, w=4, h=4)
    assert iou(a, inner) == pytest.approx(16 / 100)
    assert contained_share(a, inner) == contained_share(inner, a) == 1.0
    apart = BoundingBox(x=20, y=20, w=5, h=5)
    assert iou(a, apart) == contained_share(a, apart) == 0.0
    assert iou(a, a) == 1.0
    empty = BoundingBox(x=1, y=1, w=0, h=0)
    assert iou(empty, empty) == contained_share(a, empty) == 0.0


def test_three_boxes_on_one_person_become_the_most_confident() -> None:
    """Near-identical boxes of one person (IoU over the threshold) leave the surest one."""
    boxes = (
        found(100, 80, 60, 140, 0.7),
        found(104, 84, 60, 140, 0.95),
        found(98, 76, 64, 146, 0.8),
    )
    assert iou(boxes[0].bbox, boxes[1].bbox) >= IOU_THRESHOLD
    assert one_box_per_object(boxes) == (boxes[1],)


def test_overlap_below_the_threshold_is_two_objects() -> None:
    """Two people side by side, their boxes touching a little, stay two."""
    left, right = found(100, 100, 100, 200, 0.9), found(170, 100, 100, 200, 0.8)
    assert iou(left.bbox, right.bbox) < IOU_THRESHOLD
    assert contained_share(left.bbox, right.bbox) < CONTAINED_SHARE
    assert one_box_per_object([left, right]) == (left, right)


def test_a_box_inside_a_surer_one_goes() -> None:
    """A torso box inside a surer whole-person box (IoU about 0.2) is the same person."""
    whole, torso = found(260, 66, 275, 551, 0.78), found(352, 98, 126, 250, 0.63)
    assert iou(whole.bbox, torso.bbox) < IOU_THRESHOLD
    assert one_box_per_object([torso, whole]) == (whole,)


def test_a_less_sure_box_around_a_surer_one_goes_too() -> None:
    """HOG is often surer of the upper body than of the person around it: one box stays."""
    torso, whole = found(573, 195, 127, 254, 0.82), found(524, 20, 228, 456, 0.6)
    assert one_box_per_object([whole, torso]) == (torso,)


def test_mostly_inside_is_inside() -> None:
    """A box 80 % inside another of its class is a duplicate; one 75 % inside is not."""
    big = found(0, 0, 100, 200, 0.9)
    mostly = found(20, 50, 100, 40, 0.5)  # 80 of its 100 px width inside, all its height
    three_quarters = found(25, 120, 100, 40, 0.5)
    assert contained_share(big.bbox, mostly.bbox) == pytest.approx(CONTAINED_SHARE)
    assert contained_share(big.bbox, three_quarters.bbox) == pytest.approx(0.75)
    assert iou(big.bbox, mostly.bbox) < IOU_THRESHOLD
    assert one_box_per_object([big, mostly]) == (big,)
    assert one_box_per_object([big, three_quarters]) == (big, three_quarters)


def test_classes_never_suppress_each_other() -> None:
    """A person on a bicycle keeps both boxes; only same-class duplicates merge."""
    person = found(100, 50, 80, 200, 0.9)
    bicycle = found(100, 60, 80, 190, 0.8, label="bicycle")
    dog = found(100, 50, 80, 200, 0.7, label="dog")
    assert not same_object(person, bicycle)
    assert one_box_per_object([person, bicycle, dog]) == (person, bicycle, dog)
    twin = found(102, 52, 80, 200, 0.6)
    assert one_box_per_object([twin, bicycle, person, dog]) == (bicycle, person, dog)


def test_only_kept_boxes_suppress() -> None:
    """Greedy by confidence: a box already dropped drops nothing, a kept one does."""
    a = found(0, 0, 100, 100, 0.9)
    c = found(30, 0, 100, 100, 0.85)
    b = found(40, 0, 100, 100, 0.8)
    far = found(70, 0, 100, 100, 0.7)
    assert iou(a.bbox, c.bbox) >= IOU_THRESHOLD  # c goes for a
    assert iou(c.bbox, b.bbox) >= IOU_THRESHOLD > iou(a.bbox, b.bbox)  # b stays: c was dropped
    assert iou(b.bbox, far.bbox) >= IOU_THRESHOLD > iou(a.bbox, far.bbox)  # far goes for b
    assert one_box_per_object([far, b, c, a]) == (b, a)


def test_ties_and_order_do_not_change_the_outcome() -> None:
    """Whatever order the server lists them in, the same boxes stay, in the order given."""
    boxes = [
        found(100, 100, 50, 100, 0.8),
        found(102, 100, 50, 100, 0.8),  # tie on confidence and area: the one further left stays
        found(90, 95, 70, 130, 0.8),  # same confidence, larger: the fuller view is kept
        found(400, 100, 50, 100, 0.8),
        found(400, 100, 50, 100, 0.6, label="dog"),
    ]
    for order in permutations(boxes):
        kept = one_box_per_object(order)
        assert set(kept) == {boxes[2], boxes[3], boxes[4]}
        assert list(kept) == [box for box in order if box in kept]
    assert one_box_per_object(boxes[:2]) == (boxes[0],)
    assert one_box_per_object(boxes[1::-1]) == (boxes[0],)


def test_nothing_to_merge_returns_the_reply_as_it_was() -> None:
    """No boxes, one box, or boxes apart: the same detections in the same order."""
    assert one_box_per_object([]) == ()
    lone = found(1, 2, 3, 4)
    assert one_box_per_object([lone]) == (lone,)
    apart = (found(0, 0, 10, 10, 0.5), found(50, 0, 10, 10, 0.9), found(0, 50, 10, 10, 0.7))
    assert one_box_per_object(apart) == apart
