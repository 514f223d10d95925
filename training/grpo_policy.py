"""GRPO for the small CPU sensing policy (the embedded default), with the paper's dual reward.

This is the same algorithm TRL's ``GRPOTrainer`` runs for the multimodal LLM
(``training/grpo_mllm.py``): per image sample a group of G region sets from the current
policy, score each with the shared reward module
(:func:`active_o3_ros.core.rewards.region_rewards`: format, non-overlap, area, coverage and
the task term AP@0.5+AR@0.5 of the real detector's merged output), normalise rewards within
the group, ``A = (r - mean) / (std + eps)``, and minimise ``-A * log pi(set) + beta *
KL(pi || pi_ref)`` with AdamW, ``pi_ref`` being a frozen copy of the initial policy.  One
optimisation step per batch (TRL's default ``num_iterations=1``), so the importance ratio
is 1 and PPO-style clipping is inactive.  It is written by hand here only because the
policy is not a language model: a "completion" is an ordered draw of K distinct anchors
whose log-probability and KL are exact sums over the K categorical draws (see
:func:`active_o3_training.policy_math.set_log_probs`), not token sequences.

The task reward uses the cached detector outputs of :mod:`active_o3_training.anchor_cache`
(exact: the policy can only propose anchors).  Learning rate differs from the paper's 1e-6:
that value is for a 7B LLM; a CNN of a few hundred thousand parameters trained from scratch
needs ~1e-3.

CLI: ``python -m active_o3_training.grpo_policy --help``.
"""
from __future__ import annotations

import argparse
import copy
import csv
import itertools
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from active_o3_ros.backends.small_policy import (
    BUNDLED_WEIGHTS, DEFAULT_ANCHOR_GRIDS, AnchorGrid, SmallPolicyConfig, SmallPolicyNet, build_net, greedy_sets,
    anchor_iou_matrix, load_weights, read_config, make_anchors, sample_sets, save_weights,
)
from active_o3_training.policy_math import anchor_flip_permutation, grow_net, mirrored_cues, set_log_probs
from active_o3_ros.core.geometry import ResizeCropConfig, crop_enlargement, crop_window
from active_o3_ros.core.parsing import format_regions_answer
from active_o3_ros.core.rewards import (HEURISTIC_TERMS, REWARD_SIGNALS, REWARD_TERMS, RewardConfig, parse_reward_weights,
                                        region_rewards)
from active_o3_ros.core.types import Box

TERMS = REWARD_TERMS


@dataclass(frozen=True)
class GRPOPolicyConfig:
    """Training recipe.  G, beta and weight decay follow the paper; lr is set for a small CNN."""

    max_steps: int = 150
    batch_images: int = 8
    num_generations: int = 8
    max_regions: int = 3
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    beta: float = 0.04
    adv_eps: float = 1e-4
    reward_signal: str = "both"
    flip_augment: bool = True
    #: Also mirror top-bottom and permute colour channels.  WHY: small text is still text
    #: upside down and in any colour, so each frame gives 24 views instead of 2; anchors are
    #: mirrored with the image, so rewards stay exact.  (Shipped weights: with 1600 frames and
    #: these views train and validation coverage stayed within 0.05; with 320 frames and
    #: left-right flips only they drifted apart, 0.58 vs 0.46.)
    extra_augment: bool = False
    seed: int = 0
    init: str = "init"             # "init" = seeded fresh network, or a weights file to continue from
    edge_features: bool = True     # the network's fixed edge cue (see SmallPolicyConfig)
    #: Residual blocks per backbone stage (see ``SmallPolicyConfig.res_blocks``); with
    #: ``init`` = a weights file with fewer, the network is grown (``grow_net``) first.
    res_blocks: tuple[int, ...] = ()
    #: Thumbnail size as a multiple of the network's input (see
    #: ``SmallPolicyConfig.input_scale``); 0 = keep the initial network's.  A larger one
    #: than the initial network's grows it (``grow_net``).
    input_scale: int = 0
    #: Read the per-anchor cues of :mod:`active_o3_ros.backends.cues` (fresh networks only).
    cue_features: bool = False
    #: Use the thumbnail CNN (off: the cues alone score the anchors).
    use_cnn: bool = True
    #: Cue maps stacked onto the thumbnail as CNN inputs (``SmallPolicyConfig.map_inputs``);
    #: with ``init`` = a weights file without them, the network is grown (``grow_net``).
    map_inputs: tuple[str, ...] = ()
    #: Width of the anchor-scoring head (fresh networks only).
    hidden: int = 64
    #: The detector look the network is trained on and ships with: ``(long side, fraction)``
    #: of ``SmallPolicyConfig.detector_side`` (``()`` = the initial network's; v3's is
    #: ``(960, 0.5)``).  WHY: a sharper look shows the policy more of a 4K frame's small words,
    #: but a network trained on one look reads another one's maps poorly
    #: (``benchmarks/results/cue_sharp_val.md``), so the look is part of what is trained.
    cue_look: tuple = ()
    #: Linear learning-rate warm-up.  WHY: continuing from trained weights with a fresh AdamW
    #: state, Adam's first steps move every weight by about lr at once; a warm-up keeps those
    #: early moves small (the shipped weights' last stage used 100 steps).
    warmup_steps: int = 0
    #: Serve an exponential moving average of the weights (Polyak averaging; 0 = the last
    #: step's weights).  WHY: the greedy answer of the last step swings by +-0.04 validation
    #: coverage from one evaluation to the next (0.832 -> 0.788 in 200 steps) while the
    #: sampled reward is flat; the average keeps what the steps agree on.  Evaluations and
    #: the returned network use the average; GRPO samples from the live network.
    ema_decay: float = 0.0
    eval_every: int = 25
    #: The greedy answer is evaluated on the first this-many training frames (all validation frames):
    #: WHY: with ~1600 heuristic frames a full pass costs more than the steps in between.
    eval_train_frames: int = 200
    threads: int = 2
    out: str = "training/results/small_policy"
    weights_out: str = ""          # "" = <out>/small_policy.safetensors

    def __post_init__(self) -> None:
        if self.max_steps < 0 or self.batch_images < 1 or self.num_generations < 2 or self.max_regions < 1 or self.warmup_steps < 0:
            raise ValueError("need max_steps >= 0, batch_images >= 1, num_generations >= 2, max_regions >= 1 and warmup_steps >= 0")
        if self.input_scale < 0:
            raise ValueError("input_scale must be >= 0 (0 = the initial network's)")
        if not (self.learning_rate > 0 and self.beta >= 0):
            raise ValueError("need learning_rate > 0 and beta >= 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.cue_look and not (len(self.cue_look) == 2 and int(self.cue_look[0]) >= 64
                                  and 0.0 < float(self.cue_look[1]) <= 1.0):
            raise ValueError(f"cue_look must be (long side >= 64, fraction in (0, 1]), got {self.cue_look!r}")
        RewardConfig(signal=self.reward_signal, max_regions=self.max_regions)  # validates the signal


