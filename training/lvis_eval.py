"""LVIS v1 federated evaluation (Gupta et al., 2019) on pycocotools' matching.

LVIS is *federated*: an image is labelled exhaustively only for some categories, so plain
COCO AP would punish correct detections of unlabelled classes.  Three rules differ from COCO:

1. Per image, only detections of the image's *positive* categories (those with an
   annotation) and of its ``neg_category_ids`` (verified absent) are evaluated; every other
   detection is dropped, neither right nor wrong.
2. For the image's ``not_exhaustive_category_ids`` an unmatched detection is ignored instead
   of counted as a false positive (some instances were not annotated).
3. At most ``max_dets`` (300) detections per image over all categories, highest scores first
   (COCO caps per category at 100).

Everything else — IoU matching, ignore flags, area ranges, 101-point interpolated
precision — is COCO's, so :func:`lvis_evaluate` runs ``pycocotools.COCOeval`` with rule 1 and
3 applied to the detections beforehand and rule 2 applied to its per-image results before
accumulation.  The result keys are the ``lvis`` package's (``AP``, ``AP50``, ``AP75``,
``APs/m/l``, ``APr/c/f`` by category frequency, ``AR@300``, ``ARs/m/l@300``).

Why not the ``lvis`` package itself: its evaluator (0.5.3, the last release) uses
``np.float``, removed in NumPy 1.24, and fails under the NumPy this project pins.  The tests
compare this module with that evaluator on random federated cases (with the alias restored
in the test process only) and on a hand-computed one.

Usage::

    python -m active_o3_training.lvis_eval LVIS_VAL.json DETECTIONS.json [--iou-type bbox|segm]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

FREQUENCIES = ("r", "c", "f")
AREAS = ("all", "small", "medium", "large")


def limit_per_image(detections: Sequence[dict[str, Any]], max_dets: int) -> list[dict[str, Any]]:
    """Rule 3: the ``max_dets`` highest-scoring detections of each image (stable order)."""
    by_img: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for d in detections:
        by_img[d["image_id"]].append(d)
    out: list[dict[str, Any]] = []
    for dets in by_img.values():
        order = np.argsort([-float(d["score"]) for d in dets], kind="mergesort")[:max_dets]
        out.extend(dets[i] for i in order)
    return out


def federated_filter(gt: dict[str, Any], detections: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule 1: keep a detection only when its category is positive or verified absent in its image."""
    positive: dict[Any, set] = defaultdict(set)
    for a in gt["annotations"]:
        positive[a["image_id"]].add(a["category_id"])
    negative = {im["id"]: set(im.get("neg_category_ids") or ()) for im in gt["images"]}
    return [d for d in detections
            if d["category_id"] in positive[d["image_id"]] or d["category_id"] in negative[d["image_id"]]]


def _coco_gt(gt: dict[str, Any], iou_type: str):
    from pycocotools.coco import COCO

    data = copy.deepcopy(gt)
    for a in data["annotations"]:
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2]) * float(a["bbox"][3])
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = data
        coco.createIndex()
    return coco


def lvis_evaluate(gt: dict[str, Any] | str | Path, detections: Sequence[dict[str, Any]], iou_type: str = "bbox",
                  max_dets: int = 300) -> dict[str, float]:
    """Federated AP/AR of COCO-results-format ``detections`` (``image_id``, ``category_id``,
    ``bbox`` xywh, ``score``; ``segmentation`` for ``segm``) against an LVIS-format ``gt``
    (a dict or a JSON path).  -1 where a value is undefined (no ground truth for it)."""
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be bbox or segm, got {iou_type!r}")
    if not isinstance(gt, dict):
        gt = json.loads(Path(gt).read_text(encoding="utf-8"))
    img_ids = {im["id"] for im in gt["images"]}
    cat_ids = sorted(c["id"] for c in gt["categories"])
    unknown = {d["image_id"] for d in detections} - img_ids
    if unknown:
        raise ValueError(f"detections name {len(unknown)} image id(s) not in the ground truth, e.g. {sorted(unknown)[:3]}")
    dets = federated_filter(gt, limit_per_image(detections, max_dets))
    dets = [d for d in dets if d["category_id"] in set(cat_ids)]
    coco_gt = _coco_gt(gt, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets)) if dets else None
    if coco_dt is None:  # pycocotools cannot load an empty result list
        coco_dt = _coco_gt({"images": gt["images"], "annotations": [], "categories": gt["categories"]}, iou_type)
    ev = COCOeval(coco_gt, coco_dt, iou_type)
    ev.params.imgIds = sorted(img_ids)
    ev.params.catIds = cat_ids
    ev.params.maxDets = [max_dets]
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
    # rule 2: unmatched detections of a not-exhaustively labelled (image, category) are ignored
    not_exhaustive = {im["id"]: set(im.get("not_exhaustive_category_ids") or ()) for im in gt["images"]}
    for e in ev.evalImgs:
        if e is not None and e["category_id"] in not_exhaustive[e["image_id"]] and len(e["dtIds"]):
            e["dtIgnore"] = np.logical_or(e["dtIgnore"], e["dtMatches"] == 0)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    return _summary(ev, gt, cat_ids, max_dets)


def _mean_defined(values: np.ndarray) -> float:
    v = values[values > -1]
    return float(np.mean(v)) if v.size else -1.0


def _summary(ev, gt: dict[str, Any], cat_ids: list[int], max_dets: int) -> dict[str, float]:
    precision = ev.eval["precision"][..., 0]   # [T, R, K, A]
    recall = ev.eval["recall"][..., 0]         # [T, K, A]
    thrs = ev.params.iouThrs
    area = {name: i for i, name in enumerate(ev.params.areaRngLbl)}
    freq = {c["id"]: c.get("frequency") for c in gt["categories"]}
    out = {"AP": _mean_defined(precision[:, :, :, area["all"]]),
           "AP50": _mean_defined(precision[np.isclose(thrs, 0.5)][:, :, :, area["all"]]),
           "AP75": _mean_defined(precision[np.isclose(thrs, 0.75)][:, :, :, area["all"]])}
    for name, key in (("small", "APs"), ("medium", "APm"), ("large", "APl")):
        out[key] = _mean_defined(precision[:, :, :, area[name]])
    for f in FREQUENCIES:
        idx = [k for k, c in enumerate(cat_ids) if freq.get(c) == f]
        out[f"AP{f}"] = _mean_defined(precision[:, :, idx, area["all"]]) if idx else -1.0
    out[f"AR@{max_dets}"] = _mean_defined(recall[:, :, area["all"]])
    for name in ("small", "medium", "large"):
        out[f"AR{name[0]}@{max_dets}"] = _mean_defined(recall[:, :, area[name]])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m active_o3_training.lvis_eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gt", type=Path, help="LVIS-format annotation JSON")
    ap.add_argument("detections", type=Path, help="COCO results-format JSON list")
    ap.add_argument("--iou-type", default="bbox", choices=("bbox", "segm"))
    ap.add_argument("--max-dets", type=int, default=300)
    args = ap.parse_args(argv)
    for p in (args.gt, args.detections):
        if not p.is_file():
            print(f"error: file not found: {p}", file=sys.stderr)
            return 2
    try:
        dets = json.loads(args.detections.read_text(encoding="utf-8"))
        res = lvis_evaluate(args.gt, dets, args.iou_type, args.max_dets)
    except (ValueError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: round(v, 4) for k, v in res.items()}, indent=1))
    return 0


__all__ = ["FREQUENCIES", "federated_filter", "limit_per_image", "lvis_evaluate"]

if __name__ == "__main__":
    raise SystemExit(main())
