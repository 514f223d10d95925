"""``active-o3-eval``: the paper's evaluation protocol, every baseline, one run, one task module.

Why one run: ACTIVE-o3's claim is relative (*where* to zoom beats zooming everywhere or
nowhere), so every method must see the same images, the same task model instance and the
same metric code.  Modes compared:

==============  ==========================================================================
full_frame      the frame downscaled to the task input, one task call (no zoom)
tiling          uniform ``n x n`` tiles (SAHI-style), all tiles in one batched task call
random          K random regions (1-50 % of the image each), one batched task call
oracle          K regions clustered around the ground truth (upper bound)
serial          the sensing policy's K regions, one task call per region (o3-style agents)
parallel        ACTIVE-o3: one sensing call + ONE batched task call over the K crops
parallel_full   parallel with the full-frame pass merged in (same batch)
==============  ==========================================================================

Metrics come from :mod:`active_o3_ros.core.metrics` (pycocotools): AP, AP50, AP75,
AP_s/m/l, AR_s/m/l, optionally SODA's IoU=0.1 matching and, for mask-producing task
modules, mask AP and mIoU; plus model calls, crops and latency per image.  Output:
``eval.json``, ``eval.md`` (a table shaped like the paper's) and PNG plots
(:mod:`active_o3_training.plots`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.base import SensingPolicy, TaskModel, build_sensing, build_task
from active_o3_ros.backends.region_sources import OraclePolicy, RandomPolicy, TilingPolicy
from active_o3_ros.core.config import ConfigError, PerceptionConfig, parse_overrides
from active_o3_ros.core.metrics import ImageAnnotations, coco_evaluate, mask_iou
from active_o3_ros.core.pipeline import ActivePerception
from active_o3_ros.core.types import Detection, PerceptionResult
from active_o3_training.eval_data import (
    DatasetInfo, EvalError, EvalSample, box_mask, load_bag, load_coco, synthetic_dataset,
)

#: Every evaluation method (a region source + pipeline setting), in the order the tables list them.
METHODS = ("full_frame", "tiling", "random", "oracle", "serial", "parallel", "parallel_full")
#: Methods whose region budget is K (the others are run once, whatever K is).
K_METHODS = ("random", "oracle", "serial", "parallel", "parallel_full")
#: Methods that need the configured (learned) sensing policy.
POLICY_METHODS = ("serial", "parallel", "parallel_full")
METHOD_TITLES = {
    "full_frame": "Full frame", "tiling": "Tiling {grid}", "random": "Random regions",
    "oracle": "Oracle regions", "serial": "Serial zoom", "parallel": "ACTIVE-o3 (parallel)",
    "parallel_full": "ACTIVE-o3 + full frame",
}


# -- configuration -------------------------------------------------------------------------
@dataclass
class EvalConfig:
    """One evaluation run.  ``perception`` holds the backend + pipeline settings exactly as
    the node and CLI take them (same validation); the methods below override only what
    distinguishes them (region source, pipeline mode, full-frame pass, K)."""

    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    methods: tuple[str, ...] = METHODS
    ks: tuple[int, ...] = (3,)
    tiling_grid: int = 3
    random_seed: int = 0
    soda_iou: bool = False          # also report AP/AR at IoU 0.1 (SODA's loose matching)
    class_agnostic: bool | None = None  # None: automatic (True for single-category datasets)
    warmup: int = 1                 # frames run (not counted) before each method's timing
    examples: int = 3               # example images drawn per run
    out_dir: str = "eval_out"

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"methods must be a non-empty subset of {list(METHODS)}, got unknown {unknown}")
        if not self.ks or any(not isinstance(k, int) or not 1 <= k <= 16 for k in self.ks):
            raise ConfigError(f"ks must be integers in [1, 16], got {self.ks}")
        if not 1 <= self.tiling_grid <= 8:
            raise ConfigError(f"tiling_grid must be in [1, 8], got {self.tiling_grid}")
        if self.warmup < 0 or self.examples < 0:
            raise ConfigError("warmup and examples must be >= 0")


# -- running ---------------------------------------------------------------------------------
@dataclass
class MethodRun:
    """Per-image outputs of one (method, K) run, kept for metrics, plots and the JSON."""

    method: str
    k: int | None
    results: list[PerceptionResult]
    sample_ids: list[int]


def _build_backends(cfg: PerceptionConfig, need_policy: bool) -> tuple[SensingPolicy | None, TaskModel]:
    """The same construction as :meth:`ActivePerception.from_config`, but the task model is
    built once and shared by every method (so the comparison is one task module)."""
    b = cfg.backend
    common = dict(device=b.device, dtype=b.dtype, trust_remote_code=b.trust_remote_code)
    try:
        task = build_task(b.task, model=b.task_model or b.model, **common, **b.task_options)
    except (ValueError, TypeError, OSError) as exc:
        raise EvalError(f"cannot build task module {b.task!r}: {exc}") from exc
    sensing = None
    if need_policy:
        try:
            sensing = build_sensing(b.sensing, model=b.sensing_model or b.model, **common, **b.sensing_options)
        except (ValueError, TypeError, OSError) as exc:
            task.close()
            raise EvalError(f"cannot build sensing policy {b.sensing!r} (needed by methods "
                            f"{', '.join(POLICY_METHODS)}): {exc}") from exc
    return sensing, task


def _method_pipeline(method: str, k: int | None, cfg: EvalConfig, policy: SensingPolicy | None,
                   task: TaskModel) -> ActivePerception:
    base = cfg.perception.pipeline
    kk = k if k is not None else base.max_regions
    if method == "full_frame":
        return ActivePerception(None, task, replace(base, mode="full_frame", full_frame_pass=False))
    if method == "tiling":
        n = cfg.tiling_grid
        return ActivePerception(TilingPolicy(n, n), task,
                                replace(base, mode="parallel", max_regions=min(16, n * n), full_frame_pass=False))
    if method == "random":
        return ActivePerception(RandomPolicy(seed=cfg.random_seed), task,
                                replace(base, mode="parallel", max_regions=kk, full_frame_pass=False))
    if method == "oracle":
        return ActivePerception(OraclePolicy(), task, replace(base, mode="parallel", max_regions=kk, full_frame_pass=False))
    if policy is None:
        raise ConfigError(f"method {method!r} needs a sensing policy")
    return ActivePerception(policy, task, replace(base, mode="serial" if method == "serial" else "parallel",
                                                  max_regions=kk, full_frame_pass=(method == "parallel_full")))


def run_method(pipe: ActivePerception, samples: Sequence[EvalSample], warmup: int = 0,
               progress: str | None = None) -> list[PerceptionResult]:
    """Run one pipeline over the samples.  The oracle policy reads ``gt_boxes`` from the
    context; other policies ignore it.  A frame that fails (bad image) is reported and
    counted as an empty prediction rather than silently dropped."""
    from tqdm import tqdm

    for s in samples[:warmup]:
        try:
            pipe(s.load(), s.instruction, {"gt_boxes": s.gt.boxes})
        except (ValueError, TypeError):
            pass  # reported (and counted) in the timed pass below
    out = []
    for s in tqdm(samples, desc=progress, leave=False, disable=progress is None):
        try:
            frame = s.load()
            out.append(pipe(frame, s.instruction, {"gt_boxes": s.gt.boxes}))
        except (ValueError, TypeError) as exc:
            print(f"[active-o3-eval] image {s.file_name}: {exc}; counted as no detections", file=sys.stderr)
            r = PerceptionResult([], [], s.width, s.height, s.instruction, mode="error")
            r.extra["error"] = str(exc)
            out.append(r)
    return out


def _map_label(label: str, categories: Sequence[str], agnostic: bool) -> str:
    if agnostic:
        return categories[0] if categories else "object"
    low = {c.lower(): c for c in categories}
    return low.get(label.strip().lower(), label)


def predictions(results: Sequence[PerceptionResult], samples: Sequence[EvalSample], categories: Sequence[str],
                agnostic: bool, with_masks: bool = False) -> list[ImageAnnotations]:
    """Pipeline results -> metric inputs.  Labels are matched to dataset categories
    case-insensitively; with ``agnostic`` every detection counts as the one category (a
    text detector labels boxes with the words it read, which are not class names)."""
    preds = []
    for r, s in zip(results, samples):
        masks = [detection_mask(d, s.width, s.height) for d in r.detections] if with_masks else None
        preds.append(ImageAnnotations(
            s.image_id, s.width, s.height, [d.box for d in r.detections],
            [_map_label(d.label, categories, agnostic) for d in r.detections],
            [float(d.score) for d in r.detections], masks=masks))
    return preds


def detection_mask(d: Detection, width: int, height: int) -> np.ndarray:
    """The detection's mask pasted into a full-frame boolean image (its box when it has none)."""
    full = np.zeros((height, width), bool)
    if d.mask is None:
        return box_mask(d.box, width, height)
    x0, y0 = d.mask_offset
    m = d.mask.astype(bool)
    x1, y1 = max(x0, 0), max(y0, 0)
    x2, y2 = min(x0 + m.shape[1], width), min(y0 + m.shape[0], height)
    if x2 > x1 and y2 > y1:
        full[y1:y2, x1:x2] = m[y1 - y0:y2 - y0, x1 - x0:x2 - x0]
    return full


