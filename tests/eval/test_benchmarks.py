"""The benchmark runner, the memory soak and the GPU script, run as real processes/code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_models import tiny_qwen_dir  # noqa: F401  (session fixture)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import memory_soak  # noqa: E402
import run_all  # noqa: E402

GOOD = '''
import json, sys
from pathlib import Path
if __name__ == "__main__":
    quick = "--quick" in sys.argv
    out = Path(__file__).parent / "results" / "good.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"quick": quick, "speedup": 2.5, "nested": {"ms": 12.25},
                               "rows": [{"mode": "parallel", "calls": 2}, {"mode": "serial", "calls": 4}]}))
'''
BAD = '''
if __name__ == "__main__":
    raise SystemExit("this benchmark broke")
'''


def test_run_all_runs_each_script_and_summarises(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "good.py").write_text(GOOD + '\nparser_flag = "--quick"\n')
    (bench / "bad.py").write_text(BAD)
    (bench / "_helper.py").write_text("X = 1\n")  # not a benchmark
    results = bench / "results"
    rc = run_all.main(["--bench-dir", str(bench), "--results", str(results), "--quick", "--timeout", "60"])
    assert rc == 1  # one script failed: the runner says so, after running the other
    status = {r["script"]: r for r in json.loads((results / "run_all.json").read_text())["runs"]}
    assert set(status) == {"good.py", "bad.py"}
    assert status["good.py"]["status"] == "ok" and status["good.py"]["command"].endswith("--quick")
    assert status["bad.py"]["status"] == "failed" and "this benchmark broke" in "\n".join(status["bad.py"]["tail"])
    assert json.loads((results / "good.json").read_text())["quick"] is True
    md = (results / "SUMMARY.md").read_text()
    assert "### good" in md and "| speedup | 2.5 |" in md and "| nested.ms | 12.25 |" in md
    assert "| parallel | 2 |" in md and "| bad.py | failed |" in md
    assert run_all.main(["--bench-dir", str(bench), "--only", "nope"]) == 2


def test_run_all_discovers_the_repo_benchmarks() -> None:
    names = {p.stem for p in run_all.discover()}
    assert {"memory_soak", "gpu_qwen7b"} <= names and "run_all" not in names


def test_soak_verdict_by_hand() -> None:
    flat = memory_soak.verdict([(0, 100.0), (10, 110.0), (20, 111.0), (30, 111.0), (40, 112.0)], 4.0)
    assert flat["rss_middle_mib"] == 111.0 and flat["growth_second_half_mib"] == 1.0 and flat["flat"]
    leak = memory_soak.verdict([(0, 100.0), (10, 120.0), (20, 140.0), (30, 160.0), (40, 180.0)], 4.0)
    assert not leak["flat"] and leak["slope_second_half_mib_per_100_frames"] == pytest.approx(200.0)


@pytest.mark.slow
def test_memory_soak_runs_the_real_pipeline(tmp_path: Path, tiny_qwen_dir: Path) -> None:  # noqa: F811
    out = tmp_path / "soak.json"
    opts = json.dumps({"max_new_tokens": 4, "max_pixels": 20000})
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_soak.py"), "--frames", "8",
                           "--warmup", "1", "--distinct", "3", "--sample-every", "2", "--size", "320x180",
                           "--sensing", "tiling", "--sensing-options", '{"rows": 1, "cols": 3}', "--task", "qwen_vl",
                           "--model", str(tiny_qwen_dir), "--task-options", opts, "--crop-size", "112",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert [s["frame"] for s in res["samples"]] == [0, 2, 4, 6, 8]
    assert res["rss_start_mib"] > 50 and res["sensing"] == "tiling"
    assert res["flat"] is True, res  # the real pipeline does not grow over repeated frames


def test_gpu_qwen7b_skips_without_cuda(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the real benchmark runs instead of the skip path")
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_qwen7b.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "skipped: no CUDA device" in proc.stdout
    res = json.loads(out.read_text())
    assert res["skipped"] is True and res["reason"] == "no CUDA device"


def test_gpu_qwen7b_config_is_the_real_7b(tmp_path: Path) -> None:
    """Built on the meta device (no memory): the parameter count is Qwen2.5-VL-7B's 8.29 B."""
    import gpu_qwen7b

    model, _ = gpu_qwen7b.build_model_dir("7b", tmp_path, "bfloat16", "meta")
    n = sum(p.numel() for p in model.parameters())
    assert 8.25e9 < n < 8.35e9
    assert model.config.vision_config.depth == 32 and model.config.text_config.num_hidden_layers == 28


