"""Pipeline memory over a long replay (node-free): does RSS stay flat?

Why node-free: the ROS node adds DDS buffers whose size depends on QoS and subscribers;
this isolates the core pipeline + backends, where a leak would be ours (per-frame
allocations kept alive, caches growing with varying crop shapes, onnxruntime/torch arenas
that never settle).  The replay is the embedded benchmark's panning camera
(:func:`active_o3_training.data.synthetic.pan_frames`): ``--distinct`` frames rendered once
and then looped, so the input itself cannot grow memory after the first pass.

RSS (resident set size, psutil) is sampled after ``gc.collect()`` every ``--sample-every``
frames.  Reported: RSS at start (after the warm-up), middle and end, the peak, the slope
over the second half (MiB per 100 frames) and a verdict: ``flat`` when the second half
grew less than ``--tolerance-mib``.

Usage::

    python benchmarks/memory_soak.py                   # embedded default, 300 frames
    python benchmarks/memory_soak.py --sensing tiling --task text --frames 1000
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2 ** 20


def replay_frames(n_distinct: int, size: tuple[int, int], seed: int) -> list[tuple[Any, list[Any]]]:
    """``n_distinct`` frames of the synthetic panning camera (RGB, ground-truth boxes)."""
    from active_o3_training.data.synthetic import PanConfig, SyntheticTextConfig, pan_frames

    w, h = size
    pan = PanConfig(frame_size=(w, h), canvas_size=(w * 2, h * 2))
    cfg = SyntheticTextConfig(frame_sizes=((w * 2, h * 2),))
    return [(f, boxes) for f, boxes, _ in pan_frames(seed, n_distinct, pan, cfg)]


def slope_per_100(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``, per 100 x (MiB per 100 frames)."""
    import numpy as np

    if len(xs) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0] * 100)


def verdict(samples: Sequence[tuple[int, float]], tolerance_mib: float) -> dict[str, Any]:
    """Start/middle/end/peak and flat-or-not from ``(frame, rss_mib)`` samples."""
    frames = [f for f, _ in samples]
    rss = [r for _, r in samples]
    mid = len(samples) // 2
    second = samples[mid:]
    growth = rss[-1] - rss[mid]
    return {
        "rss_start_mib": rss[0], "rss_middle_mib": rss[mid], "rss_end_mib": rss[-1], "rss_peak_mib": max(rss),
        "growth_first_half_mib": rss[mid] - rss[0], "growth_second_half_mib": growth,
        "slope_second_half_mib_per_100_frames": slope_per_100([f for f, _ in second], [r for _, r in second]),
        "frames_sampled": frames[-1] if frames else 0,
        "flat": bool(abs(growth) <= tolerance_mib),
        "tolerance_mib": tolerance_mib,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Pipeline RSS over a long replay (node-free): flat or not.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--frames", type=int, default=300, help="frames processed after the warm-up")
    p.add_argument("--warmup", type=int, default=10, help="frames before the start sample (arenas settle)")
    p.add_argument("--distinct", type=int, default=20, help="distinct replay frames, looped")
    p.add_argument("--size", default="640x360", help="frame WxH")
    p.add_argument("--sensing", default="small_policy",
                   help="sensing backend (falls back to 'tiling' with a note when its weights are missing)")
    p.add_argument("--task", default="text", help="task module")
    p.add_argument("--model", default="", help="model dir for qwen_vl backends")
    p.add_argument("--k", type=int, default=3, help="zoom regions per frame")
    p.add_argument("--crop-size", type=int, default=320, help="task crop long side")
    p.add_argument("--task-options", default="{}", help="task options JSON")
    p.add_argument("--sensing-options", default="{}", help="sensing options JSON")
    p.add_argument("--sample-every", type=int, default=10, help="frames between RSS samples")
    p.add_argument("--tolerance-mib", type=float, default=16.0, help="second-half growth still called flat")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="short soak (60 frames) for run_all --quick")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "memory_soak.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.warmup, args.distinct, args.sample_every = 60, 3, 6, 5
    from tqdm import tqdm

    from active_o3_ros.core.config import PerceptionConfig
    from active_o3_ros.backends.base import build_pipeline

    w, h = (int(v) for v in args.size.lower().split("x"))
    flat = {"sensing_backend": args.sensing, "task_module": args.task, "model": args.model,
            "max_regions": args.k, "crop_size": args.crop_size, "task_options": args.task_options,
            "sensing_options": args.sensing_options}
    note = ""
    try:
        pipe = build_pipeline(PerceptionConfig.from_flat(flat))
    except (ValueError, RuntimeError) as exc:
        if args.sensing == "tiling":
            raise
        reason = str(exc).replace(str(ROOT) + os.sep, "")  # results are committed: no machine paths
        note = f"sensing {args.sensing!r} unavailable ({reason}); used 'tiling' (1x{args.k} grid) instead"
        print(note, file=sys.stderr)
        flat.update(sensing_backend="tiling", sensing_options=json.dumps({"rows": 1, "cols": args.k}))
        pipe = build_pipeline(PerceptionConfig.from_flat(flat))
    frames = replay_frames(args.distinct, (w, h), args.seed)
    instruction = "text" if args.task == "text" else "object"
    for i in range(args.warmup):
        f, boxes = frames[i % len(frames)]
        pipe(f, instruction, {"gt_boxes": boxes})
    gc.collect()
    samples = [(0, rss_mib())]
    latencies, detections = [], 0
    t0 = time.perf_counter()
    for i in tqdm(range(1, args.frames + 1), desc="soak", unit="frame"):
        f, boxes = frames[i % len(frames)]
        r = pipe(f, instruction, {"gt_boxes": boxes})
        latencies.append(r.timings.total_s)
        detections += len(r.detections)
        if i % args.sample_every == 0 or i == args.frames:
            gc.collect()
            samples.append((i, rss_mib()))
    wall = time.perf_counter() - t0
    pipe.close()
    result = {
        "benchmark": "memory_soak",
        "command": " ".join(["python benchmarks/memory_soak.py", *(argv if argv is not None else sys.argv[1:])]),
        "frames": args.frames, "warmup": args.warmup, "distinct_frames": args.distinct,
        "frame_size": [w, h], "sensing": flat["sensing_backend"], "task": args.task, "k": args.k,
        "crop_size": args.crop_size, "note": note, "wall_s": wall,
        "mean_ms_per_frame": 1000 * sum(latencies) / max(len(latencies), 1), "detections": detections,
        **verdict(samples, args.tolerance_mib),
        "samples": [{"frame": f, "rss_mib": round(r, 2)} for f, r in samples],
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("rss_start_mib", "rss_middle_mib", "rss_end_mib", "flat",
                                             "slope_second_half_mib_per_100_frames", "mean_ms_per_frame")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
