"""The sahi adapter and the honest cost accounting of the text module (real rapidocr, real sahi)."""
from __future__ import annotations

import pytest

pytest.importorskip("rapidocr")
sahi = pytest.importorskip("sahi")

from active_o3_ros.backends.text import TextTaskModel, det_input_shape  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.core.metrics import greedy_match  # noqa: E402
from active_o3_ros.core.types import Box  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402


@pytest.fixture(scope="module")
def scene():
    # large words at 720p: the detector reads them at native resolution, no zoom needed
    cfg = scenes.SceneConfig(frame_sizes=((1280, 720),), text_free=0.0, word_height=(18, 26),
                             max_word_height_fraction=0.05)
    s = next(s for s in (scenes.render_scene(scenes.train_seed(i), cfg) for i in range(20)) if len(s.boxes) >= 3)
    return s


@pytest.fixture(scope="module")
def text_model():
    return TextTaskModel(threads=2)


def test_det_input_shape_is_rapidocrs_own_resize():
    import numpy as np
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    for h, w, limit in [(630, 840, 736), (840, 840, 736), (2160, 3840, 736), (100, 37, 736), (630, 840, 480)]:
        resized = DetPreProcess(limit, "min").resize(np.zeros((h, w, 3), np.uint8))
        assert resized.shape[:2] == det_input_shape(h, w, limit), (h, w, limit)


def test_text_module_reports_what_its_engine_ran(scene, text_model):
    from active_o3_ros.core.pipeline import ActivePerception

    assert TextTaskModel.batched is False
    pipe = ActivePerception(None, text_model, PerceptionConfig.from_flat({"crop_size": 640}).pipeline)
    regions = [Box(b.x1 - 40, b.y1 - 40, b.x2 + 40, b.y2 + 40) for b in scene.boxes[:3]]
    res = pipe.detect_regions(scene.image, regions, "text")
    cost = res.extra["task_cost"]
    crops = len(res.task_statuses)
    assert crops == 3 and res.model_calls == crops            # one engine run per crop, counted
    assert cost["engine_calls"] == crops
    assert 0 < cost["det_s"] <= cost["engine_s"] and cost["rec_s"] >= 0
    assert cost["det_megapixels"] >= crops * 0.2               # each crop's detector input >= 736 px short side


def test_sahi_sliced_prediction_with_our_detector(scene, text_model):
    from sahi.predict import get_sliced_prediction
    from sahi.slicing import get_slice_bboxes

    from active_o3_ros.sahi_model import TaskDetectionModel, to_detections

    model = TaskDetectionModel(text_model, "text", input_size=640, confidence_threshold=0.3)
    h, w = scene.image.shape[:2]
    res = get_sliced_prediction(scene.image, model, slice_height=320, slice_width=320, overlap_height_ratio=0.2,
                                overlap_width_ratio=0.2, perform_standard_pred=True, verbose=0)
    slices = get_slice_bboxes(h, w, 320, 320, False, 0.2, 0.2)
    assert model.calls == len(slices) + 1                       # every slice plus the standard prediction
    # every slice was enlarged to 640 px long side, the full frame shrunk to it
    expected = sum((640 * (y2 - y1) / max(x2 - x1, y2 - y1)) * (640 * (x2 - x1) / max(x2 - x1, y2 - y1))
                   for x1, y1, x2, y2 in slices) + 640 * 640 * h / w
    assert model.megapixels == pytest.approx(expected / 1e6, rel=0.02)
    dets = to_detections(res)
    assert dets and all(0 <= d.box.x1 < d.box.x2 <= w and 0 <= d.box.y1 < d.box.y2 <= h for d in dets)
    tp, _, n_gt = greedy_match([d.box for d in dets], [d.score for d in dets], scene.boxes, 0.5)
    assert tp >= 0.5 * n_gt, (tp, n_gt)                         # boxes came back to frame pixels, shifted right


def test_adapter_refuses_what_is_not_a_task_module():
    from active_o3_ros.sahi_model import TaskDetectionModel

    with pytest.raises(TypeError, match="TaskModel"):
        TaskDetectionModel("not a model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        TaskDetectionModel(None, input_size=4)  # type: ignore[arg-type]


def test_settings_are_chosen_on_validation_sets_only_and_reported_as_chosen(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "choose_settings.py"), "--sets", "test_held_out"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "validation sets only" in proc.stderr
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "choose_settings.py"), "--sizes", "8K"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--sizes takes names from 720p, 1080p, 1440p, 4K" in proc.stderr
    # the cost curve refuses a validation choice the text module's defaults do not carry
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"chosen_config": {"crop_size": 840, "sensing_options": {"min_prob": 0.0},
                                                    "task_options": {"det_limit_side_len": 123}}}))
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "cost_curve.py"), "--chosen", str(chosen),
                           "--out", str(tmp_path / "cc")], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "det_limit_side_len=123" in proc.stderr
    assert not (tmp_path / "cc.json").exists()


@pytest.mark.slow
def test_cost_curve_runs_a_sahi_row_next_to_a_pipeline_row(tmp_path) -> None:
    """SAHI's rows are not pipelines (no regions, no crop windows): the per-size table must
    still be written for them, next to a pipeline row of the same run."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "cc"
    proc = subprocess.run([sys.executable, str(repo / "benchmarks" / "cost_curve.py"), "--sets", "val", "--frames", "1",
                           "--rows", "SAHI native,policy K=1", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.with_suffix(".json").read_text())["sets"]["val"]["rows"]
    assert set(rows) == {"SAHI native", "policy K=1"}
    assert all(b["in_crop_windows"] is None for b in rows["SAHI native"]["by_frame_size"].values())
    assert all(b["in_crop_windows"] is not None for b in rows["policy K=1"]["by_frame_size"].values() if b["words"])
    assert rows["SAHI native"]["model_calls_per_frame"] > 1