def instance_miou(gts: Sequence[ImageAnnotations], preds: Sequence[ImageAnnotations]) -> float:
    """Mean over ground-truth instances of the best mask IoU any prediction reaches
    (0 when nothing covers it) — the paper's interactive-segmentation mIoU."""
    ious = []
    for g, p in zip(gts, preds):
        for gm in g.masks or []:
            ious.append(max((mask_iou(pm, gm) for pm in (p.masks or [])), default=0.0))
    return float(np.mean(ious)) if ious else -1.0


def summarize(run: MethodRun, samples: Sequence[EvalSample], categories: Sequence[str], cfg: EvalConfig,
              with_masks: bool) -> dict[str, Any]:
    """One table row: COCO metrics + cost (calls, crops, latency) of one (method, K) run."""
    agnostic = cfg.class_agnostic if cfg.class_agnostic is not None else len(categories) <= 1
    gts = [s.gt for s in samples]
    preds = predictions(run.results, samples, categories, agnostic, with_masks)
    row: dict[str, Any] = {"method": run.method, "k": run.k}
    row.update(coco_evaluate(gts, preds, class_agnostic=agnostic))
    if cfg.soda_iou:
        loose = coco_evaluate(gts, preds, iou_thresholds=[0.1], class_agnostic=agnostic)
        row.update({f"{k}@0.1": loose[k] for k in ("AP", "AP_s", "AP_m", "AP_l", "AR", "AR_s", "AR_m", "AR_l")})
    if with_masks:
        seg = coco_evaluate(gts, preds, iou_type="segm", class_agnostic=agnostic)
        row.update({"mask_AP": seg["AP"], "mask_AP_s": seg["AP_s"], "mIoU": instance_miou(gts, preds)})
    lat = np.array([r.timings.total_s for r in run.results]) * 1000.0
    fwd = np.array([r.timings.sensing_s + r.timings.task_s for r in run.results]) * 1000.0
    row.update({
        "images": len(run.results),
        "model_calls_per_img": float(np.mean([r.model_calls for r in run.results])),
        "crops_per_img": float(np.mean([len(r.task_statuses) for r in run.results])),
        "regions_per_img": float(np.mean([len(r.regions) for r in run.results])),
        "detections_per_img": float(np.mean([len(r.detections) for r in run.results])),
        "latency_ms_mean": float(lat.mean()), "latency_ms_p50": float(np.median(lat)),
        "latency_ms_p90": float(np.percentile(lat, 90)),
        "model_ms_mean": float(fwd.mean()),
        "sensing_parse_failures": sum(r.sensing_status.value == "failed" for r in run.results if r.mode != "full_frame"),
        "task_parse_failures": sum(s.value == "failed" for r in run.results for s in r.task_statuses),
        "frame_errors": sum(r.mode == "error" for r in run.results),
    })
    return row


