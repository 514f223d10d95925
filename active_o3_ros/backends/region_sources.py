"""Region sources used as baselines: tiling, random, oracle regions and the coarse-pass cascade.

They implement :class:`SensingPolicy` so evaluation swaps them in by name.  The geometric
ones are not model calls (``is_model_call = False``) and so do not inflate model-call
counts; the cascade runs the detector, so it is one.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.base import SensingOutput, SensingPolicy
from active_o3_ros.core.geometry import ScaleOffset, tile_boxes
from active_o3_ros.core.parsing import format_regions_answer
from active_o3_ros.core.types import Box, Region


class TilingPolicy(SensingPolicy):
    """Uniform ``rows x cols`` tiles (SAHI-style); ignores K: the crop budget is the grid."""

    name = "tiling"
    is_model_call = False

    def __init__(self, rows: int = 3, cols: int = 3, overlap: float = 0.0, **_: Any) -> None:
        self.rows, self.cols, self.overlap = int(rows), int(cols), float(overlap)

    def propose(self, images, instructions, max_regions, context=None):
        out = []
        for img in images:
            h, w = img.shape[:2]
            boxes = tile_boxes(w, h, self.rows, self.cols, self.overlap)
            out.append(SensingOutput([Region(b, "tile", i) for i, b in enumerate(boxes)],
                                     format_regions_answer(boxes)))
        return out


class RandomPolicy(SensingPolicy):
    """K random regions, each covering 1-50 % of the image (the area term's valid range)."""

    name = "random"
    is_model_call = False

    def __init__(self, seed: int = 0, min_area: float = 0.01, max_area: float = 0.5, **_: Any) -> None:
        self.rng = np.random.default_rng(seed)
        self.min_area, self.max_area = float(min_area), float(max_area)

    def propose(self, images, instructions, max_regions, context=None):
        out = []
        for img in images:
            h, w = img.shape[:2]
            boxes = []
            for _ in range(max_regions):
                frac = self.rng.uniform(self.min_area, self.max_area)
                aspect = self.rng.uniform(0.5, 2.0)
                bw = min(w, np.sqrt(frac * w * h * aspect))
                bh = min(h, frac * w * h / max(bw, 1.0))
                x1 = self.rng.uniform(0, max(w - bw, 0))
                y1 = self.rng.uniform(0, max(h - bh, 0))
                boxes.append(Box(x1, y1, x1 + bw, y1 + bh))
            out.append(SensingOutput([Region(b, "random", i) for i, b in enumerate(boxes)],
                                     format_regions_answer(boxes)))
        return out


def cluster_boxes(boxes: Sequence[Box], k: int) -> list[Box]:
    """Greedily merge boxes into at most ``k`` groups, each time joining the pair whose
    union box grows least; returns the groups' enclosing boxes (largest group first)."""
    groups = [[b] for b in boxes]
    hulls = list(boxes)
    while len(hulls) > k:
        best, pair = None, (0, 1)
        for i in range(len(hulls)):
            for j in range(i + 1, len(hulls)):
                a, b = hulls[i], hulls[j]
                u = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
                cost = u.area - a.area - b.area + a.intersection(b)
                if best is None or cost < best:
                    best, pair = cost, (i, j)
        i, j = pair
        a, b = hulls[i], hulls[j]
        hulls[i] = Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))
        groups[i] += groups.pop(j)
        hulls.pop(j)
    order = sorted(range(len(hulls)), key=lambda g: -len(groups[g]))
    return [hulls[g] for g in order]


def _thumbnail_ground_truth(context: Sequence[dict] | None, n: int) -> list[list[Box]]:
    """Per image, ``context[i]['gt_boxes']`` (frame pixels) mapped into the thumbnail by
    ``context[i]['thumbnail_transform']`` (what the oracles need and nothing else sees)."""
    out = []
    for ctx in (context or [{}] * n):
        ctx = ctx or {}
        tf: ScaleOffset = ctx.get("thumbnail_transform", ScaleOffset())
        out.append([tf.from_frame(b) for b in ctx.get("gt_boxes", [])])
    return out


class OraclePolicy(SensingPolicy):
    """Regions around the ground truth (an upper bound): ``context[i]['gt_boxes']`` holds
    frame-pixel boxes and ``context[i]['thumbnail_transform']`` the thumbnail mapping."""

    name = "oracle"
    is_model_call = False

    def __init__(self, margin: float = 8.0, **_: Any) -> None:
        self.margin = float(margin)

    def propose(self, images, instructions, max_regions, context=None):
        out = []
        for img, gts in zip(images, _thumbnail_ground_truth(context, len(images))):
            h, w = img.shape[:2]
            hulls = cluster_boxes(gts, max_regions) if gts else []
            m = self.margin
            boxes = [Box(b.x1 - m, b.y1 - m, b.x2 + m, b.y2 + m).clip(w, h) for b in hulls]
            out.append(SensingOutput([Region(b, "oracle", r) for r, b in enumerate(boxes)],
                                     format_regions_answer(boxes)))
        return out


