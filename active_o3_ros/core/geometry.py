"""Image geometry: thumbnails, the paper's ResizeCrop, and exact coordinate mapping.

Every resize in the pipeline is described by a :class:`ScaleOffset` transform so that a
box found in any image (thumbnail, zoomed crop, a model's own resized input) maps back to
full-frame pixels with one formula: ``frame = offset + local / scale``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from active_o3_ros.core.types import Box

#: Qwen2.5-VL's vision patch (14) times its 2x2 token merge.
QWEN_PATCH_MULTIPLE = 28


@dataclass(frozen=True)
class ScaleOffset:
    """Maps local image pixels to frame pixels: ``frame = offset + local / scale``.

    ``scale`` > 1 means the local image is an enlargement of the frame (a zoomed crop);
    ``scale`` < 1 a reduction (a thumbnail).
    """

    offset_x: float = 0.0
    offset_y: float = 0.0
    scale_x: float = 1.0
    scale_y: float = 1.0

    def to_frame(self, box: Box) -> Box:
        return Box.from_any(
            self.offset_x + box.x1 / self.scale_x,
            self.offset_y + box.y1 / self.scale_y,
            self.offset_x + box.x2 / self.scale_x,
            self.offset_y + box.y2 / self.scale_y,
        )

    def from_frame(self, box: Box) -> Box:
        return Box.from_any(
            (box.x1 - self.offset_x) * self.scale_x,
            (box.y1 - self.offset_y) * self.scale_y,
            (box.x2 - self.offset_x) * self.scale_x,
            (box.y2 - self.offset_y) * self.scale_y,
        )

    def point_to_frame(self, x: float, y: float) -> tuple[float, float]:
        return (self.offset_x + x / self.scale_x, self.offset_y + y / self.scale_y)

    def then(self, inner: "ScaleOffset") -> "ScaleOffset":
        """Compose: ``inner`` maps a derived image into *this* transform's local image.

        ``self.then(inner).to_frame(b) == self.to_frame(inner.to_frame(b))``.
        """
        return ScaleOffset(
            offset_x=self.offset_x + inner.offset_x / self.scale_x,
            offset_y=self.offset_y + inner.offset_y / self.scale_y,
            scale_x=self.scale_x * inner.scale_x,
            scale_y=self.scale_y * inner.scale_y,
        )


def validate_image(image: object, name: str = "image") -> np.ndarray:
    """Check an image is ``HxWx3 uint8`` RGB (or ``HxW`` gray, promoted); raise a clear error.

    Why here: every entry point (CLI, node, training) funnels frames through this, so a
    zero-size or wrong-dtype frame is rejected with one message instead of a deep cv2 trace.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"{name} must have shape HxWx3 (RGB) or HxW, got {image.shape}")
    if image.shape[2] == 4:
        image = image[:, :, :3]
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    return np.ascontiguousarray(image)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize with area filtering when shrinking (no aliasing) and bilinear when enlarging."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    interp = cv2.INTER_AREA if width * height < w * h else cv2.INTER_LINEAR
    return cv2.resize(image, (int(width), int(height)), interpolation=interp)


