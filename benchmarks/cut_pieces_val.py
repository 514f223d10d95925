"""Which detections cut by a crop's edge to drop before the merge: chosen on validation.

Question: the embedded default's precision (0.89-0.93) is below its oracle's (0.96).  Some of
its false detections are the piece of a word a crop's edge cut off, while another crop saw
the word whole; NMS keeps the piece (it overlaps the whole word's box too little).  Which
rule removes such pieces without losing words?

One run of the node's default pipeline per frame (sensing, then the task model on the
regions' crops: :meth:`ActivePerception.detect_each`), then every merge variant on the same
per-crop detections, so the rows differ only in the merge:

* ``keep all`` (plain NMS, before ``merge_cut_margin`` existed);
* ``drop cut, m px``: drop every detection within ``m`` frame pixels of an edge of its
  crop that lies inside the frame;
* ``drop cut if seen whole, m px`` (:func:`~active_o3_ros.core.merge.drop_cut_detections`):
  drop such a detection only where at least half of it lies inside a detection no crop
  edge cut.

Validation sets only (``val``, ``val_held_out``); the test sets stay frozen.  Recall and
precision carry 95 % bootstrap intervals over frames.

    python benchmarks/cut_pieces_val.py            # both validation sets, all frames
    python benchmarks/cut_pieces_val.py --frames 8 # a quick look
    python benchmarks/cut_pieces_val.py --sensing-options '{"verify_fit": false}'  # as chosen
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command, load_average, machine, write_outputs  # noqa: E402
from sensing_domains import bootstrap  # noqa: E402

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.core.merge import cut_by_window, drop_cut_detections, merge_detections  # noqa: E402
from active_o3_ros.core.metrics import greedy_match  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

MARGINS = (1.0, 2.0, 3.0, 6.0)


def variants(margins=MARGINS) -> list[tuple[str, str, float]]:
    out = [("keep all (plain NMS)", "none", 0.0)]
    out += [(f"drop cut, {m:g} px", "all", m) for m in margins]
    out += [(f"drop cut if seen whole, {m:g} px", "whole", m) for m in margins]
    return out


def merged(each, kind: str, margin: float, merge_cfg) -> list:
    """The frame's published detections under one variant (score threshold is 0 here)."""
    per, wins = each.per_crop, each.crop_windows
    if kind == "all":
        per = [[d for d in dets if not cut_by_window(d.box, wins[c], each.width, each.height, margin)]
               for c, dets in enumerate(per)]
    elif kind == "whole":
        per = drop_cut_detections(per, wins, each.width, each.height, margin)
    return merge_detections([d for dets in per for d in dets], merge_cfg)


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for name, s in result["sets"].items():
        lines += [f"### {name}: {s['frames']} frames, {s['ground_truth']} words", "",
                  "| merge | recall@0.5 [95% CI] | precision [95% CI] | false detections |",
                  "|---|---|---|---:|"]
        for label, r in s["rows"].items():
            lines.append(f"| {label} | {r['recall@0.5']:.4f} {r['recall_ci95']} | {r['precision@0.5']:.4f} "
                         f"{r['precision_ci95']} | {r['false_detections']} |")
        lines.append("")
    lines.append(f"Machine: {result['machine']['cpus']} CPUs.  Reproduce: `{result['command']}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--sets", default="val,val_held_out", help="validation sets, comma separated")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--threads", type=int, default=2, help="detector threads")
    p.add_argument("--sensing-options", default="{}", metavar="JSON",
                   help="small-policy options on top of the defaults, e.g. '{\"verify_fit\": false}' (the "
                        "sensing the choice was made with, before verify_fit existed)")
    p.add_argument("--out", default="benchmarks/results/cut_pieces_val", help="output path without extension")
    args = p.parse_args(argv)
    try:
        options = json.loads(args.sensing_options)
        if not isinstance(options, dict):
            raise ValueError
    except ValueError:
        p.error(f"--sensing-options takes a JSON object, got {args.sensing_options!r}")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in sets:
        if s not in scenes.FROZEN_SETS or not s.startswith("val"):
            p.error(f"--sets takes validation sets only, not {s!r}")
    if args.frames < 0:
        p.error("--frames must be >= 0")
    from tqdm import tqdm

    cfg = PerceptionConfig.from_flat({"task_options": {"threads": args.threads},
                                      "sensing_options": {"num_threads": args.threads, **options}})
    pipe = build_pipeline(cfg)
    load_before = load_average()
    result: dict[str, Any] = {"question": "which detections cut by a crop's edge to drop before the merge",
                              "command": command("cut_pieces_val.py", argv), "sets": {}}
    for set_name in sets:
        frames = list(tqdm(scenes.iter_set(set_name, args.frames or None), desc=set_name, unit="frame"))
        counts = {label: [] for label, _, _ in variants()}
        for f in tqdm(frames, desc=f"{set_name}: default pipeline", unit="frame"):
            proposal = pipe.propose(f.image, "text")
            each = pipe.detect_each(f.image, proposal.regions, "text")
            for label, kind, m in variants():
                dets = merged(each, kind, m, cfg.pipeline.merge)
                counts[label].append(greedy_match([d.box for d in dets], [d.score for d in dets], f.boxes, 0.5))
        rows = {}
        for label, c in counts.items():
            tp, n_pred, n_gt = (np.array(v, np.float64) for v in zip(*c))
            rows[label] = {"recall@0.5": round(float(tp.sum() / max(n_gt.sum(), 1)), 4),
                           "recall_ci95": bootstrap(tp, n_gt),
                           "precision@0.5": round(float(tp.sum() / max(n_pred.sum(), 1)), 4),
                           "precision_ci95": bootstrap(tp, n_pred, seed=1),
                           "false_detections": int(n_pred.sum() - tp.sum())}
            print(f"{set_name:14s} {label:34s} recall {rows[label]['recall@0.5']:.4f} "
                  f"precision {rows[label]['precision@0.5']:.4f}", flush=True)
        result["sets"][set_name] = {"frames": len(frames), "seeds": [f.seed for f in frames],
                                    "ground_truth": int(sum(len(f.boxes) for f in frames)), "rows": rows}
    pipe.close()
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
