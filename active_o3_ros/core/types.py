"""Plain data types shared by the pipeline, the ROS node, training and evaluation.

Boxes are axis-aligned ``xyxy`` in float pixels of whichever image they refer to; the
docstring of each producer says which image that is (frame, thumbnail, crop).
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned box ``(x1, y1, x2, y2)`` in float pixels, ``x1 <= x2`` and ``y1 <= y2``."""

    x1: float
    y1: float
    x2: float
    y2: float

    def __post_init__(self) -> None:
        vals = (self.x1, self.y1, self.x2, self.y2)
        if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) for v in vals):
            raise ValueError(f"Box coordinates must be finite numbers, got {vals}")
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError(f"Box must satisfy x1<=x2 and y1<=y2, got {vals}")

    @classmethod
    def from_any(cls, x1: float, y1: float, x2: float, y2: float) -> "Box":
        """Build a box from two corners in any order (model outputs swap them)."""
        return cls(float(min(x1, x2)), float(min(y1, y2)), float(max(x1, x2)), float(max(y1, y2)))

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float) -> "Box":
        return cls(float(x), float(y), float(x + w), float(y + h))

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return (0.5 * (self.x1 + self.x2), 0.5 * (self.y1 + self.y2))

    def as_list(self) -> list[float]:
        return [self.x1, self.y1, self.x2, self.y2]

    def as_xywh(self) -> list[float]:
        return [self.x1, self.y1, self.width, self.height]

    def clip(self, width: float, height: float) -> "Box":
        """Clip to the image ``[0, width] x [0, height]``; may return a degenerate box."""
        x1 = min(max(self.x1, 0.0), width)
        y1 = min(max(self.y1, 0.0), height)
        x2 = min(max(self.x2, 0.0), width)
        y2 = min(max(self.y2, 0.0), height)
        return Box(x1, y1, x2, y2)

    def scale(self, sx: float, sy: float) -> "Box":
        return Box(self.x1 * sx, self.y1 * sy, self.x2 * sx, self.y2 * sy)

    def intersection(self, other: "Box") -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: "Box") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def contains(self, other: "Box", min_fraction: float = 1.0) -> bool:
        """True when at least ``min_fraction`` of ``other``'s area lies inside this box."""
        if other.area <= 0:
            cx, cy = other.center
            return self.x1 <= cx <= self.x2 and self.y1 <= cy <= self.y2
        return self.intersection(other) >= min_fraction * other.area - 1e-9


@dataclass
class Region:
    """A zoom region proposed by the sensing policy, in full-frame pixels."""

    box: Box
    label: str = ""
    rank: int = 0
    score: float = 1.0


@dataclass
class Detection:
    """One detected instance in full-frame pixels.

    ``region_index`` is the index of the zoom region the detection came from, ``-1`` for
    the full-frame pass.  ``mask`` (optional) is a boolean array cropped to ``box``
    rounded outwards to integer pixels, with its top-left corner at ``mask_offset``.
    """

    box: Box
    label: str
    score: float = 1.0
    region_index: int = -1
    text: str = ""
    mask: np.ndarray | None = None
    mask_offset: tuple[int, int] = (0, 0)
    points: list[tuple[float, float]] = field(default_factory=list)


class ParseStatus(str, enum.Enum):
    """How a model answer was read; counted so garbage output is visible, never fatal."""

    OK = "ok"                    # well-formed <answer> with a JSON list
    RECOVERED = "recovered"      # something was malformed but boxes were recovered
    EMPTY = "empty"              # well-formed but no usable boxes
    FAILED = "failed"            # nothing usable could be read


@dataclass
class StageTimings:
    """Wall-clock seconds per pipeline stage for one frame."""

    preprocess_s: float = 0.0
    sensing_s: float = 0.0
    crop_s: float = 0.0
    task_s: float = 0.0
    merge_s: float = 0.0
    total_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class PerceptionResult:
    """Everything one frame produced: outputs, the regions used, timings and raw model text."""

    detections: list[Detection]
    regions: list[Region]
    image_width: int
    image_height: int
    instruction: str
    timings: StageTimings = field(default_factory=StageTimings)
    model_calls: int = 0
    sensing_text: str = ""
    task_texts: list[str] = field(default_factory=list)
    sensing_status: ParseStatus = ParseStatus.OK
    task_statuses: list[ParseStatus] = field(default_factory=list)
    mode: str = "parallel"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly dict (masks summarised by their pixel count)."""
        return {
            "image_size": [self.image_width, self.image_height],
            "instruction": self.instruction,
            "mode": self.mode,
            "model_calls": self.model_calls,
            "timings": self.timings.as_dict(),
            "sensing_status": self.sensing_status.value,
            "task_statuses": [s.value for s in self.task_statuses],
            "regions": [
                {"bbox": r.box.as_list(), "label": r.label, "rank": r.rank, "score": r.score}
                for r in self.regions
            ],
            "detections": [
                {
                    "bbox": d.box.as_list(),
                    "label": d.label,
                    "score": d.score,
                    "region_index": d.region_index,
                    **({"text": d.text} if d.text else {}),
                    **({"mask_pixels": int(d.mask.sum())} if d.mask is not None else {}),
                }
                for d in self.detections
            ],
            "sensing_text": self.sensing_text,
            "task_texts": self.task_texts,
        }
