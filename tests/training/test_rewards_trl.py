"""TRL reward wrappers: hand-computed values, model-input -> frame mapping, task term via the pipeline."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import pytest
from PIL import Image

from active_o3_ros.backends.base import TaskModel, TaskOutput
from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig
from active_o3_ros.core.rewards import RewardConfig
from active_o3_ros.core.types import Box, Detection
from active_o3_training.rewards_trl import InputSpace, TrlRewards, completion_text


class BrightBlobTask(TaskModel):
    """A real (if classical) frozen detector: connected components of bright pixels.
    Counts its calls so the test can check that ONE batched call covers all crops."""

    name = "blob"

    def __init__(self) -> None:
        self.calls, self.batch_sizes = 0, []

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        self.calls += 1
        self.batch_sizes.append(len(images))
        outs = []
        for img in images:
            mask = (img.max(axis=2) > 200).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            dets = [Detection(Box(float(x), float(y), float(x + w), float(y + h)), "dot", 1.0)
                    for x, y, w, h, _a in stats[1:n]]
            outs.append(TaskOutput(dets))
        return outs


# 280x280 image: Qwen's smart_resize keeps it (multiple of 28), so model pixels == frame pixels
SPACE = InputSpace(min_pixels=56 * 56, max_pixels=280 * 280)
W = H = 280


def _answer(*boxes):
    items = ", ".join('{"bbox_2d": [%d, %d, %d, %d], "label": "r"}' % b for b in boxes)
    return f"<think>look</think><answer>[{items}]</answer>"


def _kw(n, gt):
    return dict(width=[W] * n, height=[H] * n, gt_boxes=[gt] * n)


def test_heuristic_terms_by_hand():
    r = TrlRewards(RewardConfig(signal="heuristic"), SPACE)
    gt = [[10, 10, 20, 20], [200, 200, 210, 210]]
    comps = [
        _answer((0, 0, 100, 100), (150, 150, 250, 250)),      # disjoint, 12.8 % each, covers both
        _answer((0, 0, 100, 100), (10, 10, 110, 110)),        # IoU 0.68 > 0.3, covers the first only
        _answer((0, 0, 280, 280)),                             # 100 % of the image: area fails
        "no answer at all",
        [{"role": "assistant", "content": _answer((0, 0, 10, 10))}],   # chat form; 0.13 % area
    ]
    kw = _kw(len(comps), gt)
    assert r.format(None, comps, **kw) == [1, 1, 1, 0, 1]
    assert r.non_overlap(None, comps, **kw) == [1, 0, 1, 0, 1]
    assert r.area(None, comps, **kw) == [1, 1, 0, 0, 0]
    assert r.coverage(None, comps, **kw) == [1.0, 0.5, 1.0, 0.0, 0.0]
    assert r.parse_failure(None, comps, **kw) == [0, 0, 0, 1, 0]


def test_boxes_are_mapped_from_model_input_to_frame_pixels():
    # 560x560 frame with budget 280^2: the model sees 280x280, so its (0,0,100,100) is frame (0,0,200,200)
    r = TrlRewards(RewardConfig(signal="heuristic"), SPACE)
    gt = [[150, 150, 190, 190]]
    kw = dict(width=[560], height=[560], gt_boxes=[gt])
    assert SPACE.input_size(560, 560) == (280, 280)
    assert r.coverage(None, [_answer((0, 0, 100, 100))], **kw) == [1.0]
    assert r.coverage(None, [_answer((0, 0, 70, 70))], **kw) == [0.0]


def test_coverage_min_height_reads_the_pipelines_crop_enlargement():
    """A 6 px tall box counts for a small region (its 84 px crop enlarges 3x: 18 px) and not
    for a large one (enlarged 84/140 = 0.6x) when ``coverage_min_height`` is 12."""
    crop = PipelineConfig(crop=ResizeCropConfig(output_size=84, max_zoom=3.0, context=1.0), fallback_full_frame=False)
    r = TrlRewards(RewardConfig(signal="heuristic", coverage_min_height=12), SPACE, pipeline=crop)
    kw = _kw(2, [[4, 4, 24, 10]])
    comps = [_answer((0, 0, 28, 28)), _answer((0, 0, 140, 140))]
    assert r.coverage(None, comps, **kw) == [1.0, 0.0]
    assert TrlRewards(RewardConfig(signal="heuristic"), SPACE, pipeline=crop).coverage(None, comps, **kw) == [1.0, 1.0]


def test_functions_are_named_per_term_with_weights():
    cfg = RewardConfig(signal="heuristic", weights={"format": 0.5, "non_overlap": 1, "area": 1, "coverage": 2, "task": 1})
    funcs, weights = TrlRewards(cfg, SPACE).functions()
    assert [f.__name__ for f in funcs] == ["format", "non_overlap", "area", "coverage", "parse_failure"]
    assert weights == [0.5, 1.0, 1.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="frozen task model"):
        TrlRewards(RewardConfig(signal="both"), SPACE)


def test_task_term_runs_frozen_task_model_through_crop_and_merge():
    frame = np.zeros((H, W, 3), np.uint8)
    frame[20:30, 20:30] = 255        # dot A
    frame[240:250, 240:250] = 255    # dot B
    gt = [[20, 20, 30, 30], [240, 240, 250, 250]]
    task = BrightBlobTask()
    # crops of >= 40 px enlarged to 120 px: a 60 px region holds one dot only
    pipe = PipelineConfig(crop=ResizeCropConfig(output_size=120, max_zoom=3.0), fallback_full_frame=False)
    r = TrlRewards(RewardConfig(signal="task"), SPACE, task_model=task, pipeline=pipe)
    funcs, _ = r.functions()
    assert [f.__name__ for f in funcs] == ["task", "parse_failure"]
    img = Image.fromarray(frame)
    comps = [_answer((0, 0, 60, 60), (220, 220, 270, 270)),   # both dots zoomed: AP=1, AR=1
             _answer((0, 0, 60, 60)),                          # one dot: AP@0.5 = 0.5, AR = 0.5
             _answer((100, 100, 150, 150)),                    # nothing there
             "garbage"]
    kw = dict(_kw(4, gt), image=[img] * 4, instruction=["dot"] * 4)
    vals = funcs[0](None, comps, **kw)
    assert vals[0] == pytest.approx(2.0, abs=1e-6)
    assert vals[1] == pytest.approx(1.0, abs=0.02)
    assert vals[2] == pytest.approx(0.0, abs=1e-6)
    assert vals[3] == pytest.approx(0.0, abs=1e-6)
    # one batched task call per completion that proposed regions (3), 2 crops in the first
    assert task.calls == 3 and task.batch_sizes[0] == 2


def test_completion_text_forms():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]) == "ab"
    assert completion_text(None) == ""
