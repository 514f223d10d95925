"""sensor_msgs/Image and CompressedImage <-> numpy RGB arrays, with strict validation.

Why strict and allocation-free on bad input: a camera driver bug or a malicious peer can
send a header claiming 16k x 16k pixels with a few bytes of data.  Every size is checked
against the bytes actually present (and against ``max_pixels``) *before* anything is
allocated, so a bad message costs a log line, never memory or a crash.

The functions are duck-typed on the message fields (``encoding``, ``width``, ``height``,
``step``, ``is_bigendian``, ``data``; ``format`` for compressed), so the same code reads
rclpy messages (``data`` is an ``array.array``) and rosbags messages (``data`` is a numpy
array) -- the node, the camera source and the offline bag mode all share it.

Supported encodings (output is always ``HxWx3 uint8`` RGB, what the pipeline takes):

* ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` -- converted losslessly.
* ``mono16`` -- scaled to 8 bits by keeping the high byte (``v >> 8``), honouring
  ``is_bigendian``.  ``mono16`` is by definition an intensity image spanning the full
  16-bit range, so the high byte is the faithful 8-bit view.
* ``16UC1`` / ``32FC1`` and other depth or Bayer encodings are *rejected*: they are
  depth/raw sensor data whose scale is unknown (millimetres, metres), and feeding them
  to an RGB detector would produce garbage that looks valid.  Subscribe the node to the
  colour (debayered) stream instead.
"""
from __future__ import annotations

import array
import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

#: encoding -> (channels, bytes per channel)
ENCODINGS: dict[str, tuple[int, int]] = {
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "mono8": (1, 1),
    "8UC1": (1, 1),
    "8UC3": (3, 1),
    "mono16": (1, 2),
}
#: Encodings that are recognised but deliberately refused, with the reason shown to users.
REJECTED_ENCODINGS: dict[str, str] = {
    "16UC1": "a depth image (unknown scale); subscribe to the colour stream",
    "32FC1": "a depth image in metres; subscribe to the colour stream",
    "bayer_rggb8": "raw Bayer data; subscribe to the debayered (image_color/image_raw rgb8) stream",
    "bayer_bggr8": "raw Bayer data; subscribe to the debayered stream",
    "bayer_gbrg8": "raw Bayer data; subscribe to the debayered stream",
    "bayer_grbg8": "raw Bayer data; subscribe to the debayered stream",
    "yuv422": "packed YUV; configure the camera driver to publish rgb8/bgr8",
    "yuv422_yuy2": "packed YUV; configure the camera driver to publish rgb8/bgr8",
}
#: Default cap on width*height: 4096 x 4096 (covers 4K UHD / DCI).  8K frames are refused
#: unless the limit is raised, because one 8K rgb8 frame is ~100 MB per copy.
DEFAULT_MAX_PIXELS = 4096 * 4096
#: Largest accepted compressed payload (bytes) before decoding is even attempted.
MAX_COMPRESSED_BYTES = 64 * 1024 * 1024


class ImageConversionError(ValueError):
    """An image message cannot be converted; the message says what is wrong and how to fix it."""


