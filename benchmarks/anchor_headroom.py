"""What K anchors of a grid could find with the real detector: the headroom of an anchor grid.

The ``anchor oracle`` row of ``sensing_domains.py`` picks the K anchors that hold the most
ground-truth words, which favours large anchors even where they zoom too little for the
detector.  This benchmark asks the detector instead: on each frame it runs the ``text`` task
on every anchor of a grid whose crop window holds at least one whole word (the others cannot
add a word), then picks the K anchors whose detections match the most distinct words
(exhaustively), and reruns the pipeline's task stage on those K to report their merged recall.
Grids are compared side by side on the same frames, so the question "would smaller anchors
recover the frames where the shipped grid zooms too little (4K)?" gets a measured answer before
anyone trains a policy on a new grid.

Validation frames only (``scenes.FROZEN_SETS``; the test sets are refused).  Slow: one
detector call per candidate anchor (about 0.5-0.8 s on 2 cores), so restrict it with
``--sizes``/``--frames``.

  python benchmarks/anchor_headroom.py --set val --sizes 4K \\
      --grids 'shipped=;half=0.06,0.08,17,13;shipped+half=+0.06,0.08,17,13'
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FRAME_SIZE_NAMES, RESULTS, command, footer, load_average, machine, write_outputs  # noqa: E402

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.backends.small_policy import AnchorGrid, anchor_boxes_px, bundled_config, make_anchors  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.core.geometry import crop_enlargement, crop_window  # noqa: E402
from active_o3_ros.core.metrics import greedy_match  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

SIZES = {name: short for short, name in FRAME_SIZE_NAMES.items()}  # name -> short side


def parse_grids(spec: str) -> list[tuple[str, list[AnchorGrid]]]:
    """Grid sets from ``NAME=SPEC`` entries separated by ``;``.  ``SPEC`` is empty (the shipped
    grids), ``+G[/G...]`` (the shipped grids plus these) or ``G[/G...]`` (these alone), each
    ``G`` being ``w,h,cols,rows`` (fractions of the frame; see ``AnchorGrid``)."""
    shipped = list(bundled_config().grids)
    out = []
    for entry in [e for e in spec.split(";") if e.strip()]:
        if "=" not in entry:
            raise ValueError(f"a grid entry is NAME=[+]w,h,cols,rows[/...] or NAME= (the shipped grids), got {entry!r}")
        name, body = (s.strip() for s in entry.split("=", 1))
        grids = list(shipped) if not body or body.startswith("+") else []
        for g in [g for g in body.lstrip("+").split("/") if g.strip()]:
            grids.append(AnchorGrid.parse(g.split(",")))
        out.append((name, grids))
    if not out:
        raise ValueError("no grid given")
    return out


def word_matches(dets, gts, iou: float = 0.5) -> set[int]:
    """Indices of ground-truth words an anchor's detections match (IoU >= ``iou``)."""
    return {j for j, g in enumerate(gts) if any(d.box.iou(g) >= iou for d in dets)}


