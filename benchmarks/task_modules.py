"""Per-crop cost and batching speed-up of the SAM and Grounding DINO task modules.

Question: what does one zoomed crop cost each task module, and what does
running the K crops as ONE batched call (the paper's parallel mode) save over K calls?

For every module: ``detect`` on K crops in one call ("batched") vs K calls of one crop
("serial"), after a warm-up; median of ``--repeats`` runs.  Reported: ms per crop in each
mode and the speed-up serial/batched.  Modules:

* ``sam/segment_anything`` and ``sam/transformers``: the tiny random models of
  :mod:`active_o3_ros.testing.tiny_models` (256 px encoder) — measure our overhead;
* ``grounding_dino``: tiny random model;
* with ``--full-size``: the REAL architectures with random weights (cost does not depend
  on weight values): SAM ``vit_b`` from the package's registry (1024 px encoder) and
  Grounding DINO with its default config (Swin-T + BERT-base, the grounding-dino-tiny
  layout).  On one CPU core vit_b needs ~100 s per crop: use a GPU (``--device cuda``).

Writes ``benchmarks/results/task_modules.json`` (or ``--out``).  Usage::

    python benchmarks/task_modules.py [--k 3] [--repeats 3] [--crop 840] [--threads 1]
    python benchmarks/task_modules.py --full-size --device cuda --out benchmarks/results/task_modules_gpu.json
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
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_module(name: str, build: Callable[[], Any], crops: list[np.ndarray], instruction: str, repeats: int,
                device: str) -> dict[str, Any]:
    """Median ms of one batched call over the crops vs one call per crop."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    model = build()
    load_s = time.perf_counter() - t0
    k = len(crops)
    model.detect(crops, [instruction] * k)  # warm-up (allocations, kernels, lazy init)
    batched, serial = [], []
    for _ in tqdm(range(repeats), desc=name, leave=False):
        _sync(device)
        t = time.perf_counter()
        model.detect(crops, [instruction] * k)
        _sync(device)
        batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for c in crops:
            model.detect([c], [instruction])
        _sync(device)
        serial.append(time.perf_counter() - t)
    b, s = statistics.median(batched), statistics.median(serial)
    model.close()
    return {"module": name, "k": k, "load_s": round(load_s, 3),
            "batched_ms_per_call": round(1000 * b, 2), "batched_ms_per_crop": round(1000 * b / k, 2),
            "serial_ms_per_crop": round(1000 * s / k, 2), "batching_speedup": round(s / b, 3),
            "batched_runs_s": [round(x, 4) for x in batched], "serial_runs_s": [round(x, 4) for x in serial]}


def full_size_gdino_dir(out: Path) -> Path:
    """Default GroundingDinoConfig (Swin-T + BERT-base) with random weights, saved with the
    tiny processor (the tokenizer only changes token ids, not the cost)."""
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor

    from active_o3_ros.testing.tiny_models import build_tiny_grounding_dino

    tiny = build_tiny_grounding_dino(out / "tiny_for_processor")
    proc = GroundingDinoProcessor.from_pretrained(tiny)
    proc.image_processor.size = {"shortest_edge": 800, "longest_edge": 1333}
    GroundingDinoForObjectDetection(GroundingDinoConfig()).save_pretrained(out / "full")
    proc.save_pretrained(out / "full")
    return out / "full"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k", type=int, default=3, help="crops per frame (the paper's K)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per mode (median reported)")
    ap.add_argument("--crop", type=int, default=840, help="crop long side in pixels (ResizeCrop output_size)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--full-size", action="store_true", help="also time SAM vit_b and default-size Grounding DINO")
    ap.add_argument("--only-full-size", action="store_true", help="skip the tiny models")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "task_modules.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from active_o3_ros.backends.grounding_dino import GroundingDinoTask
    from active_o3_ros.backends.sam import SamTaskModel
    from active_o3_ros.testing.tiny_models import build_tiny_grounding_dino, build_tiny_hf_sam, save_tiny_segment_anything

    rng = np.random.default_rng(0)
    aspects = [(1.0, 0.75), (0.6, 1.0), (1.0, 1.0), (1.0, 0.5)]
    crops = [rng.integers(0, 255, (max(16, int(args.crop * a[1])), max(16, int(args.crop * a[0])), 3), dtype=np.uint8)
             for a in (aspects[i % 4] for i in range(args.k))]
    rows = []
    dev = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        if not args.only_full_size:
            sa = save_tiny_segment_anything(tmp_p / "sa.safetensors")
            hf = build_tiny_hf_sam(tmp_p / "sam_hf")
            gd = build_tiny_grounding_dino(tmp_p / "gd")
            rows.append(time_module("sam/segment_anything tiny", lambda: SamTaskModel(model=str(sa), device=dev),
                                    crops, "object", args.repeats, dev))
            rows.append(time_module("sam/transformers tiny", lambda: SamTaskModel(model=str(hf), device=dev),
                                    crops, "object", args.repeats, dev))
            rows.append(time_module("grounding_dino tiny", lambda: GroundingDinoTask(model=str(gd), device=dev),
                                    crops, "cat. remote control", args.repeats, dev))
        if args.full_size or args.only_full_size:
            rows.append(time_module("sam/segment_anything vit_b (random weights)",
                                    lambda: SamTaskModel(random_init=True, model_type="vit_b", device=dev),
                                    crops, "object", args.repeats, dev))
            gfull = full_size_gdino_dir(tmp_p / "gd_full")
            rows.append(time_module("grounding_dino swin-t/bert-base (random weights)",
                                    lambda: GroundingDinoTask(model=str(gfull), device=dev),
                                    crops, "cat. remote control", args.repeats, dev))
    result = {
        "question": "per-crop cost of each task module and speed-up of one batched call over K single-crop calls",
        "device": dev if dev == "cpu" else torch.cuda.get_device_name(0),
        "torch": torch.__version__, "threads": args.threads, "cpu": platform.processor() or platform.machine(),
        "crop_long_side": args.crop, "k": args.k, "repeats": args.repeats,
        "command": "python benchmarks/task_modules.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for r in rows:
        print(f"{r['module']:<50} batched {r['batched_ms_per_crop']:9.1f} ms/crop  serial {r['serial_ms_per_crop']:9.1f}"
              f" ms/crop  speed-up x{r['batching_speedup']:.2f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
