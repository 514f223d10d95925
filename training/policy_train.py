"""``active-o3-train policy``: fine-tune the embedded sensing policy on your robot's data.

Same YAML + ``--set section.key=value`` style as the MLLM trainer (``active-o3-train
grpo``), and the same names for the shared knobs (TRL's ``max_steps``,
``num_generations``, ``learning_rate``, ``beta``, ``per_device_train_batch_size``, and
``reward.max_regions`` for K).  The algorithm is :func:`active_o3_training.grpo_policy.train`
(GRPO with the paper's dual reward); this module turns data sources into its problems:

* ``data.bag`` (+ ``data.labels_bag``): a rosbag2 recording, camera topic (raw or
  compressed) plus a ``DetectionArray`` labels topic -- labels recorded with the bag, or the
  bag the teacher wrote (``active-o3-train label``; read together with the recording);
* ``data.ann_file`` + ``data.image_dir``: COCO / LVIS / SODA-D JSON and images (LVIS
  ``coco_url`` entries and ``not_exhaustive_category_ids`` are honoured);
* ``data.synthetic_frames``: frames of the project's generator (heuristic reward).

Bags are split by time: ``data.segment`` is the part of the bag's time span used at all,
and its last ``data.val_fraction`` is the validation segment (never trained on).
Near-duplicates are skipped.  The heuristic reward terms score every frame; the task term
(the real detector's AP50+AR50 on the crops) is scored on ``cache.task_frames`` frames
spread over the training segment, from a per-anchor detector cache built on those frames.
Fine-tuning starts from ``model.init`` (default: the shipped weights), with KL to them.

Writes ``<output_dir>/small_policy.safetensors`` + ``.json`` card (data, teacher settings,
rewards per stage, commands, and the comparison with the starting weights on the
validation segment); the node loads it with ``sensing_model:=FILE``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.core.types import Box
from active_o3_training.config import ConfigError, RewardSection

DEFAULT_CACHE_DIR = ".cache/policy_anchors"


@dataclass
class PolicyDataSection:
    """Where frames and labels come from (any mix of the sources below)."""

    bag: str = ""                          # a recording (rosbag2 folder)
    labels_bag: str = ""                   # its teacher labels bag ("" = labels are in `bag`)
    camera_topic: str = "/camera/image_raw"
    labels_topic: str = "/active_o3/teacher"
    segment: list[float] = field(default_factory=lambda: [0.0, 1.0])
    val_fraction: float = 0.15
    tolerance_s: float = 0.02
    min_interval_s: float = 0.0
    dedup_threshold: float = 2.0
    ann_file: str = ""                     # COCO / LVIS / SODA-D JSON
    image_dir: str = ""
    classes: list[str] = field(default_factory=list)
    subset: str = "all"                    # all | small | dense (as the MLLM trainer's)
    lvis_negatives: bool = True            # LVIS neg_category_ids: samples with nothing to find
    synthetic_frames: int = 0
    instruction: str = "text"
    max_frames: int = 0


@dataclass
class PolicyModelSection:
    """The policy to start from and the frozen task module of the task reward."""

    init: str = ""                         # "" = the shipped weights; "init" = a fresh network
    task: str = "text"
    # anchor grids added to the starting network's, each [w, h, cols, rows] (fractions of
    # the frame): larger regions for scenes full of small objects.  [] = the network's own
    extra_grids: list[list[float]] = field(default_factory=list)
    task_options: dict[str, Any] = field(default_factory=dict)
    # the node's sensing option of the same name (-1 = the policy's default): a frame that is
    # not 16:9 and whose letterbox canvas is wider than this is read as overlapping 16:9
    # windows, and each window is then its own training frame, as it is served
    windows_above: int = -1
    windows_min_side: int = -1             # the node's option of the same name (-1: the policy's default)


@dataclass
class CacheSection:
    """The per-anchor detector cache of the task term (about 0.3 s per anchor crop)."""

    task_frames: int = 32
    cache_dir: str = DEFAULT_CACHE_DIR
    threads: int = 2


@dataclass
class PolicyTrainerSection:
    """TRL's names where the knob is the same; ``per_device_train_batch_size`` counts
    completions (images x ``num_generations``), as in TRL."""

    output_dir: str = "runs/policy"
    max_steps: int = 150
    num_generations: int = 8
    per_device_train_batch_size: int = 64
    learning_rate: float = 3e-4
    beta: float = 0.04
    weight_decay: float = 0.01
    warmup_steps: int = 20
    seed: int = 0
    eval_steps: int = 25
    flip_augment: bool = True
    threads: int = 2


@dataclass
class PolicyTrainConfig:
    data: PolicyDataSection = field(default_factory=PolicyDataSection)
    model: PolicyModelSection = field(default_factory=PolicyModelSection)
    reward: RewardSection = field(default_factory=RewardSection)
    cache: CacheSection = field(default_factory=CacheSection)
    trainer: PolicyTrainerSection = field(default_factory=PolicyTrainerSection)

    def validate(self) -> "PolicyTrainConfig":
        d, r, t = self.data, self.reward, self.trainer
        if not (d.bag or d.ann_file or d.synthetic_frames):
            raise ConfigError("no data: set data.bag (a recording), data.ann_file + data.image_dir (COCO/LVIS/SODA) "
                              "or data.synthetic_frames")
        if d.labels_bag and not d.bag:
            raise ConfigError("data.labels_bag needs data.bag (the recording it labels)")
        if d.ann_file and not d.image_dir:
            raise ConfigError("data.ann_file needs data.image_dir")
        if len(d.segment) != 2 or not 0.0 <= float(d.segment[0]) < float(d.segment[1]) <= 1.0:
            raise ConfigError(f"data.segment must be [start, end] fractions with 0 <= start < end <= 1, got {d.segment}")
        if not 0.0 <= d.val_fraction < 1.0:
            raise ConfigError("data.val_fraction must be in [0, 1)")
        r.validate()
        if t.num_generations < 2:
            raise ConfigError("trainer.num_generations must be >= 2 (GRPO compares completions within a group)")
        if t.per_device_train_batch_size % t.num_generations:
            raise ConfigError("trainer.per_device_train_batch_size must be a multiple of num_generations "
                              f"({t.num_generations}): it counts completions, as in TRL")
        if not t.learning_rate > 0 or t.beta < 0 or t.max_steps < 0:
            raise ConfigError("trainer.learning_rate must be > 0, trainer.beta >= 0 and trainer.max_steps >= 0")
        if self.model.windows_above < -1 or self.model.windows_min_side < -1:
            raise ConfigError("model.windows_above and model.windows_min_side must be -1 (the policy's default), "
                              "0 (never / no minimum) or pixels")
        if self.cache.task_frames < 0:
            raise ConfigError("cache.task_frames must be >= 0")
        from active_o3_ros.backends.small_policy import AnchorGrid

        for g in self.model.extra_grids:
            try:
                AnchorGrid.parse(g)
            except ValueError as exc:
                raise ConfigError(f"model.extra_grids: {exc}") from exc
        return self


def load_policy_config(path: str | None, overrides: Sequence[str]) -> PolicyTrainConfig:
    from active_o3_training import config as tcfg

    return tcfg.load_config(path, list(overrides), root=PolicyTrainConfig)


# -- frames from the sources -------------------------------------------------------------------
@dataclass
class PolicyFrame:
    """One training frame as the policy and the reward need it (pixels are not kept)."""

    key: str
    source: str
    width: int
    height: int
    thumbnail: np.ndarray
    gt: list[Box]
    instruction: str
    stamp_ns: int = 0
    #: uint8 cue maps at the thumbnail size, for a policy with ``map_inputs`` (else None).
    maps: np.ndarray | None = None
    #: per-anchor cue features, for a policy with ``cue_features`` (else None).
    cues: np.ndarray | None = None
    #: the recorded image this frame is (a window of); "" = ``key`` (the image read whole)
    image_key: str = ""


@dataclass
class DataReport:
    """Frames used, skipped and why, per source (printed and written to the card)."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)


