"""How many words does the sensing policy's detector look show at all? (validation scenes only)

The policy reads the text detector's low-resolution probability map (the "look",
:func:`active_o3_ros.backends.cues.cue_maps`) of the frame at ``cue_short_side``.  A word the
look does not light up can only be found by luck, so this is the ceiling a retrained policy
could reach with that look.  For each look (``LONG_SIDE:FRACTION`` of
``SmallPolicyConfig.detector_side``) it counts, per frame size, the ground-truth words whose
box holds a map value >= ``--threshold`` (the box grown by one map cell), and times the look.

Run it before retraining the policy on a sharper look: if the sharper look shows no more words
at a frame size, retraining cannot find them there.

    python benchmarks/cue_evidence.py --looks 960:0.5,1280:0.667,1280:1,1920:1
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def parse_looks(text: str) -> list[tuple[int, float]]:
    """``"960:0.5,1280:1"`` -> ``[(960, 0.5), (1280, 1.0)]``, each entry read as ``grpo_policy --cue-look``."""
    from active_o3_training.grpo_policy import parse_cue_look

    looks = [parse_cue_look(v, "each --looks entry") for v in text.split(",")]
    if () in looks:  # an empty entry
        raise ValueError(f"each --looks entry is LONG_SIDE:FRACTION, got {text!r}")
    return looks


def shown(det: np.ndarray, boxes: np.ndarray, width: int, height: int, threshold: float) -> np.ndarray:
    """Per ground-truth box (frame pixels): does the map light up inside it (grown by one cell)?"""
    H, W = det.shape
    out = []
    for x1, y1, x2, y2 in boxes:
        c1, r1 = max(0, int(x1 / width * W) - 1), max(0, int(y1 / height * H) - 1)
        c2, r2 = min(W, int(np.ceil(x2 / width * W)) + 1), min(H, int(np.ceil(y2 / height * H)) + 1)
        out.append(bool(det[r1:r2, c1:c2].max() >= threshold) if c2 > c1 and r2 > r1 else False)
    return np.array(out, bool)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--looks", default="960:0.5,1280:0.667,1280:1,1920:1",
                   help="LONG_SIDE:FRACTION,... (the shipped weights' own look is 960:0.5)")
    p.add_argument("--sets", default="val,val_held_out", help="validation scene sets (never a test set)")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--threshold", type=float, default=0.3, help="map value that counts as lit")
    p.add_argument("--weights", default="", help="small_policy weights whose cue settings are the base ('' = shipped)")
    p.add_argument("--out", default="benchmarks/results/cue_evidence", help="results file stem (.json, .md)")
    args = p.parse_args(argv)
    try:
        looks = parse_looks(args.looks)
        sets = [s.strip() for s in args.sets.split(",") if s.strip()]
        if any(s.startswith("test") for s in sets):
            raise ValueError("the frozen test sets are read once per release, never to choose a look")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS, cue_look, read_config
    from active_o3_ros.core.geometry import make_thumbnail
    from active_o3_training.data import scenes

    load_before = [round(x, 2) for x in os.getloadavg()]
    base = read_config(args.weights or BUNDLED_WEIGHTS)
    cfgs = {f"{s}:{f:g}": replace(base, cue_detector_long_side=s, cue_detector_fraction=f) for s, f in looks}
    lit = {k: {} for k in cfgs}          # look -> (set, size) -> [bools]
    ms = {k: {} for k in cfgs}           # look -> size -> [ms]
    for set_name in sets:
        seeds = scenes.frozen_seeds(set_name)[: args.frames or None]
        for seed in tqdm(seeds, desc=set_name):
            f = scenes.render_scene(seed, scenes.set_config(set_name))
            h, w = f.image.shape[:2]
            size = f"{max(w, h)}x{min(w, h)}"
            boxes = np.asarray([b.as_list() for b in f.boxes], np.float64).reshape(-1, 4)
            seen, _ = make_thumbnail(f.image, base.cue_short_side)
            for k, cfg in cfgs.items():
                t = time.perf_counter()
                look = cue_look(seen, cfg)
                ms[k].setdefault(size, []).append(1000 * (time.perf_counter() - t))
                lit[k].setdefault((set_name, size), []).extend(shown(look.det, boxes, w, h, args.threshold))

    keys = sorted({key for d in lit.values() for key in d}, key=lambda k: (k[0], int(k[1].split("x")[0])))
    rows = {k: {f"{s} {z}": round(float(np.mean(v)), 3) for (s, z), v in d.items()} for k, d in lit.items()}
    for k, d in lit.items():
        for s in sets:
            allv = [x for (ss, _), v in d.items() if ss == s for x in v]
            rows[k][f"{s} all"] = round(float(np.mean(allv)), 3) if allv else None
    times = {k: {z: round(statistics.median(v), 1) for z, v in d.items()} for k, d in ms.items()}
    words = {f"{s} {z}": len(lit[next(iter(lit))][(s, z)]) for s, z in keys}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"threshold": args.threshold, "sets": sets, "words": words,
                                                    "shown": rows, "look_ms": times,
                                                    "load_average_before": load_before}, indent=1))
    cols = [f"{s} {z}" for s, z in keys] + [f"{s} all" for s in sets]
    sizes = sorted({z for _, z in keys}, key=lambda z: int(z.split("x")[0]))
    lines = ["# Words the policy's detector look shows (validation scenes)", "",
             f"Share of ground-truth words whose box holds a look value >= {args.threshold} (box grown by one "
             "map cell): what a policy reading that look can see. Look = LONG_SIDE:FRACTION of the cue image "
             f"(short side {base.cue_short_side}); the shipped weights read 960:0.5.", "",
             "| look | " + " | ".join(f"{c} ({words.get(c, sum(words[x] for x in words if x.startswith(c.split()[0] + ' ')))} words)"
                                       for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for k in cfgs:
        lines.append(f"| {k} | " + " | ".join(f"{rows[k][c]:.3f}" for c in cols) + " |")
    lines += ["", "Look time, median ms per frame (one process, 2 threads):", "",
              "| look | " + " | ".join(sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for k in cfgs:
        lines.append(f"| {k} | " + " | ".join(f"{times[k].get(z, float('nan')):.0f}" for z in sizes) + " |")
    lines += ["", f"Machine: {os.cpu_count()} CPUs, load average {load_before} before / "
              f"{[round(x, 2) for x in os.getloadavg()]} after."]
    lines += ["", f"Reproduce: `python benchmarks/cue_evidence.py --looks {args.looks} --sets {args.sets}"
              + (f" --frames {args.frames}" if args.frames else "") + "`"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