def evaluate(cfg: EvalConfig, data: DatasetInfo, policy: SensingPolicy | None = None,
             task: TaskModel | None = None, progress: bool = True) -> tuple[dict[str, Any], list[MethodRun]]:
    """Run every (method, K) on ``data``; returns the JSON-ready report and the raw runs.

    ``policy``/``task`` may be passed in (already built); otherwise they are built from
    ``cfg.perception`` by name through the backend registry.
    """
    need_policy = any(m in POLICY_METHODS for m in cfg.methods)
    own = task is None
    if task is None or (need_policy and policy is None):
        built_policy, built_task = _build_backends(cfg.perception, need_policy and policy is None)
        task = task or built_task
        policy = policy or built_policy
    with_masks = bool(getattr(task, "produces_masks", False))
    if with_masks and any(s.gt.masks is None for s in data.samples):
        with_masks = False  # no ground-truth masks to compare with: box metrics only
    runs: list[MethodRun] = []
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for method in cfg.methods:
            for k in (cfg.ks if method in K_METHODS else (None,)):
                pipe = _method_pipeline(method, k, cfg, policy, task)
                label = f"{method}" + (f" K={k}" if k is not None else "")
                results = run_method(pipe, data.samples, cfg.warmup, label if progress else None)
                run = MethodRun(method, k, results, [s.image_id for s in data.samples])
                runs.append(run)
                rows.append(summarize(run, data.samples, data.categories, cfg, with_masks))
    finally:
        if own:
            for m in (policy, task):
                if m is not None:
                    m.close()
    report = {
        "dataset": {"name": data.name, "images": len(data.samples), "categories": data.categories,
                    "instances": sum(len(s.gt.boxes) for s in data.samples),
                    "instances_by_size": _size_histogram(data.samples)},
        "config": {
            "methods": list(cfg.methods), "ks": list(cfg.ks), "tiling_grid": cfg.tiling_grid,
            "random_seed": cfg.random_seed, "soda_iou": cfg.soda_iou, "warmup": cfg.warmup,
            "class_agnostic": cfg.class_agnostic if cfg.class_agnostic is not None else len(data.categories) <= 1,
            "perception": cfg.perception.to_flat(),
        },
        "environment": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count(), "torch_threads": _torch_threads()},
        "rows": rows,
        "wall_s": time.perf_counter() - t0,
    }
    return report, runs


