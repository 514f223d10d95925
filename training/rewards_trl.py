"""TRL reward functions over :mod:`active_o3_ros.core.rewards` — one callable per term.

Why one function per term: ``GRPOTrainer`` logs ``rewards/<func name>/mean`` for every reward
function, so format, non-overlap, area, coverage and task each get their own curve, and
the paper's weights become ``GRPOConfig.reward_weights``.  A ``parse_failure`` function with
weight 0 adds the parse-failure rate to the same logs without touching the loss.

Signature (TRL): ``f(prompts, completions, **columns) -> list[float]``; the dataset columns
``width``, ``height``, ``gt_boxes`` (frame-pixel xyxy), ``image`` and, for the segmentation
task term, ``gt_masks`` (RLE JSON per box) arrive as lists.

Coordinates: Qwen2.5-VL answers in absolute pixels of ITS resized input (``smart_resize``
of the image within the processor's pixel budget), so boxes are mapped from that space
to frame pixels before scoring — the same mapping ``QwenVLSensing`` does at inference.

The task term runs the FROZEN task model on the proposed regions through
``ActivePerception`` (ResizeCrop, ONE batched task call, map back, merge) and scores the
merged detections with pycocotools AP@0.5 + AR@0.5, or (``task_metric: segmentation``, the
paper's interactive segmentation with SAM) the mIoU of its masks against ``gt_masks``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from active_o3_ros.backends.base import TaskModel
from active_o3_ros.core import rewards as core_rewards
from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import QWEN_PATCH_MULTIPLE, crop_enlargement, crop_window, smart_resize
from active_o3_ros.core.parsing import parse_answer
from active_o3_ros.core.pipeline import ActivePerception
from active_o3_ros.core.types import Box, ParseStatus
from active_o3_training.data.coco import decode_masks

HEURISTIC_TERMS = core_rewards.HEURISTIC_TERMS
RewardFunc = Callable[..., list[float]]


@dataclass(frozen=True)
class InputSpace:
    """The model's resized-input rule (Qwen2.5-VL processor): patch multiple + pixel budget."""

    min_pixels: int = 56 * 56
    max_pixels: int = 14 * 14 * 4 * 1280
    factor: int = QWEN_PATCH_MULTIPLE

    @classmethod
    def from_processor(cls, processor: Any) -> "InputSpace":
        """Read the budget from a Qwen2.5-VL processor (``size`` dict or min/max_pixels attrs)."""
        ip = getattr(processor, "image_processor", processor)
        size = getattr(ip, "size", None) or {}
        lo = getattr(ip, "min_pixels", None) or size.get("shortest_edge") or cls.min_pixels
        hi = getattr(ip, "max_pixels", None) or size.get("longest_edge") or cls.max_pixels
        patch, merge = getattr(ip, "patch_size", 14), getattr(ip, "merge_size", 2)
        return cls(int(lo), int(hi), int(patch * merge))

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """``(w, h)`` the model sees for a ``width x height`` image."""
        h, w = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return w, h


