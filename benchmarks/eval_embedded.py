"""The paper's evaluation protocol on this repo's embedded benchmark.

Runs ``active-o3-eval`` on the held-out split of the synthetic small-text data (1080p-4K
frames, 8-24 px words), with the embedded default's task module (``text``: rapidocr) for
every method: full frame, 3x3 tiling, random K, oracle K, serial zoom, ACTIVE-o3 parallel and
parallel + full frame, at K = 1, 2, 3.  COCO AP/AR by size (pycocotools), model calls,
crops and ms per image.  The sensing policy is the shipped small policy; when its weights
are not in the package the policy methods are left out and the JSON says why.

Writes ``benchmarks/results/eval_embedded.json`` (the full report) and, in
``benchmarks/results/eval_embedded/``, ``eval.md`` and the plots (AP_s vs K, latency vs K,
recall by size, example frames).

    python benchmarks/eval_embedded.py [--images 4] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

ALL_METHODS = "full_frame,tiling,random,oracle,serial,parallel,parallel_full"
BASELINE_METHODS = "full_frame,tiling,random,oracle"


def policy_available(sensing: str) -> str:
    """'' when the sensing backend builds, else the reason it does not."""
    from active_o3_ros.backends.base import build_sensing

    try:
        build_sensing(sensing).close()
    except (ValueError, RuntimeError, OSError) as exc:
        # repo-relative: results files are committed and must not carry this machine's paths
        return f"{type(exc).__name__}: {exc}".replace(str(ROOT) + os.sep, "").replace(str(ROOT), ".")
    return ""


def weights_fingerprint(sensing: str) -> str:
    """sha256 of the shipped small-policy weights (the numbers belong to these weights)."""
    import hashlib

    if sensing != "small_policy":
        return ""
    path = ROOT / "active_o3_ros" / "data" / "small_policy.safetensors"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="active-o3-eval on the embedded small-text benchmark (all methods, K=1..3).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--images", type=int, default=4, help="held-out synthetic frames")
    p.add_argument("--ks", default="1,2,3", help="region budgets K")
    p.add_argument("--frame-size", default="", help="WxH for all frames (default: the benchmark's 1080p-4K mix)")
    p.add_argument("--sensing", default="small_policy", help="sensing policy for the serial/parallel methods")
    p.add_argument("--crop-size", type=int, default=840, help="task crop long side")
    p.add_argument("--quick", action="store_true", help="2 frames at 1920x1080, K=1,3")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "eval_embedded.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.ks, args.frame_size = 2, "1,3", args.frame_size or "1920x1080"

    from active_o3_training.evaluate import main as eval_main

    out_json = Path(args.out)
    art_dir = out_json.with_suffix("")  # results/eval_embedded/
    sha_before = weights_fingerprint(args.sensing)  # before the policy is loaded: provenance
    why = policy_available(args.sensing)
    methods = BASELINE_METHODS if why else ALL_METHODS
    if why:
        print(f"[eval_embedded] sensing {args.sensing!r} unavailable ({why}); policy methods left out", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="eval_embedded_") as tmp:
        cmd = ["--synthetic", str(args.images), "--task", "text", "--sensing", args.sensing, "--methods", methods,
               "--ks", args.ks, "--set", f"crop_size={args.crop_size}", "--examples", "1", "--out", tmp]
        if args.frame_size:
            cmd += ["--synthetic-size", args.frame_size]
        rc = eval_main(cmd)
        if rc != 0:
            return rc
        report = json.loads((Path(tmp) / "eval.json").read_text())
        if art_dir.exists():
            shutil.rmtree(art_dir)
        art_dir.mkdir(parents=True)
        for f in Path(tmp).iterdir():
            if f.suffix in (".png", ".md"):
                shutil.copy2(f, art_dir / f.name)
    report["benchmark"] = "eval_embedded"
    report["command"] = "python benchmarks/eval_embedded.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report["eval_command"] = "active-o3-eval " + " ".join(c if not c.startswith("/") else "OUT" for c in cmd)
    report["policy_methods_skipped"] = why
    report["policy_weights_sha256"] = sha_before if not why else ""
    if not why and weights_fingerprint(args.sensing) != sha_before:
        report["policy_weights_warning"] = "the weights file changed during the run; numbers are for sha_before"
    report["outputs"] = {f.name: (str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f))
                         for f in sorted(art_dir.resolve().iterdir())}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"[eval_embedded] wrote {out_json} and {art_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
