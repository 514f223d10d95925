"""Exact cache of the real task model's output on every anchor region of every frame.

WHY: the GRPO task reward needs the frozen detector's output on each sampled region set,
and rapidocr costs ~0.5 s per zoomed crop on a CPU core -- far too slow to run inside the
training loop (8 sets x 3 regions x every frame x every step).  The small policy only ever
proposes one of its N fixed anchors, so the detector's output can be computed once per
``(frame, anchor)``: ResizeCrop the anchor exactly as the pipeline would (same thumbnail
mapping, same :func:`~active_o3_ros.core.geometry.resize_crop`), run the task model, map
the detections to frame pixels and store them.  A sampled set's detections are then the
merge (:func:`~active_o3_ros.core.merge.merge_detections`) of its anchors' cached
detections -- exactly what :class:`~active_o3_ros.core.pipeline.ActivePerception` would
publish for those regions -- and the reward is computed by the shared reward module.

Layout: ``<cache_dir>/<key>/frame_<seed>.npz`` (one per frame, written atomically, so an
interrupted run resumes) + ``meta.json``; ``key`` hashes everything the cached values
depend on (task, task options, crop/merge settings, anchors, thumbnail size, generator
config), so changing any of them never silently reuses stale detections.

CLI: ``python -m active_o3_training.anchor_cache --help``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig, make_thumbnail
from active_o3_ros.core.merge import MergeConfig, merge_detections
from active_o3_ros.core.types import Box, Detection

#: Where caches go unless told otherwise (relative to the working directory; not committed).
DEFAULT_CACHE_DIR = ".cache/small_policy_anchors"


@dataclass(frozen=True)
class AnchorCacheConfig:
    """What to cache.  Defaults mirror the pipeline's defaults and the ``text`` task module,
    so the cached reward is the reward of the deployed configuration."""

    split: str = "train"
    n_frames: int = 40
    start: int = 0
    cache_dir: str = DEFAULT_CACHE_DIR
    task: str = "text"
    task_options: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 840
    max_zoom: float = 3.0
    crop_context: float = 1.0
    merge_method: str = "nms"
    merge_iou: float = 0.5
    score_threshold: float = 0.0
    #: Thumbnail short side the policy is given (its ``preferred_thumbnail_short_side``).
    thumbnail_short_side: int = 288
    #: Anchor grids as ``[[w, h, cols, rows], ...]``; empty = the policy's defaults.
    grids: tuple[tuple[float, float, int, int], ...] = ()
    #: Worker processes (each loads its own task model); 1 on a shared 2-core machine.
    workers: int = 1
    #: Threads per worker for onnxruntime/torch (0 = library default).
    threads: int = 1

    def crop(self) -> ResizeCropConfig:
        return ResizeCropConfig(self.crop_size, self.max_zoom, self.crop_context)

    def merge(self) -> MergeConfig:
        # The cache keeps detections per anchor, not per crop window: the node's drop of
        # pieces cut by a crop's edge (MergeConfig.cut_margin) does not apply to its merges.
        return MergeConfig(self.merge_method, self.merge_iou, cut_margin=0.0)

    def anchor_grids(self):
        from active_o3_ros.backends.small_policy import DEFAULT_ANCHOR_GRIDS, AnchorGrid

        return tuple(AnchorGrid(*g) for g in self.grids) if self.grids else DEFAULT_ANCHOR_GRIDS

    def key_dict(self) -> dict[str, Any]:
        """Everything a cached value depends on (not the split/range/worker settings)."""
        from active_o3_training.data.synthetic import SyntheticTextConfig

        return {
            "generator_fingerprint": generator_fingerprint(),
            "task": self.task,
            # threads change speed, not results: not part of the key; the text module's options
            # are keyed as they run (:meth:`_text_as_run`), an explicit default as the default
            "task_options": {} if self.task == "text" else {k: v for k, v in self.task_options.items() if k != "threads"},
            "crop": asdict(self.crop()),
            "merge": {k: v for k, v in asdict(self.merge()).items() if k != "cut_margin"},  # keys of older caches
            "score_threshold": self.score_threshold,
            "thumbnail_short_side": self.thumbnail_short_side,
            "grids": [asdict(g) for g in self.anchor_grids()],
            "generator": json.loads(json.dumps(asdict(SyntheticTextConfig()), default=list)),
            "version": 2,
            **self._text_as_run(),
        }

    def _text_as_run(self) -> dict[str, Any]:
        """The text module's options as they act (every default included, and the detector's
        precision as it runs on this CPU: int8 only where it is exact, :func:`int8_exact_here`):
        a changed default or another CPU changes the cached detections, so it must change the
        key.  Threads, arena and spin-wait change speed only and are left out.  Version 1
        keys held the explicit options and the read filters only."""
        if self.task != "text":
            return {}
        from active_o3_ros.backends.base import options_from_kwargs
        from active_o3_ros.backends.text import TextOptions

        opts = options_from_kwargs(TextOptions, dict(self.task_options), "text task")
        d = {k: v for k, v in asdict(opts).items() if k not in ("threads", "mem_arena", "spin_wait")}
        if not opts.det_model_path:
            d["det_precision"] = opts.engine(use_cuda=False).effective_det_precision()
        return {"text_options_as_run": d}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.key_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def folder(self) -> Path:
        return Path(self.cache_dir) / self.key()


@lru_cache(maxsize=1)
def generator_fingerprint() -> str:
    """Hash of a small frame drawn by the generator (pixels + boxes).  WHY: a change in how
    frames are drawn must not silently reuse detections of the old frames, while edits that
    do not change the frames (docs, writers) must not throw a valid cache away."""
    from active_o3_training.data.synthetic import render_frame, split_seed

    f = render_frame(split_seed("val", 999_999), size=(640, 360))
    h = hashlib.sha256(f.image.tobytes())
    h.update(json.dumps([b.as_list() for b in f.boxes] + list(f.words)).encode())
    return h.hexdigest()[:16]


@dataclass
class CachedFrame:
    """One frame's cache entry: what the policy sees and what the detector found per anchor."""

    seed: int
    width: int
    height: int
    thumbnail: np.ndarray            # the policy's input (thumbnail at thumbnail_short_side)
    gt_boxes: list[Box]
    det_boxes: np.ndarray            # (M, 4) frame pixels
    det_scores: np.ndarray           # (M,)
    det_labels: np.ndarray           # (M,) str
    det_anchor: np.ndarray           # (M,) anchor index each detection came from
    region_boxes: list[Box]          # (N) each anchor as a frame-pixel region (pipeline mapping)
    task_seconds: float = 0.0

    def detections_for(self, anchors: Sequence[int]) -> list[Detection]:
        return detections_among(self.det_boxes, self.det_scores, self.det_labels, self.det_anchor, anchors)


