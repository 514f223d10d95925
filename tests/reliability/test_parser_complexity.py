"""Regression tests for three quadratic-time parser inputs found by ``tests/reliability/fuzzing.py``.

WHY: a runaway generation (thousands of ``<think>`` tags, a 200 kB digit run, a repeated
``</think><answer>`` pair) must cost milliseconds, not minutes -- the node's worker would
otherwise stall on one frame.  Each input took > 10 s before the fix; the bound here is
generous (2 s on a loaded 2-core machine) yet far below the old quadratic time.
"""
from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from active_o3_ros.core.parsing import (_STRICT_FORMAT_RE, MAX_TEXT_CHARS, is_well_formatted, parse_answer,
                                        strict_answer_body)
from active_o3_ros.core.types import ParseStatus

RUNAWAY = {
    "unclosed think tags": "<answer>[" + "<think>" * 40_000,
    "digit run": "<answer>[" + "9" * MAX_TEXT_CHARS,
    "repeated number starts": "<answer>" + "[1." * 70_000,
    "bbox key style digits": '<answer>[{"bbox_2d [' + "1" * 150_000,
}


@pytest.mark.parametrize("name", sorted(RUNAWAY))
def test_runaway_outputs_parse_in_linear_time(name):
    t = time.perf_counter()
    res = parse_answer(RUNAWAY[name], 1920, 1080)
    assert time.perf_counter() - t < 2.0, name
    assert res.status == ParseStatus.FAILED and res.items == []


def test_strict_format_check_is_linear():
    t = time.perf_counter()
    assert not is_well_formatted("<think>" + "</think><answer>" * 30_000, 3)
    assert time.perf_counter() - t < 1.0


_FRAG = st.sampled_from(["<think>", "</think>", "<answer>", "</answer>", " ", "\n", "a", "[]", "\u2003"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_FRAG, max_size=12).map("".join))
def test_strict_answer_body_matches_the_regex(text):
    m = _STRICT_FORMAT_RE.match(text)
    assert strict_answer_body(text) == (m.group(1) if m else None)


def test_numbers_still_recovered_by_pattern():
    res = parse_answer("boxes: [1, 2, 30, 40] and [.5, 1e1, 20., 30]")
    assert [b.as_list() for b in res.boxes] == [[1, 2, 30, 40], [0.5, 10, 20, 30]]
    res = parse_answer('<answer>[{"bbox_2d [1, 2.5, 30, 40]": "cat"}]</answer>')
    assert res.items[0].label == "cat" and res.boxes[0].as_list() == [1, 2.5, 30, 40]