@dataclass
class Problem:
    """One training image: what the policy sees and a reward function over anchor sets.

    ``reward(anchors)`` returns ``(total, terms)``; results are memoised per unordered set
    (every term is order-free), which is exact and makes repeated draws free."""

    thumbnail: np.ndarray
    instruction: str
    reward_fn: Callable[[tuple[int, ...]], tuple[float, dict[str, float]]]
    _memo: dict = field(default_factory=dict)
    #: ``(N, F)`` per-anchor evidence (:mod:`active_o3_ros.backends.cues`) of the full frame,
    #: for networks that read cues.
    cues: np.ndarray | None = None
    #: uint8 ``(M, H, W)`` cue maps at the thumbnail size, for networks with ``map_inputs``.
    maps: np.ndarray | None = None
    #: bool ``(N,)``: the anchors region sets may be drawn from on this frame (None = all);
    #: the frames of the scene task cache, whose detector ran on these anchors only.
    allowed: np.ndarray | None = None

    def reward(self, anchors: Sequence[int]) -> tuple[float, dict[str, float]]:
        key = tuple(sorted(int(a) for a in anchors))
        if key not in self._memo:
            self._memo[key] = self.reward_fn(key)
        return self._memo[key]


def region_reward_fn(regions: Sequence[Box], width: int, height: int, gt: Sequence[Box], thumb_size: tuple[int, int],
                     cfg: RewardConfig, detections_for: Callable[[tuple[int, ...]], list] | None,
                     crop: ResizeCropConfig | None = None
                     ) -> Callable[[tuple[int, ...]], tuple[float, dict[str, float]]]:
    """Reward of an anchor set on one frame via the shared :func:`region_rewards`.

    ``regions``: every anchor as a frame-pixel region; the answer text is written in the
    thumbnail's pixels exactly as the policy writes it, so the format term is the real one.
    ``crop``: when given, coverage is measured on each anchor's ResizeCrop window (what the
    detector sees) instead of the anchor box."""
    tw, th = thumb_size
    sx, sy = tw / width, th / height
    windows = [crop_window(r, width, height, crop) for r in regions] if crop is not None else None
    # how much each anchor's crop enlarges it (read by the coverage term's minimum height)
    scales = [crop_enlargement(w, crop) for w in windows] if windows is not None else None

    def fn(anchors: tuple[int, ...]) -> tuple[float, dict[str, float]]:
        boxes = [regions[a] for a in anchors]
        text = format_regions_answer([b.scale(sx, sy) for b in boxes])
        dets = detections_for(anchors) if (detections_for is not None and cfg.signal != "heuristic") else None
        seen = [windows[a] for a in anchors] if windows is not None else None
        rb = region_rewards(cfg, boxes, width, height, gt, text=text, detections=dets, coverage_regions=seen,
                            coverage_scales=[scales[a] for a in anchors] if scales is not None else None)
        return rb.total, rb.terms

    return fn


def problems_from_cache(frames, cache_cfg, reward_cfg: RewardConfig, instruction: str = "text",
                        coverage_on_crops: bool = False) -> list[Problem]:
    from active_o3_training.anchor_cache import merged_detections

    out = []
    for f in frames:
        th, tw = f.thumbnail.shape[:2]
        fn = region_reward_fn(f.region_boxes, f.width, f.height, f.gt_boxes, (tw, th), reward_cfg,
                              lambda a, f=f: merged_detections(f, a, cache_cfg),
                              cache_cfg.crop() if coverage_on_crops else None)
        out.append(Problem(f.thumbnail, instruction, fn))
    return out


#: Where rendered frames for the heuristic reward go (thumbnail + ground truth only).
FRAME_CACHE_DIR = ".cache/small_policy_frames"


def parse_grids(text: str) -> tuple[AnchorGrid, ...]:
    """``"w,h,cols,rows;w,h,cols,rows"`` -> anchor grids (``""`` = the policy's defaults)."""
    if not text.strip():
        return DEFAULT_ANCHOR_GRIDS
    grids = []
    for part in text.split(";"):
        try:
            w, h, c, r = part.split(",")
            grids.append(AnchorGrid(float(w), float(h), int(c), int(r)))
        except ValueError:
            raise ValueError(f"--grids expects 'w,h,cols,rows;...', got {part!r}") from None
    return tuple(grids)


def _render_thumbnail(args: tuple[int, int, str]) -> str:
    """Worker: render one generator frame, keep its policy thumbnail and ground truth."""
    seed, thumb_short, folder = args
    from active_o3_training.data.synthetic import generate_frame
    from active_o3_ros.core.geometry import make_thumbnail

    path = Path(folder) / f"frame_{seed}.npz"
    if not path.is_file():
        frame, gt, _ = generate_frame(seed)
        thumb, _ = make_thumbnail(frame, thumb_short)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, thumbnail=thumb, size=np.array(frame.shape[1::-1], np.int64),
                            gt=np.asarray([b.as_list() for b in gt], np.float64).reshape(-1, 4))
        tmp.replace(path)
    return str(path)


def heuristic_problems(split: str, n: int, start: int, anchors: np.ndarray, thumb_short: int,
                       reward_cfg: RewardConfig, workers: int = 2, cache_dir: str = FRAME_CACHE_DIR,
                       progress: bool = True, crop: ResizeCropConfig | None = None) -> list[Problem]:
    """Training problems scored by the heuristic half of the dual reward only (format,
    non-overlap, area, coverage), which needs no detector.  WHY: the detector cache costs
    ~1-2 s per (frame, anchor) on this CPU, so the task term is affordable on a few dozen
    frames only; coverage of the ground truth is what the zoom needs, and it is free, so it
    can be trained on hundreds of frames.  Rendered thumbnails are cached by generator
    fingerprint (never stale).  ``crop``: measure coverage on the crop windows (see
    :func:`region_reward_fn`)."""
    from active_o3_training.anchor_cache import generator_fingerprint
    from active_o3_training.data.synthetic import split_seed

    rcfg = replace(reward_cfg, signal="heuristic")
    folder = Path(cache_dir) / f"{generator_fingerprint()}_{thumb_short}"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(split_seed(split, start + i), thumb_short, str(folder)) for i in range(n)]
    paths = _render_all(_render_thumbnail, jobs, f"frames ({split})", workers, progress)
    return [_cached_problem(path, anchors, thumb_short, rcfg, crop) for path in paths]


