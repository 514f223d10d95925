"""``active-o3`` CLI: end to end in a subprocess on a real photo, and clear usage errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from fixtures_models import tiny_qwen_dir  # noqa: F401  (session fixture)
from skimage import data

from active_o3_ros.cli import build_parser, config_from_args, main
from active_o3_ros.core.config import PARAMETERS

REPO = Path(__file__).resolve().parents[1]
FAST = ["--crop-size", "224", "--thumbnail-short-side", "224",
        "--task-options", '{"max_new_tokens": 8}']


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "active_o3_ros.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_detect_end_to_end_writes_json_and_annotated_image(tiny_qwen_dir, photo, tmp_path):  # noqa: F811
    out_png, out_json = tmp_path / "annotated.png", tmp_path / "result.json"
    proc = _run("detect", str(photo), "--target", "person", "--sensing", "tiling", "--task", "qwen_vl",
                "--model", str(tiny_qwen_dir), "--sensing-options", '{"rows": 1, "cols": 3}',
                "--output", str(out_png), "--json", str(out_json), *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result == json.loads(out_json.read_text())
    assert result["model_calls"] == 1 and len(result["regions"]) == 3 and len(result["task_texts"]) == 3
    assert all(v > 0 for k, v in result["timings"].items() if k in ("task_s", "crop_s", "total_s"))
    assert result["image_size"] == [512, 512]
    annotated = cv2.imread(str(out_png))
    assert annotated.shape == (512, 512, 3)
    original = cv2.imread(str(photo))
    assert np.any(annotated != original), "regions must be drawn"


@pytest.mark.slow
def test_detect_with_model_only_uses_qwen_for_both_roles(tiny_qwen_dir, photo):  # noqa: F811
    proc = _run("detect", str(photo), "--target", "person", "--model", str(tiny_qwen_dir),
                "--sensing-options", '{"max_new_tokens": 8}', *FAST)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["sensing_backend"] == result["task_module"] == "qwen_vl"
    assert result["model_calls"] == 2
    # the reported status is the parser's verdict on the text the sensing model really produced
    from active_o3_ros.core.parsing import parse_answer

    assert result["sensing_text"], "the sensing model's raw answer is reported"
    assert result["sensing_status"] == parse_answer(result["sensing_text"]).status.value, result["sensing_text"]


def test_bad_image_exits_2_without_traceback(tmp_path):
    proc = _run("detect", str(tmp_path / "missing.png"), "--target", "person", "--sensing", "tiling",
                "--task", "qwen_vl", "--model", str(tmp_path))
    assert proc.returncode == 2
    assert "image not found" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("extra, message", [
    (["--max-regions", "0"], "max_regions"),
    (["--max-regions", "three"], "max_regions"),
    (["--mode", "sideways"], "mode"),
    (["--model", "./no/such/model_dir"], "model directory not found"),
])
def test_usage_errors_exit_2(photo, capsys, extra, message):
    rc = main(["detect", str(photo), "--target", "person", "--sensing", "tiling", "--task", "qwen_vl", *extra])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_unreadable_image_and_missing_model_dir(tmp_path, capsys, tiny_qwen_dir):  # noqa: F811
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is not a png")
    assert main(["detect", str(bad), "--target", "x", "--model", str(tiny_qwen_dir)]) == 2
    assert "cannot read image" in capsys.readouterr().err
    empty_dir = tmp_path / "empty_model"
    empty_dir.mkdir()
    img = tmp_path / "ok.png"
    cv2.imwrite(str(img), np.zeros((32, 32, 3), np.uint8))
    assert main(["detect", str(img), "--target", "x", "--model", str(empty_dir)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_flags_are_generated_from_the_parameter_table(tmp_path):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices["detect"]
    dests = {a.dest for a in sub._actions}
    assert {p.name for p in PARAMETERS} <= dests
    yaml_path = tmp_path / "p.yaml"
    yaml_path.write_text("active_o3:\n  ros__parameters:\n    max_regions: 2\n    sensing_backend: tiling\n")
    args = parser.parse_args(["detect", "img.png", "--config", str(yaml_path), "--merge-iou", "0.3"])
    cfg = config_from_args(args)
    assert cfg.pipeline.max_regions == 2 and cfg.pipeline.merge.iou_threshold == 0.3
    assert cfg.backend.sensing == "tiling"


def test_backends_lists_registry(capsys):
    assert main(["backends"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert "qwen_vl" in listing["sensing"] and "qwen_vl" in listing["task"]