def test_readme_section_replaced_between_markers_only(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "gpu_qwen7b.json").write_text(json.dumps({"skipped": True, "reason": "no CUDA device"}))
    (results / "memory_soak.json").write_text(json.dumps({"rss_start_mib": 100.0, "rss_end_mib": 101.5, "flat": True}))
    readme = tmp_path / "README.md"
    readme.write_text("# proj\n\nintro\n")
    run_all.update_readme(readme, results)
    first = readme.read_text()
    assert first.startswith("# proj\n\nintro\n\n## Results\n") and "Skipped: no CUDA device." in first
    assert "| rss_end_mib | 101.5 |" in first
    readme.write_text(first + "\n## Later section\nkept\n")
    (results / "memory_soak.json").write_text(json.dumps({"rss_start_mib": 100.0, "rss_end_mib": 150.0, "flat": False}))
    run_all.update_readme(readme, results)
    second = readme.read_text()
    assert second.count("## Results") == 1 and "| rss_end_mib | 150 |" in second and "101.5" not in second
    assert second.endswith("## Later section\nkept\n") and second.startswith("# proj\n\nintro\n")


def test_bootstrap_interval_brackets_the_ratio_and_widens_with_fewer_images() -> None:
    import numpy as np
    import sensing_domains

    tp = np.array([3, 0, 5, 2, 4, 1, 0, 6] * 4, float)
    n = np.array([5, 2, 6, 4, 4, 3, 1, 6] * 4, float)
    lo, hi = sensing_domains.bootstrap(tp, n)
    assert lo < tp.sum() / n.sum() < hi
    lo8, hi8 = sensing_domains.bootstrap(tp[:8], n[:8])
    assert hi8 - lo8 > hi - lo


def sensing_domains_previous() -> str:
    return str(ROOT / "training" / "results" / "small_policy_v1" / "small_policy.safetensors")


@pytest.mark.slow
def test_sensing_domains_runs_rows_on_a_frozen_set(tmp_path: Path) -> None:
    out = tmp_path / "sd"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), "--sets", "val",
                           "--frames", "2", "--rows", "cascade 720,oracle K=3,policy K=1,1 mirror view,hull fit,shift fit,"
                           "cue look,v1 again", "--compare-views", "1", "--compare-fits", "hull/1.3/0.5,shift/0.5/0",
                           "--compare-cue-sides", "640,1280:1", "--compare-weights", f"v1 again={sensing_domains_previous()}",
                           "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    rows = res["sets"]["val"]["rows"]
    assert set(rows) == {"cascade 720 K=3", "anchor oracle K=3", "oracle K=3", "policy K=1",  # substrings
                         "policy K=3, 1 mirror view", "policy K=3, hull fit g1.3 m0.5", "policy K=3, shift fit s0.5",
                         "policy K=3, cue look <= 640 px", "policy K=3, cue look <= 1280 px at 1 of the cue image",
                         "v1 again K=3"}
    assert rows["v1 again K=3"]["config"]["sensing_model"].endswith("small_policy_v1/small_policy.safetensors")
    shift = rows["policy K=3, shift fit s0.5"]["config"]["sensing_options"]
    assert (shift["fit_mode"], shift["fit_shift"]) == ("shift", 0.5)
    assert rows["policy K=3, cue look <= 640 px"]["config"]["sensing_options"]["cue_long_side"] == 640
    assert "cue_fraction" not in rows["policy K=3, cue look <= 640 px"]["config"]["sensing_options"]
    sharp = rows["policy K=3, cue look <= 1280 px at 1 of the cue image"]["config"]["sensing_options"]
    assert (sharp["cue_long_side"], sharp["cue_fraction"]) == (1280, 1.0)
    assert rows["policy K=3, 1 mirror view"]["config"]["sensing_options"]["mirror_views"] == 1
    fit = rows["policy K=3, hull fit g1.3 m0.5"]["config"]["sensing_options"]
    assert (fit["fit_regions"], fit["fit_mode"], fit["fit_grow"], fit["fit_min_scale"]) == (True, "hull", 1.3, 0.5)
    for r in rows.values():
        lo, hi = r["recall_ci95"]
        assert lo <= r["recall@0.5"] <= hi and r["seconds_per_frame"] > 0
    assert rows["oracle K=3"]["recall@0.5"] > 0.3
    # by frame size: the words add up, and the oracle's regions hold every word by construction
    for r in rows.values():
        by = r["by_frame_size"]
        assert sum(b["words"] for b in by.values()) == res["sets"]["val"]["ground_truth"]
        assert sum(b["frames"] for b in by.values()) == 2
    assert all(b["in_crop_windows"] == 1.0 for b in rows["oracle K=3"]["by_frame_size"].values() if b["words"])
    assert "By frame size" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".md").is_file() and out.with_suffix(".png").is_file()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), "--sets", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown set" in bad.stderr
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), "--compare-fits", "tight/1/0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "MODE/GROW/MIN_SCALE" in bad.stderr
    for spec in ("1920:2", "big", "1280:x", "1280:0", "32"):
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), "--compare-cue-sides", spec],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and "SIDE or SIDE:FRACTION" in bad.stderr, spec