def best_set(sets: list[set[int]], k: int) -> tuple[int, ...]:
    """The K candidates whose matched words have the largest union (exhaustive; ties: first)."""
    if len(sets) <= k:
        return tuple(range(len(sets)))
    best, best_n = tuple(range(k)), -1
    for combo in itertools.combinations(range(len(sets)), k):
        n = len(set().union(*(sets[i] for i in combo)))
        if n > best_n:
            best, best_n = combo, n
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", default="val", help="a validation set of scenes.FROZEN_SETS (test sets are refused)")
    p.add_argument("--sizes", default="4K", help=f"comma-separated frame sizes ({', '.join(SIZES)}); '' = all")
    p.add_argument("--frames", type=int, default=0, help="at most N frames of those sizes (0 = all)")
    p.add_argument("--grids", default="shipped=;half=0.06,0.08,17,13;shipped+half=+0.06,0.08,17,13",
                   help="NAME=[+]w,h,cols,rows[/...] entries separated by ';' (NAME= alone: the shipped grids)")
    p.add_argument("--k", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "anchor_headroom"), help="output path without extension")
    args = p.parse_args(argv)
    if args.set not in scenes.FROZEN_SETS or args.set.startswith("test"):
        p.error(f"--set must be a validation set, one of {sorted(s for s in scenes.FROZEN_SETS if not s.startswith('test'))}")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if any(s not in SIZES for s in sizes):
        p.error(f"unknown size in {args.sizes!r}; choose from {list(SIZES)}")
    try:
        grids = parse_grids(args.grids)
    except ValueError as exc:
        p.error(str(exc))
    if not 1 <= args.k <= 4:
        p.error("--k must be 1..4 (the pick is exhaustive)")
    from tqdm import tqdm

    pipe = build_pipeline(PerceptionConfig.from_flat({"task_module": "text", "crop_size": 840, "max_regions": args.k,
                                                      "task_options": {"threads": args.threads},
                                                      "sensing_backend": "oracle"}))
    crop = pipe.config.crop
    short = {SIZES[s] for s in sizes}
    frames = [f for f in scenes.iter_set(args.set) if not short or min(f.image.shape[:2]) in short]
    frames = frames[: args.frames or None]
    load_before = load_average()
    rows: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for name, g in grids:
        anchors = make_anchors(g)
        tp = n_gt = calls = 0
        zooms, secs = [], 0.0
        for f in tqdm(frames, desc=name, unit="frame"):
            h, w = f.image.shape[:2]
            boxes = anchor_boxes_px(anchors, w, h)
            cand = [b for b in boxes if any(crop_window(b, w, h, crop).contains(gt, 1.0) for gt in f.boxes)]
            t0 = time.perf_counter()
            sets = [word_matches(pipe.detect_regions(f.image, [b], "text").detections, f.boxes) for b in cand]
            calls += len(cand)
            chosen = [cand[i] for i in best_set(sets, args.k)] if cand else []
            res = pipe.detect_regions(f.image, chosen, "text") if chosen else None
            secs += time.perf_counter() - t0
            dets = res.detections if res else []
            m, _, n = greedy_match([d.box for d in dets], [d.score for d in dets], f.boxes, 0.5)
            tp, n_gt = tp + m, n_gt + n
            zooms += [crop_enlargement(crop_window(b, w, h, crop), crop) for b in chosen]
        rows[name] = {"grids": [[x.w, x.h, x.cols, x.rows] for x in g], "anchors": int(len(anchors)),
                      "recall@0.5": round(tp / n_gt, 4) if n_gt else None, "words": int(n_gt),
                      "detector_calls_per_frame": round(calls / max(1, len(frames)), 1),
                      "median_zoom_of_chosen": round(float(np.median(zooms)), 2) if zooms else None,
                      "seconds": round(secs, 1)}
        print(f"{name:16s} anchors {len(anchors):4d} recall {rows[name]['recall@0.5']} "
              f"median zoom {rows[name]['median_zoom_of_chosen']}", flush=True)
    result = {"question": "recall of the best K anchors of a grid, picked with the real detector's output",
              "command": command("anchor_headroom.py", argv), "set": args.set, "sizes": sizes,
              "frames": len(frames), "seeds": [f.seed for f in frames], "k": args.k, "rows": rows,
              "seconds": round(time.perf_counter() - t_all, 1), "machine": machine(load_before)}

    def markdown(r: dict[str, Any]) -> str:
        lines = [f"Best {r['k']} anchors per frame picked with the detector's own output, `{r['set']}` frames of "
                 f"{', '.join(r['sizes']) or 'all sizes'} ({r['frames']} frames, "
                 f"{next(iter(r['rows'].values()))['words']} words)", "",
                 "| grid | anchors | recall@0.5 | median zoom of the chosen | detector calls/frame (search) |",
                 "|---|---:|---:|---:|---:|"]
        for name, row in r["rows"].items():
            lines.append(f"| {name} ({'; '.join(','.join(f'{v:g}' for v in g) for g in row['grids'])}) | "
                         f"{row['anchors']} | {row['recall@0.5']} | {row['median_zoom_of_chosen']} | "
                         f"{row['detector_calls_per_frame']} |")
        return "\n".join(lines + ["", footer(r)]) + "\n"

    write_outputs(args.out, result, markdown, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
