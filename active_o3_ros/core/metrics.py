"""COCO metrics via pycocotools, used by rewards, evaluation and benchmarks alike.

Built the way the COCO evaluators do it: ground truth and detections become in-memory
``COCO`` objects and ``COCOeval`` computes AP/AR; we only add size-range bookkeeping, the
SODA IoU=0.1 option and quiet output.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from active_o3_ros.core.types import Box

#: COCO's size ranges (area in pixels^2): small < 32^2 <= medium < 96^2 <= large.
COCO_AREA_RANGES = {"all": (0, 1e10), "small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, 1e10)}


@dataclass
class ImageAnnotations:
    """Ground truth (or predictions) of one image: boxes + labels (+ scores for predictions)."""

    image_id: int
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    masks: list[np.ndarray] | None = None  # full-frame boolean masks, optional

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = ["object"] * len(self.boxes)
        if len(self.labels) != len(self.boxes):
            raise ValueError("boxes and labels must have the same length")


def _categories(gts: Sequence[ImageAnnotations], preds: Sequence[ImageAnnotations]) -> dict[str, int]:
    names = sorted({l for a in list(gts) + list(preds) for l in a.labels})
    return {n: i + 1 for i, n in enumerate(names)}


def _build(gts, preds, cats, iou_type):
    images, anns, dets = [], [], []
    aid = 1
    for g in gts:
        images.append({"id": g.image_id, "width": g.width, "height": g.height})
        for j, (b, l) in enumerate(zip(g.boxes, g.labels)):
            ann = {"id": aid, "image_id": g.image_id, "category_id": cats[l], "bbox": b.as_xywh(),
                   "area": b.area, "iscrowd": 0}
            if iou_type == "segm":
                ann["segmentation"] = _rle(g.masks[j])
                ann["area"] = float(g.masks[j].sum())
            anns.append(ann)
            aid += 1
    for p in preds:
        scores = p.scores or [1.0] * len(p.boxes)
        for j, (b, l, s) in enumerate(zip(p.boxes, p.labels, scores)):
            det = {"image_id": p.image_id, "category_id": cats[l], "bbox": b.as_xywh(), "score": float(s),
                   "area": b.area}
            if iou_type == "segm":
                det["segmentation"] = _rle(p.masks[j])
            dets.append(det)
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns,
                       "categories": [{"id": i, "name": n} for n, i in cats.items()]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets) if dets else None
    return coco_gt, coco_dt


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def coco_evaluate(gts: Sequence[ImageAnnotations], preds: Sequence[ImageAnnotations], iou_type: str = "bbox",
                  iou_thresholds: Sequence[float] | None = None, max_dets: int = 100,
                  class_agnostic: bool = False) -> dict[str, float]:
    """AP/AR the COCO way.  ``iou_thresholds=[0.1]`` gives SODA's loose matching.

    Returns AP, AP50, AP75, AP_s/m/l, AR (at max_dets), AR50, AR_s/m/l; -1 where COCO has no
    ground truth in that bucket (COCO's own convention).
    """
    if class_agnostic:
        gts = [ImageAnnotations(g.image_id, g.width, g.height, g.boxes, ["object"] * len(g.boxes), g.scores, g.masks) for g in gts]
        preds = [ImageAnnotations(p.image_id, p.width, p.height, p.boxes, ["object"] * len(p.boxes), p.scores, p.masks) for p in preds]
    cats = _categories(gts, preds)
    coco_gt, coco_dt = _build(gts, preds, cats, iou_type)
    keys = ["AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l", "AR", "AR50", "AR_s", "AR_m", "AR_l"]
    if coco_dt is None or not coco_gt.getAnnIds():
        has_gt = bool(coco_gt.getAnnIds())
        return {k: (0.0 if has_gt else -1.0) for k in keys}
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    if iou_thresholds is not None:
        ev.params.iouThrs = np.asarray(sorted(iou_thresholds), dtype=np.float64)
    ev.params.maxDets = [1, 10, max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    thr = ev.params.iouThrs

    def ap(area: str = "all", t: float | None = None) -> float:
        p = ev.eval["precision"]  # [T, R, K, A, M]
        a = ev.params.areaRngLbl.index(area)
        sel = p[:, :, :, a, -1] if t is None else p[np.where(np.isclose(thr, t))[0], :, :, a, -1]
        sel = sel[sel > -1]
        return float(sel.mean()) if sel.size else -1.0

    def ar(area: str = "all", t: float | None = None) -> float:
        r = ev.eval["recall"]  # [T, K, A, M]
        a = ev.params.areaRngLbl.index(area)
        sel = r[:, :, a, -1] if t is None else r[np.where(np.isclose(thr, t))[0], :, a, -1]
        sel = sel[sel > -1]
        return float(sel.mean()) if sel.size else -1.0

    has = lambda t: bool(np.isclose(thr, t).any())  # noqa: E731
    return {
        "AP": ap(), "AP50": ap(t=0.5) if has(0.5) else -1.0, "AP75": ap(t=0.75) if has(0.75) else -1.0,
        "AP_s": ap("small"), "AP_m": ap("medium"), "AP_l": ap("large"),
        "AR": ar(), "AR50": ar(t=0.5) if has(0.5) else -1.0,
        "AR_s": ar("small"), "AR_m": ar("medium"), "AR_l": ar("large"),
    }


def ap50_ar50(pred_boxes: Sequence[Box], scores: Sequence[float], gt_boxes: Sequence[Box],
              width: int, height: int) -> tuple[float, float]:
    """Class-agnostic AP@0.5 and AR@0.5 of one image (the paper's task reward terms).

    An image without ground truth scores 1.0 for both when nothing was predicted and 0.0
    otherwise, so false positives on empty images are still punished.
    """
    if not gt_boxes:
        return (1.0, 1.0) if not pred_boxes else (0.0, 0.0)
    gt = ImageAnnotations(0, width, height, list(gt_boxes))
    pr = ImageAnnotations(0, width, height, list(pred_boxes), scores=list(scores) or [1.0] * len(pred_boxes))
    m = coco_evaluate([gt], [pr], iou_thresholds=[0.5], max_dets=max(100, len(pred_boxes)))
    return max(m["AP50"], 0.0), max(m["AR50"], 0.0)


def greedy_match(pred_boxes: Sequence[Box], scores: Sequence[float], gt_boxes: Sequence[Box],
                 iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """Score-ordered one-to-one matching; returns ``(true_pos, n_pred, n_gt)``."""
    order = np.argsort(-np.asarray(scores if len(scores) else [1.0] * len(pred_boxes), dtype=float), kind="stable")
    used = np.zeros(len(gt_boxes), bool)
    tp = 0
    for i in order:
        best, best_j = iou_threshold, -1
        for j, g in enumerate(gt_boxes):
            if not used[j]:
                iou = pred_boxes[i].iou(g)
                if iou >= best:
                    best, best_j = iou, j
        if best_j >= 0:
            used[best_j] = True
            tp += 1
    return tp, len(pred_boxes), len(gt_boxes)


def recall_precision(pred_boxes: Sequence[Box], scores: Sequence[float], gt_boxes: Sequence[Box],
                     iou_threshold: float = 0.5) -> tuple[float, float]:
    tp, n_pred, n_gt = greedy_match(pred_boxes, scores, gt_boxes, iou_threshold)
    return (tp / n_gt if n_gt else 1.0), (tp / n_pred if n_pred else 1.0)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def mean_iou(pred_masks: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray]) -> float:
    """mIoU over paired instances (the paper's interactive-segmentation metric)."""
    if len(pred_masks) != len(gt_masks):
        raise ValueError("mean_iou needs one predicted mask per ground-truth mask")
    if not gt_masks:
        return 1.0
    return float(np.mean([mask_iou(p, g) for p, g in zip(pred_masks, gt_masks)]))


def rle_encode(mask: np.ndarray) -> dict:
    """COCO RLE of a boolean mask (counts as ASCII text, JSON-ready)."""
    return _rle(mask)


def rle_decode(rle: dict) -> np.ndarray:
    r = dict(rle)
    if isinstance(r.get("counts"), str):
        r["counts"] = r["counts"].encode("ascii")
    return mask_utils.decode(r).astype(bool)
