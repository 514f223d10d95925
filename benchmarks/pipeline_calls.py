"""Model calls, latency and overhead of the ACTIVE-o3 pipeline with the tiny Qwen2.5-VL on CPU.

Questions answered, K = 3:
1. model calls per frame: parallel (1 sensing + 1 batched task call) vs serial (1 + K);
2. frame latency, parallel vs serial (median over frames, and their ratio);
3. pipeline overhead outside the model's ``generate`` as a % of frame time;
4. the task model on K crops: one batched call vs K separate calls (speed-up).

Sensing: the tiny random model emits no usable boxes, so the sensing step runs a REAL
Qwen2.5-VL sensing generate on the thumbnail (its cost is measured) and then uses
``rows x cols`` tiling regions instead of its unparsable answer ("qwen_vl_generate+tiling_regions"
in the JSON).  Generation length is fixed with ``min_new_tokens = max_new_tokens`` so
timings do not depend on when a random model happens to emit end-of-text.

Usage::

    python benchmarks/pipeline_calls.py [--frames 5] [--new-tokens 32] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _frames(n: int):
    import cv2
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        # a larger frame, as a camera would give (the zoom is what matters)
        out.append(cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_LINEAR))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=5, help="frames per mode (median reported)")
    parser.add_argument("--new-tokens", type=int, default=32, help="generated tokens per answer (fixed)")
    parser.add_argument("--k", type=int, default=3, help="zoom regions per frame (K)")
    parser.add_argument("--crop-size", type=int, default=448, help="task crop long side, pixels")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--model", default="", help="model dir (default: build the tiny model in a temp dir)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pipeline_calls.json"))
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    from active_o3_ros.backends.base import SensingOutput, SensingPolicy
    from active_o3_ros.backends.qwen_vl import QwenVLSensing, QwenVLTask
    from active_o3_ros.backends.region_sources import TilingPolicy
    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.geometry import ResizeCropConfig, resize_crop
    from active_o3_ros.core.pipeline import ActivePerception
    from active_o3_ros.core.types import Region

    torch.set_num_threads(args.threads)
    tmp = None
    model_dir = args.model
    if not model_dir:
        tmp = tempfile.TemporaryDirectory()
        model_dir = str(build_tiny_qwen(Path(tmp.name) / "tiny_qwen"))
    opts = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens)
    task = QwenVLTask(model=model_dir, **opts)
    qwen_sensing = QwenVLSensing(model=model_dir, **opts)
    assert qwen_sensing.qwen is task.qwen
    k = args.k

    class GenerateThenTile(SensingPolicy):
        """Real sensing generate (counted, timed) + tiling regions (the tiny model's boxes are noise)."""

        name = "qwen_vl_generate+tiling_regions"
        is_model_call = True

        def __init__(self) -> None:
            self.tiles = TilingPolicy(rows=1, cols=k)

        def propose(self, images, instructions, max_regions, context=None):
            real = qwen_sensing.propose(images, instructions, max_regions, context)
            tiled = self.tiles.propose(images, instructions, max_regions, context)
            return [SensingOutput([Region(r.box, "tile", r.rank) for r in t.regions], q.text, q.status)
                    for q, t in zip(real, tiled)]

    cfg = PipelineConfig(max_regions=k, thumbnail_short_side=args.crop_size, crop=ResizeCropConfig(args.crop_size))
    pipe = ActivePerception(GenerateThenTile(), task, cfg)
    stats = task.qwen.stats
    frames = _frames(args.frames)
    pipe(frames[0], "person", mode="parallel")  # warm-up (first-call allocations)

    per_mode: dict[str, dict[str, Any]] = {}
    for mode in ("parallel", "serial"):
        totals, gen_times, calls, gens = [], [], [], []
        for f in tqdm(frames, desc=mode, file=sys.stderr):
            g0, c0 = stats.generate_seconds, stats.generate_calls
            res = pipe(f, "person", mode=mode)
            totals.append(res.timings.total_s)
            gen_times.append(stats.generate_seconds - g0)
            calls.append(res.model_calls)
            gens.append(stats.generate_calls - c0)
        overhead = [(t - g) / t * 100 for t, g in zip(totals, gen_times)]
        per_mode[mode] = {
            "model_calls_per_frame": sorted(set(calls)),
            "generate_calls_per_frame": sorted(set(gens)),
            "frame_latency_s_median": statistics.median(totals),
            "frame_latency_s_all": totals,
            "generate_s_median": statistics.median(gen_times),
            "overhead_outside_generate_pct_median": statistics.median(overhead),
            "regions_per_frame": len(res.regions),
        }

    # batched K crops vs K separate task calls
    batched, separate = [], []
    for f in tqdm(frames, desc="batch-vs-separate", file=sys.stderr):
        h, w = f.shape[:2]
        tiles = TilingPolicy(rows=1, cols=k).propose([f], ["person"], k)[0].regions
        crops = [resize_crop(f, r.box, cfg.crop)[0] for r in tiles]
        t0 = time.perf_counter()
        task.detect(crops, ["person"] * k)
        batched.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for c in crops:
            task.detect([c], ["person"])
        separate.append(time.perf_counter() - t0)

    par, ser = per_mode["parallel"], per_mode["serial"]
    result = {
        "benchmark": "pipeline_calls",
        "question": "model calls, latency and overhead of parallel (paper) vs serial zoom, tiny Qwen2.5-VL on CPU",
        "command": "python benchmarks/pipeline_calls.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "model": "tiny random Qwen2.5-VL (text hidden 128, 2 layers; vision depth 2, hidden 64), built offline"
                 if not args.model else args.model,
        "sensing": GenerateThenTile.name,
        "sensing_note": "a real sensing generate on the thumbnail is run and timed; its (random) answer is "
                        f"replaced by 1x{k} tiling regions so K={k} crops reach the task model",
        "k": k, "frames": args.frames, "frame_sizes": sorted({f"{f.shape[1]}x{f.shape[0]}" for f in frames}),
        "crop_size": args.crop_size, "new_tokens_per_answer": args.new_tokens,
        "parallel": par, "serial": ser,
        "latency_ratio_serial_over_parallel": ser["frame_latency_s_median"] / par["frame_latency_s_median"],
        "task_batched_k_crops_s_median": statistics.median(batched),
        "task_k_separate_calls_s_median": statistics.median(separate),
        "batched_speedup": statistics.median(separate) / statistics.median(batched),
        "environment": {"torch": torch.__version__, "threads": args.threads, "cpu_count": os.cpu_count(),
                        "python": platform.python_version(), "machine": platform.machine(),
                        "device": "cpu", "note": "shared 2-core machine; absolute times are noisy"},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k_: result[k_] for k_ in ("latency_ratio_serial_over_parallel", "batched_speedup")}
                     | {"parallel_calls": par["model_calls_per_frame"], "serial_calls": ser["model_calls_per_frame"],
                        "parallel_latency_s": par["frame_latency_s_median"],
                        "serial_latency_s": ser["frame_latency_s_median"],
                        "parallel_overhead_pct": par["overhead_outside_generate_pct_median"],
                        "serial_overhead_pct": ser["overhead_outside_generate_pct_median"]}, indent=2))
    pipe.close()
    qwen_sensing.close()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