@pytest.mark.slow
def test_sensing_domains_draws_validation_scenes_at_other_frame_sizes(tmp_path: Path) -> None:
    """--frame-sizes draws the validation seeds at other sizes (a 4:3 camera); --compare-sensing
    adds a policy row with any small-policy options.  The test sets are never redrawn."""
    out = tmp_path / "sd43"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), "--sets", "val",
                           "--frames", "1", "--frame-sizes", "640x480,480x640", "--every-size",
                           "--rows", "squashed,oracle K=3",
                           "--compare-sensing", 'squashed={"letterbox": false}', "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    s = res["sets"]["val"]
    # --every-size: the one seed drawn once at each size
    assert s["frame_sizes"] == [[640, 480], [480, 640]] and s["seeds"] == [20_000_000, 20_000_000]
    assert set(s["rows"]) == {"policy K=3, squashed", "anchor oracle K=3", "oracle K=3"}
    assert s["rows"]["policy K=3, squashed"]["config"]["sensing_options"]["letterbox"] is False
    assert all(set(r["by_frame_size"]) == {"640x480", "480x640"} for r in s["rows"].values())
    assert "drawn at 640x480" in out.with_suffix(".md").read_text()
    for args, msg in ((["--sets", "test_held_out", "--frame-sizes", "1280x960"], "validation sets only"),
                      (["--frame-sizes", "1280"], "WxH"), (["--compare-sensing", "x=[1]"], "LABEL=JSON"),
                      (["--sets", "val", "--every-size"], "needs --frame-sizes"),
                      (["--compare-config", 'x={"merge_cut_margin": "wide"}'], "--compare-config takes"),
                      (["--compare-config", 'x={"sensing_options": [1]}'], "--compare-config takes")):
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_domains.py"), *args],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and msg in bad.stderr, args
    for args, msg in ((["--sensing-options", "[1]"], "takes a JSON object"), (["--sets", "test_in"], "validation sets only")):
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cut_pieces_val.py"), *args],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and msg in bad.stderr, args



def test_text_free_counts_every_detection_as_false_and_refuses_sets_with_text(tmp_path: Path) -> None:
    """benchmarks/text_free.py: one text-free frame, the full-frame row and a compared policy
    row; each row reports its false detections with an interval and what was read."""
    out = tmp_path / "tf"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text_free.py"), "--sets", "val_text_free",
                           "--frames", "1", "--rows", "full frame", "--threads", "1",
                           "--compare-sensing", 'unfitted={"verify_fit": false}', "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.with_suffix(".json").read_text())["sets"]["val_text_free"]
    assert s["frames"] == 1 and list(s["rows"]) == ["full frame", "policy K=3, unfitted"]
    for r in s["rows"].values():
        assert r["false_detections"] == len(r["reads"]) and r["frames"] == 1
        assert r["per_frame_ci95"][0] <= r["false_detections_per_frame"] <= r["per_frame_ci95"][1]
    assert "false detections / frame" in out.with_suffix(".md").read_text()
    for args, msg in ((["--sets", "val"], "text-free sets only"), (["--rows", "nothing"], "matches no row"),
                      (["--compare-config", 'x={"merge_cut_margin": "wide"}'], "--compare-config takes")):
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text_free.py"), *args],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and msg in bad.stderr, args

