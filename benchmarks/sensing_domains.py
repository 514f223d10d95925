"""Where to zoom, in scenes the policy was not trained on: in-domain vs held-out-domain.

Question: with the SAME text detector (rapidocr, the ``text`` task module) on every row,
how do recall@0.5 (95 % bootstrap interval over images), precision, AP50, false
detections on text-free frames and seconds per frame compare between

* the full frame (downscaled to the task input), uniform 3x3 tiling, 3 random regions,
* the non-learned coarse-pass cascade (the detector on the frame at 720 / 1080 px short
  side, oracle-style regions around its hits),
* the previous small-policy weights at K=3 and the shipped ones at K=1/2/3,
* the best 3 of the policy's anchors given the ground truth, and oracle regions?

Sets (:data:`active_o3_training.data.scenes.FROZEN_SETS`): ``test_in`` (training families)
and ``test_held_out`` (background, font and layout families no training frame used).  They
are frozen: looked at once per release.  Choose settings with ``--sets val``.

Every row is built the way the node builds it (``PerceptionConfig.from_flat`` ->
``build_pipeline``).  Writes ``<out>.json``, ``.md`` and ``.png``.

    python benchmarks/sensing_domains.py --help
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    FRAME_SIZE_NAMES, RESULTS, ROOT, command, footer, load_average,
    machine, ratios_line, recall_cell, recall_scatter, scenes_at, size_name, write_outputs,
)

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS  # noqa: E402
from active_o3_ros.core.config import ConfigError, PerceptionConfig  # noqa: E402
from active_o3_ros.core.geometry import crop_window  # noqa: E402
from active_o3_ros.core.metrics import ImageAnnotations, coco_evaluate, greedy_match  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

#: The weights shipped before the domain-family retraining (kept for the side-by-side row).
PREVIOUS_WEIGHTS = ROOT / "training" / "results" / "small_policy_v1" / "small_policy.safetensors"


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(threads: int, previous: Path | None, policy: str = "", policy_label: str = "policy",
         previous_label: str = "previous weights", compare_views: tuple[int, ...] = (),
         compare_fits: tuple[tuple[str, float, float], ...] = (),
         compare_cue_sides: tuple[tuple[int, float], ...] = (),
         compare_weights: tuple[tuple[str, str], ...] = (),
         compare_sensing: tuple[tuple[str, dict[str, Any]], ...] = (),
         compare_config: tuple[tuple[str, dict[str, Any]], ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    task = {"task_module": "text", "task_options": {"threads": threads}, "crop_size": 840}
    out: list[tuple[str, dict[str, Any]]] = [
        ("full frame", {**task, "mode": "full_frame"}),
        ("tiling 3x3", {**task, "sensing_backend": "tiling", "crop_size": 1280, "crop_context": 1.0}),
        ("random K=3", {**task, "sensing_backend": "random", "max_regions": 3, "sensing_options": {"seed": 0}}),
        ("cascade 720 K=3", {**task, "sensing_backend": "cascade", "max_regions": 3,
                             "sensing_options": {"coarse_short_side": 720, "threads": threads}}),
        ("cascade 1080 K=3", {**task, "sensing_backend": "cascade", "max_regions": 3,
                              "sensing_options": {"coarse_short_side": 1080, "threads": threads}}),
    ]
    if previous is not None:
        # as those weights shipped: no sharp look at the candidates (verify_top came later)
        out.append((f"{previous_label} K=3", {**task, "sensing_backend": "small_policy",
                                             "sensing_model": str(previous), "max_regions": 3,
                                             "sensing_options": {"verify_top": 0}}))
    for k in (1, 2, 3):
        out.append((f"{policy_label} K={k}", {**task, "sensing_backend": "small_policy", "sensing_model": policy,
                                              "max_regions": k, "sensing_options": {"num_threads": threads}}))
    for v in compare_views:  # the policy's test-time mirror views, side by side (choose on val)
        out.append((f"{policy_label} K=3, {v} mirror view{'s' if v > 1 else ''}", {
            **task, "sensing_backend": "small_policy", "sensing_model": policy, "max_regions": 3,
            "sensing_options": {"num_threads": threads, "mirror_views": v}}))
    for mode, grow, min_scale in compare_fits:  # regions fitted to the cue look's hits (choose on val)
        # shift: GROW is the largest slide (fraction of the region's size); MIN_SCALE unused
        label = f"shift fit s{grow:g}" if mode == "shift" else f"{mode} fit g{grow:g} m{min_scale:g}"
        fit = ({"fit_shift": grow} if mode == "shift" else {"fit_grow": grow, "fit_min_scale": min_scale})
        out.append((f"{policy_label} K=3, {label}", {
            **task, "sensing_backend": "small_policy", "sensing_model": policy, "max_regions": 3,
            "sensing_options": {"num_threads": threads, "fit_regions": True, "fit_mode": mode, **fit}}))
    for label, path in compare_weights:  # other weights side by side (choose on val)
        out.append((f"{label} K=3", {**task, "sensing_backend": "small_policy", "sensing_model": path, "max_regions": 3,
                                     "sensing_options": {"num_threads": threads}}))
    for side, fraction in compare_cue_sides:  # a cheaper or sharper cue look (choose on val)
        label = f"cue look <= {side} px" + (f" at {fraction:g} of the cue image" if fraction else "")
        out.append((f"{policy_label} K=3, {label}", {
            **task, "sensing_backend": "small_policy", "sensing_model": policy, "max_regions": 3,
            "sensing_options": {"num_threads": threads, "cue_long_side": side,
                                **({"cue_fraction": fraction} if fraction else {})}}))
    for label, options in compare_sensing:  # any other small-policy options (choose on val)
        out.append((f"{policy_label} K=3, {label}", {
            **task, "sensing_backend": "small_policy", "sensing_model": policy, "max_regions": 3,
            "sensing_options": {"num_threads": threads, **options}}))
    for label, flat in compare_config:  # other node parameters, e.g. the merge (choose on val)
        options = {"num_threads": threads, **flat.get("sensing_options", {})}
        out.append((f"{policy_label} K=3, {label}", {
            **task, "sensing_backend": "small_policy", "sensing_model": policy, "max_regions": 3,
            **flat, "sensing_options": options}))
    out.append(("anchor oracle K=3", {**task, "sensing_backend": "oracle_anchors", "max_regions": 3}))
    out.append(("oracle K=3", {**task, "sensing_backend": "oracle", "max_regions": 3}))
    return out


def bootstrap(tp: np.ndarray, n: np.ndarray, reps: int = 2000, seed: int = 0) -> list[float]:
    """95 % percentile interval of ``sum(tp) / sum(n)`` over images resampled with replacement."""
    if n.sum() == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(tp), size=(reps, len(tp)))
    ratios = tp[idx].sum(1) / np.maximum(n[idx].sum(1), 1)
    return [round(float(v), 4) for v in np.percentile(ratios, [2.5, 97.5])]


def run_row(pipe, frames, name: str) -> dict[str, Any]:
    from tqdm import tqdm

    per = []
    gts, preds = [], []
    sizes: dict[str, list[float]] = {}  # frame size -> [frames, words, found, words inside a crop window]
    for i, f in enumerate(tqdm(frames, desc=name, unit="frame", leave=False)):
        t0 = time.perf_counter()
        res = pipe(f.image, "text", context={"gt_boxes": f.boxes})
        secs = time.perf_counter() - t0
        boxes = [d.box for d in res.detections]
        scores = [d.score for d in res.detections]
        tp, n_pred, n_gt = greedy_match(boxes, scores, f.boxes, 0.5)
        fh, fw = f.image.shape[:2]
        wins = [crop_window(r.box, fw, fh, pipe.config.crop) for r in res.regions]
        inside = sum(1 for g in f.boxes if any(w.contains(g, 1.0) for w in wins))
        acc = sizes.setdefault(size_name(fw, fh), [0, 0, 0, 0, 0.0, 0.0])
        for j, v in enumerate((1, n_gt, tp, inside, secs, res.timings.sensing_s)):
            acc[j] += v
        cost = res.extra.get("task_cost", {})
        per.append((tp, n_pred, n_gt, secs, res.timings.sensing_s, res.model_calls, cost.get("engine_s", 0.0),
                    cost.get("det_megapixels", 0.0)))
        h, w = f.image.shape[:2]
        gts.append(ImageAnnotations(i + 1, w, h, list(f.boxes), ["text"] * len(f.boxes)))
        preds.append(ImageAnnotations(i + 1, w, h, boxes, ["text"] * len(boxes), scores))
    a = np.array(per, dtype=np.float64)
    tp, n_pred, n_gt, secs = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    text_free = n_gt == 0
    coco = coco_evaluate(gts, preds, iou_thresholds=[0.5], max_dets=300, class_agnostic=True)
    recall = tp.sum() / max(1.0, n_gt.sum())
    s_frame = float(secs.mean())
    return {
        "recall@0.5": round(float(recall), 4), "recall_ci95": bootstrap(tp, n_gt),
        "precision@0.5": round(float(tp.sum() / n_pred.sum()), 4) if n_pred.sum() else 1.0,
        "precision_ci95": bootstrap(tp, n_pred, seed=1),
        "AP50": round(max(coco["AP50"], 0.0), 4),
        "true_positives": int(tp.sum()), "detections": int(n_pred.sum()), "ground_truth": int(n_gt.sum()),
        "text_free_frames": int(text_free.sum()),
        "false_detections_per_text_free_frame": round(float(n_pred[text_free].mean()), 3) if text_free.any() else None,
        "seconds_per_frame": round(s_frame, 3), "sensing_seconds_per_frame": round(float(a[:, 4].mean()), 4),
        "model_calls_per_frame": round(float(a[:, 5].mean()), 2),
        "detector_seconds_per_frame": round(float(a[:, 6].mean()), 3),
        "detector_megapixels_per_frame": round(float(a[:, 7].mean()), 3),
        "recall_per_second": round(float(recall) / s_frame, 4) if s_frame > 0 else None,
        # where words are lost, by frame size: recall, and the share of words inside a crop window
        # the regions cut (a word outside every window was lost by the choice, not the detector)
        "by_frame_size": {k: {"frames": int(a[0]), "words": int(a[1]),
                              "recall@0.5": round(a[2] / a[1], 4) if a[1] else None,
                              "in_crop_windows": round(a[3] / a[1], 4) if a[1] and mode_crops(pipe) else None,
                              "seconds_per_frame": round(a[4] / a[0], 3),
                              "sensing_seconds_per_frame": round(a[5] / a[0], 4)}
                          for k, a in sorted(sizes.items(), key=lambda kv: size_order(kv[0]))},
    }


SIZE_ORDER = {name: i for i, name in enumerate(FRAME_SIZE_NAMES.values())}


def size_order(name: str) -> tuple[int, int]:
    """The generator's sizes first (720p ... 4K), then ``WxH`` ones by pixel count."""
    if name in SIZE_ORDER:
        return 0, SIZE_ORDER[name]
    w, _, h = name.partition("x")
    return 1, int(w) * int(h) if w.isdigit() and h.isdigit() else 0