def _policy_view(img: np.ndarray, net_cfg) -> dict[str, Any]:
    """What the policy reads of a full frame (:class:`PolicyFrame` fields): its thumbnail
    and, for a network that reads cues, the cue maps and/or per-anchor cue features of the
    image it is given (as in the node)."""
    from active_o3_ros.backends.small_policy import cue_look, letterbox, look_inputs, make_anchors
    from active_o3_ros.core.geometry import make_thumbnail

    aspect = net_cfg.thumbnail_size[0] / net_cfg.thumbnail_size[1]  # a 4:3 frame is letterboxed, as served
    thumb = letterbox(make_thumbnail(img, net_cfg.thumbnail_size[1])[0], aspect)[0]
    if not net_cfg.reads_cues:
        return {"thumbnail": thumb}
    seen = letterbox(make_thumbnail(img, net_cfg.cue_short_side)[0], aspect)[0]
    cues, maps = look_inputs(cue_look(seen, net_cfg), net_cfg, make_anchors(net_cfg.grids))
    return {"thumbnail": thumb, "cues": cues, "maps": maps}


def window_settings(cfg: PolicyTrainConfig) -> tuple[int, int]:
    """``(model.windows_above, model.windows_min_side)``, the policy's defaults where -1 (the
    minimum side then comes from the network, in :func:`frame_views`)."""
    from active_o3_ros.backends.small_policy import WINDOWS_ABOVE

    return WINDOWS_ABOVE if cfg.model.windows_above < 0 else cfg.model.windows_above, cfg.model.windows_min_side