def _buffer(data: Any) -> memoryview:
    """A zero-copy byte view of a message's ``data`` (array.array, bytes, numpy, list)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageConversionError(f"image data must be uint8 bytes, got dtype {data.dtype}")
        return memoryview(np.ascontiguousarray(data)).cast("B")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return memoryview(data).cast("B")
    if isinstance(data, array.array):
        if data.typecode != "B":
            raise ImageConversionError(f"image data must be an array of unsigned bytes, got typecode {data.typecode!r}")
        return memoryview(data).cast("B")
    if isinstance(data, (list, tuple)):
        try:
            return memoryview(bytes(data))
        except (TypeError, ValueError) as exc:
            raise ImageConversionError(f"image data is not a byte sequence: {exc}") from exc
    raise ImageConversionError(f"image data has unsupported type {type(data).__name__}")


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageConversionError(f"image {name} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ImageInfo:
    """Validated geometry of a raw image message."""

    width: int
    height: int
    step: int
    channels: int
    bytes_per_channel: int
    encoding: str


def check_image(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Validate a raw image message's header against its data; allocate nothing.

    Raises :class:`ImageConversionError` for: unknown/refused encoding, zero or negative
    size, more than ``max_pixels`` pixels, ``step`` smaller than one row, a step that is
    not a whole number of pixels for multi-byte encodings, and truncated data.
    """
    encoding = getattr(msg, "encoding", None)
    if not isinstance(encoding, str):
        raise ImageConversionError(f"image encoding must be a string, got {encoding!r}")
    if encoding in REJECTED_ENCODINGS:
        raise ImageConversionError(f"image encoding {encoding!r} is not supported: {REJECTED_ENCODINGS[encoding]}")
    if encoding not in ENCODINGS:
        hint = ""
        if encoding.lower() in ENCODINGS:
            hint = f" (encodings are case-sensitive: did you mean {encoding.lower()!r}?)"
        raise ImageConversionError(
            f"image encoding {encoding!r} is not supported{hint}; supported: {sorted(ENCODINGS)}")
    width = _as_int(getattr(msg, "width", None), "width")
    height = _as_int(getattr(msg, "height", None), "height")
    step = _as_int(getattr(msg, "step", None), "step")
    if width <= 0 or height <= 0:
        raise ImageConversionError(f"image has zero size ({width}x{height}); nothing to process")
    if width * height > max_pixels:
        raise ImageConversionError(
            f"image {width}x{height} has {width * height} pixels, more than the limit of {max_pixels} "
            f"(raise the 'max_image_pixels' parameter to accept it)")
    channels, bpc = ENCODINGS[encoding]
    row = width * channels * bpc
    if step < row:
        raise ImageConversionError(
            f"image step {step} is smaller than one row of {width} px x {channels * bpc} bytes = {row} bytes "
            f"(encoding {encoding}); the header is inconsistent")
    if bpc > 1 and step % bpc:
        raise ImageConversionError(f"image step {step} is not a multiple of {bpc} bytes for encoding {encoding}")
    size = len(_buffer(msg.data))
    need = step * (height - 1) + row  # the last row's padding may be omitted
    if size < need:
        raise ImageConversionError(
            f"image data is truncated: {size} bytes for {width}x{height} {encoding} with step {step} "
            f"(needs {step * height})")
    if size > step * height:
        raise ImageConversionError(
            f"image data has {size} bytes but step*height is {step * height}; the header is inconsistent")
    return ImageInfo(width, height, step, channels, bpc, encoding)


