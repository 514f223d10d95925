"""Annotated images: zoom regions and detections drawn on the frame (cv2).

One drawing routine serves the CLI's ``--output`` and the ROS node's debug image so both
show the same thing: regions as dashed-looking thin boxes with their rank, detections as
thick boxes with label and score.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from active_o3_ros.core.types import Detection, PerceptionResult, Region

#: RGB colours (the frame is RGB throughout the package).
REGION_COLOR = (255, 200, 0)
DETECTION_COLORS = ((0, 220, 0), (255, 64, 64), (64, 128, 255), (255, 0, 255), (0, 255, 255))


def _label_color(label: str) -> tuple[int, int, int]:
    return DETECTION_COLORS[sum(label.encode()) % len(DETECTION_COLORS)]


def draw_annotations(frame: np.ndarray, regions: Sequence[Region] = (), detections: Sequence[Detection] = (),
                     thickness: int | None = None, show_scores: bool = True) -> np.ndarray:
    """Return a copy of the RGB ``frame`` with regions and detections drawn on it."""
    img = np.ascontiguousarray(frame.copy())
    h, w = img.shape[:2]
    t = thickness or max(1, round(max(h, w) / 500))
    font_scale = max(0.4, max(h, w) / 1600)
    for r in regions:
        x1, y1, x2, y2 = (int(round(v)) for v in r.box.clip(w, h).as_list())
        cv2.rectangle(img, (x1, y1), (x2, y2), REGION_COLOR, t)
        cv2.putText(img, f"R{r.rank}", (x1 + 2, min(h - 2, y1 + int(18 * font_scale) + 2)),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale, REGION_COLOR, max(1, t // 2), cv2.LINE_AA)
    for d in detections:
        color = _label_color(d.label)
        x1, y1, x2, y2 = (int(round(v)) for v in d.box.clip(w, h).as_list())
        cv2.rectangle(img, (x1, y1), (x2, y2), color, t + 1)
        if d.mask is not None and d.mask.size:
            ox, oy = d.mask_offset
            mh, mw = d.mask.shape[:2]
            sub = img[oy:oy + mh, ox:ox + mw]
            m = d.mask[: sub.shape[0], : sub.shape[1]]
            sub[m] = (0.5 * sub[m] + 0.5 * np.asarray(color)).astype(np.uint8)
        text = d.text or d.label
        caption = f"{text} {d.score:.2f}" if show_scores else text
        cv2.putText(img, caption[:60], (x1, max(int(12 * font_scale) + 2, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX,
                    font_scale, color, max(1, t // 2), cv2.LINE_AA)
    return img


def draw_result(frame: np.ndarray, result: PerceptionResult, **kwargs) -> np.ndarray:
    """:func:`draw_annotations` for a :class:`PerceptionResult`."""
    return draw_annotations(frame, result.regions, result.detections, **kwargs)


def save_rgb(path: str, image: np.ndarray) -> None:
    """Write an RGB image with cv2 (which expects BGR); raises OSError when it cannot."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write image {path} (check the directory and the file extension)")


__all__ = ["draw_annotations", "draw_result", "save_rgb"]