def detections_among(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, anchor: np.ndarray,
                     anchors: Sequence[int]) -> list[Detection]:
    """The cached detections (arrays of one frame) that came from ``anchors``' crops."""
    sel = np.isin(anchor, np.asarray(list(anchors), dtype=np.int64))
    return [Detection(Box(*map(float, b)), str(l), float(s), int(a))
            for b, s, l, a in zip(boxes[sel], scores[sel], labels[sel], anchor[sel])]


def anchor_regions(anchors: np.ndarray, frame_w: int, frame_h: int, thumb_short: int,
                   aspect: float = 16 / 9) -> list[Box]:
    """Frame-pixel regions of the anchors, computed the way the pipeline maps the policy's
    thumbnail-pixel answer back (letterbox of a frame that is not ``aspect``, thumbnail
    transform, then clip; :func:`~active_o3_ros.backends.small_policy.anchors_in_frame`).
    Which anchors the policy may choose on such a frame: :func:`usable_anchors`."""
    from active_o3_ros.backends.small_policy import anchor_boxes_px, anchors_in_frame
    from active_o3_ros.core.geometry import ScaleOffset, thumbnail_size

    tw, th = thumbnail_size(frame_w, frame_h, thumb_short)
    tf = ScaleOffset(0.0, 0.0, tw / frame_w, th / frame_h)
    norm, _ = anchors_in_frame(anchors, frame_w, frame_h, aspect)
    return [tf.to_frame(b).clip(frame_w, frame_h) for b in anchor_boxes_px(norm, tw, th)]


def usable_anchors(anchors: np.ndarray, frame_w: int, frame_h: int, aspect: float = 16 / 9) -> np.ndarray | None:
    """The anchors the served policy may choose on a ``frame_w x frame_h`` frame (not those
    lying mostly on a letterbox bar), or None when it may choose every one (a 16:9 frame)."""
    from active_o3_ros.backends.small_policy import anchors_in_frame

    ok = anchors_in_frame(anchors, frame_w, frame_h, aspect)[1]
    return None if ok.all() else ok