def _render_all(worker: Callable[[tuple], str], jobs: Sequence[tuple], desc: str, workers: int,
                progress: bool) -> list[str]:
    """Run a frame-rendering worker over ``jobs`` (in processes when ``workers > 1``)."""
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            return list(tqdm(pool.map(worker, jobs), total=len(jobs), desc=desc, disable=not progress))
    return [worker(j) for j in tqdm(jobs, desc=desc, disable=not progress)]


def _cached_problem(path: str, anchors: np.ndarray, thumb_short: int, rcfg: RewardConfig,
                    crop: ResizeCropConfig | None, net_cfg: SmallPolicyConfig | None = None,
                    task_entry: dict | None = None, merge=None) -> Problem:
    """A :class:`Problem` from a rendered frame's ``.npz`` (thumbnail, size, ground truth and,
    for scenes, the cue maps, from which what ``net_cfg`` reads is derived).  With a
    ``task_entry`` of :mod:`active_o3_training.scene_task_cache` the reward also has the task
    term (its detections, merged with ``merge``) and region sets are drawn among its anchors."""
    from active_o3_training.anchor_cache import anchor_regions
    from active_o3_ros.backends.cues import CueMaps
    from active_o3_ros.backends.small_policy import look_inputs

    d = np.load(path, allow_pickle=False)
    fw, fh = (int(v) for v in d["size"])
    thumb = d["thumbnail"]
    gt = [Box(*map(float, b)) for b in d["gt"]]
    regions = anchor_regions(anchors, fw, fh, thumb_short)
    th, tw = thumb.shape[:2]
    cues, maps = (look_inputs(CueMaps.from_arrays(d), net_cfg, anchors)
                  if net_cfg is not None and net_cfg.reads_cues else (None, None))
    if task_entry is None:
        return Problem(thumb, "text", region_reward_fn(regions, fw, fh, gt, (tw, th), rcfg, None, crop),
                       cues=cues, maps=maps)
    from active_o3_training.scene_task_cache import entry_detections

    allowed = np.zeros(len(anchors), bool)
    allowed[task_entry["allowed"]] = True
    fn = region_reward_fn(regions, fw, fh, gt, (tw, th), replace(rcfg, signal="both"),
                          lambda a: entry_detections(task_entry, a, merge), crop)
    return Problem(thumb, "text", fn, cues=cues, maps=maps, allowed=allowed)


def parse_cue_look(text: str, what: str = "--cue-look") -> tuple:
    """``"1280:0.667"`` -> ``(1280, 0.667)``; ``""`` -> ``()`` (the initial network's look).
    ``what`` names the option in the error message."""
    if not text.strip():
        return ()
    side, sep, frac = text.strip().partition(":")
    try:
        look = (int(side), float(frac)) if sep else None
    except ValueError:
        look = None
    if look is None or look[0] < 64 or not 0.0 < look[1] <= 1.0:
        raise ValueError(f"{what} is LONG_SIDE:FRACTION with LONG_SIDE >= 64 and FRACTION in (0, 1], got {text!r}")
    return look


def with_cue_look(net_cfg: SmallPolicyConfig, look: tuple) -> SmallPolicyConfig:
    """``net_cfg`` reading the detector look ``(long side, fraction)``."""
    return replace(net_cfg, cue_detector_long_side=int(look[0]), cue_detector_fraction=float(look[1]))


def _scene_frame(args: tuple[int, str, int, str, str]) -> str:
    """Worker: render one scene, keep the CNN thumbnail, the cue maps of the image the
    policy is given (features are derived from them on load), and the ground truth."""
    seed, domain, thumb_short, net_json, folder = args
    from active_o3_training.data.scenes import SceneConfig, render_scene
    from active_o3_ros.backends.small_policy import cue_look
    from active_o3_ros.core.geometry import make_thumbnail

    path = Path(folder) / f"scene_{seed}.npz"
    if not path.is_file():
        net_cfg = SmallPolicyConfig.from_json(net_json)
        f = render_scene(seed, SceneConfig(domain))
        seen, _ = make_thumbnail(f.image, net_cfg.cue_short_side)
        thumb, _ = make_thumbnail(f.image, thumb_short)
        tmp = path.with_suffix(".tmp.npz")
        maps = cue_look(seen, net_cfg, threads=1)
        np.savez_compressed(tmp, thumbnail=thumb, size=np.array(f.image.shape[1::-1], np.int64),
                            gt=np.asarray([b.as_list() for b in f.boxes], np.float64).reshape(-1, 4),
                            **maps.to_arrays())
        tmp.replace(path)
    return str(path)


def scene_problems(set_name: str, n: int | None, start: int, net_cfg: SmallPolicyConfig,
                   reward_cfg: RewardConfig, workers: int = 2, cache_dir: str = FRAME_CACHE_DIR,
                   progress: bool = True, crop: ResizeCropConfig | None = None,
                   task_entries: dict[int, dict] | None = None, merge=None) -> list[Problem]:
    """Problems from the domain-family scenes (:mod:`active_o3_training.data.scenes`):
    ``set_name`` "train" (``n`` frames from index ``start``) or a frozen set's name, scored
    by the heuristic reward.  Each frame's cues are computed once and cached by a hash of
    the generator's output and the cue settings (never stale); the per-anchor features are
    derived from the cached maps on load, so new anchors or features need no re-render.
    ``task_entries`` (``{seed: entry}`` of :mod:`active_o3_training.scene_task_cache`): those
    frames get the dual reward (heuristic + the detector's AP/AR on the cached crops)."""
    import hashlib

    from active_o3_training.data import scenes

    if set_name not in ("train", "val", "val_held_out"):
        raise ValueError(f"training may read the train and val scenes only, never {set_name!r} (a frozen test set)")
    seeds = [scenes.train_seed(start + i) for i in range(n or 0)] if set_name == "train" else \
        scenes.frozen_seeds(set_name)[start:None if n is None else start + n]
    domain = scenes.set_config(set_name).domain
    probe = scenes.render_scene(scenes.FROZEN_SETS["val"].first_seed, scenes.SceneConfig(frame_sizes=((640, 360),)))
    settings = (net_cfg.cue_detector_long_side, net_cfg.cue_detector_fraction, net_cfg.cue_short_side,
                net_cfg.thumbnail_size, "cue-maps-1")
    key = hashlib.sha256(probe.image.tobytes() + json.dumps(
        [[b.as_list() for b in probe.boxes], settings]).encode()).hexdigest()[:16]
    thumb_short = net_cfg.thumbnail_size[1]
    folder = Path(cache_dir) / f"scenes_{key}"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(sd, domain, thumb_short, net_cfg.to_json(), str(folder)) for sd in seeds]
    paths = _render_all(_scene_frame, jobs, f"scenes ({set_name})", workers, progress)
    rcfg = replace(reward_cfg, signal="heuristic")
    anchors = make_anchors(net_cfg.grids)
    task_entries = task_entries or {}
    return [_cached_problem(path, anchors, thumb_short, rcfg, crop, net_cfg, task_entries.get(sd), merge)
            for sd, path in zip(seeds, paths)]


