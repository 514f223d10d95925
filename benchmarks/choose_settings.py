"""Choose the node's speed settings and the adaptive budget K on VALIDATION frames only.

Question: which cheaper task settings keep recall, and which adaptive-K threshold keeps
recall within 0.01 of fixed K=3 at the lowest time?  The frozen test sets are never read
here; ``benchmarks/cost_curve.py`` then reports the chosen settings on them once.

1. The policy's K=3 proposals are computed once per frame (they do not depend on the task
   settings).
2. Task variants (``crop_size`` x the detector's ``det_limit_side_len`` x fp32 or int8 detector) run on those
   regions: recall@0.5, precision, detector seconds and megapixels per frame.  Chosen: the
   fastest variant whose recall is within ``--recall-slack`` (0.02) of the current defaults.
3. Adaptive K on the chosen variant: each crop's detections and engine time are kept, so the
   recall and time of "keep regions while the policy's probability >= t" are computed for
   every threshold t without running the detector again.  Chosen: the threshold with the
   lowest mean task time whose recall is within ``--k-slack`` (0.01) of fixed K=3.  Also
   the ceiling of ANY adaptive rule on these frames (:func:`adaptive_ceiling`: an oracle
   choosing each frame's cheapest subset of regions within the same slack).
4. The recogniser-confidence floor (the text module's ``text_score``) on the same kept
   detections at fixed K=3: recall, precision and false detections per text-free frame of
   every floor.  Chosen on the in-domain sets (``val``, ``synthetic_val``; ``val_held_out``
   is only reported): the highest floor whose recall is within ``--score-slack`` (0.005) of
   the lowest floor's.

Writes ``<out>.json`` and ``.md``.

    python benchmarks/choose_settings.py --help
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
from _common import FRAME_SIZE_NAMES, RESULTS, command, footer, load_average, machine, size_name, write_outputs  # noqa: E402

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.backends.small_policy import adaptive_budget  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.core.metrics import greedy_match  # noqa: E402
from active_o3_ros.core.pipeline import task_cost  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

#: Task variants: (crop_size, det_limit_side_len, det_precision).  The first is today's node default.
VARIANTS = [(840, 736, "fp32"), (840, 480, "fp32"), (640, 480, "fp32"), (840, 736, "int8"), (840, 480, "int8"),
            (736, 480, "int8")]
THRESHOLDS = [0.0, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2]
VAL_SETS = ("val", "val_held_out", "synthetic_val")
#: Recogniser-confidence floors swept (rapidocr's own default is 0.5: nothing lower is returned).
SCORE_FLOORS = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96]
#: Sets the score floor is chosen on (held-out families are reported, never used to choose).
SCORE_CHOICE_SETS = ("val", "synthetic_val")
#: Frames of ``synthetic_val`` (the validation split of ``training/data/synthetic.py``, the
#: generator of the demo recording) when ``--frames`` is 0.
SYNTHETIC_VAL_FRAMES = 24


def load_set(name: str, n: int | None) -> list[Any]:
    """Validation frames (objects with ``image``, ``boxes`` and ``set``)."""
    from types import SimpleNamespace

    from tqdm import tqdm

    if name == "synthetic_val":
        from active_o3_training.data import synthetic as syn

        seeds = [syn.split_seed("val", i) for i in range(n or SYNTHETIC_VAL_FRAMES)]
        out = []
        for seed in tqdm(seeds, desc=name, unit="frame"):
            f = syn.render_frame(seed)
            out.append(SimpleNamespace(image=f.image, boxes=f.boxes, seed=seed, set=name))
        return out
    return [SimpleNamespace(image=f.image, boxes=f.boxes, seed=f.seed, set=name)
            for f in tqdm(scenes.iter_set(name, n), desc=name, unit="frame")]


def flat_config(crop_size: int, det_limit: int, precision: str, threads: int, k: int = 3,
                **sensing: Any) -> dict[str, Any]:
    """The node's defaults (``config/perceive.yaml``) with one task variant, and the lowest
    recogniser-confidence floor (the sweep raises it on the kept detections)."""
    return {"task_module": "text", "task_options": {"threads": threads, "det_limit_side_len": det_limit,
                                                    "det_precision": precision, "text_score": SCORE_FLOORS[0]},
            "crop_size": crop_size, "crop_context": 1.3, "max_zoom": 3.0, "sensing_backend": "small_policy",
            "max_regions": k, "sensing_options": {"num_threads": threads, **sensing}}


def run_variant(pipe, frames, proposals, name: str) -> dict[str, Any]:
    """Per frame: the regions' detections kept per crop (for the adaptive-K sweep) and totals."""
    from tqdm import tqdm

    per = []
    for f, prop in zip(tqdm(frames, desc=name, unit="frame", leave=False), proposals):
        t0 = time.perf_counter()
        each = pipe.detect_each(f.image, prop.regions, "text")
        secs = time.perf_counter() - t0
        crops = []
        for ri in range(len(prop.regions)):
            idx = [j for j, r in enumerate(each.crop_region_index) if r == ri]
            cost = task_cost([each.outputs[j] for j in idx])
            crops.append({"engine_s": cost.get("engine_s", 0.0), "det_megapixels": cost.get("det_megapixels", 0.0)})
        dets = pipe.merge(each)
        tp, n_pred, n_gt = greedy_match([d.box for d in dets], [d.score for d in dets], f.boxes, 0.5)
        per.append({"tp": tp, "n_pred": n_pred, "n_gt": n_gt, "task_s": secs, "each": each, "crops": crops, "set": f.set,
                    "probs": [r.score for r in prop.regions], "sensing_s": prop.sensing_s})
    return summarise(per)