def _task_stage(cfg: AnchorCacheConfig, task) -> Any:
    """A task-only pipeline with the cache's crop settings (no full-frame fallback or pass)."""
    from active_o3_ros.core.pipeline import ActivePerception

    return ActivePerception(None, task, PipelineConfig(crop=cfg.crop(), fallback_full_frame=False))


def compute_frame(seed: int, cfg: AnchorCacheConfig, task, anchors: np.ndarray) -> dict[str, np.ndarray]:
    """Run the task model on every anchor's ResizeCrop of frame ``seed`` (one batched call)."""
    from active_o3_training.data.synthetic import generate_frame

    frame, gt, _ = generate_frame(seed)
    return {"seed": np.int64(seed), **anchor_detections(frame, gt, cfg, task, anchors)}


def anchor_detections(frame: np.ndarray, gt: Sequence[Box], cfg: AnchorCacheConfig, task, anchors: np.ndarray,
                      instruction: str = "text") -> dict[str, np.ndarray]:
    """The cache entry of any frame: thumbnail, ground truth and the task model's frame-pixel
    detections on every anchor's ResizeCrop (one call of the pipeline's task stage)."""
    fh, fw = frame.shape[:2]
    thumb, _tf = make_thumbnail(frame, cfg.thumbnail_short_side)
    regions = anchor_regions(anchors, fw, fh, cfg.thumbnail_short_side)
    # the pipeline's own task stage: same ResizeCrop, one batched call, same map back and clip
    each = _task_stage(cfg, task).detect_each(frame, regions, instruction)
    boxes, scores, labels, idx = [], [], [], []
    for dets in each.per_crop:
        for d in dets:
            boxes.append(d.box.as_list())
            scores.append(d.score)
            labels.append(d.label)
            idx.append(d.region_index)
    return {
        "size": np.array([fw, fh], np.int64), "thumbnail": thumb,
        "gt": np.asarray([b.as_list() for b in gt], np.float64).reshape(-1, 4),
        "det_boxes": np.asarray(boxes, np.float64).reshape(-1, 4), "det_scores": np.asarray(scores, np.float64),
        "det_labels": np.asarray(labels, dtype=str), "det_anchor": np.asarray(idx, np.int64),
        "task_seconds": np.float64(each.task_s),
    }


def _frame_path(folder: Path, seed: int) -> Path:
    return folder / f"frame_{seed}.npz"


def _worker(args: tuple[AnchorCacheConfig, Path, list[int]]) -> list[tuple[int, float]]:
    cfg, folder, seeds = args
    return [_build_one(cfg, s, folder) for s in seeds]


_TASK = None


def _task(cfg: AnchorCacheConfig):
    global _TASK
    if _TASK is None:
        if cfg.threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(cfg.threads))
            import torch

            torch.set_num_threads(cfg.threads)
        from active_o3_ros.backends.base import build_task

        opts = dict(cfg.task_options)
        if cfg.task == "text" and cfg.threads and "threads" not in opts:
            opts["threads"] = cfg.threads
        _TASK = build_task(cfg.task, **opts)
    return _TASK


def _build_one(cfg: AnchorCacheConfig, seed: int, folder: Path) -> tuple[int, float]:
    """``folder`` is fixed by the parent process: workers must not recompute the key (code
    edited while a long build runs would otherwise send them to another folder)."""
    from active_o3_ros.backends.small_policy import make_anchors

    path = _frame_path(folder, seed)
    if path.is_file():
        return seed, 0.0
    data = compute_frame(seed, cfg, _task(cfg), make_anchors(cfg.anchor_grids()))
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **data)
    os.replace(tmp, path)
    return seed, float(data["task_seconds"])


def build_cache(cfg: AnchorCacheConfig, progress: bool = True) -> Path:
    """Fill the cache for ``cfg``'s frames (skipping those already there); returns the folder."""
    from tqdm import tqdm

    from active_o3_training.data.synthetic import split_seed

    folder = cfg.folder()
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.is_file():
        meta.write_text(json.dumps(cfg.key_dict(), indent=1, sort_keys=True))
    seeds = [split_seed(cfg.split, i) for i in range(cfg.start, cfg.start + cfg.n_frames)]
    todo = [s for s in seeds if not _frame_path(folder, s).is_file()]
    bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc=f"anchor cache {cfg.split}",
               unit="frame", disable=not progress)
    if cfg.workers <= 1:
        for s in todo:
            _build_one(cfg, s, folder)
            bar.update(1)
    else:
        import multiprocessing as mp

        chunks = [([s]) for s in todo]
        with mp.get_context("spawn").Pool(cfg.workers) as pool:
            for _ in pool.imap_unordered(_worker, [(cfg, folder, c) for c in chunks]):
                bar.update(1)
    bar.close()
    return folder


