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

from active_o3_ros.core.metrics import ap50_ar50
from active_o3_ros.core.parsing import is_well_formatted
from active_o3_ros.core.types import Box, Detection

REWARD_MODES = ("both", "task", "heuristic")


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


def coverage_reward(regions: Sequence[Box], gt_boxes: Sequence[Box], min_inside: float = 1.0) -> float:
    """Fraction of ground-truth boxes with at least ``min_inside`` of their area inside one
    region.  No ground truth: 1.0 (nothing to miss)."""
    if not gt_boxes:
        return 1.0
    hit = sum(1 for g in gt_boxes if any(r.contains(g, min_inside) for r in regions))
    return hit / len(gt_boxes)


def detection_task_reward(detections: Sequence[Detection], gt_boxes: Sequence[Box], width: int,
                          height: int) -> float:
    """AP@0.5 + AR@0.5 of the merged detections (range 0..2), class-agnostic."""
    ap, ar = ap50_ar50([d.box for d in detections], [d.score for d in detections], gt_boxes, width, height)
    return ap + ar


@dataclass(frozen=True)
class RewardConfig:
    """Weights and thresholds of the dual reward; ``mode`` selects the paper's ablation."""

    mode: str = "both"
    max_regions: int = 3
    overlap_tau: float = 0.3
    min_area_frac: float = 0.01
    max_area_frac: float = 0.5
    coverage_min_inside: float = 1.0
    weights: dict[str, float] = field(default_factory=lambda: {
        "format": 1.0, "non_overlap": 1.0, "area": 1.0, "coverage": 1.0, "task": 1.0})

    def __post_init__(self) -> None:
        if self.mode not in REWARD_MODES:
            raise ValueError(f"reward mode must be one of {REWARD_MODES}, got {self.mode!r}")
        unknown = set(self.weights) - {"format", "non_overlap", "area", "coverage", "task"}
        if unknown:
            raise ValueError(f"unknown reward terms {sorted(unknown)}")


@dataclass
class RewardBreakdown:
    terms: dict[str, float]
    total: float


def region_rewards(cfg: RewardConfig, regions: Sequence[Box], width: int, height: int,
                   gt_boxes: Sequence[Box], text: str | None = None,
                   detections: Sequence[Detection] | None = None) -> RewardBreakdown:
    """All reward terms for one proposal.  ``text`` is the raw policy answer (format term;
    policies without text pass None and the term is 1 when 1..K regions were proposed).
    ``detections``: task-model output on these regions, in frame pixels (task term)."""
    terms: dict[str, float] = {}
    if cfg.mode in ("both", "heuristic"):
        if text is not None:
            terms["format"] = format_reward(text, cfg.max_regions)
        else:
            terms["format"] = 1.0 if 1 <= len(regions) <= cfg.max_regions else 0.0
        terms["non_overlap"] = non_overlap_reward(regions, cfg.overlap_tau)
        terms["area"] = area_reward(regions, width, height, cfg.min_area_frac, cfg.max_area_frac)
        terms["coverage"] = coverage_reward(regions, gt_boxes, cfg.coverage_min_inside)
    if cfg.mode in ("both", "task"):
        if detections is None:
            raise ValueError("task reward needs the task model's detections on the regions")
        terms["task"] = detection_task_reward(detections, gt_boxes, width, height)
    total = sum(cfg.weights.get(k, 1.0) * v for k, v in terms.items())
    return RewardBreakdown(terms, total)
