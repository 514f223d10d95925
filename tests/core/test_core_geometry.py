"""Geometry: thumbnail/crop mapping round trips and clipping (property-based)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from active_o3_ros.core.geometry import (
    ResizeCropConfig, ScaleOffset, crop_window, full_frame_input, make_thumbnail, map_mask_to_frame,
    resize_crop, smart_resize, thumbnail_size, tile_boxes, validate_image,
)
from active_o3_ros.core.types import Box

sizes = st.integers(min_value=16, max_value=5000)


@st.composite
def frame_and_box(draw):
    w, h = draw(sizes), draw(sizes)
    x1 = draw(st.floats(0, w - 1)); y1 = draw(st.floats(0, h - 1))
    x2 = draw(st.floats(x1 + 1e-3, w)); y2 = draw(st.floats(y1 + 1e-3, h))
    return w, h, Box(x1, y1, x2, y2)


@given(frame_and_box(), st.floats(0.05, 10), st.floats(0.05, 10), st.floats(-500, 500), st.floats(-500, 500))
def test_scale_offset_round_trip(fb, sx, sy, ox, oy):
    _, _, box = fb
    tf = ScaleOffset(ox, oy, sx, sy)
    back = tf.to_frame(tf.from_frame(box))
    for a, b in zip(back.as_list(), box.as_list()):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@given(frame_and_box(), st.floats(0.1, 5), st.floats(0.1, 5), st.floats(0.1, 5), st.floats(0.1, 5))
def test_compose_equals_sequential(fb, s1, s2, s3, s4):
    _, _, box = fb
    outer, inner = ScaleOffset(3.0, 7.0, s1, s2), ScaleOffset(-2.0, 5.0, s3, s4)
    a = outer.then(inner).to_frame(box)
    b = outer.to_frame(inner.to_frame(box))
    assert np.allclose(a.as_list(), b.as_list(), rtol=1e-9, atol=1e-6)


@given(frame_and_box(), st.integers(16, 1500), st.floats(0.5, 8), st.floats(1, 3))
def test_crop_window_inside_frame_and_contains_region(fb, out, zoom, context):
    w, h, box = fb
    cfg = ResizeCropConfig(out, zoom, context)
    win = crop_window(box, w, h, cfg)
    assert 0 <= win.x1 < win.x2 <= w and 0 <= win.y1 < win.y2 <= h
    assert all(float(v).is_integer() for v in win.as_list())
    # the region (clipped to the frame) lies inside the window unless context forced a larger-than-frame size
    min_side = out / zoom
    assert win.width >= min(w, min_side) - 1 and win.height >= min(h, min_side) - 1
    if box.width * context <= w and box.height * context <= h:
        assert win.contains(box, 0.999)


def test_resize_crop_enlarges_small_region_and_maps_back_exactly():
    frame = np.zeros((2160, 3840, 3), np.uint8)
    frame[1000:1010, 2000:2040] = 255  # a small bright "word"
    cfg = ResizeCropConfig(output_size=840, max_zoom=3.0)
    crop, tf, win = resize_crop(frame, Box(1990, 990, 2050, 1020), cfg)
    assert max(crop.shape[:2]) == 840
    assert win.width == pytest.approx(280, abs=1) and win.height == pytest.approx(280, abs=1)
    assert tf.scale_x == pytest.approx(3.0, rel=0.01)
    ys, xs = np.nonzero(crop[:, :, 0] > 127)
    found = Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    mapped = tf.to_frame(found)
    assert mapped.iou(Box(2000, 1000, 2040, 1010)) > 0.85


def test_region_at_corner_is_shifted_not_shrunk():
    cfg = ResizeCropConfig(output_size=600, max_zoom=2.0)
    win = crop_window(Box(0, 0, 10, 10), 1920, 1080, cfg)
    assert win.as_list() == [0.0, 0.0, 300.0, 300.0]
    win = crop_window(Box(1910, 1070, 1920, 1080), 1920, 1080, cfg)
    assert win.as_list() == [1620.0, 780.0, 1920.0, 1080.0]


def test_thumbnail_never_upscales_and_maps():
    frame = np.zeros((2160, 3840, 3), np.uint8)
    thumb, tf = make_thumbnail(frame, short_side=540)
    assert thumb.shape[:2] == (540, 960)
    assert tf.to_frame(Box(0, 0, 960, 540)).as_list() == pytest.approx([0, 0, 3840, 2160])
    assert thumbnail_size(640, 480, 1024) == (640, 480)
    assert thumbnail_size(4000, 1000, 1000, max_long_side=2000) == (2000, 500)


@given(st.integers(28, 8000), st.integers(28, 8000))
@settings(max_examples=200)
def test_smart_resize_matches_qwen_rules(h, w):
    if max(h, w) / min(h, w) > 200:
        return
    rh, rw = smart_resize(h, w, min_pixels=3136, max_pixels=1003520)
    assert rh % 28 == 0 and rw % 28 == 0
    assert rh * rw <= 1003520
    assert rh * rw >= 3136


def test_full_frame_input_and_tiles():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    img, tf = full_frame_input(frame, ResizeCropConfig(output_size=960))
    assert img.shape[:2] == (540, 960) and tf.scale_x == pytest.approx(0.5)
    tiles = tile_boxes(1920, 1080, 3, 3)
    assert len(tiles) == 9 and tiles[-1].x2 == 1920 and tiles[-1].y2 == 1080
    assert sum(t.area for t in tiles) == pytest.approx(1920 * 1080)


def test_mask_mapping_exact():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    tf = ScaleOffset(100.0, 200.0, 2.0, 2.0)  # crop is a 2x enlargement of frame window at (100,200)
    out, off = map_mask_to_frame(mask, (0, 0), tf, 1000, 1000)
    assert off == (100, 200) and out.shape == (10, 10)
    assert out[2:7, 2:7].all() and out.sum() == 25


@pytest.mark.parametrize("bad,err", [
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10, 5), np.uint8), "shape"),
    ("not an image", "numpy"),
])
def test_validate_image_clear_errors(bad, err):
    with pytest.raises((ValueError, TypeError), match=err):
        validate_image(bad)


def test_validate_image_promotes_gray_and_drops_alpha():
    assert validate_image(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert validate_image(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
