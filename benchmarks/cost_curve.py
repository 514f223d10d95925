"""The cost curve: recall@0.5 against detector time and detector megapixels, SAHI side by side.

Question: with the SAME text detector (rapidocr, the ``text`` task module) behind every
row, how much of exhaustive slicing's recall do K learned regions buy, and at what cost?

Rows (one run, both frozen test sets of ``active_o3_training.data.scenes``):

* full frame (downscaled to the task input), uniform 3x3 tiling;
* **SAHI native**: the ``sahi`` package's ``get_sliced_prediction`` with slices of the
  detector's input size (``crop_size``), overlap 0.2, plus its standard full-frame
  prediction, merged by its GREEDYNMM; the detector wrapped as a sahi ``DetectionModel``
  (:mod:`active_o3_ros.sahi_model`);
* **SAHI zoomed**: the same with slices of ``crop_size / zoom`` enlarged to ``crop_size``
  (exhaustive zoom: the recall ceiling of slicing);
* random K=3; the shipped policy at K=1/2/3 (and with the adaptive budget when validation
  found a threshold that keeps recall); the policy with the detector settings the validation
  choice replaced (fp32 model, short side 736); oracle K=3.

Every other row runs the text module's defaults, which are the settings
``benchmarks/choose_settings.py`` chose on validation frames
(the latest choice, ``benchmarks/results/choose_settings_v3.json``: the detector variant of
``choose_settings.json`` and the recogniser-confidence floor; the script refuses to run when
they differ).

Per row: recall@0.5 with a 95 % bootstrap interval over images, precision, AP50, seconds per
frame, detector (engine) seconds per frame, detector input megapixels per frame, detector
runs per frame (model calls: detector runs plus the sensing call).  Writes ``<out>.json``, ``.md`` and ``.png``.

    python benchmarks/cost_curve.py --help
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS, command, footer, load_average, machine,
    ratios_line, recall_cell, recall_scatter, write_outputs,
)
from sensing_domains import run_row  # noqa: E402  (same row runner, same metrics)

from active_o3_ros.backends.base import build_pipeline  # noqa: E402
from active_o3_ros.core.config import PerceptionConfig  # noqa: E402
from active_o3_ros.core.types import PerceptionResult, StageTimings  # noqa: E402
from active_o3_training.data import scenes  # noqa: E402

CHOSEN = RESULTS / "choose_settings_v3.json"


class SahiRow:
    """SAHI's sliced prediction with our detector, behind the pipeline's call signature."""

    def __init__(self, threads: int, slice_px: int, input_size: int = 840, overlap: float = 0.2,
                 confidence_threshold: float = 0.3) -> None:
        from active_o3_ros.sahi_model import TaskDetectionModel

        task = build_pipeline(PerceptionConfig.from_flat(
            {"task_module": "text", "task_options": {"threads": threads}, "mode": "full_frame"})).task
        # confidence 0.3 (sahi's default) keeps its GREEDYNMM/IOS merge; the text module's
        # scores are recogniser confidences >= 0.5, so the threshold removes nothing.
        self.model = TaskDetectionModel(task, "text", input_size, confidence_threshold=confidence_threshold)
        self.slice_px, self.overlap = int(slice_px), float(overlap)

    def __call__(self, image, instruction, context=None) -> PerceptionResult:
        from sahi.predict import get_sliced_prediction

        from active_o3_ros.sahi_model import to_detections

        self.model.reset_counters()
        t0 = time.perf_counter()
        res = get_sliced_prediction(image, self.model, slice_height=self.slice_px, slice_width=self.slice_px,
                                    overlap_height_ratio=self.overlap, overlap_width_ratio=self.overlap,
                                    perform_standard_pred=True, postprocess_type="GREEDYNMM",
                                    postprocess_match_metric="IOS", postprocess_match_threshold=0.5, verbose=0)
        total = time.perf_counter() - t0
        h, w = image.shape[:2]
        return PerceptionResult(detections=to_detections(res), regions=[], image_width=w, image_height=h,
                                instruction=instruction, timings=StageTimings(task_s=total, total_s=total),
                                model_calls=self.model.calls, mode="sahi", extra={"task_cost": dict(self.model.cost)})

    def close(self) -> None:
        self.model.task.close()


#: The text-detector settings the validation choice replaced (the previous defaults).
previous_task = {"det_precision": "fp32", "det_limit_side_len": 736}


def chosen_settings(path: Path) -> dict[str, Any]:
    """The validation choice; it must be what the node runs (the text module's defaults)."""
    from active_o3_ros.backends.text import TextOptions

    if not path.is_file():
        raise SystemExit(f"{path} is missing: run benchmarks/choose_settings.py first (validation frames)")
    chosen = json.loads(path.read_text())["chosen_config"]
    defaults = TextOptions()
    for k, v in chosen["task_options"].items():
        if getattr(defaults, k) != v:
            raise SystemExit(f"validation chose text option {k}={v!r} but the module default is "
                             f"{getattr(defaults, k)!r}: update the default or rerun choose_settings.py")
    if chosen["crop_size"] != 840:
        raise SystemExit(f"validation chose crop_size {chosen['crop_size']}; the rows here assume the node's 840")
    return chosen


def rows(threads: int, chosen: dict[str, Any], zoom: float) -> list[tuple[str, Any]]:
    task = {"task_module": "text", "task_options": {"threads": threads}, "crop_size": 840}
    node = {**task, "crop_context": 1.3, "max_zoom": 3.0, "sensing_backend": "small_policy",
            "sensing_options": {"num_threads": threads}}
    min_prob = float(chosen["sensing_options"]["min_prob"])
    out: list[tuple[str, Any]] = [
        ("full frame", {**task, "mode": "full_frame"}),
        ("tiling 3x3", {**task, "sensing_backend": "tiling", "crop_size": 1280, "crop_context": 1.0}),
        ("SAHI native", ("sahi", 840)),
        (f"SAHI zoomed {zoom:g}x", ("sahi", int(round(840 / zoom)))),
        ("random K=3", {**task, "sensing_backend": "random", "max_regions": 3, "sensing_options": {"seed": 0}}),
    ]
    out += [(f"policy K={k}", {**node, "max_regions": k}) for k in (1, 2, 3)]
    # min_prob 0: validation found no threshold that keeps recall (then the row would be K=3 again)
    if min_prob > 0:
        out.append((f"policy adaptive K<=3 (p>={min_prob:g})",
                    {**node, "max_regions": 3, "sensing_options": {"num_threads": threads, "min_prob": min_prob}}))
    # the previous release: every kept region zoomed even where its sharp look saw no line
    # (verify_unseen "keep"), sharp looks with rapidocr's fp32 detector
    before = {"verify_unseen": "keep", "verify_precision": "fp32"}
    out.append(("policy K=3, unseen regions kept, fp32 sharp looks (previous release)",
                {**node, "max_regions": 3, "sensing_options": {"num_threads": threads, **before}}))
    # the release before: also regions fitted to the look's lines from one line on
    # (verify_fit_min_lines 1), no glyph-shape filter on single-character reads
    unfiltered = {"threads": threads, "single_char_max_aspect": 0.0}
    out.append(("policy K=3, fit from 1 line, no glyph filter (release before)",
                {**node, "max_regions": 3, "task_options": unfiltered,
                 "sensing_options": {"num_threads": threads, "verify_fit_min_lines": 1, **before}}))
    # the text module's defaults are the settings chosen on validation; this row is the policy
    # with the detector settings they replaced (fp32 model, short side enlarged to 736)
    out.append(("policy K=3, previous detector (fp32, det 736)",
                {**node, "max_regions": 3, "task_options": {**previous_task, "threads": threads}}))
    out.append(("oracle K=3", {**task, "crop_context": 1.3, "sensing_backend": "oracle", "max_regions": 3}))
    return out


def ratios(r: dict[str, dict[str, Any]], zoom: float) -> dict[str, float | None]:
    """The goals of the performance issue, measured in this run."""
    def g(name, key="recall@0.5"):
        return r.get(name, {}).get(key)

    def div(a, b):
        return round(a / b, 3) if a is not None and b else None

    pol, native, zoomed = "policy K=3", "SAHI native", f"SAHI zoomed {zoom:g}x"
    adaptive = next((n for n in r if n.startswith("policy adaptive K")), None)
    out = {"policy_recall_over_sahi_native": div(g(pol), g(native)),
           "policy_time_over_sahi_native": div(g(pol, "seconds_per_frame"), g(native, "seconds_per_frame")),
           "policy_recall_over_sahi_zoomed": div(g(pol), g(zoomed)),
           "policy_time_over_sahi_zoomed": div(g(pol, "seconds_per_frame"), g(zoomed, "seconds_per_frame")),
           "policy_recall_over_oracle": div(g(pol), g("oracle K=3"))}
    if adaptive:
        out["adaptive_recall_minus_k3"] = round(g(adaptive) - g(pol), 4)
        out["adaptive_time_over_k3"] = div(g(adaptive, "seconds_per_frame"), g(pol, "seconds_per_frame"))
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = []
    for set_name, s in result["sets"].items():
        lines += [f"### {set_name}: {s['frames']} frames, {s['ground_truth']} words", "",
                  "| row | recall@0.5 [95% CI] | precision | AP50 | s/frame | detector s/frame | detector MP/frame "
                  "| model calls/frame |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in s["rows"].items():
            lines.append(f"| {name} | {recall_cell(r)} | {r['precision@0.5']:.3f} | "
                         f"{r['AP50']:.3f} | {r['seconds_per_frame']:.2f} | {r['detector_seconds_per_frame']:.2f} | "
                         f"{r['detector_megapixels_per_frame']:.2f} | {r['model_calls_per_frame']:.1f} |")
        lines += ["", ratios_line(s["ratios"]), ""]
    lines += [footer(result)]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(result["sets"].items())
    fig, axes = plt.subplots(len(sets), 2, figsize=(13, 4.8 * len(sets)), squeeze=False)
    for row_axes, (set_name, s) in zip(axes, sets):
        for ax, key, label in ((row_axes[0], "detector_seconds_per_frame", "detector seconds per frame (2 CPU cores)"),
                               (row_axes[1], "detector_megapixels_per_frame", "detector input megapixels per frame")):
            recall_scatter(ax, s["rows"], key, label, set_name, log_x=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", default="test_in,test_held_out", help="comma-separated frozen sets")
    p.add_argument("--frames", type=int, default=0, help="first N frames of each set (0 = all)")
    p.add_argument("--rows", default="", help="comma-separated substrings; run only matching rows")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--zoom", type=float, default=2.0, help="enlargement of SAHI's zoomed slices")
    p.add_argument("--chosen", default=str(CHOSEN), help="choose_settings.py's result (validation choices)")
    p.add_argument("--out", default=str(RESULTS / "cost_curve"), help="output path without extension")
    args = p.parse_args(argv)
    from tqdm import tqdm

    set_names = [s.strip() for s in args.sets.split(",") if s.strip()]
    for s in set_names:
        if s not in scenes.FROZEN_SETS:
            p.error(f"unknown set {s!r}; choose from {sorted(scenes.FROZEN_SETS)}")
    chosen = chosen_settings(Path(args.chosen))
    selected = [s.strip().lower() for s in args.rows.split(",") if s.strip()]
    todo = [(n, f) for n, f in rows(args.threads, chosen, args.zoom)
            if not selected or any(s in n.lower() for s in selected)]
    load_before = load_average()
    result: dict[str, Any] = {
        "question": "recall vs detector cost: full frame, tiling, SAHI native/zoomed, random, policy K, oracle",
        "command": command("cost_curve.py", argv),
        "chosen_on_validation": chosen, "sets": {},
    }
    for set_name in set_names:
        frames = list(tqdm(scenes.iter_set(set_name, args.frames or None), desc=set_name, unit="frame"))
        s = {"frames": len(frames), "seeds": [f.seed for f in frames],
             "ground_truth": sum(len(f.boxes) for f in frames), "rows": {}}
        for name, spec in todo:
            if isinstance(spec, tuple):
                pipe, shown = SahiRow(args.threads, spec[1]), {"sahi_slice_px": spec[1], "input_size": 840,
                                                               "overlap": 0.2, "postprocess": "GREEDYNMM/IOS 0.5"}
            else:
                pipe, shown = build_pipeline(PerceptionConfig.from_flat(spec)), spec
            pipe(frames[0].image[:64, :64].copy(), "text")  # warm-up: engine and policy load
            s["rows"][name] = {**run_row(pipe, frames, f"{set_name}: {name}"), "config": shown}
            pipe.close()
            r = s["rows"][name]
            print(f"{set_name:14s} {name:40s} recall {r['recall@0.5']:.3f} {r['recall_ci95']} prec "
                  f"{r['precision@0.5']:.3f} s/frame {r['seconds_per_frame']:.2f} "
                  f"MP {r['detector_megapixels_per_frame']:.2f}", flush=True)
        s["ratios"] = ratios(s["rows"], args.zoom)
        result["sets"][set_name] = s
    result["machine"] = machine(load_before)
    write_outputs(args.out, result, markdown, plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
