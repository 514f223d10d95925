"""Image conversion: every supported encoding round-trips, every malformed header is refused
with a clear ImageConversionError *before* anything is allocated from header sizes."""
from __future__ import annotations

import array
import tracemalloc
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from active_o3_ros.ros.images import (
    ENCODINGS, ImageConversionError, compressed_to_rgb, image_to_rgb, msg_to_rgb, rgb_to_compressed, rgb_to_image,
)

sensor_msgs = pytest.importorskip("sensor_msgs.msg")


def _rgb(h: int = 7, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _raw(encoding: str, pixels: np.ndarray, pad: int = 0, data_type=bytes, bigendian: int = 0):
    h, w = pixels.shape[:2]
    rowbytes = pixels[0].nbytes
    rows = pixels.reshape(h, rowbytes)
    padded = np.zeros((h, rowbytes + pad), np.uint8)
    padded[:, :rowbytes] = rows
    data = padded.tobytes()
    if data_type is np.ndarray:
        data = np.frombuffer(data, np.uint8)
    elif data_type is array.array:
        data = array.array("B", data)
    return SimpleNamespace(encoding=encoding, width=w, height=h, step=rowbytes + pad, data=data,
                           is_bigendian=bigendian)


@pytest.mark.parametrize("data_type", [bytes, np.ndarray, array.array])
@pytest.mark.parametrize("pad", [0, 3, 64])
def test_all_8bit_encodings_roundtrip_with_padding(pad, data_type):
    rgb = _rgb()
    variants = {
        "rgb8": rgb, "8UC3": rgb, "bgr8": rgb[:, :, ::-1], "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]),
        "bgra8": np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 9, np.uint8)]),
    }
    for enc, px in variants.items():
        out = image_to_rgb(_raw(enc, np.ascontiguousarray(px), pad, data_type))
        assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags.c_contiguous
        np.testing.assert_array_equal(out, rgb, err_msg=enc)
    gray = rgb[:, :, 0].copy()
    for enc in ("mono8", "8UC1"):
        out = image_to_rgb(_raw(enc, gray[:, :, None], pad, data_type))
        np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_keeps_high_byte(bigendian):
    v = np.array([[0, 255, 256, 65535], [1000, 30000, 40000, 512]], np.uint16)
    px = v.astype(">u2" if bigendian else "<u2").view(np.uint8).reshape(2, 4, 2)
    out = image_to_rgb(_raw("mono16", px, pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out[:, :, 0], (v >> 8).astype(np.uint8))


def test_last_row_padding_may_be_omitted():
    rgb = _rgb(4, 3)
    msg = _raw("rgb8", rgb, pad=5)
    msg.data = msg.data[:-5]
    np.testing.assert_array_equal(image_to_rgb(msg), rgb)


def test_real_sensor_msgs_roundtrip_and_copy():
    rgb = _rgb(33, 47)
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8"):
        msg = rgb_to_image(rgb, encoding=enc)
        assert isinstance(msg, sensor_msgs.Image) and msg.encoding == enc
        out = image_to_rgb(msg)
        np.testing.assert_array_equal(out, rgb)
        msg.data[0] ^= 0xFF  # converting copies: the result does not alias the message buffer
        np.testing.assert_array_equal(image_to_rgb(msg)[1:], out[1:])
    mono = image_to_rgb(rgb_to_image(rgb, encoding="mono8"))
    np.testing.assert_array_equal(mono[:, :, 0], cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_compressed_roundtrip_png_and_jpeg():
    rgb = _rgb(40, 60)
    png = rgb_to_compressed(rgb, fmt="png")
    np.testing.assert_array_equal(compressed_to_rgb(png), rgb)
    np.testing.assert_array_equal(msg_to_rgb(png), rgb)
    smooth = np.full((64, 64, 3), (10, 120, 240), np.uint8)
    assert np.abs(compressed_to_rgb(rgb_to_compressed(smooth, fmt="jpeg")).astype(int) - smooth).max() <= 3


BAD = {
    "wrong encoding": (dict(encoding="yuv420"), "not supported"),
    "case": (dict(encoding="RGB8"), "case-sensitive"),
    "depth": (dict(encoding="16UC1"), "depth"),
    "bayer": (dict(encoding="bayer_rggb8"), "Bayer"),
    "step too small": (dict(step=5), "smaller than one row"),
    "zero width": (dict(width=0), "zero size"),
    "zero height": (dict(height=0), "zero size"),
    "negative": (dict(width=-3), "zero size"),
    "truncated": (dict(data=b"\x00" * 20), "truncated"),
    "too much data": (dict(data=b"\x00" * 1000), "inconsistent"),
    "huge header, little data": (dict(width=16000, height=16000, step=48000), "more than the limit"),
    "1x100000 header": (dict(width=100000, height=1, step=300000), "truncated"),
    "float width": (dict(width=4.0), "integer"),
    "non-string encoding": (dict(encoding=None), "string"),
    "bad data type": (dict(data="abc"), "unsupported type"),
    "odd mono16 step": (dict(encoding="mono16", width=2, step=5, data=b"\x00" * 35), "multiple"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_images_rejected_clearly(case):
    changes, expect = BAD[case]
    msg = _raw("rgb8", _rgb(7, 5))
    for k, v in changes.items():
        setattr(msg, k, v)
    with pytest.raises(ImageConversionError, match=expect):
        image_to_rgb(msg)


def test_huge_header_allocates_nothing():
    msg = SimpleNamespace(encoding="rgb8", width=16384, height=16384, step=16384 * 3, data=b"\x00" * 100,
                          is_bigendian=0)
    tracemalloc.start()
    for limit in (10**12, 4096 * 4096):
        with pytest.raises(ImageConversionError):
            image_to_rgb(msg, max_pixels=limit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000


def test_8k_refused_by_default_and_accepted_when_raised():
    msg = SimpleNamespace(encoding="mono8", width=7680, height=4320, step=7680, data=np.zeros(7680 * 4320, np.uint8),
                          is_bigendian=0)
    with pytest.raises(ImageConversionError, match="max_image_pixels"):
        image_to_rgb(msg)
    assert image_to_rgb(msg, max_pixels=7680 * 4320).shape == (4320, 7680, 3)


def test_compressed_malformed():
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ImageConversionError, match="not a readable"):
        compressed_to_rgb(SimpleNamespace(format="jpeg", data=b"\xff\xd8garbage" * 10))
    big = cv2.imencode(".png", np.zeros((3000, 3000), np.uint8))[1].tobytes()
    with pytest.raises(ImageConversionError, match="more than"):
        compressed_to_rgb(SimpleNamespace(format="png", data=big), max_pixels=1000 * 1000)
    with pytest.raises(ImageConversionError, match="depth"):
        compressed_to_rgb(SimpleNamespace(format="16UC1; compressedDepth png", data=big))
    good = rgb_to_compressed(_rgb(8, 8), fmt="png")
    truncated = SimpleNamespace(format="png", data=bytes(good.data)[:60])
    with pytest.raises(ImageConversionError):
        compressed_to_rgb(truncated)


@settings(max_examples=300, deadline=None)
@given(
    encoding=st.one_of(st.sampled_from(sorted(ENCODINGS) + ["16UC1", "32FC1", "bayer_rggb8", "", "rgb16"]), st.text(max_size=12)),
    width=st.integers(-5, 1 << 20), height=st.integers(-5, 1 << 20), step=st.integers(-5, 1 << 22),
    size=st.integers(0, 4096), bigendian=st.integers(0, 1),
)
def test_fuzz_headers_never_crash(encoding, width, height, step, size, bigendian):
    msg = SimpleNamespace(encoding=encoding, width=width, height=height, step=step, data=b"\x01" * size,
                          is_bigendian=bigendian)
    try:
        out = image_to_rgb(msg)
    except ImageConversionError as exc:
        assert str(exc)
    else:
        assert out.shape == (height, width, 3) and out.dtype == np.uint8