def _stacked_maps(net: SmallPolicyNet, problems: Sequence[Problem]) -> torch.Tensor | None:
    """uint8 ``(B, M, H, W)`` maps of the problems, for a network with ``map_inputs``."""
    if not net.cfg.map_inputs:
        return None
    if any(p.maps is None or p.maps.shape[0] != len(net.cfg.map_inputs) for p in problems):
        raise ValueError(f"this network reads the cue maps {net.cfg.map_inputs}: train it on scenes "
                         "(--scenes), whose frames carry them")
    return torch.from_numpy(np.stack([p.maps for p in problems]))


def _net_inputs(net: SmallPolicyNet, problems: Sequence[Problem]):
    """``(x, cues, maps)`` for a batch of problems (None where the network does not read it)."""
    x = net.preprocess([p.thumbnail for p in problems]) if net.cfg.use_cnn else None
    cues = torch.from_numpy(np.stack([p.cues for p in problems])) if net.n_cues else None
    raw = _stacked_maps(net, problems)
    return x, cues, (net.normalise_maps(raw) if raw is not None else None)


def evaluate_greedy(net: SmallPolicyNet, problems: Sequence[Problem], k: int) -> dict[str, float]:
    """Mean reward (total and per term) of the policy's greedy answer (what it
    serves: best-first anchors, no sampling)."""
    if not problems:
        return {}
    iou = anchor_iou_matrix(net.anchors.numpy().astype(np.float64))
    net.eval()
    with torch.no_grad():
        outs = []
        for p in problems:
            x, cues, maps = _net_inputs(net, [p])
            lg = net(x, [p.instruction], cues, maps)
            if p.allowed is not None:  # greedy among the anchors the reward knows
                lg = lg.masked_fill(~torch.as_tensor(p.allowed)[None], float("-inf"))
            outs.append(lg)
        logits = torch.cat(outs)
    sets = greedy_sets(logits, k, iou, net.cfg.overlap_tau)
    rows = [p.reward(s) for p, s in zip(problems, sets)]
    res = {"reward": float(np.mean([r[0] for r in rows]))}
    for t in TERMS:
        vals = [r[1][t] for r in rows if t in r[1]]
        if vals:
            res[t] = float(np.mean(vals))
    return res


@dataclass
class TrainResult:
    net: SmallPolicyNet
    history: list[dict[str, float]]
    evals: list[dict[str, float]]
    seconds: float


def _mirrored(t: torch.Tensor, left_right: bool, top_bottom: bool) -> torch.Tensor:
    t = t.flip(-1) if left_right else t
    return t.flip(-2) if top_bottom else t