def summarise(per: list[dict[str, Any]]) -> dict[str, Any]:
    tp = sum(p["tp"] for p in per)
    n_pred = sum(p["n_pred"] for p in per)
    n_gt = sum(p["n_gt"] for p in per)
    by_set = {}
    for name in dict.fromkeys(p["set"] for p in per):
        mine = [p for p in per if p["set"] == name]
        by_set[name] = round(sum(p["tp"] for p in mine) / max(1, sum(p["n_gt"] for p in mine)), 4)
    return {"recall@0.5": round(tp / max(1, n_gt), 4), "recall_by_set": by_set,
            "precision@0.5": round(tp / n_pred, 4) if n_pred else 1.0,
            "task_seconds_per_frame": round(float(np.mean([p["task_s"] for p in per])), 4),
            "sensing_seconds_per_frame": round(float(np.mean([p["sensing_s"] for p in per])), 4),
            "det_megapixels_per_frame": round(float(np.mean([sum(c["det_megapixels"] for c in p["crops"])
                                                             for p in per])), 3),
            "_per": per}


def adaptive_sweep(pipe, per: list[dict[str, Any]], frames, thresholds: list[float]) -> list[dict[str, Any]]:
    """Recall and task time of every threshold, from the kept per-crop detections."""
    out = []
    for t in thresholds:
        tp = n_pred = n_gt = 0
        secs, crops = [], []
        for p, f in zip(per, frames):
            ranks = list(range(len(p["probs"])))
            keep = adaptive_budget(ranks, np.asarray(p["probs"]), t, 1) if t > 0 else ranks
            dets = pipe.merge(p["each"], keep)
            a, b, c = greedy_match([d.box for d in dets], [d.score for d in dets], f.boxes, 0.5)
            tp, n_pred, n_gt = tp + a, n_pred + b, n_gt + c
            secs.append(sum(p["crops"][i]["engine_s"] for i in keep))
            crops.append(len(keep))
        out.append({"min_prob": t, "recall@0.5": round(tp / max(1, n_gt), 4),
                    "precision@0.5": round(tp / n_pred, 4) if n_pred else 1.0,
                    "engine_seconds_per_frame": round(float(np.mean(secs)), 4),
                    "crops_per_frame": round(float(np.mean(crops)), 3)})
    return out