class OracleAnchorsPolicy(SensingPolicy):
    """The best ``K`` of the small policy's own anchors given the ground truth: greedily the
    anchor that adds the most covered ground-truth boxes, skipping anchors that overlap a
    chosen one (IoU >= the policy's ``overlap_tau``), exactly the choices the policy can make.

    WHY: it splits the gap between the trained policy and free-form oracle regions into
    what a better *choice* among the anchors could still gain and what the anchor
    *geometry* itself costs.  ``weights``: small-policy weights whose anchors to use
    (``""`` = the shipped ones)."""

    name = "oracle_anchors"
    is_model_call = False

    def __init__(self, weights: str = "", model: str = "", **_: Any) -> None:
        from active_o3_ros.backends.small_policy import (
            BUNDLED_WEIGHTS, anchor_iou_matrix, bundled_config, make_anchors, read_config)

        src = weights or model
        cfg = read_config(src) if src else (bundled_config() if BUNDLED_WEIGHTS.is_file() else None)
        if cfg is None:
            raise ValueError("oracle_anchors needs small-policy weights to take the anchors from")
        self.anchors = make_anchors(cfg.grids)
        self.iou = anchor_iou_matrix(self.anchors)
        self.tau = cfg.overlap_tau
        self.aspect = cfg.thumbnail_size[0] / cfg.thumbnail_size[1]

    def propose(self, images, instructions, max_regions, context=None):
        from active_o3_ros.backends.small_policy import anchor_boxes_px, anchors_in_frame

        out = []
        for img, gts in zip(images, _thumbnail_ground_truth(context, len(images))):
            h, w = img.shape[:2]
            norm, usable = anchors_in_frame(self.anchors, w, h, self.aspect)  # the policy's own letterbox
            boxes = anchor_boxes_px(norm, w, h)
            # inside[a, g]: ground-truth box g lies wholly in anchor a (the coverage reward's rule)
            inside = np.array([[b.contains(g, 1.0) for g in gts] for b in boxes],
                              dtype=bool).reshape(len(boxes), len(gts))
            covered = np.zeros(len(gts), dtype=bool)
            chosen: list[int] = []
            for _ in range(max_regions):
                gains = (inside & ~covered).sum(1)
                ok = [a for a in range(len(boxes)) if usable[a] and a not in chosen
                      and all(self.iou[a, c] < self.tau - 1e-6 for c in chosen)]
                if not ok:
                    break
                best = max(ok, key=lambda a: (gains[a], -a))
                chosen.append(best)
                covered |= inside[best]
            picked = [boxes[a] for a in chosen]
            out.append(SensingOutput([Region(b, "oracle_anchors", r) for r, b in enumerate(picked)],
                                     format_regions_answer(picked)))
        return out


class CascadePolicy(SensingPolicy):
    """A non-learned cascade: run the text detector once on the frame downscaled to
    ``coarse_short_side`` (the image it is given), then zoom oracle-style regions (the
    :func:`cluster_boxes` hulls, ``margin`` px) around its imprecise hits.

    WHY: at 720-1080 px the detector reads few small words itself, but its hits sit where
    the text is; a learned policy must beat this to earn its place.  No hits: no regions."""

    name = "cascade"
    is_model_call = True

    def __init__(self, coarse_short_side: int = 720, margin: float = 8.0, min_score: float = 0.3,
                 threads: int = 0, **_: Any) -> None:
        from active_o3_ros.backends.text import TextTaskModel

        if int(coarse_short_side) < 32:
            raise ValueError(f"cascade coarse_short_side must be >= 32, got {coarse_short_side!r}")
        self.preferred_thumbnail_short_side = int(coarse_short_side)
        self.margin = float(margin)
        self.detector = TextTaskModel(recognize=False, min_score=float(min_score), threads=int(threads),
                                      det_limit_side_len=int(coarse_short_side))

    def propose(self, images, instructions, max_regions, context=None):
        out = []
        for img, hits in zip(images, self.detector.detect(images, instructions)):
            h, w = img.shape[:2]
            hulls = cluster_boxes([d.box for d in hits.detections], max_regions) if hits.detections else []
            m = self.margin
            boxes = [Box(b.x1 - m, b.y1 - m, b.x2 + m, b.y2 + m).clip(w, h) for b in hulls]
            out.append(SensingOutput([Region(b, "cascade", r) for r, b in enumerate(boxes)],
                                     format_regions_answer(boxes, think=f"{len(hits.detections)} coarse hits")))
        return out
