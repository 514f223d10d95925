"""The real detector's output on the policy's likeliest anchors of domain-family scenes: the
paper's task term (AP/AR of the task model on the crops) for GRPO on scenes.

WHY: caching the ``text`` module on all 98 anchors of a scene costs 70-100 s per frame on 2
cores, so the task term never reached the scenes the shipped weights train on.  The choice
the policy still gets wrong is among the anchors it already rates highly (held out it picks
0.87x the recall of the best 3 of its own anchors), so this cache runs the detector only on
the ``top_m`` anchors the given weights score highest on each frame (4 mirror views, as
served).  Training then draws its region sets among those anchors on these frames
(``Problem.allowed``): the task term is exact for every set it can draw.

Layout: ``<cache_dir>/scenes_task_<key>/scene_<seed>.npz`` (one per frame, written
atomically, so an interrupted build resumes) + ``meta.json``; ``key`` hashes the anchor
cache settings (crop, merge, task options, anchors), the weights file, ``top_m`` and a probe
scene of the generator, so any change there starts a new folder.

CLI: ``python -m active_o3_training.scene_task_cache --help``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from active_o3_training.anchor_cache import AnchorCacheConfig, DEFAULT_CACHE_DIR, anchor_detections, detections_among


@dataclass(frozen=True)
class SceneTaskCacheConfig:
    """Which scenes, which anchors, which weights choose them; the detector and crop settings
    are the node's (``crop_context`` 1.3, ``crop_size`` 840, the ``text`` module's defaults)."""

    n_frames: int = 200
    start: int = 0
    top_m: int = 16
    weights: str = ""  # "" = the bundled weights
    cache_dir: str = DEFAULT_CACHE_DIR
    crop_context: float = 1.3
    threads: int = 2

    def anchor_cache(self) -> AnchorCacheConfig:
        """Crop, merge and task settings, with the thumbnail the ranking weights are given."""
        from active_o3_ros.backends.small_policy import read_config

        return AnchorCacheConfig(split="train", crop_context=self.crop_context, threads=self.threads,
                                 thumbnail_short_side=read_config(self.weights_path()).image_short_side)

    def weights_path(self) -> Path:
        from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS

        return Path(self.weights) if self.weights else BUNDLED_WEIGHTS

    def key(self) -> str:
        from active_o3_training.data import scenes

        probe = scenes.render_scene(scenes.FROZEN_SETS["val"].first_seed,
                                    scenes.SceneConfig(frame_sizes=((640, 360),)))
        d = self.anchor_cache().key_dict()
        d.pop("generator", None), d.pop("generator_fingerprint", None)  # the synthetic generator's
        h = hashlib.sha256(json.dumps({"anchor_cache": d, "top_m": self.top_m, "version": 1}, sort_keys=True).encode())
        h.update(self.weights_path().read_bytes())
        h.update(probe.image.tobytes())
        return h.hexdigest()[:16]

    def folder(self) -> Path:
        return Path(self.cache_dir) / f"scenes_task_{self.key()}"


def _path(folder: Path, seed: int) -> Path:
    return folder / f"scene_{seed}.npz"


def entry_detections(entry: dict, anchors: Sequence[int], merge) -> list:
    """What the pipeline publishes for this anchor set of a cached frame (merged)."""
    from active_o3_ros.core.merge import merge_detections

    return merge_detections(detections_among(entry["det_boxes"], entry["det_scores"], entry["det_labels"],
                                             entry["det_anchor"], anchors), merge)


def frame_entry(image: np.ndarray, gt, policy, cfg: AnchorCacheConfig, task, top_m: int) -> dict[str, np.ndarray]:
    """The cache entry of one frame: the ``top_m`` anchors ``policy`` scores highest on it
    (``allowed``) and the task model's frame-pixel detections on each of their crops, with
    ``det_anchor`` the frame's anchor index."""
    from active_o3_ros.core.geometry import make_thumbnail

    seen, _ = make_thumbnail(image, policy.preferred_thumbnail_short_side)
    logits = policy.logits([seen], ["text"])[0].numpy()
    top = np.argsort(-logits, kind="stable")[:top_m].astype(np.int64)
    data = anchor_detections(image, gt, cfg, task, policy.anchors[top])
    data["det_anchor"] = top[data["det_anchor"]] if len(data["det_anchor"]) else data["det_anchor"]
    data.pop("thumbnail")  # the training problem keeps its own (the scene frame cache's)
    return {**data, "allowed": top}


