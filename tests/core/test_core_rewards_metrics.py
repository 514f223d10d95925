"""Rewards and metrics on hand-made cases whose right value is computed by hand."""
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from active_o3_ros.core.metrics import (
    ImageAnnotations, ap50_ar50, coco_evaluate, mean_iou, recall_precision, rle_decode, rle_encode,
)
from active_o3_ros.core.rewards import (
    REWARD_TERMS, RewardConfig, area_reward, coverage_reward, format_reward, non_overlap_reward, region_rewards,
)
from active_o3_ros.core.types import Box, Detection


def test_heuristic_terms_by_hand():
    a, b = Box(0, 0, 50, 50), Box(40, 40, 90, 90)       # IoU = 100/4900 ~ 0.02
    assert non_overlap_reward([a, b], 0.3) == 1.0
    assert non_overlap_reward([a, Box(10, 0, 60, 50)], 0.3) == 0.0  # IoU = 2000/3000
    assert non_overlap_reward([], 0.3) == 0.0
    assert area_reward([a], 100, 100) == 1.0                        # 25 %
    assert area_reward([Box(0, 0, 9, 9)], 100, 100) == 0.0          # 0.81 %
    assert area_reward([Box(0, 0, 100, 60)], 100, 100) == 0.0       # 60 %
    gts = [Box(1, 1, 5, 5), Box(45, 45, 55, 55), Box(95, 95, 99, 99)]
    assert coverage_reward([a], gts) == pytest.approx(1 / 3)        # second only half inside
    assert coverage_reward([a], gts, min_inside=0.25) == pytest.approx(2 / 3)
    assert coverage_reward([], []) == 1.0
    good = '<think>x</think><answer>[{"bbox_2d": [0, 0, 5, 5]}]</answer>'
    assert format_reward(good, 3) == 1.0 and format_reward("<answer>[]</answer>", 3) == 0.0


def test_dual_reward_signals():
    regions = [Box(0, 0, 50, 50)]
    gts = [Box(10, 10, 20, 20), Box(70, 70, 80, 80)]
    dets = [Detection(Box(10, 10, 20, 20), "x", 0.9)]
    both = region_rewards(RewardConfig(), regions, 100, 100, gts, None, dets)
    # AP50 = 51/101 (precision 1 up to recall 0.5 on COCO's 101-point grid), AR50 = 0.5
    assert both.terms["task"] == pytest.approx(51 / 101 + 0.5, abs=1e-6)
    assert both.terms["coverage"] == 0.5 and both.terms["format"] == 1.0
    assert both.total == pytest.approx(3.5 + 51 / 101 + 0.5, abs=1e-6)
    heur = region_rewards(RewardConfig(signal="heuristic"), regions, 100, 100, gts)
    assert "task" not in heur.terms
    task = region_rewards(RewardConfig(signal="task"), regions, 100, 100, gts, detections=dets)
    assert set(task.terms) == {"task"}
    with pytest.raises(ValueError, match="detections"):
        region_rewards(RewardConfig(signal="task"), regions, 100, 100, gts)
    with pytest.raises(ValueError):
        RewardConfig(signal="nope")


def test_coverage_can_be_measured_on_what_the_task_model_sees():
    regions = [Box(0, 0, 50, 50)]
    gts = [Box(10, 10, 20, 20), Box(45, 10, 55, 20)]  # the second is cut by the region's edge
    plain = region_rewards(RewardConfig(signal="heuristic"), regions, 100, 100, gts)
    seen = region_rewards(RewardConfig(signal="heuristic"), regions, 100, 100, gts,
                          coverage_regions=[Box(0, 0, 60, 60)])  # the crop window with context
    assert plain.terms["coverage"] == 0.5 and seen.terms["coverage"] == 1.0
    # the geometry terms stay on the proposed regions
    assert {k: v for k, v in seen.terms.items() if k != "coverage"} == \
        {k: v for k, v in plain.terms.items() if k != "coverage"}


