"""Weight averaging ("model soup", Wortsman et al. 2022) of small sensing-policy weights.

WHY: several GRPO runs continued from the shipped weights (other scene counts, the task term,
a heuristic-only control) each moved recall on one validation set and lost it on the other.
Runs fine-tuned from one starting point stay in one basin of the loss, so the average of
their weights is itself a policy, often more robust out of domain than any single run, at
no inference cost: the soup has the same network and the same speed.

Every ingredient must have the same network config (anchors, channels, cue inputs): the
config is read from each file's header and compared; a mismatch is a clear error. The soup
is written with ``save_weights`` (config in the header, provenance naming each ingredient by
file name and sha256 with its mixing weight), plus a JSON card beside it.

Choose soups on validation only (``benchmarks/sensing_domains.py --compare-weights``).

CLI: ``python -m active_o3_training.soup --help``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def soup(paths: Sequence[str | Path], mix: Sequence[float] | None = None):
    """The weighted mean of the ingredients' tensors, as a ``SmallPolicyNet``.

    ``mix`` (default uniform) is normalised to sum to 1; every weight must be >= 0."""
    from active_o3_ros.backends.small_policy import load_weights

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"a soup needs at least 2 weights files, got {len(paths)}")
    mix = [1.0] * len(paths) if mix is None else [float(m) for m in mix]
    if len(mix) != len(paths):
        raise ValueError(f"{len(mix)} mixing weights for {len(paths)} weights files")
    if min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"mixing weights must be >= 0 with a positive sum, got {mix}")
    total = sum(mix)
    nets = [load_weights(p) for p in paths]  # each failure names its file
    def arch(net) -> str:  # the config without the seed of the (long overwritten) initialisation
        return replace(net.cfg, init_seed=0).to_json()

    ref = arch(nets[0])
    for p, net in zip(paths[1:], nets[1:]):
        if arch(net) != ref:
            raise ValueError(f"{p} has another network config than {paths[0]}; only weights of one "
                             "architecture (same anchors, channels and inputs) can be averaged")
    out = nets[0]
    states = [n.state_dict() for n in nets]
    with torch.no_grad():
        avg = {k: sum((m / total) * s[k].double() for m, s in zip(mix, states)).to(states[0][k].dtype)
               for k in states[0]}
    out.load_state_dict(avg, strict=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m active_o3_training.soup",
                                description="Average small sensing-policy weights of one architecture "
                                            "(a model soup) into a new weights file with its card.")
    p.add_argument("weights", nargs="+", help="safetensors files written by save_weights (2 or more)")
    p.add_argument("--out", required=True, help="the soup's .safetensors (a .json card is written beside it)")
    p.add_argument("--mix", default="", help="comma-separated mixing weights, one per file (default: uniform)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    args = p.parse_args(argv)
    from active_o3_ros.backends.small_policy import save_weights

    out = Path(args.out)
    if out.suffix != ".safetensors":
        print(f"error: --out must end in .safetensors, got {out}", file=sys.stderr)
        return 2
    if out.exists() and not args.force:
        print(f"error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    try:
        mix = [float(m) for m in args.mix.split(",")] if args.mix else None
        net = soup(args.weights, mix)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mix = mix or [1.0] * len(args.weights)
    ingredients = [{"file": str(w), "sha256": _sha256(Path(w)), "mix": m / sum(mix)}
                   for w, m in zip(args.weights, mix)]
    command = "python -m active_o3_training.soup " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    save_weights(net, out, provenance={"soup": ingredients, "reproduce": command})
    card = {"weights": out.name, "sha256": _sha256(out), "soup_of": ingredients,
            "parameters": sum(t.numel() for t in net.parameters()), "reproduce": command,
            "note": "uniform or weighted mean of the ingredients' tensors; no training step"}
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps(card, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
