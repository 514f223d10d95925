"""Evidence for the embedded CPU default: where to zoom is what finds small text.

Question: on held-out synthetic frames (1080p-4K photos with 8-16 px words), with the SAME
text detector (rapidocr, the ``text`` task module) for every row, how do recall@0.5,
precision, AP50, model calls and seconds per frame compare between

* the full frame downscaled to the task input size (no zoom),
* the full frame at native resolution,
* uniform 3x3 tiling (tiles at ~native resolution: crop size 1280),
* 3 random regions,
* the untrained (reference-initialised) small policy,
* the GRPO-trained small policy at K = 1, 2, 3 (the shipped weights),
* the best 3 of the policy's own anchors given the ground truth (what a perfect choice
  among the anchors would reach: splits the policy's gap to the oracle into choice vs.
  anchor geometry),
* oracle regions around the ground truth (upper bound), cropped with the node's
  ``crop_context`` and without any (the oracle's regions are tight already)?

Every row is built the way the node builds it (``PerceptionConfig.from_flat`` ->
``ActivePerception.from_config`` -> backend registry), so it measures the product path.
Policy rows that need the shipped weights are skipped (with a note) when they are missing.

Writes ``benchmarks/results/embedded_default.json``, ``.md`` (table) and ``.png`` (recall vs
seconds/frame).  Default: 12 test frames; ``--frames`` to change; ``--split val`` to choose
settings (e.g. ``--crop-context``) on frames the reported numbers never use.  Timings are wall-clock on
this machine; the JSON records CPU count and load average so contended runs are visible.

    python benchmarks/embedded_default.py --help
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, command, load_average, machine, write_outputs  # noqa: E402

from active_o3_ros.core.config import PARAMETER_INDEX, PerceptionConfig  # noqa: E402
from active_o3_ros.core.metrics import ImageAnnotations, coco_evaluate, greedy_match  # noqa: E402
from active_o3_ros.core.pipeline import ActivePerception  # noqa: E402
from active_o3_ros.backends.base import build_pipeline
from active_o3_training.data import synthetic as syn  # noqa: E402



def rows(crop_size: int, threads: int, compare_weights: list[str] | tuple[str, ...] = (),
         crop_context: float | None = None) -> list[tuple[str, dict[str, Any], bool]]:
    """``(name, flat config overrides, needs shipped policy weights)`` per row; each of
    ``compare_weights`` (other small-policy weights files) adds a K=3 row after the shipped ones.
    ``crop_context`` (None = the node's default) applies to every row that does not set its
    own: tiling and the second oracle row always crop with context 1.0."""
    task = {"task_module": "text", "task_options": {"threads": threads}, "crop_size": crop_size}
    if crop_context is not None:
        task["crop_context"] = crop_context
    out: list[tuple[str, dict[str, Any], bool]] = [
        ("full frame downscaled", {**task, "mode": "full_frame"}, False),
        ("full frame native", {**task, "mode": "full_frame", "crop_size": 8192}, False),
        # tiles cover the frame exactly at ~native resolution; a context margin would only
        # shrink them (measured: recall 0.867 at 1.0 vs 0.821 at 1.3), so tiling gets none
        ("tiling 3x3", {**task, "sensing_backend": "tiling", "crop_size": 1280, "crop_context": 1.0}, False),
        ("random 3 regions", {**task, "sensing_backend": "random", "max_regions": 3,
                              "sensing_options": {"seed": 0}}, False),
        ("untrained policy K=3", {**task, "sensing_backend": "small_policy", "sensing_model": "init",
                                  "max_regions": 3}, False),
    ]
    for k in (1, 2, 3):
        out.append((f"GRPO policy K={k}", {**task, "sensing_backend": "small_policy", "max_regions": k}, True))
    for w in compare_weights:
        out.append((f"policy K=3 from {Path(w).parent.name}/{Path(w).name}",
                    {**task, "sensing_backend": "small_policy", "sensing_model": str(w), "max_regions": 3}, False))
    out.append(("oracle anchors K=3", {**task, "sensing_backend": "oracle_anchors", "max_regions": 3}, True))
    out.append(("oracle regions K=3", {**task, "sensing_backend": "oracle", "max_regions": 3}, False))
    # the oracle's regions are already tight around the words, so its best crop has no margin:
    # the reference for "how close" is the better of the two oracle rows
    out.append(("oracle regions K=3, context 1.0", {**task, "sensing_backend": "oracle", "max_regions": 3,
                                                    "crop_context": 1.0}, False))
    return out


def run_row(pipe: ActivePerception, frames: list[syn.SyntheticFrame], instruction: str,
            name: str = "") -> dict[str, Any]:
    from tqdm import tqdm

    tp = n_pred = n_gt = 0
    secs, calls, task_s, sensing_s = [], [], [], []
    gts, preds = [], []
    for i, f in enumerate(tqdm(frames, desc=name, unit="frame", leave=False)):
        t0 = time.perf_counter()
        res = pipe(f.image, instruction, context={"gt_boxes": f.boxes})
        secs.append(time.perf_counter() - t0)
        calls.append(res.model_calls)
        task_s.append(res.timings.task_s)
        sensing_s.append(res.timings.sensing_s)
        boxes = [d.box for d in res.detections]
        scores = [d.score for d in res.detections]
        a, b, c = greedy_match(boxes, scores, f.boxes, 0.5)
        tp, n_pred, n_gt = tp + a, n_pred + b, n_gt + c
        h, w = f.image.shape[:2]
        gts.append(ImageAnnotations(i + 1, w, h, list(f.boxes), ["text"] * len(f.boxes)))
        preds.append(ImageAnnotations(i + 1, w, h, boxes, ["text"] * len(boxes), scores))
    coco = coco_evaluate(gts, preds, iou_thresholds=[0.5], max_dets=300, class_agnostic=True)
    recall = tp / n_gt if n_gt else 1.0
    s_frame = float(np.mean(secs))
    return {
        "recall@0.5": round(recall, 4), "precision@0.5": round(tp / n_pred if n_pred else 1.0, 4),
        "AP50": round(max(coco["AP50"], 0.0), 4), "true_positives": tp, "detections": n_pred,
        "ground_truth": n_gt, "model_calls_per_frame": float(np.mean(calls)),
        "seconds_per_frame": round(s_frame, 3), "task_seconds_per_frame": round(float(np.mean(task_s)), 3),
        "sensing_seconds_per_frame": round(float(np.mean(sensing_s)), 4),
        "recall_per_second": round(recall / s_frame, 4) if s_frame > 0 else None,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Held-out synthetic {result.get('split', 'test')} split: {result['frames']} frames (seeds {result['seeds'][0]}.."
        f"{result['seeds'][-1]}), {result['ground_truth_items']} text items; detector: rapidocr "
        f"(`text` task module) for every row; crop size {result['crop_size']} px, zoom <= 3x, "
        f"context {result.get('crop_context', 1.0)}.",
        "",
        "| row | recall@0.5 | precision | AP50 | model calls | s/frame | recall/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["rows"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} | | | | | |")
            continue
        lines.append(f"| {name} | {r['recall@0.5']:.3f} | {r['precision@0.5']:.3f} | {r['AP50']:.3f} | "
                     f"{r['model_calls_per_frame']:.0f} | {r['seconds_per_frame']:.2f} | {r['recall_per_second']:.3f} |")
    m = result["machine"]
    lines += ["", f"Machine: {m['cpus']} CPUs, load average {m['load_before']} before / {m['load_after']} after "
                  f"(timings are wall-clock and include contention).  Reproduce: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in result["rows"].items():
        if "skipped" in r:
            continue
        ax.scatter(r["seconds_per_frame"], r["recall@0.5"], s=40)
        ax.annotate(name, (r["seconds_per_frame"], r["recall@0.5"]), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")
    ax.set_xlabel("seconds per frame (wall clock)")
    ax.set_ylabel("recall @ IoU 0.5")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Embedded default: small text, same detector (rapidocr) for every row")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=12, help="held-out test frames (default 12)")
    p.add_argument("--start", type=int, default=0, help="first index in the split")
    p.add_argument("--split", default="test", choices=("test", "val"),
                   help="held-out split: 'test' for reported numbers, 'val' to choose settings")
    p.add_argument("--crop-size", type=int, default=840, help="task input long side (the node's default 840)")
    p.add_argument("--crop-context", type=float, default=None,
                   help="grow every region by this factor before cropping (default: the node's "
                        "crop_context); tiling and the 'context 1.0' oracle row keep 1.0")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    p.add_argument("--compare-weights", action="append", default=[], metavar="FILE",
                   help="also run the small policy with these weights at K=3 (e.g. an earlier training "
                        "stage), same frames and detector; repeatable")
    p.add_argument("--rows", default="", help="comma-separated substrings; run only matching rows")
    p.add_argument("--out", default=str(RESULTS / "embedded_default"), help="output path without extension")
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error("--frames must be >= 1")

    from tqdm import tqdm

    from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS, read_provenance

    seeds = [syn.split_seed(args.split, args.start + i) for i in range(args.frames)]
    frames = [syn.render_frame(s) for s in tqdm(seeds, desc="test frames", unit="frame")]
    load_before = load_average()
    result: dict[str, Any] = {
        "question": "recall vs cost of zoom-region sources for small text, same detector for every row",
        "command": command("embedded_default.py", argv),
        "split": args.split, "frames": len(frames), "seeds": seeds, "crop_size": args.crop_size,
        "crop_context": args.crop_context if args.crop_context is not None else PARAMETER_INDEX["crop_context"].default,
        "frame_sizes": sorted({f"{f.image.shape[1]}x{f.image.shape[0]}" for f in frames}),
        "ground_truth_items": int(sum(len(f.boxes) for f in frames)),
        "generator_config": syn._jsonable(syn.asdict(syn.SyntheticTextConfig())),
        "rows": {},
    }
    selected = [s.strip().lower() for s in args.rows.split(",") if s.strip()]
    for w in args.compare_weights:
        if not Path(w).is_file():
            p.error(f"--compare-weights: no such file: {w}")
    for name, flat, needs_weights in rows(args.crop_size, args.threads, args.compare_weights, args.crop_context):
        if selected and not any(s in name.lower() for s in selected):
            continue
        if needs_weights and not BUNDLED_WEIGHTS.is_file():
            result["rows"][name] = {"skipped": "trained weights not in active_o3_ros/data/ yet"}
            continue
        cfg = PerceptionConfig.from_flat(flat)
        pipe = build_pipeline(cfg)
        pipe(frames[0].image[:64, :64].copy(), "text")  # warm-up: engine and policy load
        result["rows"][name] = {**run_row(pipe, frames, cfg.instruction, name), "config": dict(flat)}
        pipe.close()
        r = result["rows"][name]
        print(f"{name:24s} recall {r['recall@0.5']:.3f} prec {r['precision@0.5']:.3f} AP50 {r['AP50']:.3f} "
              f"calls {r['model_calls_per_frame']:.0f} s/frame {r['seconds_per_frame']:.2f}", flush=True)
    if BUNDLED_WEIGHTS.is_file():
        try:
            result["policy_provenance"] = read_provenance(BUNDLED_WEIGHTS)
        except Exception as exc:  # noqa: BLE001 - provenance is informative only
            result["policy_provenance"] = {"error": str(exc)}
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
