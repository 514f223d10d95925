"""mIoU task reward (core/rewards.py), checked against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from active_o3_ros.core.rewards import (
    RewardConfig, detection_frame_mask, region_rewards, segmentation_task_reward,
)
from active_o3_ros.core.types import Box, Detection


def _gts() -> list[np.ndarray]:
    a = np.zeros((10, 10), bool)
    a[0:5, 0:5] = True           # 25 px
    b = np.zeros((10, 10), bool)
    b[6:10, 6:10] = True         # 16 px
    return [a, b]


def _pred_a() -> Detection:
    # 5x5 mask at frame offset (2, 0): overlaps A in cols 2..4 → 15 px; union 25 + 25 - 15 = 35
    return Detection(Box(2, 0, 7, 5), "x", 0.9, region_index=0, mask=np.ones((5, 5), bool), mask_offset=(2, 0))


def _pred_b(region: int) -> Detection:
    return Detection(Box(6, 6, 10, 10), "x", 0.8, region_index=region, mask=np.ones((4, 4), bool), mask_offset=(6, 6))


def test_hand_computed_miou_and_budget():
    assert segmentation_task_reward([_pred_a()], _gts(), 10, 10) == pytest.approx((15 / 35 + 0.0) / 2)
    both = [_pred_a(), _pred_b(3)]
    assert segmentation_task_reward(both, _gts(), 10, 10) == pytest.approx((15 / 35 + 1.0) / 2)
    # region 3 lies outside a budget of 3 regions (indices 0..2): its mask does not count
    assert segmentation_task_reward(both, _gts(), 10, 10, region_budget=3) == pytest.approx(15 / 70)
    assert segmentation_task_reward([], [], 10, 10) == 1.0
    assert segmentation_task_reward([_pred_a()], [], 10, 10) == 0.0


def test_box_fallback_and_clipping():
    d = Detection(Box(8.5, 8.5, 12, 12), "x")  # no mask: its box, rounded outwards, clipped
    m = detection_frame_mask(d, 10, 10)
    assert m.sum() == 4 and m[8:10, 8:10].all()
    d2 = Detection(Box(0, 0, 3, 3), "x", mask=np.ones((3, 3), bool), mask_offset=(-1, -1))
    assert detection_frame_mask(d2, 10, 10).sum() == 4


def test_region_rewards_segmentation_metric():
    cfg = RewardConfig(signal="task", task_metric="segmentation", max_regions=3)
    r = region_rewards(cfg, [Box(0, 0, 5, 5)], 10, 10, [], detections=[_pred_a(), _pred_b(1)], gt_masks=_gts())
    assert r.terms == {"task": pytest.approx((15 / 35 + 1.0) / 2)}
    with pytest.raises(ValueError, match="gt_masks"):
        region_rewards(cfg, [Box(0, 0, 5, 5)], 10, 10, [], detections=[_pred_a()])
    with pytest.raises(ValueError, match="task_metric"):
        RewardConfig(task_metric="miou")