def smart_resize(height: int, width: int, factor: int = QWEN_PATCH_MULTIPLE,
                 min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 16384) -> tuple[int, int]:
    """Qwen2.5-VL's own input size rule: multiples of ``factor`` within a pixel budget.

    Qwen2.5-VL answers in absolute pixels of *this* resized input, so the backend needs it
    to map answers back to the image it was given.  Returns ``(height, width)``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be < 200, got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return int(h_bar), int(w_bar)


def thumbnail_size(width: int, height: int, short_side: int, max_long_side: int | None = None,
                   multiple: int = 1) -> tuple[int, int]:
    """Size ``(w, h)`` of a thumbnail with the given short side (never upscaled), long side capped."""
    scale = min(1.0, short_side / min(width, height))
    if max_long_side:
        scale = min(scale, max_long_side / max(width, height))
    tw = max(multiple, int(round(width * scale / multiple)) * multiple)
    th = max(multiple, int(round(height * scale / multiple)) * multiple)
    return tw, th


def make_thumbnail(frame: np.ndarray, short_side: int = 1024, max_long_side: int | None = None,
                   multiple: int = 1) -> tuple[np.ndarray, ScaleOffset]:
    """Downscale ``frame`` for the sensing pass; returns the thumbnail and its transform."""
    h, w = frame.shape[:2]
    tw, th = thumbnail_size(w, h, short_side, max_long_side, multiple)
    return resize_image(frame, tw, th), ScaleOffset(0.0, 0.0, tw / w, th / h)


@dataclass(frozen=True)
class ResizeCropConfig:
    """How a proposed region becomes a task-model input (the paper's ResizeCrop).

    ``output_size``: long side, in pixels, of each crop given to the task model.
    ``max_zoom``: the largest enlargement allowed; a region smaller than
    ``output_size / max_zoom`` frame pixels is grown around its centre to that size, so
    the zoom factor is a first-class knob (2-3x is where small text pays off).
    ``context``: multiplies the region's size around its centre before anything else,
    so objects cut by a tight proposal are still whole in the crop.
    """

    output_size: int = 840
    max_zoom: float = 3.0
    context: float = 1.0

    def __post_init__(self) -> None:
        if self.output_size < 16:
            raise ValueError(f"output_size must be >= 16, got {self.output_size}")
        if not (self.max_zoom > 0 and math.isfinite(self.max_zoom)):
            raise ValueError(f"max_zoom must be a positive number, got {self.max_zoom}")
        if not (self.context >= 1.0 and math.isfinite(self.context)):
            raise ValueError(f"context must be >= 1, got {self.context}")


def crop_window(region: Box, frame_width: int, frame_height: int, cfg: ResizeCropConfig) -> Box:
    """The integer frame window that ResizeCrop cuts for ``region``.

    The region is expanded by ``context``, grown to at least ``output_size / max_zoom``
    per side, shifted (not shrunk) to stay inside the frame, and clipped only when the
    frame itself is smaller.
    """
    cx, cy = region.center
    min_side = cfg.output_size / cfg.max_zoom
    w = max(region.width * cfg.context, min_side, 1.0)
    h = max(region.height * cfg.context, min_side, 1.0)
    w, h = min(w, frame_width), min(h, frame_height)
    x1 = min(max(cx - w / 2, 0.0), frame_width - w)
    y1 = min(max(cy - h / 2, 0.0), frame_height - h)
    ix1, iy1 = int(math.floor(x1)), int(math.floor(y1))
    ix2 = min(frame_width, max(ix1 + 1, int(math.ceil(x1 + w))))
    iy2 = min(frame_height, max(iy1 + 1, int(math.ceil(y1 + h))))
    return Box(float(ix1), float(iy1), float(ix2), float(iy2))


def crop_enlargement(window: Box, cfg: ResizeCropConfig) -> float:
    """How much ResizeCrop enlarges a frame ``window`` (from :func:`crop_window`): its long side
    becomes ``cfg.output_size``."""
    return cfg.output_size / max(window.width, window.height)


def resize_crop(frame: np.ndarray, region: Box, cfg: ResizeCropConfig) -> tuple[np.ndarray, ScaleOffset, Box]:
    """Cut and enlarge ``region`` of ``frame``; returns ``(crop, crop->frame transform, window)``."""
    fh, fw = frame.shape[:2]
    win = crop_window(region, fw, fh, cfg)
    x1, y1, x2, y2 = (int(v) for v in win.as_list())
    patch = frame[y1:y2, x1:x2]
    pw, ph = x2 - x1, y2 - y1
    scale = crop_enlargement(win, cfg)
    ow, oh = max(1, int(round(pw * scale))), max(1, int(round(ph * scale)))
    crop = resize_image(patch, ow, oh)
    return crop, ScaleOffset(float(x1), float(y1), ow / pw, oh / ph), win


def full_frame_input(frame: np.ndarray, cfg: ResizeCropConfig) -> tuple[np.ndarray, ScaleOffset]:
    """The whole frame resized to the task input size: the downscaled-frame baseline."""
    fh, fw = frame.shape[:2]
    scale = min(1.0, cfg.output_size / max(fw, fh))
    ow, oh = max(1, int(round(fw * scale))), max(1, int(round(fh * scale)))
    return resize_image(frame, ow, oh), ScaleOffset(0.0, 0.0, ow / fw, oh / fh)


def tile_boxes(frame_width: int, frame_height: int, rows: int, cols: int, overlap: float = 0.0) -> list[Box]:
    """A uniform ``rows x cols`` grid of boxes (SAHI-style tiling baseline)."""
    if rows < 1 or cols < 1:
        raise ValueError(f"tiling needs rows, cols >= 1, got {rows}x{cols}")
    tw = frame_width / (cols - (cols - 1) * overlap)
    th = frame_height / (rows - (rows - 1) * overlap)
    boxes = []
    for r in range(rows):
        for c in range(cols):
            x1 = c * tw * (1 - overlap)
            y1 = r * th * (1 - overlap)
            boxes.append(Box(x1, y1, min(frame_width, x1 + tw), min(frame_height, y1 + th)))
    return boxes


def map_mask_to_frame(mask: np.ndarray, offset: tuple[int, int], transform: ScaleOffset,
                      frame_width: int, frame_height: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Map a boolean mask given in local (crop) pixels at ``offset`` into frame pixels.

    Returns the mask resampled (nearest neighbour) onto the integer frame window it covers,
    clipped to the frame, and that window's top-left corner.
    """
    mh, mw = mask.shape[:2]
    ox, oy = offset
    win = transform.to_frame(Box(float(ox), float(oy), float(ox + mw), float(oy + mh)))
    x1, y1 = int(math.floor(win.x1)), int(math.floor(win.y1))
    x2, y2 = max(x1 + 1, int(math.ceil(win.x2))), max(y1 + 1, int(math.ceil(win.y2)))
    resized = cv2.resize(mask.astype(np.uint8), (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST_EXACT) > 0
    cx1, cy1 = max(x1, 0), max(y1, 0)
    cx2, cy2 = min(x2, frame_width), min(y2, frame_height)
    if cx2 <= cx1 or cy2 <= cy1:
        return np.zeros((0, 0), bool), (cx1, cy1)
    return resized[cy1 - y1:cy2 - y1, cx1 - x1:cx2 - x1], (cx1, cy1)
