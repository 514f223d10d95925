"""The paper's dual reward for the sensing policy, one module for training AND evaluation.

Heuristic terms (each 0/1 as in the paper's code, except coverage which is a fraction):
  format      — ``<think>…</think><answer>[…]</answer>``, valid JSON list of 1..K boxes
  non_overlap — every pair of regions has IoU <= tau (paper: 0.3)
  area        — every region covers between 1 % and 50 % of the image
  coverage    — fraction of ground-truth instances lying inside some region
Task term: run the frozen task model on the proposed regions and score the merged
detections: AP@0.5 + AR@0.5 (detection) or mIoU (segmentation).

Everything here is a plain function of boxes and text so it can be unit-tested by hand;
``training/`` wraps these in TRL's reward-function signature.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from active_o3_ros.core.metrics import ap50_ar50, mask_iou
from active_o3_ros.core.parsing import is_well_formatted
from active_o3_ros.core.types import Box, Detection

#: Which terms a reward uses (the paper's ablation): ``RewardConfig.signal``.
REWARD_SIGNALS = ("both", "task", "heuristic")
TASK_METRICS = ("detection", "segmentation")


def format_reward(text: str, max_regions: int) -> float:
    return 1.0 if is_well_formatted(text, max_regions) else 0.0


def non_overlap_reward(regions: Sequence[Box], tau: float = 0.3) -> float:
    """1 when no two regions overlap by IoU > ``tau``; 0 for an empty set (nothing proposed)."""
    if not regions:
        return 0.0
    for i in range(len(regions)):
        for j in range(i + 1, len(regions)):
            if regions[i].iou(regions[j]) > tau:
                return 0.0
    return 1.0


def area_reward(regions: Sequence[Box], width: float, height: float, min_frac: float = 0.01,
                max_frac: float = 0.5) -> float:
    """1 when every region covers ``[min_frac, max_frac]`` of the image; 0 otherwise/empty."""
    if not regions or width <= 0 or height <= 0:
        return 0.0
    total = float(width) * float(height)
    return 1.0 if all(min_frac <= r.area / total <= max_frac for r in regions) else 0.0


def coverage_reward(regions: Sequence[Box], gt_boxes: Sequence[Box], min_inside: float = 1.0,
                    min_height: float = 0.0, scales: Sequence[float] | None = None) -> float:
    """Fraction of ground-truth boxes with at least ``min_inside`` of their area inside one
    region.  No ground truth: 1.0 (nothing to miss).

    ``min_height`` > 0: a box counts only inside a region that shows it at least this many
    pixels tall, where ``scales[i]`` is how much region ``i``'s crop enlarges it (1 when not
    given).  WHY: a word inside a region the crop barely enlarges is as lost to the detector
    as one outside it; without this, coverage favours the largest regions."""
    if not gt_boxes:
        return 1.0
    if scales is not None and len(scales) != len(regions):
        raise ValueError(f"coverage: {len(scales)} scales for {len(regions)} regions")
    sc = list(scales) if scales is not None else [1.0] * len(regions)
    hit = sum(1 for g in gt_boxes if any(r.contains(g, min_inside) and g.height * s >= min_height
                                         for r, s in zip(regions, sc)))
    return hit / len(gt_boxes)


def detection_task_reward(detections: Sequence[Detection], gt_boxes: Sequence[Box], width: int,
                          height: int) -> float:
    """AP@0.5 + AR@0.5 of the merged detections (range 0..2), class-agnostic."""
    ap, ar = ap50_ar50([d.box for d in detections], [d.score for d in detections], gt_boxes, width, height)
    return ap + ar


def detection_frame_mask(d: Detection, width: int, height: int) -> np.ndarray:
    """A detection's mask (frame pixels, cropped at ``mask_offset``) pasted into a full
    ``height x width`` boolean image; its box when it carries no mask."""
    full = np.zeros((height, width), bool)
    if d.mask is None:
        x1, y1 = max(int(np.floor(d.box.x1)), 0), max(int(np.floor(d.box.y1)), 0)
        x2, y2 = min(int(np.ceil(d.box.x2)), width), min(int(np.ceil(d.box.y2)), height)
        full[y1:y2, x1:x2] = True
        return full
    x0, y0 = d.mask_offset
    m = np.asarray(d.mask, bool)
    x1, y1 = max(x0, 0), max(y0, 0)
    x2, y2 = min(x0 + m.shape[1], width), min(y0 + m.shape[0], height)
    if x2 > x1 and y2 > y1:
        full[y1:y2, x1:x2] = m[y1 - y0:y2 - y0, x1 - x0:x2 - x0]
    return full


def segmentation_task_reward(detections: Sequence[Detection], gt_masks: Sequence[np.ndarray], width: int,
                             height: int, region_budget: int | None = None) -> float:
    """mIoU task term (range 0..1) for interactive segmentation (paper: ThinObjects mIoU).

    Mean over ground-truth instances of the best IoU any predicted mask reaches (0 when
    none does) — the same definition as evaluation's ``instance_miou``.  With
    ``region_budget`` only detections from regions ``< region_budget`` (or the full-frame
    pass, index -1) count, so a proposal over the budget cannot buy extra masks.  No
    ground truth: 1.0 when nothing was predicted, else 0.0 (false positives still cost).
    """
    if region_budget is not None:
        detections = [d for d in detections if d.region_index < region_budget]
    if not gt_masks:
        return 1.0 if not detections else 0.0
    preds = [detection_frame_mask(d, width, height) for d in detections]
    ious = [max((mask_iou(p, g) for p in preds), default=0.0) for g in gt_masks]
    return float(np.mean(ious))


#: The heuristic terms of the dual reward (the paper's format, non-overlap, area, coverage)
#: and every term including the task term, in the order they are reported.
HEURISTIC_TERMS: tuple[str, ...] = ("format", "non_overlap", "area", "coverage")
REWARD_TERMS: tuple[str, ...] = HEURISTIC_TERMS + ("task",)


@dataclass(frozen=True)
class RewardConfig:
    """Weights and thresholds of the dual reward; ``signal`` selects the paper's ablation
    (both terms, the task term only, the heuristic terms only)."""

    signal: str = "both"
    max_regions: int = 3
    overlap_tau: float = 0.3
    min_area_frac: float = 0.01
    max_area_frac: float = 0.5
    coverage_min_inside: float = 1.0
    #: Pixels tall a ground-truth box must be in a region's crop to count as covered (0 =
    #: any size; needs the crops' enlargement, ``coverage_scales``, else frame pixels).
    coverage_min_height: float = 0.0
    #: "detection": AP@0.5 + AR@0.5; "segmentation": mIoU under the K-region budget.
    task_metric: str = "detection"
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REWARD_TERMS, 1.0))

    def __post_init__(self) -> None:
        if self.signal not in REWARD_SIGNALS:
            raise ValueError(f"reward signal must be one of {REWARD_SIGNALS}, got {self.signal!r}")
        if self.task_metric not in TASK_METRICS:
            raise ValueError(f"task_metric must be one of {TASK_METRICS}, got {self.task_metric!r}")
        if self.coverage_min_height < 0:
            raise ValueError(f"coverage_min_height must be >= 0, got {self.coverage_min_height}")
        unknown = set(self.weights) - set(REWARD_TERMS)
        if unknown:
            raise ValueError(f"unknown reward terms {sorted(unknown)}")


def parse_reward_weights(spec: str) -> dict[str, float]:
    """``"coverage=0,task=2"`` -> ``{"coverage": 0.0, "task": 2.0}`` (``""`` -> ``{}``); a clear
    ``ValueError`` for an unknown term, a missing ``=`` or a negative or non-numeric weight."""
    out: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        term, sep, value = item.partition("=")
        term = term.strip()
        if not sep or term not in REWARD_TERMS:
            raise ValueError(f"reward weight {item!r}: expected TERM=W with TERM one of {list(REWARD_TERMS)}")
        try:
            w = float(value)
        except ValueError:
            raise ValueError(f"reward weight {item!r}: {value!r} is not a number") from None
        if not w >= 0:
            raise ValueError(f"reward weight {item!r} must be >= 0")
        out[term] = w
    return out


@dataclass
class RewardBreakdown:
    terms: dict[str, float]
    total: float


def region_rewards(cfg: RewardConfig, regions: Sequence[Box], width: int, height: int,
                   gt_boxes: Sequence[Box], text: str | None = None,
                   detections: Sequence[Detection] | None = None,
                   gt_masks: Sequence[np.ndarray] | None = None,
                   coverage_regions: Sequence[Box] | None = None,
                   coverage_scales: Sequence[float] | None = None) -> RewardBreakdown:
    """All reward terms for one proposal.  ``text`` is the raw policy answer (format term;
    policies without text pass None and the term is 1 when 1..K regions were proposed).
    ``detections``: task-model output on these regions, in frame pixels (task term).
    ``gt_masks``: full-frame boolean masks, needed when ``cfg.task_metric == "segmentation"``.
    ``coverage_regions``: what the task model actually sees for each region (its ResizeCrop
    window, with context and minimum size); the coverage term is measured on these when
    given.  WHY: a word cut by a region's edge is whole in a crop with context, so coverage
    of the proposal boxes alone under-counts what the detector can find.
    ``coverage_scales``: each region's crop enlargement (crop side / window side), read by
    ``cfg.coverage_min_height``."""
    terms: dict[str, float] = {}
    if cfg.signal in ("both", "heuristic"):
        if text is not None:
            terms["format"] = format_reward(text, cfg.max_regions)
        else:
            terms["format"] = 1.0 if 1 <= len(regions) <= cfg.max_regions else 0.0
        terms["non_overlap"] = non_overlap_reward(regions, cfg.overlap_tau)
        terms["area"] = area_reward(regions, width, height, cfg.min_area_frac, cfg.max_area_frac)
        terms["coverage"] = coverage_reward(regions if coverage_regions is None else coverage_regions,
                                            gt_boxes, cfg.coverage_min_inside, cfg.coverage_min_height,
                                            coverage_scales)
    if cfg.signal in ("both", "task"):
        if detections is None:
            raise ValueError("task reward needs the task model's detections on the regions")
        if cfg.task_metric == "segmentation":
            if gt_masks is None:
                raise ValueError("segmentation task reward needs ground-truth masks (gt_masks)")
            terms["task"] = segmentation_task_reward(detections, gt_masks, width, height, cfg.max_regions)
        else:
            terms["task"] = detection_task_reward(detections, gt_boxes, width, height)
    total = sum(cfg.weights.get(k, 1.0) * v for k, v in terms.items())
    return RewardBreakdown(terms, total)
