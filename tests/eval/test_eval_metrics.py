"""Evaluation metrics are pycocotools' numbers, not ours: checked against COCOeval run
directly on JSON files, and against AP values computed by hand."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from active_o3_ros.core.metrics import ImageAnnotations, coco_evaluate
from active_o3_ros.core.types import Box, Detection, PerceptionResult
from active_o3_training.eval_data import EvalSample
from active_o3_training.evaluate import EvalConfig, MethodRun, markdown_table, summarize

# COCOeval.stats order -> our keys
STATS_KEYS = {0: "AP", 1: "AP50", 2: "AP75", 3: "AP_s", 4: "AP_m", 5: "AP_l", 8: "AR", 9: "AR_s", 10: "AR_m", 11: "AR_l"}


def _random_set(seed: int, n_images: int = 6, cats: tuple[str, ...] = ("car", "person")):
    """GT with every size bucket + detections that are jittered GT, misses and false positives."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for iid in range(1, n_images + 1):
        w, h = 640, 480
        boxes, labels = [], []
        for _ in range(int(rng.integers(2, 9))):
            side = float(rng.choice([10, 20, 40, 70, 120, 200]) * rng.uniform(0.8, 1.2))
            x, y = rng.uniform(0, w - side), rng.uniform(0, h - side)
            boxes.append(Box(x, y, x + side, y + side * rng.uniform(0.6, 1.0)))
            labels.append(str(rng.choice(cats)))
        pb, pl, ps = [], [], []
        for b, l in zip(boxes, labels):
            if rng.random() < 0.75:  # found, with localisation noise
                j = rng.normal(0, 0.12 * b.width, 4)
                pb.append(Box.from_any(b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3]).clip(w, h))
                pl.append(l if rng.random() < 0.9 else str(rng.choice(cats)))
                ps.append(float(rng.uniform(0.2, 1.0)))
        for _ in range(int(rng.integers(0, 4))):  # false positives
            x, y = rng.uniform(0, w - 50), rng.uniform(0, h - 50)
            pb.append(Box(x, y, x + rng.uniform(5, 50), y + rng.uniform(5, 50)))
            pl.append(str(rng.choice(cats)))
            ps.append(float(rng.uniform(0.0, 0.9)))
        gts.append(ImageAnnotations(iid, w, h, boxes, labels))
        preds.append(ImageAnnotations(iid, w, h, pb, pl, ps))
    return gts, preds


def _pycocotools_direct(tmp: Path, gts, preds, cats, iou_thrs=None) -> np.ndarray:
    """The reference: COCO JSON files on disk, COCO(file), loadRes(list), COCOeval.summarize."""
    cat_ids = {c: i + 1 for i, c in enumerate(cats)}
    gt_json = {
        "images": [{"id": g.image_id, "width": g.width, "height": g.height} for g in gts],
        "annotations": [{"id": 1000 * g.image_id + j, "image_id": g.image_id, "category_id": cat_ids[l],
                         "bbox": b.as_xywh(), "area": b.area, "iscrowd": 0}
                        for g in gts for j, (b, l) in enumerate(zip(g.boxes, g.labels))],
        "categories": [{"id": i, "name": c} for c, i in cat_ids.items()],
    }
    (tmp / "gt.json").write_text(json.dumps(gt_json))
    dets = [{"image_id": p.image_id, "category_id": cat_ids[l], "bbox": b.as_xywh(), "score": s}
            for p in preds for b, l, s in zip(p.boxes, p.labels, p.scores)]
    coco = COCO(str(tmp / "gt.json"))
    ev = COCOeval(coco, coco.loadRes(dets), "bbox")
    if iou_thrs is not None:
        ev.params.iouThrs = np.asarray(iou_thrs)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_evaluate_equals_pycocotools_direct(tmp_path: Path, seed: int) -> None:
    gts, preds = _random_set(seed)
    ref = _pycocotools_direct(tmp_path, gts, preds, ("car", "person"))
    ours = coco_evaluate(gts, preds)
    for i, key in STATS_KEYS.items():
        assert ours[key] == pytest.approx(ref[i], abs=1e-12), key