def mode_crops(pipe) -> bool:
    """Whether the row zooms regions (the full-frame row cuts no crop window, and a row that
    is not a pipeline, e.g. SAHI's slicing in ``cost_curve.py``, has no regions)."""
    config = getattr(pipe, "config", None)
    return config is not None and config.mode != "full_frame"


def ratios(r: dict[str, dict[str, Any]], policy_label: str = "policy") -> dict[str, float | None]:
    """The goals of the sensing issue, measured in this run."""
    def g(name, key="recall@0.5"):
        return r.get(name, {}).get(key)

    pol, orc, rnd = g(f"{policy_label} K=3"), g("oracle K=3"), g("random K=3")
    out = {"policy_over_oracle": pol / orc if pol is not None and orc else None,
           "policy_over_random": pol / rnd if pol is not None and rnd else None,
           "policy_over_anchor_oracle": pol / g("anchor oracle K=3") if pol is not None and g("anchor oracle K=3") else None}
    for c in ("cascade 720 K=3", "cascade 1080 K=3"):
        a, b = g(f"{policy_label} K=3", "recall_per_second"), g(c, "recall_per_second")
        out[f"recall_per_second_over_{c.split(' K')[0].replace(' ', '_')}"] = a / b if a is not None and b else None
    return {k: (round(v, 3) if v is not None else None) for k, v in out.items()}


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for set_name, s in result["sets"].items():
        drawn = s.get("frame_sizes", "the generator's")
        at = "" if isinstance(drawn, str) else (" each drawn at " if s.get("every_size") else " drawn at ") + \
            ", ".join(f"{w}x{h}" for w, h in drawn)
        lines += [f"### {set_name}: {s['frames']} frames ({s['text_free_frames']} text-free), {s['ground_truth']} words, "
                  f"seeds {s['seeds'][0]}..{s['seeds'][-1]}{at}", "",
                  "| row | recall@0.5 [95% CI] | precision | AP50 | false dets / text-free frame | s/frame | recall/s |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in s["rows"].items():
            fd = r["false_detections_per_text_free_frame"]
            lines.append(f"| {name} | {recall_cell(r)} | {r['precision@0.5']:.3f} | "
                         f"{r['AP50']:.3f} | {'' if fd is None else f'{fd:.2f}'} | {r['seconds_per_frame']:.2f} | "
                         f"{r['recall_per_second']:.3f} |")
        lines += ["", ratios_line(s["ratios"]), ""]
        sizes = sorted({k for r in s["rows"].values() for k in r.get("by_frame_size", {})}, key=size_order)
        if sizes:
            lines += ["By frame size: recall@0.5 (share of the words inside a crop window the regions cut; "
                      "the rest were lost by the choice of regions)", "",
                      "| row | " + " | ".join(f"{k} ({next(r['by_frame_size'][k]['words'] for r in s['rows'].values() if k in r.get('by_frame_size', {}))} words)" for k in sizes) + " |",
                      "|---|" + "---:|" * len(sizes)]
            for name, r in s["rows"].items():
                cells = []
                for k in sizes:
                    b = r.get("by_frame_size", {}).get(k)
                    cells.append("" if not b or b["recall@0.5"] is None else
                                 f"{b['recall@0.5']:.3f}" + ("" if b["in_crop_windows"] is None else f" ({b['in_crop_windows']:.3f})"))
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
            lines.append("")
            if all("sensing_seconds_per_frame" in b for r in s["rows"].values() for b in r.get("by_frame_size", {}).values()):
                lines += ["By frame size: seconds per frame (of which sensing)", "",
                          "| row | " + " | ".join(sizes) + " |", "|---|" + "---:|" * len(sizes)]
                for name, r in s["rows"].items():
                    bs = [r.get("by_frame_size", {}).get(k) for k in sizes]
                    lines.append(f"| {name} | " + " | ".join(
                        "" if not b else f"{b['seconds_per_frame']:.2f} ({b['sensing_seconds_per_frame']:.2f})" for b in bs) + " |")
                lines.append("")
    lines += [footer(result)]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(result["sets"].items())
    fig, axes = plt.subplots(1, len(sets), figsize=(6.5 * len(sets), 4.8), squeeze=False)
    for ax, (set_name, s) in zip(axes[0], sets):
        recall_scatter(ax, s["rows"], "seconds_per_frame", "seconds per frame (2 CPU cores)", set_name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_compare(p: argparse.ArgumentParser, sensing_specs: list[str], config_specs: list[str]
                  ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[str, dict[str, Any]]]]:
    """``--compare-sensing`` and ``--compare-config`` LABEL=JSON entries, checked (exit 2 with a message)."""
    sensing: list[tuple[str, dict[str, Any]]] = []
    configs: list[tuple[str, dict[str, Any]]] = []
    for spec in config_specs:
        label, _, text = spec.partition("=")
        try:
            flat = json.loads(text)
            if not label.strip() or not isinstance(flat, dict) or not isinstance(flat.get("sensing_options", {}), dict):
                raise ValueError
            PerceptionConfig.from_flat({k: v for k, v in flat.items() if k != "sensing_options"})
        except (ValueError, ConfigError) as exc:
            p.error(f"--compare-config takes LABEL=JSON with a JSON object of node parameters, got {spec!r} ({exc})")
        configs.append((label.strip(), flat))
    for spec in sensing_specs:
        label, _, text = spec.partition("=")
        try:
            options = json.loads(text)
            if not label.strip() or not isinstance(options, dict):
                raise ValueError
        except ValueError:
            p.error(f"--compare-sensing takes LABEL=JSON with a JSON object, got {spec!r}")
        sensing.append((label.strip(), options))
    return sensing, configs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="test_in,test_held_out",
                   help="comma-separated frozen sets (val = where settings are chosen)")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--rows", default="", help="comma-separated substrings; run only matching rows")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--previous", default=str(PREVIOUS_WEIGHTS), help="previous weights for the side-by-side row")
    p.add_argument("--previous-label", default="previous weights", help="row name of --previous")
    p.add_argument("--policy", default="", help="small-policy weights of the K=1/2/3 rows ('' = the shipped ones)")
    p.add_argument("--policy-label", default="policy", help="row name of --policy")
    p.add_argument("--compare-views", default="",
                   help="comma-separated mirror-view counts (1,2,4): extra policy K=3 rows, one per count")
    p.add_argument("--compare-fits", default="",
                   help="comma-separated MODE/GROW/MIN_SCALE (MODE hull, union or shift; e.g. hull/1/0,union/1.5/0,"
                        "shift/0.5/0, where shift's GROW is its largest slide as a fraction of the region): "
                        "extra policy K=3 rows whose regions are fitted to the cue look's detector hits")
    p.add_argument("--compare-cue-sides", default="",
                   help="comma-separated SIDE or SIDE:FRACTION (e.g. 960,640,1920:1.0): extra policy K=3 "
                        "rows, one per entry. SIDE caps the long side (px) of the policy's detector look; "
                        "the look is also at most FRACTION of the cue image's long side (default the "
                        "weights' own cue_detector_fraction, 0.5 for the shipped ones, whose cue image is "
                        "1080 px tall: so without a FRACTION, sides above 960 change nothing)")
    p.add_argument("--compare-weights", default="",
                   help="comma-separated LABEL=WEIGHTS: extra K=3 rows, one per weights file (e.g. training stages)")
    p.add_argument("--compare-sensing", action="append", default=[], metavar="LABEL=JSON",
                   help="an extra policy K=3 row with these small-policy options, e.g. "
                        "'squashed={\"letterbox\": false}' (repeatable)")
    p.add_argument("--compare-config", action="append", default=[], metavar="LABEL=JSON",
                   help="an extra policy K=3 row with these node parameters (flat, as in config/perceive.yaml; "
                        "a sensing_options object is merged into the row's), e.g. "
                        "'plain NMS={\"merge_cut_margin\": 0}' (repeatable)")
    p.add_argument("--frame-sizes", default="",
                   help="comma-separated WxH (e.g. 1280x960,4032x3024): draw each validation set's scenes "
                        "(same seeds and families) at these frame sizes instead of the generator's 16:9 ones; "
                        "validation sets only")
    p.add_argument("--every-size", action="store_true",
                   help="with --frame-sizes: draw every scene once at every size (N sizes: N times the "
                        "frames), so the by-size table compares sizes on the same seeds")
    p.add_argument("--out", default=str(RESULTS / "sensing_domains"), help="output path without extension")
    args = p.parse_args(argv)
    try:
        views = tuple(int(v) for v in args.compare_views.split(",") if v.strip())
    except ValueError:
        p.error(f"--compare-views takes whole numbers, got {args.compare_views!r}")
    try:
        # SIDE alone keeps the weights' own fraction (0.0 below); a FRACTION written out must be in (0, 1]
        cue_sides = tuple((int(v.split(":")[0]), float(v.split(":")[1]) if ":" in v else 0.0)
                          for v in args.compare_cue_sides.split(",") if v.strip())
        written = [v for v in args.compare_cue_sides.split(",") if ":" in v]
        if any(side < 64 for side, _ in cue_sides) or any(not 0.0 < float(v.split(":")[1]) <= 1.0 for v in written):
            raise ValueError
    except (ValueError, IndexError):
        p.error(f"--compare-cue-sides takes SIDE or SIDE:FRACTION entries (SIDE >= 64 px, FRACTION in (0, 1]), "
                f"got {args.compare_cue_sides!r}")
    try:
        fits = tuple((m, float(g), float(s)) for m, g, s in (f.split("/") for f in args.compare_fits.split(",") if f.strip()))
        if any(m not in ("hull", "union", "shift") for m, _, _ in fits):
            raise ValueError
    except ValueError:
        p.error(f"--compare-fits takes MODE/GROW/MIN_SCALE triples (MODE hull, union or shift), got {args.compare_fits!r}")
    weights = tuple(tuple(w.split("=", 1)) for w in args.compare_weights.split(",") if w.strip())
    if any(len(w) != 2 or not Path(w[1]).is_file() for w in weights):
        p.error(f"--compare-weights takes LABEL=WEIGHTS pairs of existing files, got {args.compare_weights!r}")
    sensing, configs = parse_compare(p, args.compare_sensing, args.compare_config)
    try:
        frame_sizes = tuple(tuple(int(v) for v in s.lower().split("x")) for s in args.frame_sizes.split(",") if s.strip())
        if any(len(fs) != 2 or min(fs) < 64 for fs in frame_sizes):
            raise ValueError
    except ValueError:
        p.error(f"--frame-sizes takes WxH entries of at least 64 px, got {args.frame_sizes!r}")
    if args.every_size and not frame_sizes:
        p.error("--every-size needs --frame-sizes")
    from tqdm import tqdm

    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in set_names:
        if s not in scenes.FROZEN_SETS:
            p.error(f"unknown set {s!r}; choose from {sorted(scenes.FROZEN_SETS)}")
        if frame_sizes and not s.startswith("val"):
            p.error(f"--frame-sizes draws validation sets only (the test sets stay as frozen), not {s!r}")
    previous = Path(args.previous).resolve() if args.previous and Path(args.previous).is_file() else None
    selected = [s.strip().lower() for s in args.rows.split(",") if s.strip()]
    todo = [(n, f) for n, f in rows(args.threads, previous, args.policy, args.policy_label, args.previous_label, views,
                                    fits, cue_sides, weights, tuple(sensing), tuple(configs))
            if not selected or any(s in n.lower() for s in selected)]
    load_before = load_average()
    result: dict[str, Any] = {
        "question": "recall vs cost of zoom-region sources for small text, in-domain vs held-out families",
        "command": command("sensing_domains.py", argv),
        "held_out_families": scenes.HELD_OUT, "fonts_found": scenes.available_font_families(),
        "previous_weights": str(previous.relative_to(ROOT)) if previous else None,
        "weights_sha256": {label: _sha256(Path(w) if w else BUNDLED_WEIGHTS) for label, w in
                           ((args.policy_label, args.policy), (args.previous_label, str(previous or "")), *weights)
                           if w or label == args.policy_label},
        "sets": {},
    }
    for set_name in set_names:
        drawn = scenes_at(set_name, frame_sizes, args.frames or None, args.every_size) if frame_sizes else \
            scenes.iter_set(set_name, args.frames or None)
        frames = list(tqdm(drawn, desc=set_name, unit="frame"))
        s = {"frames": len(frames), "seeds": [f.seed for f in frames],
             "frame_sizes": [list(fs) for fs in frame_sizes] or "the generator's", "every_size": args.every_size,
             "text_free_frames": sum(1 for f in frames if not f.boxes),
             "ground_truth": sum(len(f.boxes) for f in frames), "rows": {}}
        for name, flat in todo:
            cfg = PerceptionConfig.from_flat(flat)
            pipe = build_pipeline(cfg)
            pipe(frames[0].image[:64, :64].copy(), "text")  # warm-up: engine and policy load
            shown = json.loads(json.dumps(flat).replace(str(ROOT) + os.sep, ""))  # no machine paths in results
            s["rows"][name] = {**run_row(pipe, frames, f"{set_name}: {name}"), "config": shown}
            pipe.close()
            r = s["rows"][name]
            print(f"{set_name:14s} {name:22s} recall {r['recall@0.5']:.3f} {r['recall_ci95']} prec "
                  f"{r['precision@0.5']:.3f} AP50 {r['AP50']:.3f} s/frame {r['seconds_per_frame']:.2f}", flush=True)
        s["ratios"] = ratios(s["rows"], args.policy_label)
        result["sets"][set_name] = s
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
