"""active-o3-eval end to end: real data files, real backends, every method in one run.

Costs are kept small (a few 640x360 frames, tiny models) so this stays in the default
suite; the run with the real text detector is marked slow.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_models import tiny_qwen_dir  # noqa: F401  (session fixture)

from active_o3_training.eval_data import EvalError, load_coco, synthetic_dataset
from active_o3_training.evaluate import METHODS, main


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two frames of the embedded small-text test split, shrunk to 640x360."""
    return synthetic_dataset(2, tmp_path_factory.mktemp("synth"), frame_size=(640, 360))


def _qwen_opts() -> list[str]:
    opts = json.dumps({"max_new_tokens": 12, "max_pixels": 60000})
    return ["--set", f"sensing_options={opts}", "--set", f"task_options={opts}", "--set", "crop_size=224"]


def test_every_method_with_tiny_qwen(tmp_path: Path, synth, tiny_qwen_dir: Path) -> None:  # noqa: F811
    """One run, the same task model, all seven methods at K=1,2: files written, model calls as
    the methods define them (parallel: 2 whatever K; serial: 1 + one per crop; baselines: 1)."""
    ann, images = synth
    out = tmp_path / "eval"
    rc = main(["--coco", str(ann), "--images", str(images), "--sensing", "qwen_vl", "--task", "qwen_vl",
               "--model", str(tiny_qwen_dir), "--ks", "1,2", "--soda-iou", "--examples", "1", "--warmup", "0",
               "--out", str(out), *_qwen_opts()])
    assert rc == 0
    report = json.loads((out / "eval.json").read_text())
    rows = {(r["method"], r["k"]): r for r in report["rows"]}
    k_methods = {"random", "oracle", "serial", "parallel", "parallel_full"}
    assert set(rows) == {(m, k) for m in METHODS for k in ((1, 2) if m in k_methods else (None,))}
    assert report["dataset"]["images"] == 2 and report["dataset"]["instances"] > 0
    for (method, k), r in rows.items():
        assert r["images"] == 2 and r["frame_errors"] == 0
        assert r["latency_ms_mean"] > 0 and 0 <= r["AP50"] <= 1 and "AP@0.1" in r
        if method in ("full_frame", "tiling", "random", "oracle"):
            assert r["model_calls_per_img"] == 1.0, method  # geometric regions are not model calls
        elif method == "serial":
            assert r["model_calls_per_img"] == 1.0 + r["crops_per_img"]
        else:
            assert r["model_calls_per_img"] == 2.0, (method, k)
    assert rows[("tiling", None)]["crops_per_img"] == 9.0
    assert rows[("random", 2)]["crops_per_img"] == 2.0
    assert rows[("oracle", 2)]["crops_per_img"] <= 2.0
    md = (out / "eval.md").read_text()
    assert "| ACTIVE-o3 (parallel) | 2 |" in md and "| Tiling 3x3 | 9 |" in md and "AP@0.1" in md
    for png in ("ap_s_vs_k.png", "latency_vs_k.png", "recall_by_size.png", "example_0.png"):
        assert (out / png).stat().st_size > 1000, png


@pytest.mark.slow
def test_text_detector_zoom_beats_full_frame(tmp_path: Path, synth) -> None:
    """The embedded default's task module (rapidocr) on small synthetic text: zooming into the
    ground-truth regions must find more small words than the downscaled full frame — the
    effect the whole evaluation exists to measure (deterministic data and detector)."""
    ann, images = synth
    out = tmp_path / "eval"
    rc = main(["--coco", str(ann), "--images", str(images), "--task", "text", "--methods", "full_frame,oracle",
               "--ks", "3", "--max-images", "1", "--set", "crop_size=400", "--examples", "0", "--warmup", "0", "--no-plots",
               "--out", str(out)])
    assert rc == 0
    rows = {r["method"]: r for r in json.loads((out / "eval.json").read_text())["rows"]}
    assert rows["oracle"]["AR"] > rows["full_frame"]["AR"]
    print({m: (r["AR"], r["latency_ms_mean"]) for m, r in rows.items()})
    assert rows["oracle"]["AR"] > 0.2


