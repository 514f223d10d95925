"""The answer parser never raises and recovers what a careful reader would."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from active_o3_ros.core.parsing import format_regions_answer, is_well_formatted, parse_answer
from active_o3_ros.core.types import Box, ParseStatus

GOOD = '<think>the lights are top left</think><answer>[{"bbox_2d": [10, 20, 110, 220], "label": "light"}]</answer>'


def test_well_formed():
    r = parse_answer(GOOD, 640, 480)
    assert r.status is ParseStatus.OK
    assert r.boxes == [Box(10, 20, 110, 220)] and r.items[0].label == "light"
    assert r.think == "the lights are top left"
    assert is_well_formatted(GOOD, 3)


@pytest.mark.parametrize("text,n", [
    ('```json\n[{"bbox_2d": [1, 2, 30, 40], "label": "a"}]\n```', 1),              # code fence, no tags
    ('<answer>{"bbox_2d": [1, 2, 30, 40], "label": "a"}</answer>', 1),            # single object
    ('<answer>[{"bbox_2d": [30, 40, 1, 2]}]</answer> trailing words', 1),          # swapped + trailing
    ('<answer>[{"bbox_2d": [1, 2, 30, 40]}, {"bbox_2d": [5, 5, 50, 5', 1),         # truncated, unclosed
    ('<answer>[{"bbox_2d [1, 2, 30, 40]": "cup"}]</answer>', 1),                   # key-style bbox
    ('<answer>[1, 2, 30, 40]</answer>', 1),                                         # bare box
    ("<answer>[{'bbox_2d': [1, 2, 30, 40]}, {'bbox_2d': [50, 60, 70, 80]}]</answer>", 2),  # python quotes
])
def test_recovers(text, n):
    r = parse_answer(text, 640, 480)
    assert len(r.boxes) == n
    assert r.status in (ParseStatus.OK, ParseStatus.RECOVERED)
    assert r.boxes[0] == Box(1, 2, 30, 40)


def test_clipping_and_degenerate_dropped():
    r = parse_answer('<answer>[{"bbox_2d": [-50, -5, 700, 100]}, {"bbox_2d": [5, 5, 5, 90]},'
                     ' {"bbox_2d": [1e400, 0, 3, 3]}, {"bbox_2d": ["NaN", 0, 3, 3]}]</answer>', 640, 480)
    assert r.boxes == [Box(0, 0, 640, 100)]
    assert r.status is ParseStatus.RECOVERED
    assert any("dropped" in p for p in r.problems)


def test_max_items_keeps_first():
    payload = json.dumps([{"bbox_2d": [i, i, i + 10, i + 10]} for i in range(6)])
    r = parse_answer(f"<think>x</think><answer>{payload}</answer>", 100, 100, max_items=3)
    assert [b.x1 for b in r.boxes] == [0, 1, 2]
    assert not is_well_formatted(f"<think>x</think><answer>{payload}</answer>", 3)


@pytest.mark.parametrize("text", ["", "I cannot see anything.", "<answer>nonsense</answer>", None, 42,
                                  "<answer>" + "[" * 5000 + "</answer>", "{" * 100000])
def test_garbage_fails_cleanly(text):
    r = parse_answer(text, 100, 100)
    assert r.status is ParseStatus.FAILED and r.items == []


def test_empty_list_is_empty_not_failed():
    assert parse_answer("<think>none</think><answer>[]</answer>", 10, 10).status is ParseStatus.EMPTY


def test_points():
    r = parse_answer('<answer>[{"point_2d": [15, 900], "label": "p"}]</answer>', 100, 100)
    assert r.items[0].point == (15.0, 100.0) and r.items[0].box is None


def test_format_round_trip():
    boxes = [Box(1, 2, 30, 40), Box(50, 60, 70, 80)]
    text = format_regions_answer(boxes, ["a", "b"], think="because")
    assert is_well_formatted(text, 3)
    assert parse_answer(text, 100, 100).boxes == boxes


@given(st.text(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_never_raises_on_random_text(text):
    r = parse_answer(text, 320, 240, max_items=3)
    assert len(r.items) <= 3
    for b in r.boxes:
        assert 0 <= b.x1 <= b.x2 <= 320 and 0 <= b.y1 <= b.y2 <= 240


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["bbox_2d", "label", "point_2d", "x", "score"]), children, max_size=4),
    max_leaves=30)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_never_raises_on_adversarial_json(value):
    text = "<think>t</think><answer>" + json.dumps(value) + "</answer>"
    r = parse_answer(text, 100, 100)
    assert r.status in tuple(ParseStatus)
    for b in r.boxes:
        assert 0 <= b.x1 <= b.x2 <= 100


def test_untagged_task_answer_is_ok():
    text = '```json\n[{"bbox_2d": [1, 2, 30, 40], "label": "a"}]\n```'
    assert parse_answer(text, 100, 100, tagged=False).status is ParseStatus.OK
    assert parse_answer(text, 100, 100).status is ParseStatus.RECOVERED
    assert parse_answer("[]", 100, 100, tagged=False).status is ParseStatus.EMPTY
    assert parse_answer("", 100, 100, tagged=False).status is ParseStatus.FAILED