@pytest.mark.slow
def test_choose_settings_reports_the_adaptive_k_ceiling(tmp_path: Path) -> None:
    """The ceiling of any adaptive-K rule (an oracle over each frame's region subsets) keeps
    recall within the slack and never costs more than fixed K=3."""
    from _common import size_name

    from active_o3_training.data import scenes

    sizes = [size_name(f.image.shape[1], f.image.shape[0]) for f in scenes.iter_set("val", 3)]
    out = tmp_path / "cs"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "choose_settings.py"), "--sets", "val",
                           "--frames", "3", "--variants", "840/480/int8", "--threads", "1", "--k-slack", "0.05",
                           "--sizes", sizes[0], "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    # --sizes keeps the frames of that size only
    assert res["sizes"] == [sizes[0]] and res["frames"] == {"val": sizes.count(sizes[0])}
    assert f"({sizes[0]} frames only)" in out.with_suffix(".md").read_text()
    c = res["adaptive_ceiling"]
    assert c["recall@0.5"] >= c["fixed_recall@0.5"] - 0.05 - 1e-9
    assert 0 <= c["crops_per_frame"] <= 3 and 0 < c["time_over_fixed"] <= 1.0
    assert c["engine_seconds_per_frame"] <= c["fixed_engine_seconds_per_frame"] + 1e-9
    assert "Ceiling of any adaptive-K rule" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_sensing_cost_times_every_part_and_checks_the_shifted_maxima(tmp_path: Path) -> None:
    out = tmp_path / "sc"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_cost.py"), "--frames", "1",
                           "--sizes", "720p", "--threads", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    ms = res["sizes"]["720p"]["median_ms"]
    assert set(ms) == set(__import__("sensing_cost").PARTS) and all(v >= 0 for v in ms.values())
    # no timed comparison between parts (one frame on a shared CPU is noise): only that each was timed
    assert ms["sensing (propose, default)"] > 0 and ms["detector look"] > 0
    assert "| detector look |" in out.with_suffix(".md").read_text() and out.with_suffix(".png").is_file()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sensing_cost.py"), "--sizes", "8K"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown size" in bad.stderr


def test_anchor_headroom_picks_anchors_with_the_detector_and_refuses_test_sets(tmp_path: Path) -> None:
    out = tmp_path / "ah"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "anchor_headroom.py"), "--frames", "1",
                           "--grids", "one=0.5,0.5,2,2;two=0.5,0.5,2,2/0.25,0.25,2,2", "--k", "1", "--threads", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    assert res["frames"] == 1 and res["sizes"] == ["4K"]
    one, two = res["rows"]["one"], res["rows"]["two"]
    assert (one["anchors"], two["anchors"]) == (4, 8) and one["words"] == two["words"] > 0
    assert all(0.0 <= r["recall@0.5"] <= 1.0 and r["median_zoom_of_chosen"] > 0 for r in (one, two))
    assert "| one (0.5,0.5,2,2) | 4 |" in out.with_suffix(".md").read_text()
    import anchor_headroom

    assert anchor_headroom.best_set([{1}, {2, 3}, {1, 2}, {4, 5}], 2) == (1, 3)
    assert [len(g) for _, g in anchor_headroom.parse_grids("s=;p=+0.1,0.1,2,2")] == [2, 3]
    for argv, msg in ((["--set", "test_in"], "validation set"), (["--grids", "nope"], "NAME="),
                      (["--grids", "x=0,1,2,2"], "anchor grid"), (["--sizes", "8K"], "unknown size")):
        bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "anchor_headroom.py"), *argv],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and msg in bad.stderr, (argv, bad.stderr[-500:])