def narrowed_entry(entry: dict, top_m: int) -> dict[str, np.ndarray]:
    """The entry a smaller ``top_m`` would have cached: the first ``top_m`` of ``allowed``
    (best first) and only their detections. Exact, because every anchor's crop is detected
    on its own; ``task_seconds`` is scaled by the share of anchors kept (an estimate)."""
    allowed = np.asarray(entry["allowed"], np.int64)
    if top_m > len(allowed):
        raise ValueError(f"cannot narrow a top-{len(allowed)} entry to top-{top_m}")
    keep = allowed[:top_m]
    sel = np.isin(entry["det_anchor"], keep)
    out = dict(entry)
    for k in ("det_boxes", "det_scores", "det_labels", "det_anchor"):
        out[k] = np.asarray(entry[k])[sel]
    out["allowed"] = keep
    out["task_seconds"] = np.float64(float(entry["task_seconds"]) * top_m / len(allowed))
    return out


def build(cfg: SceneTaskCacheConfig, progress: bool = True, reuse_top_m: int = 0) -> Path:
    """Fill the cache for ``cfg``'s training scenes (skipping those already there). With
    ``reuse_top_m`` > ``cfg.top_m``, frames already cached with that larger M (same weights and
    settings) are narrowed (:func:`narrowed_entry`) instead of run through the detector again."""
    from tqdm import tqdm

    from active_o3_ros.backends.base import build_task
    from active_o3_ros.backends.small_policy import SmallSensingPolicy
    from active_o3_training.data import scenes

    if reuse_top_m and reuse_top_m <= cfg.top_m:
        raise ValueError(f"--reuse-top-m must exceed --top-m ({reuse_top_m} <= {cfg.top_m})")
    acfg = cfg.anchor_cache()
    folder = cfg.folder()
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.is_file():
        meta.write_text(json.dumps({"anchor_cache": acfg.key_dict(), "top_m": cfg.top_m,
                                    "weights": str(cfg.weights_path().name)}, indent=1, sort_keys=True, default=str))
    seeds = [scenes.train_seed(i) for i in range(cfg.start, cfg.start + cfg.n_frames)]
    todo = [s for s in seeds if not _path(folder, s).is_file()]
    if reuse_top_m:
        wider = replace(cfg, top_m=reuse_top_m).folder()
        for seed in [s for s in todo if _path(wider, s).is_file()]:
            with np.load(_path(wider, seed), allow_pickle=False) as z:
                _save(folder, seed, narrowed_entry({k: z[k] for k in z.files}, cfg.top_m))
            todo.remove(seed)
    if not todo:  # nothing left for the detector: no policy or engine to load
        return folder
    policy = SmallSensingPolicy(model=str(cfg.weights_path()), num_threads=cfg.threads)
    task = build_task(acfg.task, **{**acfg.task_options, "threads": cfg.threads})
    domain = scenes.set_config("train")
    for seed in tqdm(todo, initial=len(seeds) - len(todo), total=len(seeds), desc="scene task cache",
                     unit="frame", disable=not progress):
        f = scenes.render_scene(seed, domain)
        _save(folder, seed, frame_entry(f.image, f.boxes, policy, acfg, task, cfg.top_m))
    return folder


def _save(folder: Path, seed: int, data: dict) -> None:
    data = {k: v for k, v in data.items() if k != "seed"}
    tmp = _path(folder, seed).with_suffix(".tmp.npz")
    np.savez_compressed(tmp, seed=np.int64(seed), **data)
    os.replace(tmp, _path(folder, seed))


def load(cfg: SceneTaskCacheConfig, available_only: bool = False) -> dict[int, dict]:
    """``{seed: entry}`` of the cached scenes of ``cfg``'s range (raises if any is missing,
    unless ``available_only``)."""
    from active_o3_training.data import scenes

    folder = cfg.folder()
    out = {}
    for i in range(cfg.start, cfg.start + cfg.n_frames):
        seed = scenes.train_seed(i)
        p = _path(folder, seed)
        if not p.is_file():
            if available_only:
                continue
            raise FileNotFoundError(f"scene {seed} is not in the task cache {folder}; run "
                                    "`python -m active_o3_training.scene_task_cache` with the same settings first")
        try:
            with np.load(p, allow_pickle=False) as z:
                out[seed] = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"scene task cache file {p} is unreadable ({exc}); delete it and rebuild") from exc
    return out


