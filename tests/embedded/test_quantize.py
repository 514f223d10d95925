"""The int8 detector builder: calibrates on training scenes only and writes a model rapidocr runs."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("rapidocr")
pytest.importorskip("onnx")


@pytest.mark.slow
def test_quantize_writes_a_runnable_int8_model_and_its_card(tmp_path, monkeypatch):
    import numpy as np
    import onnx

    from active_o3_ros.backends import build_task
    from active_o3_training.quantize import main

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    out = tmp_path / "det_int8.onnx"
    assert main(["--out", str(out), "--scenes", "2", "--threads", "1"]) == 0
    assert list(work.iterdir()) == []                           # no scratch files left where it ran
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["calibration"]["crops"] >= 2 and len(card["calibration"]["training_scene_seeds"]) == 2
    agree = card["agreement_on_calibration_inputs"]["binary_map_agreement_at_0.3"]
    assert 0.9 < agree <= 1.0, card
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops       # really quantised (QDQ)
    task = build_task("text", det_model_path=str(out), threads=1)
    res = task.detect([np.full((64, 64, 3), 255, np.uint8)], ["text"])[0]  # runs; a blank crop has no text
    assert res.detections == []