def _size_histogram(samples: Sequence[EvalSample]) -> dict[str, int]:
    h = {"small": 0, "medium": 0, "large": 0}
    for s in samples:
        for b in s.gt.boxes:
            h["small" if b.area < 32 ** 2 else "medium" if b.area < 96 ** 2 else "large"] += 1
    return h


def _torch_threads() -> int | None:
    if "torch" not in sys.modules:
        return None
    return int(sys.modules["torch"].get_num_threads())


# -- reporting ---------------------------------------------------------------------------------
def _fmt(v: Any, scale: float = 100.0, digits: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float) and v < 0:
        return "—"  # COCO's -1: no ground truth in that bucket
    return f"{v * scale:.{digits}f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The paper's table shape: one row per method (x K), AP columns in percent, then the
    cost columns this node adds (model calls, crops and milliseconds per image)."""
    rows = report["rows"]
    grid = report["config"]["tiling_grid"]
    has_soda = any("AP@0.1" in r for r in rows)
    has_mask = any("mIoU" in r for r in rows)
    cols = ["Method", "K", "AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l", "AR50", "AR_s", "AR_m", "AR_l"]
    if has_soda:
        cols += ["AP@0.1", "AR@0.1"]
    if has_mask:
        cols += ["mask AP", "mIoU"]
    cols += ["calls/img", "crops/img", "ms/img"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|"]
    for r in rows:
        title = METHOD_TITLES[r["method"]].format(grid=f"{grid}x{grid}")
        k = str(r["k"]) if r["k"] is not None else (str(grid * grid) if r["method"] == "tiling" else "—")
        cells = [title, k] + [_fmt(r[c]) for c in ("AP", "AP50", "AP75", "AP_s", "AP_m", "AP_l", "AR50", "AR_s", "AR_m", "AR_l")]
        if has_soda:
            cells += [_fmt(r.get("AP@0.1")), _fmt(r.get("AR@0.1"))]
        if has_mask:
            cells += [_fmt(r.get("mask_AP")), _fmt(r.get("mIoU"))]
        cells += [f"{r['model_calls_per_img']:.2f}", f"{r['crops_per_img']:.2f}", f"{r['latency_ms_mean']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    d = report["dataset"]
    head = (f"Dataset `{d['name']}`: {d['images']} images, {d['instances']} instances "
            f"(small/medium/large {d['instances_by_size']['small']}/{d['instances_by_size']['medium']}/"
            f"{d['instances_by_size']['large']}); sensing `{report['config']['perception']['sensing_backend']}`, "
            f"task `{report['config']['perception']['task_module']}`. AP/AR in %, COCO size ranges; "
            "— = no ground truth in that size bucket.")
    return head + "\n\n" + "\n".join(lines) + "\n"


def write_outputs(report: dict[str, Any], runs: Sequence[MethodRun], data: DatasetInfo, cfg: EvalConfig,
                  plots: bool = True) -> dict[str, str]:
    """eval.json, eval.md and the PNG plots into ``cfg.out_dir``; returns name -> path."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": str(out / "eval.json"), "markdown": str(out / "eval.md")}
    if plots:
        from active_o3_training import plots as plot_mod

        paths.update(plot_mod.plot_report(report, out))
        paths.update(plot_mod.plot_examples(runs, data.samples, out, cfg.examples))
    report = dict(report, outputs=paths)
    Path(paths["json"]).write_text(json.dumps(report, indent=2, default=_json_default))
    Path(paths["markdown"]).write_text(markdown_table(report))
    return paths


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# -- CLI -----------------------------------------------------------------------------------------
def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="active-o3-eval",
        description="Compare full frame, tiling, random, oracle, serial zoom and ACTIVE-o3 parallel zoom "
                    "with one task module on a COCO/LVIS/SODA-style dataset or a labelled rosbag; writes "
                    "eval.json, eval.md and plots.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_argument_group("data (one of)")
    src.add_argument("--coco", help="COCO-style annotation JSON (LVIS and SODA exports use the same format)")
    src.add_argument("--images", help="image folder (default: the JSON's folder)")
    src.add_argument("--bag", help="labelled rosbag2 (read with the training data adapter)")
    src.add_argument("--camera-topic", default="/camera/image_raw", help="image topic of --bag")
    src.add_argument("--labels-topic", default="/active_o3/detections", help="DetectionArray labels topic of --bag")
    src.add_argument("--synthetic", type=int, default=0, metavar="N",
                     help="generate N images of the embedded small-text benchmark (test split) and evaluate on them")
    src.add_argument("--synthetic-size", metavar="WxH", help="frame size of --synthetic images "
                     "(default: the benchmark's 1080p-4K mix)")
    src.add_argument("--max-images", type=int, default=0, help="evaluate at most this many images (0 = all)")
    m = p.add_argument_group("model and pipeline")
    m.add_argument("--config", help="YAML with node parameters (e.g. config/perceive.yaml)")
    m.add_argument("--sensing", help="sensing backend for the serial/parallel methods (e.g. small_policy, qwen_vl)")
    m.add_argument("--task", help="task module shared by all methods (e.g. text, qwen_vl, sam)")
    m.add_argument("--model", help="model directory or hub id for qwen_vl backends")
    m.add_argument("--instruction", help="target classes (comma separated) or free text; default: "
                   "the image's 'instruction' field, else the dataset's category names")
    m.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="any node parameter, e.g. --set crop_size=640 (repeatable)")
    e = p.add_argument_group("evaluation")
    e.add_argument("--methods", "--modes", dest="methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (--modes: old name)")
    e.add_argument("--ks", default="3", help="comma-separated region budgets K (e.g. 1,2,3 for the K plots)")
    e.add_argument("--tiling-grid", type=int, default=3, help="n for the n x n tiling baseline")
    e.add_argument("--soda-iou", action="store_true", help="also report AP/AR at IoU 0.1 (SODA's protocol)")
    e.add_argument("--class-agnostic", choices=("auto", "yes", "no"), default="auto",
                   help="match boxes regardless of label (auto: yes for single-category datasets)")
    e.add_argument("--seed", type=int, default=0, help="seed of the random-regions baseline")
    e.add_argument("--warmup", type=int, default=1, help="untimed frames before each method")
    e.add_argument("--examples", type=int, default=3, help="example images drawn with regions and detections")
    e.add_argument("--no-plots", action="store_true", help="skip matplotlib output")
    e.add_argument("--out", default="eval_out", help="output folder")
    e.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0 = library default)")
    return p


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise ConfigError(f"size must look like 1280x720, got {text!r}") from exc
    return w, h