def adaptive_ceiling(pipe, per: list[dict[str, Any]], frames, slack: float, floor: float) -> dict[str, Any]:
    """The best any adaptive-K rule could do on these frames: an oracle that knows every
    crop's detections keeps, per frame, the subset of the K=3 regions (possibly none) that
    minimises the task time over all frames while losing at most ``slack`` of fixed K=3's
    recall (detections at the recogniser-confidence ``floor``).  Exact: a knapsack over the
    words lost, each frame choosing among its 2^K subsets."""
    import itertools

    frames_opts = []
    n_gt = full_tp = 0
    for p, f in zip(per, frames):
        n = len(p["crops"])
        opts: dict[int, tuple[float, int]] = {}  # words lost -> (least engine seconds, crops)
        tp_full = None
        for k in range(n, -1, -1):
            for sub in itertools.combinations(range(n), k):
                dets = [d for d in pipe.merge(p["each"], list(sub)) if d.score >= floor] if sub else []
                tp = greedy_match([d.box for d in dets], [d.score for d in dets], f.boxes, 0.5)[0]
                tp_full = tp if tp_full is None else tp_full
                secs = sum(p["crops"][i]["engine_s"] for i in sub)
                lost = tp_full - tp
                if lost >= 0 and (lost not in opts or secs < opts[lost][0]):
                    opts[lost] = (secs, k)
        frames_opts.append(opts)
        n_gt += len(f.boxes)
        full_tp += tp_full
    budget = int(np.floor(slack * max(1, n_gt) + 1e-9))
    best: dict[int, tuple[float, int]] = {0: (0.0, 0)}  # words lost so far -> (seconds, crops)
    for opts in frames_opts:
        nxt: dict[int, tuple[float, int]] = {}
        for used, (secs, crops) in best.items():
            for lost, (s2, k2) in opts.items():
                u = used + lost
                if u <= budget and (u not in nxt or secs + s2 < nxt[u][0]):
                    nxt[u] = (secs + s2, crops + k2)
        best = nxt
    lost, (secs, crops) = min(best.items(), key=lambda kv: kv[1][0])
    n_frames = max(1, len(per))
    fixed_s = float(np.mean([sum(c["engine_s"] for c in p["crops"]) for p in per]))
    sensing = float(np.mean([p["sensing_s"] for p in per]))
    return {"recall@0.5": round((full_tp - lost) / max(1, n_gt), 4), "fixed_recall@0.5": round(full_tp / max(1, n_gt), 4),
            "crops_per_frame": round(crops / n_frames, 3), "engine_seconds_per_frame": round(secs / n_frames, 4),
            "fixed_engine_seconds_per_frame": round(fixed_s, 4), "sensing_seconds_per_frame": round(sensing, 4),
            "time_over_fixed": round((sensing + secs / n_frames) / (sensing + fixed_s), 3), "text_score": floor}


def score_sweep(pipe, per: list[dict[str, Any]], frames, floors: list[float]) -> list[dict[str, Any]]:
    """Per floor and set: recall, precision and false detections per text-free frame of the
    K=3 detections scoring at least the floor (the floor only removes detections, and a
    dropped low-score box never suppressed a higher one in the merge, so filtering the
    merged detections equals running the engine with that ``text_score``)."""
    merged = [pipe.merge(p["each"]) for p in per]
    names = list(dict.fromkeys(p["set"] for p in per))
    out = []
    for t in floors:
        counts = {n: [0, 0, 0] for n in names}  # true positives, detections, ground truth
        false_free: dict[str, list[int]] = {n: [] for n in names}
        for p, f, dets in zip(per, frames, merged):
            kept = [d for d in dets if d.score >= t]
            matched = greedy_match([d.box for d in kept], [d.score for d in kept], f.boxes, 0.5)
            counts[p["set"]] = [x + y for x, y in zip(counts[p["set"]], matched)]
            if not f.boxes:
                false_free[p["set"]].append(matched[1])
        out.append({"text_score": t, "sets": {n: {
            "recall@0.5": round(tp / max(1, n_gt), 4), "precision@0.5": round(tp / n_pred, 4) if n_pred else 1.0,
            "false_detections_per_text_free_frame":
                round(float(np.mean(false_free[n])), 3) if false_free[n] else None,
            "true_positives": tp, "detections": n_pred, "ground_truth": n_gt}
            for n, (tp, n_pred, n_gt) in counts.items()}})
    return out


def choose_floor(sweep: list[dict[str, Any]], choice_sets: list[str], slack: float) -> dict[str, Any]:
    """The highest floor whose recall over ``choice_sets`` is within ``slack`` of the lowest floor's."""
    def recall(row):
        cells = [row["sets"][s] for s in choice_sets]
        return sum(c["true_positives"] for c in cells) / max(1, sum(c["ground_truth"] for c in cells))

    base = recall(sweep[0])
    ok = [r for r in sweep if recall(r) >= base - slack]
    return max(ok, key=lambda r: r["text_score"])