@pytest.mark.slow
def test_rec_across_crops_cuts_the_lines_rapidocr_recognises(tmp_path: Path) -> None:
    """The benchmark's stage split (preprocess, detect-and-cut, recognise) gives the lines
    RapidOCR's own call recognises on the same crop; the run writes both ways per size."""
    import cv2
    import numpy as np

    import rec_across_crops
    from active_o3_ros.backends.text import TextTaskModel
    from active_o3_training.data import scenes

    engine = TextTaskModel(threads=1)._engine
    f = scenes.render_scene(scenes.frozen_seeds("val")[0], scenes.set_config("val"))
    x1, y1, x2, y2 = (int(v) for v in f.boxes[0].as_list())
    crop = np.ascontiguousarray(f.image[max(0, y1 - 60):y2 + 60, max(0, x1 - 120):x2 + 120])
    (lines,) = rec_across_crops.frame_lines(engine, [crop])
    assert lines, "a crop around a word has a text line"
    rec = engine.recognize_txt(lines)
    mine = sorted(t for t, s in zip(rec.txts, rec.scores) if t.strip() and s >= engine.text_score)
    own = engine(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    assert mine == sorted(getattr(own, "txts", None) or [])
    # a flat crop: no line read; the int8 detector (machines with VNNI) may cut a few blank line
    # images there, which the recogniser must then read as nothing, as RapidOCR's own call does
    gray = np.full((200, 300, 3), 128, np.uint8)
    (blank,) = rec_across_crops.frame_lines(engine, [gray])
    read = engine.recognize_txt(blank) if blank else None
    assert not blank or not [t for t, s in zip(read.txts, read.scores) if t.strip() and s >= engine.text_score]
    assert not (getattr(engine(cv2.cvtColor(gray, cv2.COLOR_RGB2BGR)), "txts", None) or [])

    out = tmp_path / "rc"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rec_across_crops.py"), "--frames", "1",
                           "--sizes", "720p", "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.with_suffix(".json").read_text())["sizes"]["720p"]
    assert s["frames"] == 1 and s["lines_per_frame"] > 0 and s["per_crop_s"] > 0 and s["one_call_s"] > 0
    assert s["texts_differ"] >= 0 and s["cross_floor"] >= 0
    assert "| 720p | 1 |" in out.with_suffix(".md").read_text()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rec_across_crops.py"), "--sizes", "8K"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown size" in bad.stderr


@pytest.mark.slow
def test_ort_session_rebuilds_sessions_with_the_variant_options(tmp_path: Path) -> None:
    """A variant's sessions are new sessions of the same model files with only its options
    changed; the run compares each variant's detections with RapidOCR's own sessions."""
    import ort_session
    from active_o3_ros.backends.ort_sessions import spin_entry
    from active_o3_ros.backends.text import TextTaskModel
    import numpy as np

    task = TextTaskModel(threads=1, mem_arena=False, spin_wait=True)  # RapidOCR's own sessions
    task.detect([np.full((96, 160, 3), 200, np.uint8)], ["text"])  # RapidOCR loads its sessions on first use
    originals = [w.session for w in ort_session.engine_sessions(task._engine)]
    assert originals and not any(o.get_session_options().enable_cpu_mem_arena for o in originals)
    arena = ort_session.build_variant(originals, {"arena": True, "spin": False})
    assert [a._model_path for a in arena] == [o._model_path for o in originals]
    for a, o in zip(arena, originals):
        so = a.get_session_options()
        assert so.enable_cpu_mem_arena and so.intra_op_num_threads == o.get_session_options().intra_op_num_threads
        assert spin_entry(so) == "0"
    assert ort_session.build_variant(originals, {}) == originals

    out = tmp_path / "os"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ort_session.py"), "--frames", "1",
                           "--sizes", "720p", "--repeats", "1", "--variants", "arena", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(out.with_suffix(".json").read_text())["sizes"]["720p"]
    assert s["frames"] == 1 and s["rapidocr"]["over_rapidocr"] == 1.0 and s["arena"]["task_s_per_frame"] > 0
    assert s["arena"]["frames_with_other_detections"] in (0, 1)
    assert "| arena |" in out.with_suffix(".md").read_text()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ort_session.py"), "--variants", "turbo"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--variants takes names" in bad.stderr


def test_cue_evidence_counts_the_words_a_look_shows(tmp_path: Path) -> None:
    """benchmarks/cue_evidence.py on one validation frame: shares in [0, 1] per frame size, the
    words add up to the frame's ground truth, and test sets and bad looks are refused."""
    import cue_evidence
    import numpy as np

    from active_o3_training.data import scenes

    assert cue_evidence.parse_looks("960:0.5, 1280:1") == [(960, 0.5), (1280, 1.0)]
    for bad in ("1280", "32:0.5", "1280:0", "a:b"):
        with pytest.raises(ValueError, match="LONG_SIDE"):
            cue_evidence.parse_looks(bad)
    det = np.zeros((36, 64), np.float32)
    det[10, 20] = 0.9  # one lit cell: a box around it is shown, a box far from it is not
    assert cue_evidence.shown(det, np.array([[600, 280, 660, 300], [10, 10, 40, 20]]), 1920, 1080, 0.3).tolist() \
        == [True, False]
    out = tmp_path / "ce"
    assert cue_evidence.main(["--frames", "1", "--sets", "val", "--looks", "960:0.5,1920:1", "--out", str(out)]) == 0
    res = json.loads(out.with_suffix(".json").read_text())
    frame = scenes.render_scene(scenes.frozen_seeds("val")[0], scenes.set_config("val"))
    assert sum(res["words"].values()) == len(frame.boxes)
    for look in ("960:0.5", "1920:1"):
        assert all(v is None or 0.0 <= v <= 1.0 for v in res["shown"][look].values())
    assert "| 960:0.5 |" in out.with_suffix(".md").read_text()
    assert cue_evidence.main(["--sets", "test_in", "--out", str(out)]) == 2
    assert cue_evidence.main(["--looks", "1280", "--out", str(out)]) == 2


def test_size_names_only_for_the_generators_landscape_16_9_sizes() -> None:
    from _common import size_name

    assert [size_name(1280, 720), size_name(1920, 1080), size_name(2560, 1440), size_name(3840, 2160)] == \
        ["720p", "1080p", "1440p", "4K"]
    # a 4:3 frame 1440 px tall and a portrait 16:9 frame keep their pixel size as their name
    assert [size_name(1920, 1440), size_name(1080, 1920), size_name(640, 480)] == ["1920x1440", "1080x1920", "640x480"]


def _size_row(figures: dict[str, tuple[int, int, float, float, float]]) -> dict:
    """A sensing_domains row's by-size figures: size -> (frames, words, recall, s/frame, sensing s)."""
    return {"by_frame_size": {k: {"frames": f, "words": w, "recall@0.5": r, "seconds_per_frame": s,
                                  "sensing_seconds_per_frame": ss} for k, (f, w, r, s, ss) in figures.items()}}


def test_choose_windows_sums_the_by_size_figures_and_applies_the_rule(tmp_path: Path) -> None:
    """A candidate threshold reads the sizes whose letterbox canvas is wider than it with the
    windows row's figures (1280x960: canvas 1707 px, 4032x3024: 5376 px); the best candidate
    on val is adopted only with the required gain and no loss on val_held_out."""
    import choose_windows

    def result(win_small: float, held_big: float) -> dict:
        rows = lambda small, big: {  # noqa: E731
            "policy K=3": _size_row({"1280x960": (2, 10, 0.8, 1.0, 0.2), "4032x3024": (2, 30, 0.5, 2.0, 0.3)}),
            "policy K=3, windows": _size_row({"1280x960": (2, 10, small, 1.2, 0.4), "4032x3024": (2, 30, big, 2.4, 0.6)})}
        return {"sets": {"val": {"every_size": True, "rows": rows(win_small, 0.7)},
                         "val_held_out": {"every_size": True, "rows": rows(0.8, held_big)}}}

    assert choose_windows.canvas_width("1280x960") == 1707 and choose_windows.canvas_width("1920x1080") == 1920
    c = choose_windows.choose(result(0.6, 0.6), "policy K=3", "policy K=3, windows", [4000, 1], "val", "val_held_out", 0.02)
    never, big, every = (c["sets"]["val"][t] for t in ("0", "4000", "1"))
    assert never["recall@0.5"] == pytest.approx((8 + 15) / 40) and big["recall@0.5"] == pytest.approx((8 + 21) / 40)
    assert every["recall@0.5"] == pytest.approx((6 + 21) / 40) and big["windows_at"] == ["4032x3024"]
    assert big["seconds_per_frame"] == pytest.approx(1.7) and big["sensing_seconds_per_frame"] == pytest.approx(0.4)
    assert c["best_threshold"] == 4000 and c["adopted"] and c["windows_above"] == 4000
    lost = choose_windows.choose(result(0.6, 0.4), "policy K=3", "policy K=3, windows", [4000, 1], "val",
                                 "val_held_out", 0.02)
    assert lost["best_threshold"] == 4000 and not lost["adopted"] and lost["windows_above"] == 0  # held out fell
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result(0.6, 0.6)))
    assert choose_windows.main([str(path), "--thresholds", "4000,1", "--out", str(tmp_path / "c")]) == 0
    assert "adopted, windows_above = 4000" in (tmp_path / "c.md").read_text()
    bad = result(0.6, 0.6)
    bad["sets"]["test_in"] = bad["sets"].pop("val_held_out")
    path.write_text(json.dumps(bad))
    with pytest.raises(SystemExit):
        choose_windows.main([str(path), "--out", str(tmp_path / "c")])