def config_from_args(args: argparse.Namespace) -> EvalConfig:
    flat = parse_overrides(args.set)
    for name, val in (("sensing_backend", args.sensing), ("task_module", args.task), ("model", args.model)):
        if val:
            flat[name] = val
    if args.instruction:
        flat["instruction"] = args.instruction
    perception = PerceptionConfig.from_yaml(args.config, flat) if args.config else PerceptionConfig.from_flat(flat)
    try:
        ks = tuple(int(k) for k in str(args.ks).split(",") if k.strip())
    except ValueError as exc:
        raise ConfigError(f"--ks must be comma-separated integers, got {args.ks!r}") from exc
    return EvalConfig(
        perception=perception, methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), ks=ks,
        tiling_grid=args.tiling_grid, random_seed=args.seed, soda_iou=args.soda_iou,
        class_agnostic={"auto": None, "yes": True, "no": False}[args.class_agnostic],
        warmup=args.warmup, examples=args.examples, out_dir=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        cfg = config_from_args(args)
        sources = sum(bool(x) for x in (args.coco, args.bag, args.synthetic))
        if sources != 1:
            raise EvalError("give exactly one data source: --coco JSON, --bag BAG or --synthetic N")
        instr = args.instruction
        if args.bag:
            data = load_bag(args.bag, instr, args.max_images, args.camera_topic, args.labels_topic)
        else:
            coco, images = (args.coco, args.images) if args.coco else synthetic_dataset(
                args.synthetic, Path(args.out) / "data", _size(args.synthetic_size) if args.synthetic_size else None)
            masks_possible = cfg.perception.backend.task in ("sam",)
            data = load_coco(coco, images, with_masks=masks_possible, instruction=instr, max_images=args.max_images)
        report, runs = evaluate(cfg, data)
        paths = write_outputs(report, runs, data, cfg, plots=not args.no_plots)
    except (ConfigError, EvalError, RuntimeError, FileNotFoundError) as exc:
        print(f"active-o3-eval: error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print("wrote " + ", ".join(f"{k}: {v}" for k, v in paths.items() if k in ("json", "markdown")))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
