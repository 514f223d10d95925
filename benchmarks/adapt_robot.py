"""Adapt to your robot, end to end: record a new-domain drive, label it with the teacher,
fine-tune the small policy, and compare on the drive's held-out time segment.

Question: on a scene family the shipped weights never saw (a warehouse aisle in fonts no
training set used, :mod:`active_o3_training.data.drive`), recorded as a rosbag2 through the
real camera source, node and recorder, how close does the adapted policy come to oracle
regions -- with no ground truth used in training -- and what does each step cost on this CPU?

Steps (each is the command the README prints; the times are wall-clock on this machine):

1. render the drive (frames + COCO ground truth; not part of the loop);
2. **record**: ``active-o3-camera`` replays the frames with the ground truth on its own topic
   (``/ground_truth/detections``, used only for scoring), the node runs on its defaults, and
   ``active-o3-bag record`` writes the bag;
3. **label**: ``active-o3-train label`` (the teacher) over the whole bag;
4. **train**: ``active-o3-train policy`` (detector cache on ``cache.task_frames`` frames + GRPO)
   on the first ``--train-segment`` of the bag's time span (its last 15 % is validation);
5. **evaluate** on the rest (the held-out segment) with the same text detector on every row:
   shipped weights, adapted weights, oracle regions, tiling 3x3 and the teacher itself;
   recall@0.5 and precision with 95 % bootstrap intervals over frames, seconds per frame.

Writes ``<out>.json``, ``.md`` and ``.png``.  ``python benchmarks/adapt_robot.py --help``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, command, footer, load_average, machine, recall_cell, recall_scatter, write_outputs  # noqa: E402
from sensing_domains import bootstrap, run_row  # noqa: E402

from active_o3_ros.core.metrics import greedy_match  # noqa: E402

GT_TOPIC = "/ground_truth/detections"
IMAGES = "/camera/image_raw"
TEACHER_TOPIC = "/active_o3/teacher"
#: the anchor-oracle row over the adapted weights' anchors (when fine-tuning added grids)
ADAPTED_ANCHOR_ORACLE = "anchor oracle K=3 (best 3 of the adapted policy's anchors)"


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run a step to completion; its wall seconds.  A failed step stops the benchmark."""
    print("$ " + shlex.join(cmd), flush=True)
    t = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if rc != 0:
        raise SystemExit(f"step failed (exit {rc}): {shlex.join(cmd)}\n{log.read_text()[-3000:]}")
    return time.perf_counter() - t


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def record(drive: Path, bag: Path, fps: float, work: Path) -> dict[str, Any]:
    """Camera source (frames + ground truth) -> node (defaults) and recorder, over loopback DDS."""
    from active_o3_ros.ros.bags import bag_info

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(random.randint(1, 101)),
               PYTHONUNBUFFERED="1")
    ready = work / "recorder.ready"
    ready.unlink(missing_ok=True)
    procs = []
    t = time.perf_counter()
    try:
        node = subprocess.Popen([_bin("active-o3-node"), "--ros-args", "-r", f"image:={IMAGES}"], env=env, cwd=ROOT,
                                stdout=open(work / "node.log", "w"), stderr=subprocess.STDOUT)
        procs.append(node)
        rec = subprocess.Popen([_bin("active-o3-bag"), "record", "-o", str(bag), IMAGES, GT_TOPIC,
                                "/active_o3/detections", "--ready-file", str(ready)], env=env, cwd=ROOT,
                               stdout=open(work / "record.log", "w"), stderr=subprocess.STDOUT)
        procs.append(rec)
        cam_cmd = [_bin("active-o3-camera"), str(drive / "images"), "--labels", str(drive / "annotations.json"),
                   "--fps", str(fps), "--depth", "10", "--wait-subscribers", "1", "--ack-timeout", "60"]
        print("$ " + shlex.join(cam_cmd), flush=True)
        cam = subprocess.run(cam_cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        if cam.returncode != 0:
            raise SystemExit(f"camera source failed: {cam.stderr[-2000:]}")
        time.sleep(3.0)  # the node's last result
    finally:
        for p in reversed(procs):
            _stop(p)
    info = {topic: s.count for topic, s in bag_info(bag).items()}
    return {"seconds": round(time.perf_counter() - t, 1), "messages": info}


def teacher_row(rec: Path, labels: Path, frames) -> dict[str, Any]:
    """The teacher's own labels on the held-out frames, scored like the other rows; its
    seconds are those it spent labelling (from the labels bag)."""
    from active_o3_training.data.rosbag import BagDatasetConfig, iter_labeled_frames

    got = {f.stamp_ns: f for f in iter_labeled_frames([rec, labels], BagDatasetConfig(labels_topic=TEACHER_TOPIC))}
    secs = {}
    from active_o3_training.data.rosbag import typestore
    from rosbags.highlevel import AnyReader

    with AnyReader([labels], default_typestore=typestore()) as r:
        for c, _t, raw in r.messages():
            m = r.deserialize(raw, c.msgtype)
            secs[m.header.stamp.sec * 10**9 + m.header.stamp.nanosec] = float(m.total_time)
    per = []
    for f in frames:
        lab = got[f.stamp_ns]
        tp, n_pred, n_gt = greedy_match(lab.boxes, lab.scores, f.boxes, 0.5)
        per.append((tp, n_pred, n_gt, secs[f.stamp_ns]))
    a = np.array(per, np.float64)
    tp, n_pred, n_gt = a[:, 0], a[:, 1], a[:, 2]
    return {"recall@0.5": round(float(tp.sum() / max(1, n_gt.sum())), 4), "recall_ci95": bootstrap(tp, n_gt),
            "precision@0.5": round(float(tp.sum() / max(1, n_pred.sum())), 4),
            "precision_ci95": bootstrap(tp, n_pred, seed=1), "true_positives": int(tp.sum()),
            "detections": int(n_pred.sum()), "ground_truth": int(n_gt.sum()),
            "seconds_per_frame": round(float(a[:, 3].mean()), 3)}


def evaluate(rec: Path, labels: Path, weights: Path, segment: tuple[float, float], threads: int,
             dedup: float, only: set[str] | None = None) -> tuple[dict[str, Any], int]:
    from active_o3_ros.backends.base import build_pipeline
    from active_o3_ros.backends.small_policy import bundled_config, read_config
    from active_o3_ros.core.config import PerceptionConfig
    from active_o3_training.data.rosbag import BagDatasetConfig, iter_labeled_frames

    # the held-out segment's frames that the teacher labelled (near-duplicates are skipped
    # everywhere alike), with their ground truth
    teacher_stamps = {f.stamp_ns for f in iter_labeled_frames(
        [rec, labels], BagDatasetConfig(labels_topic=TEACHER_TOPIC), segment=(0.0, 1.0))}
    frames = [f for f in iter_labeled_frames(rec, BagDatasetConfig(labels_topic=GT_TOPIC, dedup_threshold=dedup),
                                             segment=segment) if f.stamp_ns in teacher_stamps]
    yaml = ROOT / "config" / "perceive.yaml"
    task = {"task_options": json.dumps({"threads": threads})}
    rows_cfg = [
        ("shipped weights K=3", {}),
        ("adapted weights K=3", {"sensing_model": str(weights)}),
        ("anchor oracle K=3 (best 3 of the policy's anchors)", {"sensing_backend": "oracle_anchors"}),
        ("oracle K=3", {"sensing_backend": "oracle"}),
        ("tiling 3x3", {"sensing_backend": "tiling", "crop_size": "1280", "crop_context": "1.0"}),
    ]
    if read_config(weights).grids != bundled_config().grids:  # fine-tuning added anchors (model.extra_grids)
        rows_cfg.insert(3, (ADAPTED_ANCHOR_ORACLE, {"sensing_backend": "oracle_anchors", "sensing_model": str(weights)}))
    rows: dict[str, Any] = {}
    for name, over in rows_cfg:
        if only is not None and name not in only:
            continue
        cfg = PerceptionConfig.from_yaml(yaml, {**task, **{k: str(v) for k, v in over.items()}})
        pipe = build_pipeline(cfg)
        try:
            rows[name] = run_row(pipe, frames, name)
        finally:
            pipe.close()
        print(name, rows[name]["recall@0.5"], rows[name]["seconds_per_frame"], flush=True)
    if only is None or "teacher (offline labels)" in only:
        rows["teacher (offline labels)"] = teacher_row(rec, labels, frames)
    return rows, len(frames)


def markdown(result: dict[str, Any]) -> str:
    r = result["rows"]
    lines = [f"# Adapt to your robot: held-out segment of a new-domain drive ({result['eval_frames']} frames)", "",
             "| method | recall@0.5 [95% CI] | precision@0.5 | s/frame |", "|---|---|---:|---:|"]
    for name, row in r.items():
        lines.append(f"| {name} | {recall_cell(row)} | {row['precision@0.5']:.3f} | {row['seconds_per_frame']:.2f} |")
    g = result["goals"]
    lines += ["", f"Adapted / oracle recall: **{g['adapted_over_oracle']}** (goal >= 0.85); gap shipped -> oracle "
              f"closed: **{g['gap_closed']}** (goal >= 0.667)"
              + (f"; adapted / anchor oracle: {g['adapted_over_anchor_oracle']}." if "adapted_over_anchor_oracle" in g
                 else "."), "",
              "| step (2-core CPU) | wall s | notes |", "|---|---:|---|"]
    for name, s in result["steps"].items():
        lines.append(f"| {name} | {s['seconds']} | {s.get('notes', '')} |")
    lines += ["", f"Loop (label + cache + train) for {result['frames']} frames: **{result['loop_minutes']} min** "
              "(goal <= 90).", "", footer(result), ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    recall_scatter(ax, result["rows"], "seconds_per_frame", "seconds per frame (2 cores)",
                   "held-out segment of the drive", log_x=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _card_steps(card: dict[str, Any], cache_note: str = "", train_note: str = "") -> dict[str, Any]:
    """The loop's cache and train steps as a trainer's card records them."""
    return {
        "cache (detector on anchors)": {"seconds": card["seconds"]["cache_s"], "notes": (
            f"{card['rewards_used']['task-term frames (detector cache)']['frames']} frames" + cache_note)},
        "train (GRPO)": {"seconds": card["seconds"]["train_s"], "notes": (
            f"{card['data']['train_frames']} train / {card['data']['val_frames']} val frames" + train_note)}}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt_robot", help="recordings, labels, weights")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--size", default="1920x1080")
    p.add_argument("--seed", type=int, default=7, help="the drive's world and trajectory")
    p.add_argument("--train-segment", type=float, default=0.7, help="train on this first fraction of the time span")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--label-args", default="--workers 2 --threads 1", help="extra `active-o3-train label` arguments")
    p.add_argument("--train-args", default="", help="extra `active-o3-train policy` arguments (e.g. --set ...)")
    p.add_argument("--reuse", action="store_true",
                   help="keep finished steps in --work (drive, bag, labels, weights) and their timings from --out")
    p.add_argument("--weights", type=Path, default=None,
                   help="evaluate these adapted weights (e.g. the variant benchmarks/adapt_settings.py chose on the "
                        "validation segment) instead of <work>/policy's")
    p.add_argument("--rows", default="", help="with --reuse: evaluate only these rows (comma-separated names); "
                   "the others are taken from --out")
    p.add_argument("--out", default=str(RESULTS / "adapt_robot"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load = load_average()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    drive, rec, labels, policy = work / "drive", work / "rec", work / "labels", work / "policy"
    if not args.reuse:
        import shutil

        for p in (drive, rec, labels, policy):
            shutil.rmtree(p, ignore_errors=True)
    steps: dict[str, Any] = {}
    previous = Path(args.out).with_suffix(".json")
    if args.reuse and previous.is_file():
        steps = {k: v for k, v in json.loads(previous.read_text())["steps"].items() if not k.startswith("evaluate")}
    if not (drive / "annotations.json").is_file():
        steps["render drive"] = {"seconds": round(_run(
            [sys.executable, "-m", "active_o3_training.data.drive", str(drive), "--frames", str(args.frames),
             "--seed", str(args.seed), "--fps", str(args.fps), "--size", args.size, "--quiet"], work / "drive.log"), 1)}
    if not rec.exists():
        r = record(drive, rec, args.fps, work)
        steps["record (camera source + node + recorder)"] = {"seconds": r["seconds"], "notes": str(r["messages"])}
        if r["messages"].get(IMAGES) != args.frames or r["messages"].get(GT_TOPIC) != args.frames:
            raise SystemExit(f"the recording lost messages: {r['messages']} (expected {args.frames} per topic)")
    if not labels.exists():
        secs = _run([_bin("active-o3-train"), "label", str(rec), "-o", str(labels), *shlex.split(args.label_args)],
                    work / "label.log")
        t = json.loads((labels / "teacher.json").read_text())
        steps["label (teacher)"] = {"seconds": round(secs, 1), "notes": (
            f"{t['frames']['labelled']} frames labelled, skipped {t['frames']['skipped']}; "
            f"{t['tiles_per_frame']['zoomed_mean']} of {t['tiles_per_frame']['grid']} tiles zoomed")}
    weights = policy / "small_policy.safetensors"
    if not weights.exists():
        secs = _run([_bin("active-o3-train"), "policy", "--config", "training/configs/policy_robot.yaml",
                     "--set", f"data.bag={rec}", "--set", f"data.labels_bag={labels}",
                     "--set", f"data.segment=[0.0,{args.train_segment}]", "--set", f"trainer.output_dir={policy}",
                     *shlex.split(args.train_args)], work / "train.log")
        steps |= _card_steps(json.loads(weights.with_suffix(".json").read_text()),
                             train_note=f"; whole command {secs:.0f} s")
    if args.weights is not None:
        weights = args.weights.resolve()
    card = json.loads(weights.with_suffix(".json").read_text())
    if args.weights is not None:  # the loop's cost is that of the weights evaluated (their own card)
        note = f" (the evaluated weights' run, {args.weights})"
        steps |= _card_steps(card, cache_note=f", {card.get('anchors', {}).get('total', 'the shipped')} anchors{note}",
                             train_note=note)
    t0 = time.perf_counter()
    only = {r.strip() for r in args.rows.split(",") if r.strip()} or None
    if only and not (args.reuse and previous.is_file()):
        raise SystemExit("--rows needs --reuse and an earlier result in --out (the other rows come from it)")
    rows, n_eval = evaluate(rec, labels, weights, (args.train_segment, 1.0), args.threads, 2.0, only)
    if only:
        old = json.loads(previous.read_text())
        rows = {k: rows.get(k, old["rows"].get(k)) for k in list(old["rows"]) + [k for k in rows if k not in old["rows"]]}
        rows = {k: v for k, v in rows.items() if v is not None}
    steps[f"evaluate ({len(rows)} rows)"] = {"seconds": round(time.perf_counter() - t0, 1)}
    sh, ad, orc = (rows[k]["recall@0.5"] for k in ("shipped weights K=3", "adapted weights K=3", "oracle K=3"))
    loop = [s["seconds"] for k, s in steps.items() if k.split(" ")[0] in ("label", "cache", "train")]
    result = {
        "rows": rows, "eval_frames": n_eval, "frames": args.frames, "steps": steps,
        "loop_minutes": round(sum(loop) / 60, 1) if len(loop) == 3 else None,
        "goals": {"adapted_over_oracle": round(ad / orc, 3) if orc else None,
                  "gap_closed": round((ad - sh) / (orc - sh), 3) if orc > sh else None,
                  **({"adapted_over_anchor_oracle": round(ad / ao, 3)} if (ao := (rows.get(ADAPTED_ANCHOR_ORACLE) or next(
                      (v for k, v in rows.items() if k.startswith("anchor oracle")), {})).get("recall@0.5")) else {})},
        "weights": {"path": str(weights.relative_to(work)) if weights.is_relative_to(work) else weights.name,
                    "config": card.get("config", {}).get("trainer")},
        "card": {k: card.get(k) for k in ("data", "rewards_used", "comparison_with_start_on_val", "seconds")},
        "teacher": json.loads((labels / "teacher.json").read_text()),
        "machine": machine(load), "command": command("adapt_robot.py", argv),
    }
    if only:  # the other rows came from the earlier run: both commands reproduce the table
        result["command"] = f"{json.loads(previous.read_text())['command']} && {result['command']}"
    # no machine paths in committed results: repo-relative
    result = json.loads(json.dumps(result, default=str).replace(str(ROOT) + "/", ""))
    write_outputs(args.out, result, markdown, plot)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