def test_bad_inputs_give_clear_errors(tmp_path: Path, capsys, synth) -> None:
    assert main(["--coco", str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 2
    assert "annotation file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--coco", str(bad), "--out", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["--out", str(tmp_path)]) == 2
    assert "exactly one data source" in capsys.readouterr().err
    ann, images = synth
    assert main(["--coco", str(ann), "--images", str(images), "--methods", "full_frame,zoom", "--out", str(tmp_path)]) == 2
    assert "methods must be" in capsys.readouterr().err
    assert main(["--coco", str(ann), "--images", str(images), "--ks", "0", "--out", str(tmp_path)]) == 2
    assert main(["--coco", str(ann), "--images", str(images), "--set", "nope=1", "--out", str(tmp_path)]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    with pytest.raises(EvalError, match="image folder not found"):
        load_coco(ann, tmp_path / "no_such_dir")


def test_unreadable_image_is_counted_not_dropped(tmp_path: Path, synth) -> None:
    """A missing image file is reported and scored as an empty prediction; the run goes on."""
    ann, images = synth
    data = json.loads(ann.read_text())
    data["images"][0]["file_name"] = "gone.png"
    bad = tmp_path / "ann.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "eval"
    rc = main(["--coco", str(bad), "--images", str(images), "--task", "text", "--modes", "full_frame",
               "--set", "crop_size=160", "--examples", "0", "--warmup", "0", "--no-plots", "--out", str(out)])
    assert rc == 0
    row = json.loads((out / "eval.json").read_text())["rows"][0]
    assert row["images"] == 2 and row["frame_errors"] == 1


@pytest.mark.slow
def test_labelled_rosbag_input_matches_coco_input(tmp_path: Path, synth) -> None:
    """The same frames as a real rosbag2 (images + DetectionArray labels, written by the
    training adapter) give the same ground truth and the same oracle-method numbers as the
    COCO files they came from -- with the real text detector, so the numbers are not 0 == 0."""
    from active_o3_training.data.rosbag import coco_to_bag

    ann, images = synth
    bag = tmp_path / "labelled_bag"
    assert coco_to_bag(ann, images, bag) == 2
    common = ["--sensing", "tiling", "--task", "text", "--methods", "oracle", "--ks", "2", "--examples", "0",
              "--warmup", "0", "--no-plots"]
    assert main(["--bag", str(bag), "--out", str(tmp_path / "bag_eval"), *common]) == 0
    assert main(["--coco", str(ann), "--images", str(images), "--out", str(tmp_path / "coco_eval"), *common]) == 0
    from_bag = json.loads((tmp_path / "bag_eval" / "eval.json").read_text())
    from_coco = json.loads((tmp_path / "coco_eval" / "eval.json").read_text())
    assert from_bag["dataset"]["instances"] == from_coco["dataset"]["instances"] > 0
    assert from_coco["rows"][0]["AR"] > 0.1 and from_coco["rows"][0]["AP"] > 0.05, from_coco["rows"][0]
    for key in ("AP", "AR", "crops_per_img", "detections_per_img"):
        assert from_bag["rows"][0][key] == pytest.approx(from_coco["rows"][0][key]), key


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d["images"][0].pop("width"), r"images(\[| entry )0"),
    (lambda d: d["images"][1].__setitem__("height", "tall"), r"images(\[| entry )1"),
    (lambda d: d["annotations"][0].pop("image_id"), r"annotations(\[| entry )0"),
    (lambda d: d["categories"].__setitem__(0, ["text"]), r"categories(\[| entry )0"),
    (lambda d: d["images"][0].__setitem__("width", -5), r"images(\[| entry )0"),
])
def test_malformed_coco_entries_name_the_entry(tmp_path: Path, synth, mutate, needle) -> None:
    ann, images = synth
    data = json.loads(ann.read_text())
    mutate(data)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(EvalError, match=needle):
        load_coco(bad, images)