def frame_views(img: np.ndarray, gt: Sequence[Box], key: str, net_cfg, above: int, min_side: int = -1
                ) -> list[tuple[str, np.ndarray, list[Box], dict[str, Any]]]:
    """The training frames one image gives, as the served policy reads it: the image itself,
    or each of its :func:`~active_o3_ros.backends.small_policy.sensing_windows` (key
    ``<key>_w<i>``, the pixels of that window, the labels lying mostly in it, clipped and
    shifted).  Each item: ``(key, image, labels, policy view)``."""
    from active_o3_ros.backends.small_policy import frame_windows

    h, w = img.shape[:2]
    wins = frame_windows(w, h, net_cfg, above, min_side)
    if not wins:
        return [(key, img, list(gt), _policy_view(img, net_cfg))]
    out = []
    for i, (x0, y0, ww, wh) in enumerate(wins):
        sub = np.ascontiguousarray(img[y0:y0 + wh, x0:x0 + ww])
        win = Box(x0, y0, x0 + ww, y0 + wh)
        inside = [Box(max(b.x1, x0) - x0, max(b.y1, y0) - y0, min(b.x2, x0 + ww) - x0, min(b.y2, y0 + wh) - y0)
                  for b in gt if win.contains(b, 0.5)]
        out.append((f"{key}_w{i}", sub, inside, _policy_view(sub, net_cfg)))
    return out


def _bag_frames(cfg: PolicyTrainConfig, net_cfg, report: DataReport, on_image=None) -> list[PolicyFrame]:
    from active_o3_training.data.rosbag import BagDatasetConfig, BagReport, iter_labeled_frames
    from active_o3_training.teacher import frame_key

    d = cfg.data
    bags = [d.bag] + ([d.labels_bag] if d.labels_bag else [])
    bcfg = BagDatasetConfig(camera_topic=d.camera_topic, labels_topic=d.labels_topic, tolerance_s=d.tolerance_s,
                            min_interval_s=d.min_interval_s, dedup_threshold=d.dedup_threshold,
                            instruction=d.instruction)
    rep = BagReport()
    out: list[PolicyFrame] = []
    used = 0  # recorded frames (a frame read as windows gives several training frames)
    for fr in iter_labeled_frames(bags, bcfg, rep, segment=(float(d.segment[0]), float(d.segment[1]))):
        gt = [b for b, lab in zip(fr.boxes, fr.labels) if lab == d.instruction or not d.instruction]
        if len(gt) < len(fr.boxes):
            rep.skip(f"labels of another class than {d.instruction!r} (boxes, not frames)")
        base = frame_key(fr.stamp_ns, fr.image)
        for key, img, labels, view in frame_views(fr.image, gt, base, net_cfg, *window_settings(cfg)):
            out.append(PolicyFrame(key=key, source=f"bag:{Path(d.bag).name}", width=img.shape[1],
                                   height=img.shape[0], gt=labels, instruction=fr.instruction or d.instruction,
                                   stamp_ns=fr.stamp_ns, image_key=base, **view))
            if on_image is not None:
                on_image(out[-1], img)
        used += 1
        if d.max_frames and used >= d.max_frames:
            break
    report.sources[f"bag:{Path(d.bag).name}" + (f"+{Path(d.labels_bag).name}" if d.labels_bag else "")] = {
        "labels_messages": rep.labels_messages, "images": rep.images, "used": used, "skipped": rep.skipped,
        **({"training_frames (windows)": len(out)} if len(out) != used else {})}
    return out


