"""Does TRL GRPO with our rewards actually move the policy?  A learning check that can fail.

Task: 112x112 frames with one bright target always in the top-left quadrant; reward =
format + non-overlap + area + coverage (``active_o3_training.rewards_trl``).  The rewarded
region (the top-left quadrant) is learnable; a policy that ignores it earns coverage 0.

Two policies, same GRPOTrainer, same rewards, same seed:

* ``cold``: the tiny random Qwen2.5-VL as built.  Its samples never parse, every reward in
  a group is equal, GRPO's group-relative advantage is 0 — no learning signal at all.
* ``warm``: the same tiny model after a few seconds of supervised warm-start on
  well-formatted answers naming one of the 4 quadrants uniformly at random (no preference
  for the right one: coverage ~0.25).  GRPO must raise coverage towards 1.

Writes ``benchmarks/results/grpo_learning_check.json``: mean reward of the first and last
``window`` steps, per-term means, steps/s, peak RSS.  Run::

    python benchmarks/grpo_learning_check.py --steps 30
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from active_o3_training.learning_check import make_dataset, warm_start

ROOT = Path(__file__).resolve().parents[1]
def run_grpo(policy: Path, dataset, steps: int, seed: int, out: Path, lr: float) -> dict:
    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import build_trainer

    cfg = load_config(None, [
        "data.kind=rosbag", "data.bag=unused", f"model.policy={policy}", "model.task_backend=none",
        "reward.signal=heuristic", "reward.max_regions=1", f"trainer.output_dir={out}", "trainer.device=cpu",
        "trainer.num_generations=8", "trainer.per_device_train_batch_size=8", f"trainer.max_steps={steps}",
        "trainer.max_completion_length=48", f"trainer.learning_rate={lr}", "trainer.save_steps=100000",
        f"trainer.seed={seed}", "trainer.report_to=none", "trainer.temperature=1.0",
    ])
    trainer, _, _ = build_trainer(cfg, dataset)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    rows = [r for r in trainer.csv_logger.rows if "reward" in r]
    return {"rows": rows, "wall_s": wall, "steps_per_s": len(rows) / wall}


def summarise(rows: list[dict], window: int) -> dict:
    def mean(rs, k):
        vals = [float(r[k]) for r in rs if k in r]
        return float(np.mean(vals)) if vals else float("nan")

    first, last = rows[:window], rows[-window:]
    terms = ["reward", "rewards/format/mean", "rewards/area/mean", "rewards/coverage/mean",
             "rewards/non_overlap/mean", "rewards/parse_failure/mean", "kl", "frac_reward_zero_std"]
    return {"first": {k: mean(first, k) for k in terms}, "last": {k: mean(last, k) for k in terms}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30, help="GRPO steps per policy")
    ap.add_argument("--warm-steps", type=int, default=120, help="supervised warm-start steps")
    ap.add_argument("--window", type=int, default=5, help="steps averaged at the start and the end")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grpo_learning_check.json"))
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    import torch

    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    result: dict = {"task": "target always in the top-left quadrant, K=1, heuristic reward (max 4)",
                    "steps": args.steps, "window": args.window, "lr": args.lr, "seed": args.seed,
                    "num_generations": 8, "device": "cpu", "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = build_tiny_qwen(tmp / "tiny")
        ds = make_dataset(16, args.seed, tmp / "data")
        if not args.skip_cold:
            cold = run_grpo(base, ds, min(args.steps, 2 * args.window), args.seed, tmp / "cold", args.lr)
            result["cold"] = {**summarise(cold["rows"], args.window), "steps_per_s": cold["steps_per_s"]}
        t = time.perf_counter()
        warm_dir = warm_start(base, tmp / "warm", ds, args.warm_steps, args.seed)
        result["warm_start_s"] = time.perf_counter() - t
        warm = run_grpo(warm_dir, ds, args.steps, args.seed, tmp / "warm_run", args.lr)
        result["warm"] = {**summarise(warm["rows"], args.window), "steps_per_s": warm["steps_per_s"],
                          "reward_per_step": [round(float(r["reward"]), 4) for r in warm["rows"]]}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    w = result["warm"]
    result["learned"] = bool(w["last"]["reward"] > w["first"]["reward"] + 0.3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "warm"} | {"warm_first": w["first"], "warm_last": w["last"],
                                                                         "warm_steps_per_s": w["steps_per_s"]}, indent=1))
    return 0 if result["learned"] else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