def load_frame(path: str | Path, anchors: np.ndarray, thumb_short: int) -> CachedFrame:
    try:
        with np.load(path, allow_pickle=False) as z:
            fw, fh = (int(v) for v in z["size"])
            gt = [Box(*map(float, b)) for b in z["gt"]]
            return CachedFrame(
                seed=int(z["seed"]), width=fw, height=fh, thumbnail=z["thumbnail"], gt_boxes=gt,
                det_boxes=z["det_boxes"], det_scores=z["det_scores"], det_labels=z["det_labels"],
                det_anchor=z["det_anchor"], region_boxes=anchor_regions(anchors, fw, fh, thumb_short),
                task_seconds=float(z["task_seconds"]))
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"anchor cache file {path} is unreadable ({exc}); delete it and rebuild") from exc


def load_cache(cfg: AnchorCacheConfig, available_only: bool = False) -> list[CachedFrame]:
    """The cached frames of ``cfg``'s split range; raises if any is missing (build first),
    unless ``available_only`` (then the cached subset, possibly while a build still runs)."""
    from active_o3_ros.backends.small_policy import make_anchors
    from active_o3_training.data.synthetic import split_seed

    folder = cfg.folder()
    anchors = make_anchors(cfg.anchor_grids())
    seeds = [split_seed(cfg.split, i) for i in range(cfg.start, cfg.start + cfg.n_frames)]
    missing = [s for s in seeds if not _frame_path(folder, s).is_file()]
    if available_only:
        seeds = [s for s in seeds if s not in set(missing)]
        missing = [] if seeds else missing
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(seeds)} {cfg.split} frames are not cached in {folder}; "
                                "run `python -m active_o3_training.anchor_cache` with the same settings first")
    return [load_frame(_frame_path(folder, s), anchors, cfg.thumbnail_short_side) for s in seeds]


def merged_detections(frame: CachedFrame, anchors: Sequence[int], cfg: AnchorCacheConfig) -> list[Detection]:
    """What the pipeline publishes for this anchor set: score filter, then merge."""
    dets = [d for d in frame.detections_for(anchors) if d.score >= cfg.score_threshold]
    return merge_detections(dets, cfg.merge())


def _parser() -> argparse.ArgumentParser:
    d = AnchorCacheConfig()
    p = argparse.ArgumentParser(
        prog="python -m active_o3_training.anchor_cache",
        description="Run the real task model (default: rapidocr 'text') on every anchor region of "
                    "synthetic frames and cache the frame-pixel detections for GRPO training.")
    p.add_argument("--split", default=d.split, choices=("train", "val", "test"))
    p.add_argument("--n-frames", type=int, default=d.n_frames)
    p.add_argument("--start", type=int, default=d.start)
    p.add_argument("--cache-dir", default=d.cache_dir)
    p.add_argument("--task", default=d.task)
    p.add_argument("--task-options", default="{}", help="JSON object passed to the task module")
    p.add_argument("--crop-size", type=int, default=d.crop_size)
    p.add_argument("--max-zoom", type=float, default=d.max_zoom)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--threads", type=int, default=d.threads)
    return p


def config_from_args(args: argparse.Namespace) -> AnchorCacheConfig:
    try:
        opts = json.loads(args.task_options)
    except ValueError as exc:
        raise SystemExit(f"error: --task-options must be a JSON object: {exc}") from exc
    if not isinstance(opts, dict):
        raise SystemExit("error: --task-options must be a JSON object")
    return AnchorCacheConfig(split=args.split, n_frames=args.n_frames, start=args.start, cache_dir=args.cache_dir,
                             task=args.task, task_options=opts, crop_size=args.crop_size, max_zoom=args.max_zoom,
                             workers=args.workers, threads=args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = config_from_args(args)
    t0 = time.perf_counter()
    try:
        folder = build_cache(cfg)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"cache ready in {folder} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