def completion_text(completion: Any) -> str:
    """TRL passes plain strings or chat messages ``[{"role": "assistant", "content": ...}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else completion[-1]
        if isinstance(content, list):  # content blocks
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
        return str(content)
    return ""


def regions_in_frame(text: str, width: int, height: int, space: InputSpace, max_regions: int) -> tuple[list[Box], ParseStatus]:
    """Parse an answer and map its boxes from model-input pixels to frame pixels."""
    iw, ih = space.input_size(width, height)
    res = parse_answer(text, iw, ih, max_items=max_regions)
    fx, fy = width / iw, height / ih
    return [Box(b.x1 * fx, b.y1 * fy, b.x2 * fx, b.y2 * fy) for b in res.boxes], res.status


@dataclass
class TrlRewards:
    """Builds the per-term TRL reward functions for one training run.

    ``task_model``: the frozen task module; required when ``cfg.signal`` uses the task term.
    ``pipeline``: ResizeCrop/merge settings for the task term (no full-frame fallback:
    proposing nothing must not be rewarded by a free full-frame pass).
    """

    cfg: core_rewards.RewardConfig = field(default_factory=core_rewards.RewardConfig)
    space: InputSpace = field(default_factory=InputSpace)
    task_model: TaskModel | None = None
    pipeline: PipelineConfig = field(default_factory=lambda: PipelineConfig(fallback_full_frame=False))

    def __post_init__(self) -> None:
        if self.cfg.signal in ("both", "task") and self.task_model is None:
            raise ValueError(f"reward signal {self.cfg.signal!r} needs a frozen task model (or use signal='heuristic')")
        self._perception = (ActivePerception(None, self.task_model, self.pipeline)
                            if self.task_model is not None else None)

    # -- helpers ----------------------------------------------------------------------------
    def _parsed(self, completions, width, height):
        return [regions_in_frame(completion_text(c), int(w), int(h), self.space, self.cfg.max_regions)
                for c, w, h in zip(completions, width, height)]

    @staticmethod
    def _gt(gt_boxes: Sequence[Sequence[Sequence[float]]]) -> list[list[Box]]:
        return [[Box.from_any(*b) for b in g] for g in gt_boxes]

    # -- the terms (names are what TRL logs) ---------------------------------------------------
    def format(self, prompts, completions, **kw) -> list[float]:
        return [core_rewards.format_reward(completion_text(c), self.cfg.max_regions) for c in completions]

    def non_overlap(self, prompts, completions, width, height, **kw) -> list[float]:
        return [core_rewards.non_overlap_reward(r, self.cfg.overlap_tau) for r, _ in self._parsed(completions, width, height)]

    def area(self, prompts, completions, width, height, **kw) -> list[float]:
        return [core_rewards.area_reward(r, w, h, self.cfg.min_area_frac, self.cfg.max_area_frac)
                for (r, _), w, h in zip(self._parsed(completions, width, height), width, height)]

    def coverage(self, prompts, completions, width, height, gt_boxes, **kw) -> list[float]:
        out = []
        for (r, _), g, w, h in zip(self._parsed(completions, width, height), self._gt(gt_boxes), width, height):
            scales = None
            if self.cfg.coverage_min_height:  # how much each region's crop (the pipeline's ResizeCrop) enlarges it
                crop = self.pipeline.crop
                scales = [crop_enlargement(crop_window(b, int(w), int(h), crop), crop) for b in r]
            out.append(core_rewards.coverage_reward(r, g, self.cfg.coverage_min_inside,
                                                    self.cfg.coverage_min_height, scales))
        return out

    def task(self, prompts, completions, width, height, gt_boxes, image, instruction, gt_masks=None,
             **kw) -> list[float]:
        assert self._perception is not None
        seg = self.cfg.task_metric == "segmentation"
        if seg and gt_masks is None:
            raise ValueError("task_metric=segmentation needs a gt_masks column (COCO data with segmentation)")
        out = []
        for n, ((regions, _), w, h, g, img, instr) in enumerate(zip(
                self._parsed(completions, width, height), width, height, self._gt(gt_boxes), image, instruction)):
            dets = []
            if regions:  # no regions: the empty detection set is scored
                frame = np.asarray(img.convert("RGB")) if hasattr(img, "convert") else np.asarray(img)
                dets = self._perception.detect_regions(frame, regions, instr).detections
            if seg:
                out.append(core_rewards.segmentation_task_reward(dets, decode_masks(gt_masks[n]), int(w), int(h),
                                                                 self.cfg.max_regions))
            else:
                out.append(core_rewards.detection_task_reward(dets, g, int(w), int(h)))
        return out

    def parse_failure(self, prompts, completions, width, height, **kw) -> list[float]:
        """1 when nothing usable could be read (logged with weight 0: a rate, not a reward)."""
        return [1.0 if s == ParseStatus.FAILED else 0.0 for _, s in self._parsed(completions, width, height)]

    # -- what GRPOTrainer gets --------------------------------------------------------------
    def functions(self) -> tuple[list[RewardFunc], list[float]]:
        """``(reward_funcs, reward_weights)`` for ``GRPOTrainer`` / ``GRPOConfig``."""
        names: list[str] = []
        if self.cfg.signal in ("both", "heuristic"):
            names += list(HEURISTIC_TERMS)
        if self.cfg.signal in ("both", "task"):
            names.append("task")
        funcs, weights = [], []
        for n in names:
            funcs.append(_named(getattr(self, n), n))
            weights.append(float(self.cfg.weights.get(n, 1.0)))
        funcs.append(_named(self.parse_failure, "parse_failure"))
        weights.append(0.0)
        return funcs, weights


def _named(fn: Callable[..., list[float]], name: str) -> RewardFunc:
    """A plain function with ``__name__`` = the term (TRL's log key)."""
    def reward(prompts, completions, **kwargs):
        return fn(prompts, completions, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    return reward


__all__ = ["HEURISTIC_TERMS", "InputSpace", "TrlRewards", "completion_text", "regions_in_frame"]
