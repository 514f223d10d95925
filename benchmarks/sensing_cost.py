"""Where the embedded sensing policy's time goes, at 720p, 1080p and 4K.

Question: of the shipped small policy's sensing stage (the node's ``sensing`` row in
``frame_profile``), how much is the thumbnail, the detector look, the stroke maps, the
per-anchor cue numbers and map channels, and the CNN over its mirror views; and what would a
cheaper look or fewer views save?

Each frame is a validation scene (set ``val``) drawn at the given resolution.  Every part is
the policy's own code, timed in one process, interleaved frame by frame so load hits all rows
alike; medians over frames.  ``CNN, torch max-pool`` is the network with the anchor maxima
computed by ``F.max_pool2d`` (the implementation before the shifted maxima), side by side with
the shipped one; both give the same logits (checked here on every frame).  Recall is not
measured here: the cheaper looks' recall is ``sensing_domains.py --compare-cue-sides``.

    python benchmarks/sensing_cost.py --help
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
from _common import RESULTS, SIZES, command, footer, load_average, machine, parse_sizes, val_scenes, write_outputs  # noqa: E402

PARTS = ["thumbnail", "detector look", "stroke maps", "cue numbers + map channels", "CNN input",
         "CNN, 4 mirror views", "CNN, 4 mirror views, torch max-pool", "CNN, 1 view",
         "sensing (propose, default)", "detector look at 768 px", "detector look at 640 px"]


def _ms(fn, reps: int = 1) -> tuple[float, Any]:
    """``(mean ms per call over reps, the last call's result)``."""
    t = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - t) / reps * 1000.0, out


def profile(size: tuple[int, int], frames: int, threads: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from active_o3_ros.backends import small_policy as sp
    from active_o3_ros.backends.cues import anchor_features, detector_map, stroke_maps
    from active_o3_ros.core.geometry import make_thumbnail

    torch.set_num_threads(threads)
    pol = sp.SmallSensingPolicy(num_threads=threads)
    net, cfg = pol.net, pol.net.cfg
    anchors = net.anchors.cpu().numpy().astype(np.float64)
    shifted = sp._window_max

    def pooled(fmap, kh, kw):
        return F.max_pool2d(fmap, (kh, kw), stride=1)

    per: dict[str, list[float]] = {p: [] for p in PARTS}

    def timed(part: str, fn, reps: int = 1) -> Any:
        ms, out = _ms(fn, reps)
        per[part].append(ms)
        return out

    for scene in val_scenes(size, frames):
        frame = scene.image
        short = pol.preferred_thumbnail_short_side
        img = timed("thumbnail", lambda: make_thumbnail(frame, short, None))[0]
        side = cfg.detector_side(img.shape)
        timed("detector look", lambda: detector_map(img, side, threads))
        timed("detector look at 768 px", lambda: detector_map(img, min(side, 768), threads))
        timed("detector look at 640 px", lambda: detector_map(img, min(side, 640), threads))
        timed("stroke maps", lambda: stroke_maps(img, cfg.cue_short_side))
        look = sp.cue_look(img, cfg, threads)
        timed("cue numbers + map channels", lambda: (
            anchor_features(look, anchors), look.thumbnail_channels(cfg.map_inputs, *cfg.thumbnail_size)))
        timed("CNN input", lambda: net.normalise(net.raw_input([img])))
        with torch.inference_mode():
            net.view_logits([img], ["text"], 4, threads, [look])  # warm
            ref = timed("CNN, 4 mirror views", lambda: net.view_logits([img], ["text"], 4, threads, [look]), 3)
            sp._window_max = pooled
            try:
                pooled_logits = timed("CNN, 4 mirror views, torch max-pool",
                                      lambda: net.view_logits([img], ["text"], 4, threads, [look]), 3)
            finally:
                sp._window_max = shifted
            if not torch.equal(pooled_logits, ref):
                raise AssertionError("the shifted maxima changed the policy's logits")
            timed("CNN, 1 view", lambda: net.view_logits([img], ["text"], 1, threads, [look]), 3)
        timed("sensing (propose, default)", lambda: pol.propose([img], ["text"], 3))
    return {"frames": frames, "median_ms": {p: round(float(np.median(v)), 1) for p, v in per.items()}}


def markdown(result: dict[str, Any]) -> str:
    sizes = list(result["sizes"])
    lines = ["# Where the sensing policy's time goes", "",
             "Median ms per frame. The CNN rows are the network given the look (`view_logits`): they include "
             "the CNN input, the cue numbers and map channels, and the mirroring; the sensing row is the whole "
             "stage (look, network, anchor choice). The looks at 768 / 640 px are timed for reference; their "
             "recall is `sensing_domains.py --compare-cue-sides`.", "",
             "| part (median ms) | " + " | ".join(sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for p in PARTS:
        lines.append(f"| {p} | " + " | ".join(f"{result['sizes'][s]['median_ms'][p]:.1f}" for s in sizes) + " |")
    lines += ["", footer(result)]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(result["sizes"])
    ms = {p: np.array([result["sizes"][s]["median_ms"][p] for s in sizes]) for p in PARTS}
    # the network row includes the cue numbers and map channels: stacked once, not twice
    stack = {"thumbnail": ms["thumbnail"], "detector look": ms["detector look"], "stroke maps": ms["stroke maps"],
             "cue numbers + map channels": ms["cue numbers + map channels"],
             "network, 4 mirror views (+ its input)": np.maximum(
                 ms["CNN, 4 mirror views"] - ms["cue numbers + map channels"], 0.0)}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bottom = np.zeros(len(sizes))
    for p, v in stack.items():
        ax.bar(sizes, v, bottom=bottom, label=p)
        bottom += v
    ax.plot(sizes, [result["sizes"][s]["median_ms"]["sensing (propose, default)"] for s in sizes], "k_",
            markersize=30, label="whole sensing stage")
    ax.set_ylabel("median ms per frame")
    ax.set_title("Sensing policy: where the time goes")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=12, help="validation scenes per resolution")
    p.add_argument("--sizes", default="720p,1080p,4K", help=f"comma-separated, from {sorted(SIZES)}")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--out", default=str(RESULTS / "sensing_cost"), help="output path without extension")
    args = p.parse_args(argv)
    sizes = parse_sizes(p, args.sizes)
    if args.frames < 1:
        p.error("--frames must be >= 1")
    from tqdm import tqdm

    load_before = load_average()
    result: dict[str, Any] = {"question": "where the sensing policy's time goes", "command": command("sensing_cost.py", argv),
                              "sizes": {}}
    for s in tqdm(sizes, desc="sizes"):
        result["sizes"][s] = profile(SIZES[s], args.frames, args.threads)
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
