"""The offline teacher's recall and cost per setting, on frames of a recording with ground truth.

Question: how much of the brute-force teacher's recall (every zoomed tile of the frame plus
the full frame) does the coarse-to-fine teacher keep with at most N hinted tiles, and at
what cost per 1080p frame on this CPU?  Ground truth is used only to measure (the teacher
never reads it).  Frames: evenly spread over a bag's time ``--segment`` (default: the part
``benchmarks/adapt_robot.py`` trains on), near-duplicates skipped.

Writes ``<out>.json`` and ``.md``.  ``python benchmarks/teacher_settings.py --help``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, command, footer, load_average, machine, recall_cell, write_outputs  # noqa: E402
from sensing_domains import bootstrap  # noqa: E402

from active_o3_ros.core.metrics import greedy_match  # noqa: E402


def settings() -> list[tuple[str, Any]]:
    from active_o3_training.teacher import TeacherConfig

    base = TeacherConfig()
    return [(f"coarse, <= {n} tiles", replace(base, max_tiles=n)) for n in (4, 8, 16, 24)] + [
        ("coarse, <= 16 tiles, fp32 736 px", replace(base, max_tiles=16,
                                                     task_options={"det_precision": "fp32", "det_limit_side_len": 736})),
        ("every tile (brute force)", replace(base, hint="all"))]


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Teacher settings ({result['frames']} frames of `{result['bag']}`, {result['size']})", "",
             "| setting | recall@0.5 [95% CI] | precision@0.5 | tiles zoomed | s/frame (2 threads) |",
             "|---|---|---:|---:|---:|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {recall_cell(r)} | {r['precision@0.5']:.3f} | {r['tiles_zoomed']:.1f} of "
                     f"{r['tiles_grid']} | {r['seconds_per_frame']:.2f} |")
    lines += ["", footer(result), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bag", type=Path, default=ROOT / "runs" / "adapt_robot" / "rec")
    p.add_argument("--gt-topic", default="/ground_truth/detections")
    p.add_argument("--segment", default="0,0.7")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "teacher_settings"))
    args = p.parse_args(argv)
    from active_o3_training.data.rosbag import BagDatasetConfig, iter_labeled_frames
    from active_o3_training.policy_train import spread
    from active_o3_training.teacher import Teacher, parse_segment

    load = load_average()
    all_frames = list(iter_labeled_frames(args.bag, BagDatasetConfig(labels_topic=args.gt_topic, dedup_threshold=2.0),
                                          segment=parse_segment(args.segment)))
    frames = [all_frames[i] for i in spread(len(all_frames), args.frames)]
    rows: dict[str, Any] = {}
    for name, cfg in settings():
        teacher = Teacher(cfg, args.threads)
        per = []
        try:
            for f in frames:
                t = time.perf_counter()
                lab = teacher.label(f.image)
                secs = time.perf_counter() - t
                tp, n_pred, n_gt = greedy_match([d.box for d in lab.detections], [d.score for d in lab.detections],
                                                f.boxes, 0.5)
                per.append((tp, n_pred, n_gt, secs, lab.tiles_run, lab.tiles_total))
        finally:
            teacher.close()
        a = np.array(per, np.float64)
        rows[name] = {"recall@0.5": round(float(a[:, 0].sum() / max(1, a[:, 2].sum())), 4),
                      "recall_ci95": bootstrap(a[:, 0], a[:, 2]),
                      "precision@0.5": round(float(a[:, 0].sum() / max(1, a[:, 1].sum())), 4),
                      "seconds_per_frame": round(float(a[:, 3].mean()), 2), "tiles_zoomed": float(a[:, 4].mean()),
                      "tiles_grid": int(a[0, 5]), "settings": asdict(cfg)}
        print(name, rows[name]["recall@0.5"], rows[name]["seconds_per_frame"], flush=True)
    h, w = frames[0].image.shape[:2]
    result = {"rows": rows, "frames": len(frames), "bag": args.bag.name, "size": f"{w}x{h}",
              "stamps": [f.stamp_ns for f in frames], "machine": machine(load),
              "command": command("teacher_settings.py", argv)}
    write_outputs(args.out, result, markdown)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