def _coco_frames(cfg: PolicyTrainConfig, net_cfg, report: DataReport, on_image=None) -> list[PolicyFrame]:
    import cv2

    from active_o3_training.data.coco import CocoSubsetConfig, coco_records, load_coco_json

    d = cfg.data
    data = load_coco_json(d.ann_file)
    recs = coco_records(data, d.image_dir, CocoSubsetConfig(subset=d.subset, classes=tuple(d.classes),
                                                            max_samples=d.max_frames,
                                                            include_negatives=d.lvis_negatives), source="coco")
    skipped: dict[str, int] = {}
    n_ne = sum(1 for im in data["images"] for _ in (im.get("not_exhaustive_category_ids") or ()))
    out = []
    for r in recs:
        bgr = cv2.imread(r["image"], cv2.IMREAD_COLOR)
        if bgr is None:
            skipped["image unreadable or missing"] = skipped.get("image unreadable or missing", 0) + 1
            continue
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = img.shape[:2]
        sx, sy = w / r["width"], h / r["height"]
        gt = [Box(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in r["gt_boxes"]]
        key = "coco_" + hashlib.sha1(f"{r['image']}|{r['instruction']}".encode()).hexdigest()[:16]
        for k, sub, labels, view in frame_views(img, gt, key, net_cfg, *window_settings(cfg)):
            out.append(PolicyFrame(key=k, source="coco", width=sub.shape[1], height=sub.shape[0], gt=labels,
                                   instruction=r["instruction"], image_key=key, **view))
            if on_image is not None:
                on_image(out[-1], sub)
    report.sources[f"coco:{Path(d.ann_file).name}"] = {
        "image_class_pairs": len(recs), "used": len(recs) - sum(skipped.values()), "skipped": skipped,
        **({"training_frames (windows)": len(out)} if len(out) != len(recs) - sum(skipped.values()) else {}),
        "negative_pairs (LVIS neg_category_ids, nothing to find)": sum(1 for r in recs if not r["gt_boxes"]),
        "not_exhaustive_pairs_in_file (never used)": n_ne}
    return out


def _synthetic_frames(cfg: PolicyTrainConfig, net_cfg, report: DataReport) -> list[PolicyFrame]:
    from active_o3_training.data.synthetic import generate_frame, split_seed

    out = []
    for i in range(cfg.data.synthetic_frames):
        seed = split_seed("train", 1000 + i)
        img, gt, _ = generate_frame(seed)
        out.append(PolicyFrame(key=f"synthetic_{seed}", source="synthetic", width=img.shape[1], height=img.shape[0],
                               gt=list(gt), instruction="text", **_policy_view(img, net_cfg)))
    report.sources["synthetic"] = {"used": len(out), "skipped": {}}
    return out


def validation_start(stamps_ns: Sequence[int], val_fraction: float) -> float:
    """The stamp from which a recording's frames are validation: its last ``val_fraction``
    of the time span."""
    t0, t1 = min(stamps_ns), max(stamps_ns)
    return t1 - (t1 - t0) * val_fraction


def split_by_time(frames: Sequence[PolicyFrame], val_fraction: float) -> tuple[list[PolicyFrame], list[PolicyFrame]]:
    """Bag frames: the last ``val_fraction`` of their time span is validation (per bag
    source); other sources: every ``1/val_fraction``-th image (with all its windows)."""
    train, val = [], []
    by_source: dict[str, list[PolicyFrame]] = {}
    for f in frames:
        by_source.setdefault(f.source, []).append(f)
    for src, fs in by_source.items():
        if not val_fraction:
            train += fs
        elif src.startswith("bag:"):
            cut = validation_start([f.stamp_ns for f in fs], val_fraction)
            train += [f for f in fs if f.stamp_ns < cut]
            val += [f for f in fs if f.stamp_ns >= cut]
        else:  # by image: the windows of one image stay on one side
            step = max(2, int(round(1 / val_fraction)))
            order = {k: i for i, k in enumerate(dict.fromkeys(f.image_key or f.key for f in fs))}
            train += [f for f in fs if order[f.image_key or f.key] % step]
            val += [f for f in fs if not order[f.image_key or f.key] % step]
    return train, val


def spread(n_total: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(n_total)``."""
    if n <= 0 or n_total <= 0:
        return []
    if n >= n_total:
        return list(range(n_total))
    return sorted({int(math.floor((i + 0.5) * n_total / n)) for i in range(n)})


# -- the anchor cache on arbitrary frames ------------------------------------------------------
def cache_settings(cfg: PolicyTrainConfig, net_cfg) -> "Any":
    from active_o3_training.anchor_cache import AnchorCacheConfig

    r = cfg.reward
    return AnchorCacheConfig(task=cfg.model.task, task_options=dict(cfg.model.task_options), crop_size=r.crop_size,
                             max_zoom=r.max_zoom, crop_context=r.crop_context, cache_dir=cfg.cache.cache_dir,
                             thumbnail_short_side=net_cfg.thumbnail_size[1],
                             grids=tuple((g.w, g.h, g.cols, g.rows) for g in net_cfg.grids),
                             threads=cfg.cache.threads)


def frame_cache_folder(acfg) -> Path:
    """Cache folder for non-generator frames: every setting a cached detection depends on."""
    d = acfg.key_dict()
    d = {k: v for k, v in d.items() if k not in ("generator_fingerprint", "generator")}
    # version 2: anchors of a frame that is not 16:9 map through the letterbox (anchor_regions)
    key = hashlib.sha256(json.dumps({**d, "frames": "any", "version": 2}, sort_keys=True).encode()).hexdigest()[:16]
    return Path(acfg.cache_dir) / f"frames_{key}"


class AnchorCacher:
    """Builds (or reads back) the per-anchor detections of chosen frames while they stream by."""

    def __init__(self, acfg, anchors: np.ndarray, wanted: set[str], progress: bool = True) -> None:
        from tqdm import tqdm

        self.acfg, self.anchors, self.wanted = acfg, anchors, wanted
        self.folder = frame_cache_folder(acfg)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.task = None
        self.seconds = 0.0
        self.built = 0
        self.bar = tqdm(total=len(wanted), desc="anchor cache", unit="frame", disable=not progress or not wanted)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def __call__(self, frame: PolicyFrame, image: np.ndarray) -> None:
        if frame.key not in self.wanted:
            return
        path = self.path(frame.key)
        if not path.is_file():
            from active_o3_training.anchor_cache import _task, anchor_detections

            if self.task is None:
                self.task = _task(self.acfg)
            t = time.perf_counter()
            data = anchor_detections(image, frame.gt, self.acfg, self.task, self.anchors, frame.instruction)
            self.seconds += time.perf_counter() - t
            self.built += 1
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, seed=np.int64(0), **data)
            os.replace(tmp, path)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def build_problems(frames: Sequence[PolicyFrame], cfg: PolicyTrainConfig, net_cfg, task_keys: set[str],
                   acfg) -> list[Any]:
    """GRPO problems: the dual reward where a frame has a detector cache, else the heuristic."""
    from active_o3_ros.backends.small_policy import make_anchors
    from active_o3_ros.core.geometry import thumbnail_size
    from active_o3_training.anchor_cache import anchor_regions, load_frame, merged_detections, usable_anchors
    from active_o3_training.grpo_policy import Problem, region_reward_fn

    r = cfg.reward
    full = r.reward_config()
    heur = replace(full, signal="heuristic")
    anchors = make_anchors(net_cfg.grids)
    thumb_short = net_cfg.thumbnail_size[1]
    crop = acfg.crop()
    folder = frame_cache_folder(acfg)
    out = []
    aspect = net_cfg.thumbnail_size[0] / net_cfg.thumbnail_size[1]
    for f in frames:
        regions = anchor_regions(anchors, f.width, f.height, thumb_short, aspect)
        # the frame's own thumbnail (f.thumbnail may carry letterbox bars): the answer's pixels
        tw, th = thumbnail_size(f.width, f.height, thumb_short)
        det_fn, rcfg = None, heur
        if f.key in task_keys and r.signal != "heuristic":
            cached = load_frame(folder / f"{f.key}.npz", anchors, thumb_short)
            det_fn, rcfg = (lambda a, c=cached: merged_detections(c, a, acfg)), full
        out.append(Problem(f.thumbnail, f.instruction,
                           region_reward_fn(regions, f.width, f.height, f.gt, (tw, th), rcfg, det_fn, crop),
                           cues=f.cues, maps=f.maps, allowed=usable_anchors(anchors, f.width, f.height, aspect)))
    return out


# -- the run -----------------------------------------------------------------------------------
def _teacher_card(cfg: PolicyTrainConfig) -> dict[str, Any] | None:
    if not cfg.data.labels_bag:
        return None
    p = Path(cfg.data.labels_bag) / "teacher.json"
    return json.loads(p.read_text()) if p.is_file() else None


def run(cfg: PolicyTrainConfig, command: str = "", progress: bool = True) -> dict[str, Any]:
    """Load data, build the task cache, train, write weights + card; returns the card."""
    import torch

    from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS, SmallPolicyConfig, build_net, load_weights, \
        make_anchors, save_weights
    from active_o3_training.grpo_policy import GRPOPolicyConfig, evaluate_greedy, plot_curves, train

    t = cfg.trainer
    if t.threads:
        torch.set_num_threads(t.threads)
    init = cfg.model.init or str(BUNDLED_WEIGHTS)
    net = build_net(SmallPolicyConfig()) if init == "init" else load_weights(init)
    start_net = copy.deepcopy(net)
    started_with = net.num_anchors
    if cfg.model.extra_grids:
        from active_o3_training.policy_math import add_anchors

        net = add_anchors(net, cfg.model.extra_grids)
        # the starting weights, scored on the same (grown) problems: new anchors never picked
        start_net = add_anchors(start_net, cfg.model.extra_grids, prior=-1e4)
    acfg = cache_settings(cfg, net.cfg)
    anchors = make_anchors(net.cfg.grids)
    report = DataReport()
    timings: dict[str, float] = {}

    # pass 1: every source's frames (thumbnails + labels only)
    t0 = time.perf_counter()
    frames: list[PolicyFrame] = []
    if cfg.data.bag:
        frames += _bag_frames(cfg, net.cfg, report)
    if cfg.data.ann_file:
        frames += _coco_frames(cfg, net.cfg, report)
    if cfg.data.synthetic_frames:
        frames += _synthetic_frames(cfg, net.cfg, report)
    timings["load_s"] = time.perf_counter() - t0
    train_frames, val_frames = split_by_time(frames, cfg.data.val_fraction)
    if not train_frames:
        raise ValueError(f"no training frame left after the time split ({report.sources})")
    # the task term's frames: spread over the training segment (bag frames first, pass 2)
    chosen = [train_frames[i] for i in spread(len(train_frames), cfg.cache.task_frames)] \
        if cfg.reward.signal != "heuristic" else []
    task_keys = {f.key for f in chosen}
    t0 = time.perf_counter()
    cacher = AnchorCacher(acfg, anchors, task_keys, progress)
    bare = replace(net.cfg, map_inputs=(), cue_features=False)  # this pass only feeds the detector cache
    try:
        todo = {k for k in task_keys if not cacher.path(k).is_file()}
        cacher.bar.update(len(task_keys) - len(todo))
        cacher.wanted = todo
        if todo:
            if cfg.data.bag:
                _bag_frames(cfg, bare, DataReport(), on_image=cacher)
            if cfg.data.ann_file:
                _coco_frames(cfg, bare, DataReport(), on_image=cacher)
            if cfg.data.synthetic_frames and any(k.startswith("synthetic_") for k in todo):
                from active_o3_training.data.synthetic import generate_frame

                for f in train_frames:
                    if f.key in todo and f.source == "synthetic":
                        cacher(f, generate_frame(int(f.key.split("_")[1]))[0])
    finally:
        cacher.close()
    missing = [k for k in task_keys if not cacher.path(k).is_file()]
    if missing:
        raise RuntimeError(f"{len(missing)} task-term frames were not cached (the source changed between passes?)")
    timings["cache_s"] = time.perf_counter() - t0
    timings["cache_detector_s"] = cacher.seconds

    problems = build_problems(train_frames, cfg, net.cfg, task_keys, acfg)
    val = build_problems(val_frames, cfg, net.cfg, set(), acfg)
    gcfg = GRPOPolicyConfig(
        max_steps=t.max_steps, batch_images=max(1, t.per_device_train_batch_size // t.num_generations),
        num_generations=t.num_generations, max_regions=cfg.reward.max_regions, learning_rate=t.learning_rate,
        beta=t.beta, weight_decay=t.weight_decay, warmup_steps=t.warmup_steps, reward_signal=cfg.reward.signal,
        flip_augment=t.flip_augment, seed=t.seed, init=init,
        eval_every=t.eval_steps, eval_train_frames=200, threads=t.threads, out=t.output_dir)
    out = Path(t.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = train(problems, gcfg, net=net, eval_problems=val, log_csv=out / "grpo_log.csv", progress=progress)
    timings["train_s"] = time.perf_counter() - t0
    # comparison with the starting weights on the validation segment (heuristic terms: the
    # teacher's labels are the ground truth there; no detector is run)
    comparison = {"frames": len(val), "reward": "heuristic terms vs. the labels of the validation segment",
                  "start": evaluate_greedy(start_net, val, cfg.reward.max_regions) if val else {},
                  "adapted": evaluate_greedy(res.net, val, cfg.reward.max_regions) if val else {}}
    weights = out / "small_policy.safetensors"
    heuristic = "heuristic: format, non-overlap, area, coverage (on the crop windows)"
    rewards_used = {"task-term frames (detector cache)": {"frames": len(task_keys), "reward": {
        "both": heuristic + " + task (detector AP50+AR50 on the cached crops)",
        "task": "task only", "heuristic": heuristic}[cfg.reward.signal]},
        "other frames": {"frames": len(problems) - len(task_keys), "reward": heuristic}}
    card = {
        "weights": weights.name, "network": json.loads(res.net.cfg.to_json()),
        "started_from": "shipped weights" if not cfg.model.init else cfg.model.init,
        "anchors": {"started_with": started_with, "added_grids": cfg.model.extra_grids,
                    "total": int(len(anchors))},
        "data": {"sources": report.sources, "train_frames": len(train_frames), "val_frames": len(val_frames),
                 "segment": list(cfg.data.segment), "val_fraction": cfg.data.val_fraction,
                 "split": "by time (last part of the segment is validation)"},
        "teacher": _teacher_card(cfg),
        "rewards_used": rewards_used,
        "greedy_eval": res.evals,
        "comparison_with_start_on_val": comparison,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "config": asdict(cfg) | {"trainer": {k: v for k, v in asdict(cfg.trainer).items() if k != "output_dir"}},
        "command": command,
        "parameters": int(sum(p.numel() for p in res.net.parameters())), "torch": torch.__version__,
    }
    save_weights(res.net, weights, provenance={"recipe": "active-o3-train policy", "train_frames": len(train_frames),
                                               "started_from": card["started_from"]})
    weights.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str))
    plot_curves(res.history, res.evals, out / "reward_curves.png")
    card["weights_path"] = str(weights)
    return card


HELP_EPILOG = """data sources (any mix):
  data.bag=REC [data.labels_bag=LABELS]   rosbag2 recording (camera raw/compressed) + DetectionArray labels
                                          (recorded with it, or written by `active-o3-train label`)
  data.ann_file=JSON data.image_dir=DIR   COCO / LVIS (coco_url) / SODA-D JSON + images
  data.synthetic_frames=N                 frames of the project's generator

config keys (section.key = default):
"""


def add_parser(sub) -> None:
    import argparse

    from active_o3_training import config as tcfg

    g = sub.add_parser("policy", help="GRPO-fine-tune the embedded small sensing policy on bags, COCO/LVIS/SODA or "
                       "synthetic frames (CPU)", formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=HELP_EPILOG + tcfg.describe(PolicyTrainConfig))
    g.add_argument("--config", help="YAML recipe (see training/configs/policy_*.yaml)")
    g.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one key (repeatable), e.g. --set trainer.max_steps=50")


def main_policy(args, argv: Sequence[str] | None) -> int:
    cfg = load_policy_config(args.config, args.set)
    card = run(cfg, command="active-o3-train " + shlex.join(list(argv) if argv is not None else sys.argv[1:]))
    c = card["comparison_with_start_on_val"]
    if c["frames"]:
        print(f"validation segment ({c['frames']} frames), coverage of the labels: start "
              f"{c['start'].get('coverage', 0):.3f} -> adapted {c['adapted'].get('coverage', 0):.3f}")
    print(f"weights: {card['weights_path']}  (run the node with -p sensing_model:={card['weights_path']})")
    return 0
