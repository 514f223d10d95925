"""False detections on frames with no text at all: the served default against the full frame.

Question: a zoom enlarges whatever it looks at, so a blob or a stripe the detector ignores
at full-frame scale may be read as a letter in a crop.  How many false detections per
text-free frame does each row publish (95 % bootstrap interval over frames), on how many
frames, and what did the detector read?  The sensing issue's goal: no more than the
full-frame row.

The mixed sets hold few text-free frames (5 in ``val``, 3 in each test set), so one false
read moves the rate by 0.2-0.33.  Here every frame is text-free
(:data:`active_o3_training.data.scenes.FROZEN_SETS` ``*_text_free``: the same generator
with no text and two more distractors: barcodes, stripes, grids, dot matrices, fences,
foliage).  ``val_text_free`` (training families) is where choices are made;
``val_held_out_text_free`` is diagnosis; ``test_text_free`` and ``test_held_out_text_free``
are frozen and read once per release.

Rows are :func:`sensing_domains.rows` (the node's own config path), selected with
``--rows``; ``--compare-sensing`` / ``--compare-config`` add rows as in sensing_domains.
Writes ``<out>.json`` and ``.md``.

    python benchmarks/text_free.py                      # validation sets, full frame vs the default
    python benchmarks/text_free.py --frames 4           # a quick look
    python benchmarks/text_free.py --compare-sensing 'fit from 2 lines={"verify_fit_min_lines": 2}'
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, command, footer, load_average, machine, write_outputs  # noqa: E402
from sensing_domains import parse_compare, rows  # noqa: E402

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

DEFAULT_ROWS = "full frame,policy K=3"


def mean_interval(values: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile interval of the mean of ``values`` over frames resampled with replacement."""
    if len(values) == 0:
        return [float("nan"), float("nan")]
    idx = np.random.default_rng(seed).integers(0, len(values), size=(reps, len(values)))
    return [round(float(v), 3) for v in np.percentile(values[idx].mean(1), [2.5, 97.5])]


def run_row(pipe, frames, name: str) -> dict[str, Any]:
    """Every detection on a text-free frame is false: count them, and keep what was read."""
    from tqdm import tqdm

    counts, reads = [], []
    for f in tqdm(frames, desc=name, unit="frame", leave=False):
        if f.boxes:
            raise ValueError(f"frame {f.seed} holds text; this benchmark takes text-free sets only")
        res = pipe(f.image, "text")
        counts.append(len(res.detections))
        h, w = f.image.shape[:2]
        reads += [{"seed": f.seed, "frame": f"{w}x{h}", "text": d.text, "score": round(d.score, 3),
                   "box_px": [round(d.box.width), round(d.box.height)],
                   "distractors": f.families.get("distractors", [])} for d in res.detections]
    c = np.array(counts, np.float64)
    return {"frames": len(c), "false_detections": int(c.sum()),
            "false_detections_per_frame": round(float(c.mean()), 3) if len(c) else None,
            "per_frame_ci95": mean_interval(c), "frames_with_a_false_detection": int((c > 0).sum()),
            "reads": reads}


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for set_name, s in result["sets"].items():
        lines += [f"### {set_name}: {s['frames']} text-free frames, seeds {s['seeds'][0]}..{s['seeds'][-1]}", "",
                  "| row | false detections / frame [95% CI] | frames with one or more | false detections |",
                  "|---|---|---:|---:|"]
        for name, r in s["rows"].items():
            lines.append(f"| {name} | {r['false_detections_per_frame']:.3f} {r['per_frame_ci95']} | "
                         f"{r['frames_with_a_false_detection']} | {r['false_detections']} |")
        lines.append("")
        read = [(name, x) for name, r in s["rows"].items() for x in r["reads"]]
        if read:
            lines += ["What was read (row: text, score, box w x h px, frame, seed, distractors drawn)", ""]
            lines += [f"- {name}: {x['text']!r} {x['score']:.3f}, {x['box_px'][0]}x{x['box_px'][1]} px, "
                      f"{x['frame']}, seed {x['seed']}, {', '.join(x['distractors'])}" for name, x in read]
            lines.append("")
    lines.append(footer(result))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--sets", default="val_text_free,val_held_out_text_free",
                   help="text-free sets, comma separated (the test_* ones are frozen: once per release)")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--rows", default=DEFAULT_ROWS, help="comma-separated substrings of sensing_domains' row names")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--policy-label", default="policy", help="row name of the shipped weights")
    p.add_argument("--compare-sensing", action="append", default=[], metavar="LABEL=JSON",
                   help="a row of the shipped policy with these small-policy options on top (repeatable)")
    p.add_argument("--compare-config", action="append", default=[], metavar="LABEL=JSON",
                   help="a row of the shipped policy with these node parameters (repeatable)")
    p.add_argument("--out", default="benchmarks/results/text_free_val", help="output path without extension")
    args = p.parse_args(argv)
    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in set_names:
        if s not in scenes.FROZEN_SETS or scenes.FROZEN_SETS[s].text_free != 1.0:
            p.error(f"--sets takes text-free sets only ({', '.join(n for n, f in scenes.FROZEN_SETS.items() if f.text_free == 1.0)}), "
                    f"not {s!r}")
    if args.frames < 0:
        p.error("--frames must be >= 0")
    sensing, configs = parse_compare(p, args.compare_sensing, args.compare_config)
    selected = [s.strip().lower() for s in args.rows.split(",") if s.strip()]
    compared = {f"{args.policy_label} K=3, {label}" for label, _ in sensing + configs}
    todo = [(n, f) for n, f in rows(args.threads, None, policy_label=args.policy_label,
                                    compare_sensing=tuple(sensing), compare_config=tuple(configs))
            if n in compared or any(s in n.lower() for s in selected)]
    if not todo:
        p.error(f"--rows {args.rows!r} matches no row")
    from tqdm import tqdm

    load_before = load_average()
    result: dict[str, Any] = {"question": "false detections per text-free frame: the served default vs the full frame",
                              "command": command("text_free.py", argv), "sets": {}}
    for set_name in set_names:
        frames = list(tqdm(scenes.iter_set(set_name, args.frames or None), desc=set_name, unit="frame"))
        s = {"frames": len(frames), "seeds": [f.seed for f in frames], "rows": {}}
        for name, flat in todo:
            pipe = build_pipeline(PerceptionConfig.from_flat(flat))
            r = run_row(pipe, frames, f"{set_name}: {name}")
            pipe.close()
            s["rows"][name] = {**r, "config": json.loads(json.dumps(flat).replace(str(ROOT) + os.sep, ""))}
            print(f"{set_name:24s} {name:40s} false/frame {r['false_detections_per_frame']:.3f} {r['per_frame_ci95']} "
                  f"on {r['frames_with_a_false_detection']} frames", flush=True)
        result["sets"][set_name] = s
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