def headroom(cfg: SceneTaskCacheConfig, k: int = 3) -> dict:
    """On the cached frames: recall@0.5 of the ranking weights' own answer (best-first among
    its top-M, skipping overlaps as the node does) against the best ``k``-set among the same
    top-M anchors (exhaustive; what the task term could teach at most on these frames)."""
    import itertools

    import torch

    from active_o3_ros.backends.small_policy import anchor_iou_matrix, greedy_sets, load_weights
    from active_o3_ros.core.metrics import greedy_match
    from active_o3_ros.core.types import Box

    entries = load(cfg)
    net = load_weights(cfg.weights_path())
    iou = anchor_iou_matrix(net.anchors.numpy().astype(np.float64))
    tau = net.cfg.overlap_tau
    merge = cfg.anchor_cache().merge()
    served = best = n_gt = 0
    for e in entries.values():
        gt = [Box(*b) for b in e["gt"]]
        if not gt:
            continue

        def recall(anchors) -> int:
            dets = entry_detections(e, anchors, merge)
            return greedy_match([d.box for d in dets], [d.score for d in dets], gt, 0.5)[0]

        ranked = [int(a) for a in e["allowed"]]  # best first
        rank = torch.full((1, len(iou)), float("-inf"))
        rank[0, ranked] = torch.arange(len(ranked), 0, -1, dtype=torch.float32)
        served += recall(greedy_sets(rank, k, iou, tau)[0])  # what the node serves from that ranking
        best += max(recall(s) for s in itertools.combinations(ranked, k)
                    if all(iou[a, b] < tau - 1e-6 for a, b in itertools.combinations(s, 2)))
        n_gt += len(gt)
    return {"frames": len(entries), "ground_truth": n_gt, "k": k, "top_m": cfg.top_m,
            "recall_served": round(served / max(n_gt, 1), 4), "recall_best_set_among_top_m": round(best / max(n_gt, 1), 4)}


def _parser() -> argparse.ArgumentParser:
    d = SceneTaskCacheConfig()
    p = argparse.ArgumentParser(
        prog="python -m active_o3_training.scene_task_cache",
        description="Run the real text detector on the top-M anchors (by the given weights) of training-family "
                    "scenes and cache the frame-pixel detections: the task term of GRPO on scenes.")
    p.add_argument("--n-frames", type=int, default=d.n_frames)
    p.add_argument("--start", type=int, default=d.start, help="first training-scene index")
    p.add_argument("--top-m", type=int, default=d.top_m, help="anchors per frame (the policy's highest scores)")
    p.add_argument("--weights", default=d.weights, help="weights that rank the anchors ('' = the bundled ones)")
    p.add_argument("--cache-dir", default=d.cache_dir)
    p.add_argument("--crop-context", type=float, default=d.crop_context, help="the node's crop_context")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--reuse-top-m", type=int, default=0,
                   help="narrow frames already cached with this larger M (same weights and settings) instead of "
                        "running the detector on them again")
    p.add_argument("--headroom", default="",
                   help="after building, write to this JSON file the ranking weights' recall on the cached frames "
                        "against the best 3-set among their top-M anchors")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.top_m < 3 or a.n_frames < 0:
        print("error: need --top-m >= 3 and --n-frames >= 0", file=sys.stderr)
        return 2
    cfg = SceneTaskCacheConfig(a.n_frames, a.start, a.top_m, a.weights, a.cache_dir, a.crop_context, a.threads)
    t0 = time.perf_counter()
    try:
        folder = build(cfg, reuse_top_m=a.reuse_top_m)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"scene task cache ready in {folder} ({time.perf_counter() - t0:.1f} s)")
    if a.headroom:
        rep = {"command": "python -m active_o3_training.scene_task_cache " + " ".join(argv if argv is not None
                                                                                      else sys.argv[1:]),
               **headroom(cfg)}
        Path(a.headroom).parent.mkdir(parents=True, exist_ok=True)
        Path(a.headroom).write_text(json.dumps(rep, indent=1))
        print(json.dumps(rep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
