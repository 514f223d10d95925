"""The one frame processor: identical frames reuse the previous result, everything else runs."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rapidocr")
pytest.importorskip("rclpy")

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.ros import convert  # noqa: E402
from active_o3_ros.ros.frames import FrameProcessor  # noqa: E402
from active_o3_ros.ros.images import rgb_to_image  # noqa: E402


@pytest.fixture(scope="module")
def pipeline():
    pipe = build_pipeline(PerceptionConfig.from_flat({"task_module": "text", "mode": "full_frame", "crop_size": 256,
                                                      "task_options": {"threads": 1}}))
    yield pipe
    pipe.close()


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def test_identical_frames_get_the_previous_result_without_running_the_models(pipeline):
    fp = FrameProcessor(pipeline, convert.rclpy_types(), reuse_identical=True)
    first = fp.process(rgb_to_image(_frame()), "text")
    again = fp.process(rgb_to_image(_frame()), "text")
    assert again.outputs.result is first.outputs.result          # the pipeline did not run again
    assert fp.stats.processed == 2 and fp.stats.reused == 1
    assert "decode_s" in again.outputs.door_s and "messages_s" in again.outputs.door_s
    changed = _frame()
    changed[5, 7, 1] ^= 1                                         # one bit of one pixel
    assert fp.process(rgb_to_image(changed), "text").outputs.result is not first.outputs.result
    other = fp.process(rgb_to_image(changed), "words")            # another instruction runs again
    assert other.outputs.result.instruction == "words" and fp.stats.reused == 1
    assert fp.stats.stage_sums["decode_s"] > 0 and fp.stats.stage_sums["messages_s"] > 0


def test_reuse_is_off_by_default_for_offline_processing(pipeline):
    fp = FrameProcessor(pipeline, convert.rclpy_types())
    a = fp.process(rgb_to_image(_frame(1)), "text")
    b = fp.process(rgb_to_image(_frame(1)), "text")
    assert a.outputs.result is not b.outputs.result and fp.stats.reused == 0