def train(problems: Sequence[Problem], cfg: GRPOPolicyConfig, net: SmallPolicyNet | None = None,
          eval_problems: Sequence[Problem] = (), log_csv: str | Path | None = None,
          progress: bool = True) -> TrainResult:
    """Run GRPO; returns the trained network and per-step logs (reward per term, KL, entropy)."""
    from tqdm import tqdm

    if not problems:
        raise ValueError("GRPO needs at least one training problem")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    if net is None:
        net = (build_net(SmallPolicyConfig(edge_features=cfg.edge_features, res_blocks=cfg.res_blocks,
                                           input_scale=cfg.input_scale or 1, cue_features=cfg.cue_features,
                                           use_cnn=cfg.use_cnn, hidden=cfg.hidden,
                                           map_inputs=cfg.map_inputs))
               if cfg.init == "init" else load_weights(cfg.init))
    blocks = tuple(cfg.res_blocks) if cfg.res_blocks else net.cfg.res_blocks
    scale = cfg.input_scale or net.cfg.input_scale
    maps = tuple(cfg.map_inputs) or net.cfg.map_inputs
    cue = cfg.cue_features or net.cfg.cue_features
    if (blocks, scale, maps, cue) != (net.cfg.res_blocks, net.cfg.input_scale, net.cfg.map_inputs,
                                      net.cfg.cue_features):
        net = grow_net(net, blocks, scale, maps, cue)  # raises if asked to shrink
    if cfg.cue_look:  # the look is read outside the network: only the config the weights carry changes
        net.cfg = with_cue_look(net.cfg, cfg.cue_look)
    ref = copy.deepcopy(net).eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    ema = copy.deepcopy(ref) if cfg.ema_decay else None
    served = ema if ema is not None else net  # what evaluations score and training returns
    anchors_np = net.anchors.numpy().astype(np.float64)
    perm = torch.as_tensor(anchor_flip_permutation(anchors_np)) if cfg.flip_augment else None
    vperm = torch.as_tensor(anchor_flip_permutation(anchors_np, vertical=True)) if cfg.extra_augment else None
    colour_orders = [list(o) for o in itertools.permutations(range(3))]
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0)
    # Thumbnails resized once and kept as uint8 (a 2x input scale would need 22 GB as
    # floats); mirrors and colour orders are applied before folding (``normalise``).
    base = torch.cat([net.raw_input([p.thumbnail]) for p in problems]) if net.cfg.use_cnn else None
    cue_base = torch.from_numpy(np.stack([p.cues for p in problems])) if net.n_cues else None
    map_base = _stacked_maps(net, problems)
    identity = torch.arange(net.num_anchors)
    history: list[dict[str, float]] = []
    evals: list[dict[str, float]] = []
    writer, fh = None, None
    if log_csv:
        Path(log_csv).parent.mkdir(parents=True, exist_ok=True)
        fh = open(log_csv, "w", newline="")
    t0 = time.perf_counter()

    def do_eval(step: int) -> None:
        for name, probs in (("train", problems[:cfg.eval_train_frames]), ("val", eval_problems)):
            if probs:
                e = evaluate_greedy(served, probs, cfg.max_regions)
                evals.append({"step": step, "split": name, **e})
                if progress:
                    tqdm.write(f"step {step} {name} ({len(probs)} frames): greedy coverage {e.get('coverage', 0):.3f}, "
                               f"reward {e['reward']:.3f}")

    try:
        do_eval(0)
        bar = tqdm(range(cfg.max_steps), desc="GRPO small policy", unit="step", disable=not progress)
        for step in bar:
            net.train()
            idx = rng.choice(len(problems), size=min(cfg.batch_images, len(problems)), replace=False)
            flip = rng.random(len(idx)) < 0.5 if cfg.flip_augment else np.zeros(len(idx), bool)
            vflip = rng.random(len(idx)) < 0.5 if cfg.extra_augment else np.zeros(len(idx), bool)
            x = maps = None
            if base is not None:
                x = torch.stack([base[i].flip(-1) if f else base[i] for i, f in zip(idx, flip)])
                if cfg.extra_augment:  # top-bottom mirror where drawn, and a random channel order
                    x = torch.stack([(xi.flip(-2) if v else xi)[colour_orders[rng.integers(6)]]
                                     for xi, v in zip(x, vflip)])
                x = net.normalise(x)
            if map_base is not None:  # the maps are mirrored with the image (never recoloured)
                maps = net.normalise_maps(torch.stack([_mirrored(map_base[i], f, v)
                                                       for i, f, v in zip(idx, flip, vflip)]))
            cues = None
            if cue_base is not None:  # a mirrored view's anchor a shows the frame's anchor perm[vperm[a]]
                cues = torch.stack([mirrored_cues(cue_base[i], (perm if f else identity)[vperm if v else identity],
                                                  bool(f), bool(v)) for i, f, v in zip(idx, flip, vflip)])
            instr = [problems[i].instruction for i in idx]
            logits = net(x, instr, cues, maps)
            with torch.no_grad():
                ref_logits = ref(x, instr, cues, maps)
            allowed = None
            if any(problems[i].allowed is not None for i in idx):  # in x's anchors: view anchor a is frame anchor
                allowed = torch.stack([                            # perm[vperm[a]] (as the sets are mapped below)
                    torch.as_tensor(problems[i].allowed if problems[i].allowed is not None
                                    else np.ones(net.num_anchors, bool))[(perm if f else identity)[vperm if v else identity]]
                    for i, f, v in zip(idx, flip, vflip)])
            draw = logits.detach().masked_fill(~allowed, float("-inf")) if allowed is not None else logits
            sets = sample_sets(draw, cfg.max_regions, cfg.num_generations, gen)          # B, G, k (in x's anchors)
            rewards = torch.zeros(sets.shape[:2])
            terms_acc: dict[str, list[float]] = {}
            for b, (i, hf, vf) in enumerate(zip(idx, flip, vflip)):
                for g in range(sets.shape[1]):
                    s = sets[b, g]
                    if vf:  # a mirrored view's anchor is the mirror of the frame's anchor
                        s = vperm[s]
                    if hf:
                        s = perm[s]
                    r, terms = problems[i].reward(s.tolist())
                    rewards[b, g] = r
                    for t, v in terms.items():
                        terms_acc.setdefault(t, []).append(v)
            adv = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + cfg.adv_eps)
            logp, kl, ent = set_log_probs(logits, sets, ref_logits, allowed)
            pg = -(adv * logp).mean()
            loss = pg + cfg.beta * kl.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                with torch.no_grad():
                    for pe, p in zip(ema.parameters(), net.parameters()):
                        pe.lerp_(p, 1.0 - cfg.ema_decay)
            row = {"step": step + 1, "reward": float(rewards.mean()), "reward_std": float(rewards.std(1).mean()),
                   "kl": float(kl.detach().mean()), "entropy": float(ent.detach().mean()), "loss": float(loss.detach()),
                   "seconds": time.perf_counter() - t0,
                   **{t: float(np.mean(terms_acc[t])) if t in terms_acc else float("nan") for t in TERMS}}
            history.append(row)
            if fh is not None:
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)
                fh.flush()
            bar.set_postfix(reward=f"{row['reward']:.3f}", kl=f"{row['kl']:.3f}")
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.max_steps:
                do_eval(step + 1)
        do_eval(cfg.max_steps)
    finally:
        if fh is not None:
            fh.close()
    served.eval()
    return TrainResult(served, history, evals, time.perf_counter() - t0)