def test_eval_summary_row_equals_pycocotools_direct(tmp_path: Path) -> None:
    """The evaluation's own path (pipeline results -> predictions -> row) gives the same numbers."""
    gts, preds = _random_set(7)
    samples = [EvalSample(g.image_id, f"{g.image_id}.png", g.width, g.height, g, "car, person", lambda: None)
               for g in gts]
    results = [PerceptionResult([Detection(b, l, s) for b, l, s in zip(p.boxes, p.labels, p.scores)], [],
                                p.width, p.height, "car, person", model_calls=2, task_statuses=[])
               for p in preds]
    row = summarize(MethodRun("parallel", 3, results, [g.image_id for g in gts]), samples, ["car", "person"],
                    EvalConfig(), with_masks=False)
    ref = _pycocotools_direct(tmp_path, gts, preds, ("car", "person"))
    for i, key in STATS_KEYS.items():
        assert row[key] == pytest.approx(ref[i], abs=1e-12), key
    assert row["model_calls_per_img"] == 2.0
    # SODA's loose matching is pycocotools with iouThrs=[0.1] as well
    cfg = EvalConfig(soda_iou=True)
    row = summarize(MethodRun("parallel", 3, results, []), samples, ["car", "person"], cfg, with_masks=False)
    ref = _pycocotools_direct(tmp_path, gts, preds, ("car", "person"), iou_thrs=[0.1])
    assert row["AP@0.1"] == pytest.approx(ref[0], abs=1e-12)
    assert row["AR_s@0.1"] == pytest.approx(ref[9], abs=1e-12)
    assert "| ACTIVE-o3 (parallel) | 3 |" in markdown_table({
        "rows": [row], "config": {"tiling_grid": 3, "perception": {"sensing_backend": "x", "task_module": "y"}},
        "dataset": {"name": "d", "images": 1, "instances": 1, "instances_by_size": {"small": 1, "medium": 0, "large": 0}}})


def _one_image(pred: list[tuple[Box, float]], gt: list[Box]):
    g = ImageAnnotations(1, 200, 200, gt)
    p = ImageAnnotations(1, 200, 200, [b for b, _ in pred], scores=[s for _, s in pred])
    return [g], [p]


G1, G2 = Box(10, 10, 20, 20), Box(100, 100, 110, 110)  # two small (100 px^2) objects
FP = Box(150, 10, 160, 20)


def test_hand_computed_tp_then_fp() -> None:
    """2 GT; TP scored 0.9 ranks before FP 0.8: precision 1 up to recall 0.5, then nothing.
    COCO interpolates at 101 recall points 0, 0.01, ..., 1 -> 51 points at precision 1."""
    m = coco_evaluate(*_one_image([(G1, 0.9), (FP, 0.8)], [G1, G2]))
    assert m["AP50"] == pytest.approx(51 / 101)
    assert m["AR50"] == pytest.approx(0.5)
    assert m["AP_s"] == pytest.approx(51 / 101)  # exact boxes: the same at every IoU threshold
    assert m["AP_m"] == -1.0 and m["AR_l"] == -1.0  # no GT in those buckets: COCO's -1


def test_hand_computed_fp_then_tp() -> None:
    """Same detections, FP ranked first: precision at recall 0.5 is 1/2 -> AP50 = 0.5 * 51/101."""
    m = coco_evaluate(*_one_image([(FP, 0.95), (G1, 0.9)], [G1, G2]))
    assert m["AP50"] == pytest.approx(0.5 * 51 / 101)
    assert m["AR50"] == pytest.approx(0.5)


def test_hand_computed_soda_loose_iou() -> None:
    """A box shifted by half its width has IoU 1/3: a miss at 0.5, a hit at SODA's 0.1."""
    shifted = Box(15, 10, 25, 20)
    assert shifted.iou(G1) == pytest.approx(1 / 3)
    strict = coco_evaluate(*_one_image([(shifted, 1.0)], [G1]))
    loose = coco_evaluate(*_one_image([(shifted, 1.0)], [G1]), iou_thresholds=[0.1])
    assert strict["AP50"] == 0.0
    assert loose["AP"] == pytest.approx(1.0) and loose["AR"] == pytest.approx(1.0)


def test_masks_pasted_and_miou_by_hand() -> None:
    """A detection's box-cropped mask lands at its offset in the frame; mIoU pairs each GT
    instance with its best-overlapping prediction (0 when none covers it)."""
    from active_o3_training.evaluate import detection_mask, instance_miou

    crop = np.ones((4, 6), bool)  # 6 wide x 4 high, placed at x=10, y=20
    d = Detection(Box(10, 20, 16, 24), "obj", 1.0, mask=crop, mask_offset=(10, 20))
    full = detection_mask(d, 40, 30)
    assert full.sum() == 24 and full[20:24, 10:16].all()
    edge = Detection(Box(36, 28, 40, 30), "obj", 1.0, mask=np.ones((4, 6), bool), mask_offset=(36, 28))
    assert detection_mask(edge, 40, 30).sum() == 2 * 4  # clipped at the frame border

    gt_a = np.zeros((30, 40), bool)
    gt_a[20:24, 10:18] = True  # 32 px, the prediction covers 24 of them
    gt_b = np.zeros((30, 40), bool)
    gt_b[0:5, 0:5] = True      # nobody predicts this one
    g = ImageAnnotations(1, 40, 30, [Box(10, 20, 18, 24), Box(0, 0, 5, 5)], masks=[gt_a, gt_b])
    p = ImageAnnotations(1, 40, 30, [d.box], scores=[1.0], masks=[full])
    assert instance_miou([g], [p]) == pytest.approx((24 / 32 + 0.0) / 2)
    seg = coco_evaluate([g], [p], iou_type="segm", iou_thresholds=[0.5])
    assert seg["AR"] == pytest.approx(0.5)  # mask IoU 0.75 >= 0.5 for A, B missed