def image_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Convert a sensor_msgs/Image to a contiguous ``HxWx3 uint8`` RGB array (always a copy,
    so the message buffer may be reused by the middleware afterwards)."""
    info = check_image(msg, max_pixels)
    buf = _buffer(msg.data)
    h, w, c, bpc = info.height, info.width, info.channels, info.bytes_per_channel
    flat = np.frombuffer(buf, dtype=np.uint8, count=min(len(buf), info.step * h))
    if len(flat) < info.step * h:  # last row unpadded: view only the full rows + the tail
        rows = np.lib.stride_tricks.as_strided(flat, shape=(h, w * c * bpc), strides=(info.step, 1))
    else:
        rows = flat.reshape(h, info.step)[:, : w * c * bpc]
    if bpc == 2:
        # high byte of each 16-bit sample: index 0 for big-endian, 1 for little-endian
        hi = 0 if getattr(msg, "is_bigendian", 0) else 1
        gray = rows.reshape(h, w, 2)[:, :, hi]
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    px = rows.reshape(h, w, c)
    enc = info.encoding
    if c == 1:
        return cv2.cvtColor(np.ascontiguousarray(px[:, :, 0]), cv2.COLOR_GRAY2RGB)
    if enc in ("rgb8", "8UC3"):
        return np.ascontiguousarray(px)
    if enc == "bgr8":
        return cv2.cvtColor(np.ascontiguousarray(px), cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return np.ascontiguousarray(px[:, :, :3])
    if enc == "bgra8":
        return cv2.cvtColor(np.ascontiguousarray(px), cv2.COLOR_BGRA2RGB)
    raise ImageConversionError(f"image encoding {enc!r} is not supported")  # unreachable by ENCODINGS


def compressed_size(data: memoryview) -> tuple[int, int]:
    """Read (width, height) from a compressed image header without decoding the pixels."""
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as im:
            return int(im.size[0]), int(im.size[1])
    except PILImage.DecompressionBombError as exc:  # a few bytes declaring gigapixels
        raise ImageConversionError(f"compressed image refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageConversionError(f"compressed image is not a readable JPEG/PNG: {exc}") from exc


def compressed_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (jpeg/png) to ``HxWx3 uint8`` RGB.

    The declared size is read from the file header first and checked against
    ``max_pixels``, so a tiny PNG claiming 100k x 100k pixels is refused before decoding.
    """
    fmt = getattr(msg, "format", "")
    if not isinstance(fmt, str):
        raise ImageConversionError(f"compressed image format must be a string, got {fmt!r}")
    buf = _buffer(msg.data)
    if len(buf) == 0:
        raise ImageConversionError("compressed image has no data")
    if len(buf) > MAX_COMPRESSED_BYTES:
        raise ImageConversionError(f"compressed image of {len(buf)} bytes exceeds {MAX_COMPRESSED_BYTES} bytes")
    lowered = fmt.lower()
    if any(x in lowered for x in ("16uc1", "32fc1", "compresseddepth")):
        raise ImageConversionError(f"compressed image format {fmt!r} is a depth image; not supported")
    w, h = compressed_size(buf)
    if w <= 0 or h <= 0:
        raise ImageConversionError(f"compressed image has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise ImageConversionError(
            f"compressed image {w}x{h} has more than {max_pixels} pixels (raise 'max_image_pixels')")
    bgr = cv2.imdecode(np.frombuffer(buf, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.shape[0] == 0:
        raise ImageConversionError(f"compressed image (format {fmt!r}, {len(buf)} bytes) could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def msg_to_rgb(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Either kind of image message (told apart by the ``format`` vs ``encoding`` field)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb(msg, max_pixels)
    return image_to_rgb(msg, max_pixels)


# -- numpy -> message ------------------------------------------------------------------
def to_byte_array(data: bytes | memoryview | np.ndarray) -> array.array:
    """``array.array('B')`` from a buffer in one memcpy.

    Why: rclpy's generated setter checks every element of a ``bytes``/list value in
    Python (seconds for a 1080p frame); an ``array.array('B')`` is taken as is.
    """
    out = array.array("B")
    out.frombytes(data if not isinstance(data, np.ndarray) else np.ascontiguousarray(data).data)
    return out


def encode_image(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[int, int, int, np.ndarray]:
    """Convert an ``HxWx3`` RGB (or ``HxW`` gray) uint8 array to the bytes of ``encoding``.

    Returns ``(width, height, step, contiguous array)``.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ImageConversionError("image to publish must be a uint8 numpy array")
    if rgb.ndim == 2:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageConversionError(f"image to publish must be HxWx3 RGB, got shape {rgb.shape}")
    conv = {
        "rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA,
        "mono8": cv2.COLOR_RGB2GRAY,
    }
    if encoding not in conv:
        raise ImageConversionError(f"cannot publish encoding {encoding!r}; choose one of {sorted(conv)}")
    code = conv[encoding]
    out = np.ascontiguousarray(rgb if code is None else cv2.cvtColor(rgb, code))
    h, w = out.shape[:2]
    channels = 1 if out.ndim == 2 else out.shape[2]
    return w, h, w * channels, out


def rgb_to_image(rgb: np.ndarray, header: Any = None, encoding: str = "rgb8", msg_type: Any = None) -> Any:
    """Build a sensor_msgs/Image (rclpy type unless ``msg_type`` is given) from RGB pixels."""
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type  # noqa: N813 - ROS type name
    w, h, step, out = encode_image(rgb, encoding)
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian = h, w, step, encoding, 0
    msg.data = to_byte_array(out)
    return msg


def rgb_to_compressed(rgb: np.ndarray, header: Any = None, fmt: str = "jpeg", quality: int = 90,
                      msg_type: Any = None) -> Any:
    """Build a sensor_msgs/CompressedImage (jpeg or png) from RGB pixels."""
    if msg_type is None:
        from sensor_msgs.msg import CompressedImage as msg_type  # noqa: N813
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ImageConversionError(f"compressed format must be jpeg or png, got {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, enc = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError("image encoding failed")
    msg = msg_type()
    if header is not None:
        msg.header = header
    msg.format = "jpeg" if ext == ".jpg" else "png"
    msg.data = to_byte_array(enc.tobytes())
    return msg


__all__ = [
    "ImageConversionError", "ENCODINGS", "REJECTED_ENCODINGS", "DEFAULT_MAX_PIXELS", "check_image", "image_to_rgb",
    "compressed_to_rgb", "msg_to_rgb", "rgb_to_image", "rgb_to_compressed", "encode_image", "to_byte_array",
]