def test_coverage_can_ask_that_the_crop_makes_a_box_tall_enough():
    """``coverage_min_height``: a box inside a region counts only when that region's crop
    enlargement shows it at least this tall; the better-zoomed of two regions counts."""
    big, small = Box(0, 0, 800, 800), Box(0, 0, 200, 200)
    gts = [Box(10, 10, 60, 16)]                              # 6 px tall in the frame
    cfg = RewardConfig(signal="heuristic", coverage_min_height=12)
    assert coverage_reward([big], gts) == 1.0
    assert coverage_reward([big], gts, min_height=12, scales=[1.05]) == 0.0   # 6.3 px in the crop
    assert coverage_reward([big, small], gts, min_height=12, scales=[1.05, 3.0]) == 1.0
    far = region_rewards(cfg, [big], 1000, 1000, gts, coverage_scales=[1.05])
    near = region_rewards(cfg, [small], 1000, 1000, gts, coverage_scales=[3.0])
    assert far.terms["coverage"] == 0.0 and near.terms["coverage"] == 1.0
    with pytest.raises(ValueError, match="scales"):
        coverage_reward([big, small], gts, min_height=12, scales=[1.0])
    with pytest.raises(ValueError, match="coverage_min_height"):
        RewardConfig(coverage_min_height=-1)


def test_ap_ar_edge_cases():
    assert ap50_ar50([], [], [], 10, 10) == (1.0, 1.0)
    assert ap50_ar50([Box(0, 0, 1, 1)], [1.0], [], 10, 10) == (0.0, 0.0)
    assert ap50_ar50([], [], [Box(0, 0, 1, 1)], 10, 10) == (0.0, 0.0)
    assert recall_precision([Box(0, 0, 10, 10), Box(50, 50, 60, 60)], [0.9, 0.8],
                            [Box(0, 0, 10, 10), Box(20, 20, 30, 30)]) == (0.5, 0.5)


def test_matches_pycocotools_directly(tmp_path):
    rng = np.random.default_rng(0)
    gts, preds, images, anns, dets = [], [], [], [], []
    aid = 1
    for img in range(1, 6):
        gb = [Box.from_xywh(*rng.uniform(0, 300, 2), *rng.uniform(4, 120, 2)) for _ in range(6)]
        pb = [Box.from_xywh(b.x1 + rng.normal(0, 3), b.y1 + rng.normal(0, 3), b.width, b.height) for b in gb[:4]]
        pb += [Box.from_xywh(*rng.uniform(0, 300, 2), 20, 20)]
        sc = rng.uniform(0, 1, len(pb)).tolist()
        gts.append(ImageAnnotations(img, 500, 500, gb))
        preds.append(ImageAnnotations(img, 500, 500, pb, scores=sc))
        images.append({"id": img, "width": 500, "height": 500})
        for b in gb:
            anns.append({"id": aid, "image_id": img, "category_id": 1, "bbox": b.as_xywh(), "area": b.area, "iscrowd": 0})
            aid += 1
        dets += [{"image_id": img, "category_id": 1, "bbox": b.as_xywh(), "score": s} for b, s in zip(pb, sc)]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}))
    gt = COCO(str(path))
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
    ours = coco_evaluate(gts, preds)
    ref = dict(zip(["AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l"], ev.stats[:6]))
    ref.update(dict(zip(["AR_s", "AR_m", "AR_l"], ev.stats[9:12])))
    ref["AR"] = ev.stats[8]
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v, abs=1e-9), k
    loose = coco_evaluate(gts, preds, iou_thresholds=[0.1])
    assert loose["AP"] >= ours["AP50"] - 1e-9 and loose["AP50"] == -1.0


def test_masks():
    m = np.zeros((30, 40), bool); m[5:10, 5:25] = True
    assert np.array_equal(rle_decode(json.loads(json.dumps(rle_encode(m)))), m)
    half = m.copy(); half[:, 15:] = False
    assert mean_iou([m, half], [m, m]) == pytest.approx((1 + 0.5) / 2)


def test_reward_weights_parse_and_reject_bad_specs():
    """TERM=W lists set the weights of the dual reward's terms; a wrong term, a missing '=',
    a word or a negative weight is a clear ValueError."""
    from active_o3_ros.core.rewards import parse_reward_weights

    assert parse_reward_weights("") == {}
    assert parse_reward_weights("coverage=0, task=2") == {"coverage": 0.0, "task": 2.0}
    cfg = RewardConfig(weights={**dict.fromkeys(REWARD_TERMS, 1.0), **parse_reward_weights("coverage=0")})
    r = region_rewards(cfg, [Box(0, 0, 10, 10)], 100, 100, [Box(1, 1, 5, 5)], detections=[])
    assert r.terms["coverage"] == 1.0 and r.total == sum(v for k, v in r.terms.items() if k != "coverage")
    for bad, msg in (("cover=1", "TERM=W"), ("coverage", "TERM=W"), ("task=lots", "not a number"),
                     ("task=-1", ">= 0"), ("task=nan", ">= 0")):
        with pytest.raises(ValueError, match=msg):
            parse_reward_weights(bad)
