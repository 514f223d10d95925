"""Choose the fine-tuning settings of ``active-o3-train policy`` on the validation segment.

Question: which learning rate / steps / KL weight / added anchor grids gives the adapted
policy the best result on the validation segment (the last 15 % of the training part of the
recording, scored against the **teacher's** labels: no ground truth is read)?  Each variant
is one run of the real CLI on the recording and labels of ``benchmarks/adapt_robot.py`` (its
detector cache is reused where the anchors are the same, so a variant costs the bag pass
and the GRPO steps).  The held-out segment is never read here.

``--detector`` also runs the node's pipeline (``config/perceive.yaml``, the real text
detector) with each variant's weights on the validation frames and scores recall@0.5 /
precision against the teacher's labels, and chooses by that recall.  WHY: the heuristic
reward's coverage term counts a word inside a region whether or not the zoom makes it
readable, so it favours larger regions by construction; only the detector can compare
variants whose anchors differ in size.

Writes ``<out>.json`` and ``.md``.  ``python benchmarks/adapt_settings.py --help``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, command, footer, load_average, machine, recall_cell, write_outputs  # noqa: E402
from adapt_robot import TEACHER_TOPIC  # noqa: E402

#: Larger regions for frames full of small objects (a shelf aisle): 20 anchors of 22 x 29 %,
#: 12 of 30 x 40 % and 9 of 40 x 50 % of the frame, added to the shipped 98; the task term
#: (the real detector on each anchor's crop) decides which sizes still read.
LARGER_ANCHORS = "model.extra_grids=[[0.22,0.29,5,4],[0.3,0.4,4,3],[0.4,0.5,3,3]]"

#: name -> ``--set`` overrides on ``training/configs/policy_robot.yaml`` (each variant says
#: its learning rate and anchors, so the names stay true when the recipe's defaults change)
SHIPPED_ANCHORS = "model.extra_grids=[]"
VARIANTS: dict[str, list[str]] = {
    "lr 3e-4, 150 steps, beta 0.04": ["trainer.learning_rate=3e-4", SHIPPED_ANCHORS],
    "lr 1e-3, 150 steps": ["trainer.learning_rate=1e-3", SHIPPED_ANCHORS],
    "lr 3e-4, 400 steps": ["trainer.learning_rate=3e-4", "trainer.max_steps=400", SHIPPED_ANCHORS],
    "lr 1e-3, 400 steps": ["trainer.learning_rate=1e-3", "trainer.max_steps=400", SHIPPED_ANCHORS],
    "lr 3e-4, 150 steps, beta 0.2": ["trainer.learning_rate=3e-4", "trainer.beta=0.2", SHIPPED_ANCHORS],
    "lr 1e-3, 150 steps, + larger anchors": ["trainer.learning_rate=1e-3", LARGER_ANCHORS],
}


def validation_frames(work: Path, train_segment: float, val_fraction: float = 0.15) -> list:
    """The frames ``active-o3-train policy`` validates on, with the teacher's labels as boxes:
    the last ``val_fraction`` (by time) of the training part of the recording."""
    from active_o3_training.data.rosbag import BagDatasetConfig, iter_labeled_frames
    from active_o3_training.policy_train import validation_start

    frames = list(iter_labeled_frames([work / "rec", work / "labels"], BagDatasetConfig(labels_topic=TEACHER_TOPIC),
                                      segment=(0.0, train_segment)))
    if not frames:
        raise SystemExit(f"no teacher-labelled frames in {work}: run benchmarks/adapt_robot.py first")
    cut = validation_start([f.stamp_ns for f in frames], val_fraction)
    return [f for f in frames if f.stamp_ns >= cut]


def detector_scores(weights: str, frames: list, threads: int) -> dict[str, Any]:
    """The node's pipeline with these sensing weights ('' = shipped) on ``frames``; recall@0.5
    and precision against their (teacher) boxes."""
    from sensing_domains import run_row

    from active_o3_ros.backends.base import build_pipeline
    from active_o3_ros.core.config import PerceptionConfig

    over = {"task_options": json.dumps({"threads": threads})} | ({"sensing_model": weights} if weights else {})
    pipe = build_pipeline(PerceptionConfig.from_yaml(ROOT / "config" / "perceive.yaml", over))
    try:
        r = run_row(pipe, frames, Path(weights).parent.name if weights else "shipped")
    finally:
        pipe.close()
    return {k: r[k] for k in ("recall@0.5", "recall_ci95", "precision@0.5", "seconds_per_frame")}


def markdown(result: dict[str, Any]) -> str:
    det = result.get("detector")
    lines = ["# Fine-tuning settings, chosen on the validation segment (teacher labels)", ""]
    if det:
        lines += [f"Chosen by the detector's recall@0.5 against the teacher's labels on the {det['frames']} "
                  "validation frames (the node's pipeline with each variant's weights); the starting weights: "
                  f"recall {det['start']['recall@0.5']:.3f}, precision {det['start']['precision@0.5']:.3f}.", ""]
    head = "| variant | val coverage (start -> adapted) | val reward |" + (
        " val recall (teacher labels) | val precision |" if det else "") + " train s |"
    lines += [head, "|---|---|---:|" + ("---|---:|" if det else "") + "---:|"]
    for name, r in result["rows"].items():
        mark = " **(chosen)**" if name == result["chosen"] else ""
        cells = f"| {name}{mark} | {r['start_coverage']:.3f} -> {r['coverage']:.3f} | {r['reward']:.3f} |"
        if det:
            cells += f" {recall_cell(r['detector'])} | {r['detector']['precision@0.5']:.3f} |"
        lines.append(cells + f" {r['train_s']} |")
    lines += ["", footer(result), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt_robot")
    p.add_argument("--train-segment", type=float, default=0.7)
    p.add_argument("--only", default="", help="variant names separated by ';' (default: all)")
    p.add_argument("--detector", action="store_true",
                   help="score each variant with the real detector on the validation frames and choose by recall")
    p.add_argument("--threads", type=int, default=2, help="detector threads (with --detector)")
    p.add_argument("--out", default=str(RESULTS / "adapt_settings"))
    args = p.parse_args(argv)
    val_frames = validation_frames(args.work, args.train_segment) if args.detector else []
    load = load_average()
    rows: dict[str, Any] = {}
    wanted = {n.strip() for n in args.only.split(";") if n.strip()}
    unknown = wanted - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    for i, name in enumerate(VARIANTS):
        if wanted and name not in wanted:
            continue
        out = args.work / "settings" / f"v{i}"  # numbered by VARIANTS, so a subset reuses earlier runs
        weights = out / "small_policy.json"
        if not weights.is_file():
            cmd = [str(Path(sys.executable).parent / "active-o3-train"), "policy", "--config",
                   "training/configs/policy_robot.yaml", "--set", f"data.bag={args.work / 'rec'}",
                   "--set", f"data.labels_bag={args.work / 'labels'}",
                   "--set", f"data.segment=[0.0,{args.train_segment}]", "--set", f"trainer.output_dir={out}"]
            for s in VARIANTS[name]:
                cmd += ["--set", s]
            print("$ " + shlex.join(cmd), flush=True)
            t = time.perf_counter()
            rc = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if rc != 0:
                raise SystemExit(f"variant {name!r} failed (exit {rc})")
            print(f"  {time.perf_counter() - t:.0f} s", flush=True)
        card = json.loads(weights.read_text())
        c = card["comparison_with_start_on_val"]
        rows[name] = {"overrides": VARIANTS[name], "coverage": c["adapted"]["coverage"],
                      "start_coverage": c["start"]["coverage"], "reward": c["adapted"]["reward"],
                      "val_frames": c["frames"], "train_s": card["seconds"]["train_s"]}
        if args.detector:
            rows[name]["detector"] = detector_scores(str(out / "small_policy.safetensors"), val_frames, args.threads)
            print(f"  val recall {rows[name]['detector']['recall@0.5']}", flush=True)
    result: dict[str, Any] = {"rows": rows}
    if args.detector:
        result["detector"] = {"frames": len(val_frames), "labels": "teacher (no ground truth)",
                              "start": detector_scores("", val_frames, args.threads)}
        chosen = max(rows, key=lambda n: (rows[n]["detector"]["recall@0.5"], rows[n]["reward"]))
    else:
        chosen = max(rows, key=lambda n: (rows[n]["reward"], rows[n]["coverage"]))
    result |= {"chosen": chosen, "machine": machine(load), "command": command("adapt_settings.py", argv)}
    write_outputs(args.out, result, markdown)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