def plot_curves(history: Sequence[dict[str, float]], evals: Sequence[dict[str, float]], path: str | Path) -> None:
    """Reward per term (sampled groups, smoothed) and the greedy answer's reward at each evaluation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))

    def smooth(v, n=10):
        v = np.asarray(v, float)
        return np.convolve(v, np.ones(n) / n, mode="valid") if len(v) >= n else v

    for t in ("reward",) + TERMS:
        vals = [h.get(t, float("nan")) for h in history]
        if not np.all(np.isnan(vals)):
            s = smooth(vals)
            axes[0].plot(steps[len(steps) - len(s):], s, label=t)
    axes[0].set_title("sampled groups: reward per term (10-step mean)")
    axes[0].set_xlabel("step")
    axes[0].legend(fontsize=8)
    for split in sorted({e["split"] for e in evals}):
        es = [e for e in evals if e["split"] == split]
        axes[1].plot([e["step"] for e in es], [e["reward"] for e in es], "o-", label=f"{split} total")
        if "task" in es[0]:
            axes[1].plot([e["step"] for e in es], [e["task"] for e in es], "s--", label=f"{split} task (AP50+AR50)")
    axes[1].set_title("greedy policy (as served): reward")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=8)
    axes[2].plot(steps, [h["kl"] for h in history], label="KL to reference")
    axes[2].plot(steps, [h["entropy"] for h in history], label="entropy (nats, K draws)")
    axes[2].set_xlabel("step")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_stages(stage_evals: dict[str, Sequence[dict[str, float]]], path: str | Path,
                term: str = "coverage") -> None:
    """Held-out (and train) greedy ``term`` across consecutive training stages on one step axis.

    WHY: the shipped weights come from several runs, each continuing from the last
    (``--init``); one plot over all of them shows where the gains came from."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    offset = 0
    for i, (name, evals) in enumerate(stage_evals.items()):
        for split, style in (("val", "o-"), ("train", "x--")):
            pts = [(e["step"] + offset, e[term]) for e in evals if e["split"] == split and term in e]
            if pts:
                ax.plot(*zip(*pts), style, color=f"C{i}", label=f"{name} {split}")
        offset += max((e["step"] for e in evals), default=0)
    ax.set_xlabel("GRPO step (stages back to back)")
    ax.set_ylabel(f"greedy {term}")
    ax.set_title(f"deterministic policy: {term} per stage")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _parser() -> argparse.ArgumentParser:
    d = GRPOPolicyConfig()
    p = argparse.ArgumentParser(
        prog="python -m active_o3_training.grpo_policy",
        description="Train the small CPU sensing policy with GRPO on synthetic small-text frames, using the "
                    "shared dual reward and the real text detector's cached outputs (build the cache first: "
                    "python -m active_o3_training.anchor_cache).")
    p.add_argument("--train-frames", type=int, default=32, help="frames of the train split (cached)")
    p.add_argument("--val-frames", type=int, default=0, help="frames of the val split to evaluate on (cached)")
    p.add_argument("--available-only", action="store_true",
                   help="train on the cached subset of --train-frames (e.g. while the cache is still building)")
    p.add_argument("--cache-dir", default=None, help="anchor cache folder root (default: the cache module's)")
    p.add_argument("--task-options", default="{}", help="JSON task options the cache was built with")
    p.add_argument("--heuristic-frames", type=int, default=0,
                   help="extra train-split frames scored by the heuristic reward only (no detector cache)")
    p.add_argument("--heuristic-val-frames", type=int, default=0,
                   help="val-split frames for held-out heuristic-reward evaluation")
    p.add_argument("--heuristic-start", type=int, default=1000,
                   help="index in the train split where the heuristic frames start (after cached ones)")
    p.add_argument("--scenes", type=int, default=0,
                   help="training frames drawn from the domain-family scenes (held-out families never "
                        "appear), heuristic reward")
    p.add_argument("--scenes-start", type=int, default=0, help="first index of the training scenes")
    p.add_argument("--scenes-task", type=int, default=0,
                   help="of the --scenes frames, the first N get the dual reward: the task term from the real "
                        "detector on each frame's top-M anchors (python -m active_o3_training.scene_task_cache), "
                        "and their region sets are drawn among those anchors")
    p.add_argument("--scenes-task-top-m", type=int, default=16, help="M of the scene task cache")
    p.add_argument("--scenes-task-weights", default="",
                   help="weights that ranked the cache's anchors ('' = the bundled ones)")
    p.add_argument("--scenes-val", type=int, default=0,
                   help="frames of the frozen validation scenes to evaluate on (the only set decisions use)")
    p.add_argument("--cues", action="store_true",
                   help="a network that reads the full-resolution cues (detector probability map, strokes)")
    p.add_argument("--no-cnn", action="store_true", help="with --cues: no thumbnail CNN, cues only")
    p.add_argument("--hidden", type=int, default=d.hidden, help="width of the anchor-scoring head (fresh networks)")
    p.add_argument("--map-inputs", default="",
                   help="cue maps stacked onto the thumbnail as CNN inputs, e.g. 'det,stroke' (of det, stroke, "
                        "lap); grows --init weights that lack them (scenes only)")
    p.add_argument("--cue-look", default="",
                   help="LONG_SIDE:FRACTION of the detector look to train on and ship with, e.g. 1280:0.667 "
                        "('' = the initial network's; the frames' cue maps are rendered for it)")
    p.add_argument("--grids", default="",
                   help="anchor grids 'w,h,cols,rows;...' in fractions of the frame (default: the policy's)")
    p.add_argument("--workers", type=int, default=2, help="processes rendering heuristic frames")
    p.add_argument("--crop-context", type=float, default=1.0,
                   help="the ResizeCrop context the detector crops are cut with (the node's crop_context)")
    p.add_argument("--coverage-on-crops", action="store_true",
                   help="measure the coverage reward on each region's crop window (context, minimum "
                        "size: what the detector sees) instead of on the proposed box")
    p.add_argument("--coverage-min-height", type=float, default=0.0,
                   help="with --coverage-on-crops: a ground-truth box counts as covered only when its "
                        "region's crop shows it at least this many pixels tall (0 = any size)")
    p.add_argument("--max-steps", "--steps", dest="steps", type=int, default=d.max_steps)
    p.add_argument("--batch-images", type=int, default=d.batch_images)
    p.add_argument("--num-generations", "--group-size", dest="group_size", type=int, default=d.num_generations,
                   help="G: region sets sampled per image")
    p.add_argument("--max-regions", "--k", dest="k", type=int, default=d.max_regions, help="K: regions per set")
    p.add_argument("--learning-rate", "--lr", dest="lr", type=float, default=d.learning_rate)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps,
                   help="linear lr warm-up (use when continuing from trained weights with --init)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help="serve an exponential moving average of the weights (e.g. 0.99; 0 = last step's)")
    p.add_argument("--beta", type=float, default=d.beta, help="KL weight to the frozen reference")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--reward-signal", "--reward-mode", dest="reward_signal", default=d.reward_signal,
                   choices=REWARD_SIGNALS, help="which reward terms train the policy (the paper's ablation)")
    p.add_argument("--reward-weights", default="",
                   help="TERM=W,... weights of the reward terms (format, non_overlap, area, coverage, task; "
                        "1 each unless given), e.g. 'coverage=0' to let the task term alone judge where the "
                        "detector reads; recorded in the card")
    p.add_argument("--no-edge-features", action="store_true", help="train without the fixed edge cue")
    p.add_argument("--input-scale", type=int, default=0,
                   help="thumbnail size as a multiple of the network input, folded into channels "
                        "(0 = the initial network's; larger grows it)")
    p.add_argument("--res-blocks", default="",
                   help="residual blocks per backbone stage, e.g. '0,0,1,1' (grows --init weights)")
    p.add_argument("--no-flip", action="store_true", help="disable left-right flip augmentation")
    p.add_argument("--extra-augment", action="store_true",
                   help="also flip top-bottom and permute colour channels")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--init", default=d.init, help="'init' (seeded fresh network) or a weights file")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-train-frames", type=int, default=d.eval_train_frames,
                   help="evaluate the greedy answer on the first N training frames (all validation frames)")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out", default=d.out, help="folder for the CSV log, curves PNG and summary JSON")
    p.add_argument("--evaluate", nargs="+", default=None, metavar="WEIGHTS",
                   help="no training: write the greedy answer's mean reward per term of these weights ('init' = the "
                        "reference initialisation) on the cached train/val frames to <out>/eval.json")
    p.add_argument("--weights-out", default=d.weights_out,
                   help=f"where to write the weights (default <out>/small_policy.safetensors; the shipped "
                        f"ones live at active_o3_ros/data/{BUNDLED_WEIGHTS.name})")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from active_o3_training.anchor_cache import AnchorCacheConfig, load_cache

    args = _parser().parse_args(argv)
    try:
        opts = json.loads(args.task_options)
        cfg = GRPOPolicyConfig(
            max_steps=args.steps, batch_images=args.batch_images, num_generations=args.group_size, max_regions=args.k,
            learning_rate=args.lr, ema_decay=args.ema_decay,
            beta=args.beta, warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, reward_signal=args.reward_signal,
            flip_augment=not args.no_flip, extra_augment=args.extra_augment,
            edge_features=not args.no_edge_features, seed=args.seed,
            res_blocks=tuple(int(n) for n in args.res_blocks.split(",") if n.strip()),
            input_scale=args.input_scale, cue_features=args.cues, use_cnn=not args.no_cnn, hidden=args.hidden,
            map_inputs=tuple(m.strip() for m in args.map_inputs.split(",") if m.strip()), init=args.init, eval_every=args.eval_every,
            eval_train_frames=args.eval_train_frames, cue_look=parse_cue_look(args.cue_look),
            threads=args.threads, out=args.out, weights_out=args.weights_out)
        cache_kw = {"task_options": opts} if opts else {}
        if args.cache_dir:
            cache_kw["cache_dir"] = args.cache_dir
        train_cache = AnchorCacheConfig(split="train", n_frames=args.train_frames, crop_context=args.crop_context,
                                        **cache_kw)
        val_cache = replace(train_cache, split="val", n_frames=args.val_frames)
        # built even when coverage stays on the boxes: it validates --crop-context before
        # any frame is loaded or rendered
        crop = train_cache.crop()
        coverage_crop = crop if args.coverage_on_crops else None
        if args.coverage_min_height and not args.coverage_on_crops:
            raise ValueError("--coverage-min-height needs --coverage-on-crops (the crops' enlargement)")
        rcfg = RewardConfig(signal=cfg.reward_signal, max_regions=cfg.max_regions,
                            coverage_min_height=args.coverage_min_height,
                            weights={**dict.fromkeys(REWARD_TERMS, 1.0), **parse_reward_weights(args.reward_weights)})
        t_load = time.perf_counter()
        detector_seconds_scenes, entries = 0.0, None
        grids = parse_grids(args.grids)
        if args.grids:
            train_cache = replace(train_cache, grids=tuple((g.w, g.h, g.cols, g.rows) for g in grids))
            val_cache = replace(val_cache, grids=train_cache.grids)
        train_frames = load_cache(train_cache, args.available_only) if args.train_frames else []
        val_frames = load_cache(val_cache, args.available_only) if args.val_frames else []
        problems = problems_from_cache(train_frames, train_cache, rcfg, coverage_on_crops=args.coverage_on_crops)
        val = problems_from_cache(val_frames, val_cache, rcfg, coverage_on_crops=args.coverage_on_crops)
        anchors = make_anchors(grids)
        # heuristic frames are rendered at the thumbnail size the trained network will read
        # (evaluating: the largest any of the listed networks reads; smaller ones resize it)
        if args.evaluate:
            thumb_short = max([SmallPolicyConfig(grids=grids).thumbnail_size[1]]
                              + [read_config(w).thumbnail_size[1] for w in args.evaluate if w != "init"])
        else:
            init_cfg = SmallPolicyConfig(grids=grids) if cfg.init == "init" else read_config(cfg.init)
            thumb_short = init_cfg.input_height * (cfg.input_scale or init_cfg.input_scale)
        if args.heuristic_frames:
            problems += heuristic_problems("train", args.heuristic_frames, args.heuristic_start, anchors,
                                           thumb_short, rcfg, args.workers, crop=coverage_crop)
        if args.scenes or args.scenes_val:
            if args.evaluate:
                raise ValueError("--evaluate reads the synthetic caches; use benchmarks/sensing_domains.py for scenes")
            scene_cfg = (SmallPolicyConfig(grids=grids, edge_features=cfg.edge_features, res_blocks=cfg.res_blocks,
                                           cue_features=cfg.cue_features, use_cnn=cfg.use_cnn, hidden=cfg.hidden,
                                           map_inputs=cfg.map_inputs)
                         if cfg.init == "init" else read_config(cfg.init))
            if cfg.cue_look:
                scene_cfg = with_cue_look(scene_cfg, cfg.cue_look)
            if cfg.map_inputs or cfg.cue_features:  # the frames carry what the (grown) network will read
                scene_cfg = replace(scene_cfg, map_inputs=cfg.map_inputs or scene_cfg.map_inputs,
                                    cue_features=cfg.cue_features or scene_cfg.cue_features)
            merge = None
            if args.scenes_task:
                from active_o3_training.scene_task_cache import SceneTaskCacheConfig, load as load_scene_task

                if args.scenes_task > args.scenes:
                    raise ValueError("--scenes-task must not exceed --scenes")
                stc = SceneTaskCacheConfig(n_frames=args.scenes_task, start=args.scenes_start,
                                           top_m=args.scenes_task_top_m, weights=args.scenes_task_weights,
                                           crop_context=args.crop_context,
                                           **({"cache_dir": args.cache_dir} if args.cache_dir else {}))
                entries = load_scene_task(stc, args.available_only)
                merge = stc.anchor_cache().merge()
                detector_seconds_scenes = sum(float(e["task_seconds"]) for e in entries.values())
            if args.scenes:
                problems += scene_problems("train", args.scenes, args.scenes_start, scene_cfg, rcfg, args.workers,
                                           crop=coverage_crop, task_entries=entries, merge=merge)
            if args.scenes_val:
                val += scene_problems("val", args.scenes_val, 0, scene_cfg, rcfg, args.workers, crop=coverage_crop)
        if args.heuristic_val_frames:
            val += heuristic_problems("val", args.heuristic_val_frames, 0, anchors,
                                      thumb_short, rcfg, args.workers, crop=coverage_crop)
        t_load = time.perf_counter() - t_load
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.evaluate:
        report = {"cache_key": train_cache.key(), "train_seeds": [f.seed for f in train_frames],
                  "val_seeds": [f.seed for f in val_frames], "k": cfg.max_regions, "reward_signal": cfg.reward_signal,
                  "results": {}}
        for w in args.evaluate:
            net = build_net(SmallPolicyConfig(grids=grids)) if w == "init" else load_weights(w)
            report["results"][w] = {"train": evaluate_greedy(net, problems, cfg.max_regions),
                                    "val": evaluate_greedy(net, val, cfg.max_regions)}
            print(w, json.dumps(report["results"][w]))
        (out / "eval.json").write_text(json.dumps(report, indent=1))
        return 0
    net = None
    if cfg.init == "init":
        net = build_net(SmallPolicyConfig(grids=grids, edge_features=cfg.edge_features, res_blocks=cfg.res_blocks,
                                          cue_features=cfg.cue_features, use_cnn=cfg.use_cnn, hidden=cfg.hidden,
                                          map_inputs=cfg.map_inputs))
    res = train(problems, cfg, net=net, eval_problems=val, log_csv=out / "grpo_log.csv")
    weights = Path(cfg.weights_out or out / "small_policy.safetensors")
    first = res.history[: max(1, len(res.history) // 10)]
    last = res.history[-max(1, len(res.history) // 10):]
    summary = {
        "config": asdict(cfg), "cache_key": train_cache.key(),
        "cache_settings": train_cache.key_dict(),
        "train_seeds": [f.seed for f in train_frames], "train_frames": len(train_frames),
        "val_seeds": [f.seed for f in val_frames], "val_frames": len(val_frames),
        "detector_seconds_in_cache": round(sum(f.task_seconds for f in train_frames + val_frames)
                                           + detector_seconds_scenes, 1), "train_seconds": round(res.seconds, 1), "cache_load_seconds": round(t_load, 1),
        "sampled_reward_first_10pct": float(np.mean([h["reward"] for h in first])),
        "sampled_reward_last_10pct": float(np.mean([h["reward"] for h in last])),
        "greedy_eval": res.evals,
        "anchors": res.net.num_anchors,
        "parameters": int(sum(p.numel() for p in res.net.parameters())),
        "torch": torch.__version__,
    }
    recipe = {k: v for k, v in asdict(cfg).items() if k not in ("out", "weights_out")}  # no local paths
    recipe |= {"crop_context": args.crop_context, "coverage_on_crops": args.coverage_on_crops,
               "coverage_min_height": args.coverage_min_height}
    # what each group of training frames was really scored with (the heuristic groups never
    # see the detector, whatever --reward-signal says)
    heuristic = "heuristic: " + ", ".join(HEURISTIC_TERMS) + (" (coverage on the crop windows)" if args.coverage_on_crops else "") \
        + (f" (a box counts when its crop shows it >= {args.coverage_min_height:g} px tall)"
           if args.coverage_min_height else "")
    used = {"detector-cache frames (synthetic train split)": (len(train_frames), {
                "both": heuristic + " + task (detector AP50+AR50 on the cached crops)",
                "task": "task only (detector AP50+AR50 on the cached crops)", "heuristic": heuristic}[cfg.reward_signal]),
            "synthetic frames without detector": (args.heuristic_frames, heuristic),
            "domain-family scenes (training families)": (args.scenes - len(entries or {}), heuristic),
            "domain-family scenes with the detector's task term (training families)": (len(entries or {}), (
                heuristic + f" + task (detector AP50+AR50 on the cached crops of the {args.scenes_task_top_m} anchors "
                "the ranking weights score highest; region sets drawn among them)"))}
    if any(w != 1.0 for w in rcfg.weights.values()):  # the card says how the terms were summed
        weighted = "; term weights " + ", ".join(f"{t} {rcfg.weights[t]:g}" for t in REWARD_TERMS)
        used = {k: (n, r + weighted) for k, (n, r) in used.items()}
    recipe["reward_signal"] = "see rewards_used"
    recipe["reward_weights"] = dict(rcfg.weights)
    recipe["rewards_used"] = {k: {"frames": n, "reward": r} for k, (n, r) in used.items() if n}
    save_weights(res.net, weights, provenance={k: summary[k] for k in (
        "cache_key", "train_frames", "train_seconds", "sampled_reward_first_10pct", "sampled_reward_last_10pct")}
        | {"recipe": recipe})
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    # A small human-readable card next to the weights (config + provenance).
    card = {"weights": weights.name, "network": json.loads(res.net.cfg.to_json()),
            "reproduce": ("python -m active_o3_training.anchor_cache --split train --n-frames "
                          f"{args.train_frames} && " if args.train_frames else "")
                         + ("python -m active_o3_training.scene_task_cache --n-frames "
                            f"{args.scenes_task} --start {args.scenes_start} --top-m {args.scenes_task_top_m}"
                            + (f" --weights {args.scenes_task_weights}" if args.scenes_task_weights else "")
                            + f" --crop-context {args.crop_context:g} && " if args.scenes_task else "")
                         + "python -m active_o3_training.grpo_policy "
                         + shlex.join(argv if argv is not None else sys.argv[1:]),
            **{k: summary[k] for k in ("cache_key", "train_seeds", "val_seeds", "train_seconds",
                                       "detector_seconds_in_cache", "sampled_reward_first_10pct",
                                       "sampled_reward_last_10pct", "greedy_eval", "parameters", "torch")},
            "recipe": recipe}
    if args.scenes or args.scenes_val:
        from active_o3_training.data import scenes as _scenes

        card["scenes"] = {
            "train_seeds": f"{_scenes.train_seed(args.scenes_start)}..{_scenes.train_seed(args.scenes_start + args.scenes - 1)}"
            if args.scenes else None,
            "val_seeds": f"frozen 'val' set, first {args.scenes_val} frames" if args.scenes_val else None,
            "held_out_families_never_used": _scenes.HELD_OUT, "fonts_found": _scenes.available_font_families()}
    weights.with_suffix(".json").write_text(json.dumps(card, indent=1))
    plot_curves(res.history, res.evals, out / "reward_curves.png")
    print(json.dumps({k: summary[k] for k in ("train_seconds", "sampled_reward_first_10pct",
                                               "sampled_reward_last_10pct")}))
    for e in res.evals:
        if e["step"] in (0, cfg.max_steps):
            print(f"greedy reward {e['split']} step {e['step']}: " + ", ".join(f"{k}={v:.3f}" for k, v in e.items()
                                                                       if k not in ("step", "split")))
    print(f"weights: {weights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
