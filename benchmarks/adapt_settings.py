"""Choose the fine-tuning settings of ``active-o3-train policy`` on the validation segment.

Question: which learning rate / steps / KL weight gives the adapted policy the best greedy
reward on the validation segment (the last 15 % of the training part of the recording,
scored against the **teacher's** labels: no ground truth is read)?  Each variant is one run
of the real CLI on the recording and labels of ``benchmarks/adapt_robot.py`` (its detector
cache is reused, so a variant costs the bag pass and the GRPO steps).  The held-out segment
is never read here.

Writes ``<out>.json`` and ``.md``.  ``python benchmarks/adapt_settings.py --help``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, command, footer, load_average, machine, write_outputs  # noqa: E402

#: name -> extra ``--set`` overrides (the recipe's defaults are the first row)
VARIANTS: dict[str, list[str]] = {
    "recipe (lr 3e-4, 150 steps, beta 0.04)": [],
    "lr 1e-3, 150 steps": ["trainer.learning_rate=1e-3"],
    "lr 3e-4, 400 steps": ["trainer.max_steps=400"],
    "lr 1e-3, 400 steps": ["trainer.learning_rate=1e-3", "trainer.max_steps=400"],
    "lr 3e-4, 150 steps, beta 0.2": ["trainer.beta=0.2"],
}


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Fine-tuning settings, chosen on the validation segment (teacher labels)", "",
             "| variant | val coverage (start -> adapted) | val reward | train s |", "|---|---|---:|---:|"]
    for name, r in result["rows"].items():
        mark = " **(chosen)**" if name == result["chosen"] else ""
        lines.append(f"| {name}{mark} | {r['start_coverage']:.3f} -> {r['coverage']:.3f} | {r['reward']:.3f} | "
                     f"{r['train_s']} |")
    lines += ["", footer(result), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "adapt_robot")
    p.add_argument("--train-segment", type=float, default=0.7)
    p.add_argument("--only", default="", help="variant names separated by ';' (default: all)")
    p.add_argument("--out", default=str(RESULTS / "adapt_settings"))
    args = p.parse_args(argv)
    load = load_average()
    rows: dict[str, Any] = {}
    wanted = {n.strip() for n in args.only.split(";") if n.strip()}
    unknown = wanted - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    for i, name in enumerate(VARIANTS):
        if wanted and name not in wanted:
            continue
        out = args.work / "settings" / f"v{i}"  # numbered by VARIANTS, so a subset reuses earlier runs
        weights = out / "small_policy.json"
        if not weights.is_file():
            cmd = [str(Path(sys.executable).parent / "active-o3-train"), "policy", "--config",
                   "training/configs/policy_robot.yaml", "--set", f"data.bag={args.work / 'rec'}",
                   "--set", f"data.labels_bag={args.work / 'labels'}",
                   "--set", f"data.segment=[0.0,{args.train_segment}]", "--set", f"trainer.output_dir={out}"]
            for s in VARIANTS[name]:
                cmd += ["--set", s]
            print("$ " + shlex.join(cmd), flush=True)
            t = time.perf_counter()
            rc = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if rc != 0:
                raise SystemExit(f"variant {name!r} failed (exit {rc})")
            print(f"  {time.perf_counter() - t:.0f} s", flush=True)
        card = json.loads(weights.read_text())
        c = card["comparison_with_start_on_val"]
        rows[name] = {"overrides": VARIANTS[name], "coverage": c["adapted"]["coverage"],
                      "start_coverage": c["start"]["coverage"], "reward": c["adapted"]["reward"],
                      "val_frames": c["frames"], "train_s": card["seconds"]["train_s"]}
    chosen = max(rows, key=lambda n: (rows[n]["reward"], rows[n]["coverage"]))
    result = {"rows": rows, "chosen": chosen, "machine": machine(load), "command": command("adapt_settings.py", argv)}
    write_outputs(args.out, result, markdown)
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
