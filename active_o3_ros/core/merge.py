"""Merging detections from overlapping crops (and the optional full-frame pass).

Zoom regions may overlap, so one object can be found twice; class-aware NMS keeps the
best-scoring copy, weighted box fusion (WBF) averages the copies instead.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from active_o3_ros.core.types import Box, Detection

MERGE_METHODS = ("nms", "wbf", "none")


@dataclass(frozen=True)
class MergeConfig:
    method: str = "nms"
    iou_threshold: float = 0.5
    class_aware: bool = True
    max_detections: int = 300

    def __post_init__(self) -> None:
        if self.method not in MERGE_METHODS:
            raise ValueError(f"merge method must be one of {MERGE_METHODS}, got {self.method!r}")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"merge iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {self.max_detections}")


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    union = area[:, None] + area[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _groups(dets: list[Detection], class_aware: bool) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(dets):
        groups.setdefault(d.label if class_aware else "", []).append(i)
    return groups


def nms(dets: list[Detection], iou_threshold: float = 0.5, class_aware: bool = True) -> list[Detection]:
    """Greedy non-maximum suppression; keeps input order among equal scores."""
    keep: list[int] = []
    for idx in _groups(dets, class_aware).values():
        order = sorted(idx, key=lambda i: -dets[i].score)
        boxes = np.array([dets[i].box.as_list() for i in order], dtype=np.float64)
        ious = iou_matrix(boxes)
        suppressed = np.zeros(len(order), bool)
        for a in range(len(order)):
            if suppressed[a]:
                continue
            keep.append(order[a])
            suppressed |= ious[a] > iou_threshold
    keep.sort(key=lambda i: -dets[i].score)
    return [dets[i] for i in keep]


def weighted_box_fusion(dets: list[Detection], iou_threshold: float = 0.5, class_aware: bool = True) -> list[Detection]:
    """Cluster overlapping boxes and average them weighted by score (score = cluster max)."""
    out: list[Detection] = []
    for idx in _groups(dets, class_aware).values():
        order = sorted(idx, key=lambda i: -dets[i].score)
        clusters: list[list[int]] = []
        for i in order:
            for cl in clusters:
                if dets[cl[0]].box.iou(dets[i].box) > iou_threshold:
                    cl.append(i)
                    break
            else:
                clusters.append([i])
        for cl in clusters:
            w = np.array([max(dets[i].score, 1e-6) for i in cl])
            b = np.array([dets[i].box.as_list() for i in cl])
            fused = (b * w[:, None]).sum(0) / w.sum()
            out.append(replace(dets[cl[0]], box=Box.from_any(*fused.tolist())))
    out.sort(key=lambda d: -d.score)
    return out


def merge_detections(dets: list[Detection], cfg: MergeConfig) -> list[Detection]:
    if cfg.method == "nms":
        merged = nms(dets, cfg.iou_threshold, cfg.class_aware)
    elif cfg.method == "wbf":
        merged = weighted_box_fusion(dets, cfg.iou_threshold, cfg.class_aware)
    else:
        merged = sorted(dets, key=lambda d: -d.score)
    return merged[: cfg.max_detections]