def choose_variant(rows: dict[str, dict[str, Any]], base: str, slack: float) -> str:
    ok = [n for n, r in rows.items() if r["recall@0.5"] >= rows[base]["recall@0.5"] - slack]
    return min(ok, key=lambda n: rows[n]["task_seconds_per_frame"])


def choose_threshold(sweep: list[dict[str, Any]], slack: float) -> dict[str, Any]:
    fixed = next(s for s in sweep if s["min_prob"] == 0.0)
    ok = [s for s in sweep if s["recall@0.5"] >= fixed["recall@0.5"] - slack]
    return min(ok, key=lambda s: (s["engine_seconds_per_frame"], -s["recall@0.5"]))


def markdown(result: dict[str, Any]) -> str:
    sizes = result.get("sizes", "all")
    only = "" if sizes == "all" else f" ({', '.join(sizes)} frames only)"
    lines = [f"Validation frames: {', '.join(f'{k} ({v})' for k, v in result['frames'].items())}{only}; "
             f"policy K=3 regions computed once.", "",
             "| task variant (crop_size / det_limit_side_len / det_precision) | recall@0.5 | recall per set | precision | "
             "task s/frame | detector MP/frame |", "|---|---:|---|---:|---:|---:|"]
    for name, r in result["variants"].items():
        mark = " **(chosen)**" if name == result["chosen_variant"] else ""
        per_set = ", ".join(f"{k} {v:.3f}" for k, v in r.get("recall_by_set", {}).items())
        lines.append(f"| {name}{mark} | {r['recall@0.5']:.3f} | {per_set} | {r['precision@0.5']:.3f} | "
                     f"{r['task_seconds_per_frame']:.2f} | {r['det_megapixels_per_frame']:.2f} |")
    lines += ["", f"Adaptive K on {result['chosen_variant']} (regions kept while the policy's probability "
              ">= min_prob, at least 1):", "",
              "| min_prob | recall@0.5 | precision | crops/frame | engine s/frame |", "|---:|---:|---:|---:|---:|"]
    for s in result["adaptive_sweep"]:
        mark = " **(chosen)**" if s["min_prob"] == result["chosen_adaptive"]["min_prob"] else ""
        lines.append(f"| {s['min_prob']}{mark} | {s['recall@0.5']:.3f} | {s['precision@0.5']:.3f} | "
                     f"{s['crops_per_frame']:.2f} | {s['engine_seconds_per_frame']:.2f} |")
    c = result.get("adaptive_ceiling")
    if c:
        lines += ["", f"Ceiling of any adaptive-K rule (an oracle that knows each crop's detections keeps the "
                  f"cheapest subset of regions per frame, losing at most {result['k_slack']} recall; text_score "
                  f"{c['text_score']}): recall {c['recall@0.5']:.3f} (fixed K=3 {c['fixed_recall@0.5']:.3f}), "
                  f"{c['crops_per_frame']:.2f} crops/frame, engine {c['engine_seconds_per_frame']:.2f} s/frame "
                  f"(fixed {c['fixed_engine_seconds_per_frame']:.2f}), sensing {c['sensing_seconds_per_frame']:.2f} "
                  f"s/frame: **{c['time_over_fixed']:.2f}x the time of fixed K=3**."]
    if result.get("score_sweep"):
        names = list(result["score_sweep"][0]["sets"])
        lines += ["", f"Recogniser-confidence floor (``text_score``) on {result['chosen_variant']}, K=3; chosen on "
                  f"{', '.join(result['score_choice_sets'])} (within {result['score_slack']} recall of the lowest floor):",
                  "", "| text_score | " + " | ".join(f"{n} recall / precision / false dets" for n in names) + " |",
                  "|---:|" + "---|" * len(names)]
        for row in result["score_sweep"]:
            mark = " **(chosen)**" if row["text_score"] == result["chosen_text_score"] else ""
            cells = []
            for n in names:
                c = row["sets"][n]
                fd = c["false_detections_per_text_free_frame"]
                cells.append(f"{c['recall@0.5']:.3f} / {c['precision@0.5']:.3f} / {'-' if fd is None else f'{fd:.2f}'}")
            lines.append(f"| {row['text_score']}{mark} | " + " | ".join(cells) + " |")
    lines += ["", footer(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default=",".join(VAL_SETS), help="comma-separated VALIDATION sets")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--variants", default=",".join("/".join(map(str, v)) for v in VARIANTS),
                   help="comma-separated crop_size/det_limit_side_len/det_precision; the first is the baseline")
    p.add_argument("--recall-slack", type=float, default=0.02, help="recall a faster variant may lose")
    p.add_argument("--k-slack", type=float, default=0.01, help="recall adaptive K may lose against K=3")
    p.add_argument("--score-slack", type=float, default=0.005, help="recall the recogniser-confidence floor may lose")
    p.add_argument("--sizes", default="",
                   help=f"comma-separated frame sizes to keep (from {', '.join(FRAME_SIZE_NAMES.values())}; "
                        "'' = all): a setting for some camera resolutions only")
    p.add_argument("--out", default=str(RESULTS / "choose_settings"), help="output path without extension")
    args = p.parse_args(argv)
    from tqdm import tqdm

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if any(s not in FRAME_SIZE_NAMES.values() for s in sizes):
        p.error(f"--sizes takes names from {', '.join(FRAME_SIZE_NAMES.values())}, got {args.sizes!r}")

    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in set_names:
        if s not in VAL_SETS:
            p.error(f"settings are chosen on validation sets only ({', '.join(VAL_SETS)}), not {s!r}")
    variants = []
    for x in args.variants.split(","):
        c, d, *prec = x.strip().split("/")
        variants.append((int(c), int(d), prec[0] if prec else "fp32"))
    load_before = load_average()
    frames = [f for s in set_names for f in load_set(s, args.frames or None)
              if not sizes or size_name(f.image.shape[1], f.image.shape[0]) in sizes]
    if not frames:
        p.error(f"no frame of {', '.join(set_names)} has a size in {sizes}")
    base_pipe = build_pipeline(PerceptionConfig.from_flat(flat_config(*variants[0], args.threads)))
    proposals = [base_pipe.propose(f.image, "text") for f in tqdm(frames, desc="policy K=3", unit="frame")]
    rows: dict[str, dict[str, Any]] = {}
    pipes = {}
    for v in variants:
        name = " / ".join(map(str, v))
        pipe = build_pipeline(PerceptionConfig.from_flat(flat_config(*v, args.threads)))
        pipe.detect_each(frames[0].image[:64, :64].copy(), [], "text")  # warm-up
        rows[name] = run_variant(pipe, frames, proposals, name)
        pipes[name] = pipe
        r = rows[name]
        print(f"{name:12s} recall {r['recall@0.5']:.3f} prec {r['precision@0.5']:.3f} "
              f"task s {r['task_seconds_per_frame']:.2f} MP {r['det_megapixels_per_frame']:.2f}", flush=True)
    base = " / ".join(map(str, variants[0]))
    chosen = choose_variant(rows, base, args.recall_slack)
    sweep = adaptive_sweep(pipes[chosen], rows[chosen]["_per"], frames, THRESHOLDS)
    pick = choose_threshold(sweep, args.k_slack)
    floors = score_sweep(pipes[chosen], rows[chosen]["_per"], frames, SCORE_FLOORS)
    choice_sets = [s for s in SCORE_CHOICE_SETS if s in set_names] or set_names
    floor = choose_floor(floors, choice_sets, args.score_slack)
    ceiling = adaptive_ceiling(pipes[chosen], rows[chosen]["_per"], frames, args.k_slack, floor["text_score"])
    c, d, prec = chosen.split(" / ")
    result = {
        "question": "cheaper task settings and the adaptive-K threshold, chosen on validation frames",
        "command": command("choose_settings.py", argv),
        "frames": {s: sum(1 for f in frames if f.set == s) for s in set_names}, "sizes": sizes or "all",
        "baseline_variant": base, "chosen_variant": chosen, "recall_slack": args.recall_slack,
        "variants": {n: {k: v for k, v in r.items() if not k.startswith("_")} for n, r in rows.items()},
        "adaptive_sweep": sweep, "chosen_adaptive": pick, "k_slack": args.k_slack, "adaptive_ceiling": ceiling,
        "score_sweep": floors, "score_choice_sets": choice_sets, "score_slack": args.score_slack,
        "chosen_text_score": floor["text_score"],
        "chosen_config": {"crop_size": int(c), "task_options": {"det_limit_side_len": int(d), "det_precision": prec,
                                                                "text_score": floor["text_score"]},
                          "sensing_options": {"min_prob": pick["min_prob"]}},
        "machine": machine(load_before),
    }
    print(markdown(result))
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
