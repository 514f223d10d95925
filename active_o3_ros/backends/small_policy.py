"""A small CPU sensing policy (the embedded default M_O), trained with GRPO.

Why this exists: on a CPU-only robot no multimodal LLM can be fetched or run at frame
rate, yet the ACTIVE-o3 job -- *where* to zoom so a frozen detector finds small things --
still has to be done.  This policy does that job with a small CNN (72-208 k parameters):

* It looks at the thumbnail (resized to a fixed ``input_width x input_height``) and scores
  a fixed set of **anchor regions** (a few grid scales/aspects in normalised image
  coordinates).  Each anchor's score comes from features pooled inside the anchor (mean
  and max over a CNN feature map), the frame's global mean feature (so scores are relative
  to the rest of the frame) and a learned per-anchor prior.
* It can also read cheap full-resolution evidence (:mod:`.cues`: the text detector's
  probability map and stroke density of a larger image): as extra input channels of the
  CNN (``map_inputs``) and as 21 numbers per anchor fed to the scoring head
  (``cue_features``).  The thumbnail alone cannot show a 9 px word of a 4K frame.
* The instruction is hashed into a bag of word buckets whose embeddings are added to every
  anchor's feature vector.  With the shipped weights, trained on one target ("text"), it is
  a learned constant; it is there so one network can be trained for several targets
  without a tokenizer or vocabulary download.
* **Stochastic** for GRPO: K distinct anchors are drawn sequentially without replacement
  (each draw masks the chosen anchor); the ordered draw's log-probability is the sum of the
  per-draw log-softmaxes, so a group of sampled sets gets exact log-probs and an exact KL
  to a frozen reference policy.
* **Deterministic** at inference (greedy): top-K, skipping anchors whose IoU with
  an already chosen one exceeds ``overlap_tau`` (0.3, the reward's non-overlap threshold).

It answers in the paper's ``<think>/<answer>`` JSON format so the same format reward and
parser apply as for the MLLM.  Weights are safetensors only; the network's configuration
(anchors, input size, widths) is stored in the safetensors header so a weights file is
self-describing.
"""
from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from active_o3_ros.backends.base import SensingOutput, SensingPolicy
from active_o3_ros.backends.cues import (CUE_FEATURES, MAP_INPUTS, MAP_SCALE, CueMaps, anchor_features,
                                        choose_by_hits, cue_maps, fit_to_hits, hit_boxes, look_at_boxes,
                                        look_detector, shift_to_hits)
from active_o3_ros.core.geometry import make_thumbnail, resize_image, validate_image
from active_o3_ros.core.parsing import format_regions_answer
from active_o3_ros.core.types import Box, Region

#: The weights that ship in the package (trained by ``training/grpo_policy.py``).
BUNDLED_WEIGHTS = Path(__file__).resolve().parent.parent / "data" / "small_policy.safetensors"
#: ``model``/``weights`` value that builds the untrained, seeded reference initialisation.
INIT_WEIGHTS = "init"
_METADATA_KEY = "small_policy_config"


# -- anchors -----------------------------------------------------------------------------
@dataclass(frozen=True)
class AnchorGrid:
    """``cols x rows`` anchors of size ``w x h`` (fractions of image width/height), centres
    spread evenly so the outer anchors touch the image border."""

    w: float
    h: float
    cols: int
    rows: int

    @classmethod
    def parse(cls, values: "AnchorGrid | Sequence[float]") -> "AnchorGrid":
        """A grid from ``[w, h, cols, rows]`` (a config list), checked: ``0 < w, h <= 1`` and
        whole ``cols, rows >= 1``; anything else raises a ValueError naming the value."""
        if isinstance(values, cls):
            return values
        try:
            w, h, c, r = (float(v) for v in values)
            ok = 0 < w <= 1 and 0 < h <= 1 and c >= 1 and r >= 1 and c.is_integer() and r.is_integer()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"an anchor grid is [w, h, cols, rows] with 0 < w, h <= 1 and whole cols, rows >= 1; "
                             f"got {values!r}")
        return cls(w, h, int(c), int(r))

    def boxes(self) -> list[tuple[float, float, float, float]]:
        xs = np.linspace(self.w / 2, 1 - self.w / 2, self.cols) if self.cols > 1 else np.array([0.5])
        ys = np.linspace(self.h / 2, 1 - self.h / 2, self.rows) if self.rows > 1 else np.array([0.5])
        return [(float(cx - self.w / 2), float(cy - self.h / 2), float(cx + self.w / 2), float(cy + self.h / 2))
                for cy in ys for cx in xs]


#: Default anchors (24) for 16:9 frames of 1080p-4K with a 840 px, <= 3x ResizeCrop:
#: twenty square-ish regions (384x324 px at 1080p: ~2.2x zoom) and four big quadrant-like
#: regions (768x540 px at 1080p) for long signs and shelf rows.  Few anchors on purpose:
#: training caches the real detector's output on every anchor of every frame, and square
#: crops were the detector's cheapest input (it enlarged the short side to 736 px; now 480).
DEFAULT_ANCHOR_GRIDS: tuple[AnchorGrid, ...] = (
    AnchorGrid(0.20, 0.30, 5, 4),
    AnchorGrid(0.40, 0.50, 2, 2),
)


def make_anchors(grids: Sequence[AnchorGrid]) -> np.ndarray:
    """``(N, 4)`` normalised ``xyxy`` anchors of all grids, clipped to ``[0, 1]``."""
    boxes = [b for g in grids for b in g.boxes()]
    return np.clip(np.asarray(boxes, dtype=np.float64), 0.0, 1.0)


def anchor_iou_matrix(anchors: np.ndarray, aspect: float = 16 / 9) -> np.ndarray:
    """Pairwise IoU of normalised anchors measured in pixels of an image of this aspect
    (IoU is aspect-invariant for axis-aligned boxes scaled per axis, so any aspect works)."""
    a = anchors * np.array([aspect, 1.0, aspect, 1.0])
    x1, y1, x2, y2 = a.T
    area = (x2 - x1) * (y2 - y1)
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    return inter / np.maximum(area[:, None] + area[None] - inter, 1e-12)


def anchor_boxes_px(anchors: np.ndarray, width: float, height: float) -> list[Box]:
    return [Box(float(a[0] * width), float(a[1] * height), float(a[2] * width), float(a[3] * height))
            for a in anchors]


def anchor_flip_permutation(anchors: np.ndarray, vertical: bool = False) -> np.ndarray:
    """Index of each anchor's mirror image (flip augmentation in training, mirror views at
    inference): left-right by default, top-bottom with ``vertical=True``.  Raises a
    ValueError when the anchor set has no such mirror."""
    lo, hi = (1, 3) if vertical else (0, 2)
    mirrored = anchors.copy()
    mirrored[:, lo], mirrored[:, hi] = 1 - anchors[:, hi], 1 - anchors[:, lo]
    d = np.abs(mirrored[:, None, :] - anchors[None, :, :]).sum(-1)
    perm = d.argmin(1)
    if not np.allclose(d[np.arange(len(anchors)), perm], 0, atol=1e-6):
        raise ValueError(f"anchor set is not {'top-bottom' if vertical else 'left-right'} symmetric")
    return perm


def mirrored_cues(cues: torch.Tensor, order: torch.Tensor, left_right: bool, top_bottom: bool) -> torch.Tensor:
    """Per-anchor cue features ``(..., N, F)`` as a mirrored view of the frame sees them:
    ``order[a]`` is the frame's anchor behind the view's anchor ``a``, and the mirrored
    position features change sign (every other feature is mirror-invariant)."""
    out = cues[..., order, :].clone()
    if left_right:
        out[..., CUE_FEATURES.index("cx")] *= -1
    if top_bottom:
        out[..., CUE_FEATURES.index("cy")] *= -1
    return out


#: The mirror views :meth:`SmallPolicyNet.view_logits` averages: ``(left_right, top_bottom)``
#: for 1 (as trained), 2 (+ left-right mirror) and 4 (+ top-bottom mirror and both).
MIRROR_VIEWS = {1: ((False, False),), 2: ((False, False), (True, False)),
                4: ((False, False), (True, False), (False, True), (True, True))}


# -- network -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SmallPolicyConfig:
    """Everything needed to rebuild the network (stored inside the weights file)."""

    input_width: int = 512
    input_height: int = 288
    channels: tuple[int, ...] = (16, 32, 48, 64)
    hidden: int = 64
    instruction_buckets: int = 64
    grids: tuple[AnchorGrid, ...] = DEFAULT_ANCHOR_GRIDS
    overlap_tau: float = 0.3
    init_seed: int = 0
    #: Add fixed (not learned) edge statistics per anchor: mean/max of |Laplacian| and of a
    #: strong-edge indicator, and their difference to the frame mean.  WHY: with a few dozen
    #: training frames a CNN from scratch barely learns "small high-contrast strokes here";
    #: these six numbers give the head that cue directly (held-out reward 3.86 -> 4.11).
    edge_features: bool = True
    #: Residual 3x3 conv blocks after each stride-2 stage (one count per stage; ``()`` =
    #: none).  WHY: four plain convs see ~31 thumbnail pixels and barely tell rows of tiny
    #: words from other fine texture; blocks on the coarse stages add depth and context at
    #: little cost, and their last conv starts at zero so a trained network can be widened
    #: into them without changing its answers (``grow_net``).
    res_blocks: tuple[int, ...] = ()
    #: The thumbnail is ``input_scale`` times the input size; each ``s x s`` block of its
    #: pixels is folded into channels (``pixel_unshuffle``) before the first conv.  WHY: at
    #: 512 px wide a 4K frame's 8-24 px words are 1-3 px tall, below what the first
    #: stride-2 conv can tell from texture; folding a 2x thumbnail into channels gives that
    #: conv every thumbnail pixel while the rest of the network, its feature map and its
    #: anchors stay as they are.  A trained network is raised to a larger scale without
    #: changing its answers (:func:`grow_net`): the first conv starts as the block mean.
    input_scale: int = 1
    #: Score anchors from the cheap full-resolution evidence of :mod:`.cues` (the text
    #: detector's probability map at ``cue_detector_long_side`` and the stroke maps).  WHY:
    #: the thumbnail alone cannot show a 9 px word of a 4K frame; see that module.
    cue_features: bool = False
    #: The detector cue reads the policy's image downscaled to ``cue_detector_fraction`` of
    #: its long side, at most ``cue_detector_long_side`` px (1280x720 -> 640, 1920x1080 ->
    #: 960).  WHY: at 640 px the cue of a 4K frame (6x down) found 0.54 of the words the
    #: anchor oracle found at 0.94; 1080p frames reached 0.87 (validation scenes).
    cue_detector_long_side: int = 960
    cue_detector_fraction: float = 0.5
    #: Short side of the image the policy is given when it reads cues (the stroke cue's
    #: resolution; the thumbnail for the CNN is cut from it).
    cue_short_side: int = 1080
    #: Use the thumbnail CNN.  Off = the anchor scores come from the cues alone.
    use_cnn: bool = True
    #: Cue maps (names of :data:`.cues.MAP_INPUTS`: the detector's probability map, stroke
    #: density, Laplacian energy) resized to the thumbnail and stacked onto its RGB channels
    #: as extra CNN inputs.  WHY: per-anchor cue statistics scored by a small head lost to
    #: the thumbnail CNN on held-out families (coverage 0.65 vs 0.72); the CNN's layers see
    #: the maps *in context* (neighbouring anchors, the layout around a hint), and a trained
    #: thumbnail CNN is widened into them without changing its answers (``grow_net``).
    map_inputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.input_width < 32 or self.input_height < 32:
            raise ValueError("input size must be at least 32x32")
        if self.input_scale < 1:
            raise ValueError("input_scale must be >= 1")
        if len(self.res_blocks) > len(self.channels) or any(n < 0 for n in self.res_blocks):
            raise ValueError("res_blocks needs at most one non-negative count per stage")
        if not self.grids:
            raise ValueError("at least one anchor grid is needed")
        if not (self.use_cnn or self.cue_features):
            raise ValueError("the policy needs the CNN, the cues, or both")
        unknown = [m for m in self.map_inputs if m not in MAP_INPUTS]
        if unknown or len(set(self.map_inputs)) != len(self.map_inputs):
            raise ValueError(f"map_inputs must be distinct names of {MAP_INPUTS}, got {self.map_inputs}")
        if self.map_inputs and not self.use_cnn:
            raise ValueError("map_inputs feed the thumbnail CNN: they need use_cnn")

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SmallPolicyConfig":
        d = json.loads(text)
        d["channels"] = tuple(int(c) for c in d["channels"])
        d["grids"] = tuple(AnchorGrid(**g) for g in d["grids"])
        d["res_blocks"] = tuple(int(n) for n in d.get("res_blocks", ()))  # absent in older weights
        d.setdefault("edge_features", False)  # weights written before the option existed
        d["map_inputs"] = tuple(str(m) for m in d.get("map_inputs", ()))
        return cls(**d)

    def detector_side(self, image_shape: Sequence[int]) -> int:
        """Long side the detector cue reads an image of ``image_shape`` (``H, W, ...``) at."""
        return int(min(self.cue_detector_long_side, round(max(image_shape[:2]) * self.cue_detector_fraction)))

    @property
    def thumbnail_size(self) -> tuple[int, int]:
        """``(width, height)`` of the image the network reads (before folding)."""
        return self.input_width * self.input_scale, self.input_height * self.input_scale

    @property
    def reads_cues(self) -> bool:
        """Whether the network reads the full-resolution cues (per anchor or as maps), and
        so wants the larger ``cue_short_side`` image instead of the bare thumbnail."""
        return bool(self.cue_features or self.map_inputs)

    @property
    def image_short_side(self) -> int:
        """Short side of the image the policy is given (the pipeline's thumbnail for it): the
        cue image for networks that read cues, else the network's own thumbnail."""
        return int(self.cue_short_side if self.reads_cues else self.thumbnail_size[1])


def cue_look(image: np.ndarray, cfg: SmallPolicyConfig, threads: int = 0, model: Path | None = None) -> CueMaps:
    """The cheap look (:func:`.cues.cue_maps`) a cue-reading network takes of the image it
    is given (in the node: the frame at ``cue_short_side``); ``model``: the detector file
    (None: the fp32 one the weights were trained on; :func:`.cues.look_detector`)."""
    return cue_maps(validate_image(image, "frame"), cfg.detector_side(image.shape), cfg.cue_short_side, threads,
                    model)


def look_inputs(look: CueMaps, cfg: SmallPolicyConfig, anchors: np.ndarray
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What a network of ``cfg`` reads of one look: per-anchor cue features ``(N, F)``
    (``cue_features``) and uint8 maps ``(M, H*s, W*s)`` at its thumbnail size
    (``map_inputs``), each None when it does not read it.  The one definition the node,
    the scene trainer and the bag trainer share."""
    cues = anchor_features(look, anchors) if cfg.cue_features else None
    maps = look.thumbnail_channels(cfg.map_inputs, *cfg.thumbnail_size) if cfg.map_inputs else None
    return cues, maps


def instruction_buckets(instruction: str, n_buckets: int) -> list[int]:
    """Stable hash (crc32, not Python's salted ``hash``) of each lower-cased word."""
    words = instruction.lower().replace(",", " ").split() or [""]
    return sorted({zlib.crc32(w.encode("utf-8")) % n_buckets for w in words})


class _ResidualBlock(nn.Module):
    """``x + conv(relu(gn(conv(x))))`` with the second conv zero-initialised (identity at start)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(4, c), nn.ReLU(inplace=True),
                                  nn.Conv2d(c, c, 3, padding=1))
        nn.init.zeros_(self.body[3].weight)
        nn.init.zeros_(self.body[3].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SmallPolicyNet(nn.Module):
    """Thumbnail (+ instruction) -> one logit per anchor."""

    def __init__(self, cfg: SmallPolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = (3 + len(cfg.map_inputs)) * cfg.input_scale ** 2
        for c in cfg.channels if cfg.use_cnn else ():
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(4, c), nn.ReLU(inplace=True)]
            c_in = c
        self.backbone = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            nn.Sequential(*(_ResidualBlock(c) for _ in range(n)))
            for c, n in zip(cfg.channels, cfg.res_blocks if cfg.use_cnn else ()))
        c = cfg.channels[-1]
        self.word_embedding = nn.Embedding(cfg.instruction_buckets, 3 * c)
        nn.init.zeros_(self.word_embedding.weight)
        n_edge = 6 if (cfg.edge_features and cfg.use_cnn) else 0
        n_cnn = 3 * c if cfg.use_cnn else 0
        self.n_cues = len(CUE_FEATURES) if cfg.cue_features else 0
        self.head = nn.Sequential(nn.Linear(n_cnn + n_edge + self.n_cues, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.hidden, 1))
        if not cfg.use_cnn:  # the instruction then shifts the hidden layer
            self.word_embedding = nn.Embedding(cfg.instruction_buckets, cfg.hidden)
            nn.init.zeros_(self.word_embedding.weight)
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
        self.register_buffer("laplacian", lap, persistent=False)
        anchors = make_anchors(cfg.grids)
        self.anchor_prior = nn.Parameter(torch.zeros(len(anchors)))
        # Feature-map cell masks of every anchor (fixed input size -> fixed map size).
        fh, fw = cfg.input_height, cfg.input_width
        for _ in cfg.channels:
            fh, fw = (fh + 1) // 2, (fw + 1) // 2
        ys = (torch.arange(fh, dtype=torch.float64) + 0.5) / fh
        xs = (torch.arange(fw, dtype=torch.float64) + 0.5) / fw
        masks = []
        for x1, y1, x2, y2 in anchors:
            m = ((ys >= y1) & (ys <= y2))[:, None] & ((xs >= x1) & (xs <= x2))[None, :]
            if not m.any():  # an anchor smaller than a cell still sees its nearest cell
                m[int(min(fh - 1, (y1 + y2) / 2 * fh)), int(min(fw - 1, (x1 + x2) / 2 * fw))] = True
            masks.append(m.flatten())
        self.register_buffer("anchor_masks", torch.stack(masks).float(), persistent=False)
        self._max_groups = _rectangle_groups(torch.stack(masks).view(-1, fh, fw))
        # where each anchor lands when the groups' results are concatenated, inverted once
        self._max_order = torch.argsort(torch.cat([idx for idx, _ in self._max_groups.values()]))
        self.register_buffer("anchors", torch.as_tensor(anchors, dtype=torch.float32), persistent=False)
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])

    def raw_input(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images of any size -> uint8 ``(B, 3, H*s, W*s)`` at the thumbnail size.

        Kept apart from :meth:`normalise` so training can store its frames compactly and
        flip or recolour them *before* the pixel blocks are folded into channels."""
        tw, th = self.cfg.thumbnail_size
        arr = np.stack([resize_image(validate_image(im, "thumbnail"), tw, th) for im in images])
        return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, 3, H*s, W*s)`` -> the network's input ``(B, 3*s*s, H, W)``."""
        x = (raw.float().div_(255.0) - self.pixel_mean) / self.pixel_std
        return F.pixel_unshuffle(x, self.cfg.input_scale) if self.cfg.input_scale > 1 else x

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """RGB uint8 images of any size -> the network's normalised input."""
        return self.normalise(self.raw_input(images))

    def cue_inputs(self, images: Sequence[np.ndarray], threads: int = 0
                   ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(cues, maps)`` of full-resolution images, each None when the network does not
        read it: per-anchor features ``(B, N, F)`` and normalised maps ``(B, M*s*s, H, W)``,
        from one look (:func:`.cues.cue_maps`) per image."""
        if not self.cfg.reads_cues:
            return None, None
        anchors = self.anchors.cpu().numpy().astype(np.float64)
        read = [look_inputs(cue_look(im, self.cfg, threads), self.cfg, anchors) for im in images]
        cues = torch.from_numpy(np.stack([c for c, _ in read])) if self.n_cues else None
        maps = self.normalise_maps(torch.from_numpy(np.stack([m for _, m in read]))) if self.cfg.map_inputs else None
        return cues, maps

    def normalise_maps(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, M, H*s, W*s)`` maps -> ``(B, M*s*s, H, W)`` network input."""
        m = raw.float().div_(255.0 * MAP_SCALE)
        return F.pixel_unshuffle(m, self.cfg.input_scale) if self.cfg.input_scale > 1 else m

    def mirror_orders(self, views: int) -> list[tuple[bool, bool, torch.Tensor]]:
        """``(left_right, top_bottom, order)`` of each of ``views`` mirror views
        (:data:`MIRROR_VIEWS`); ``order[a]`` is the frame's anchor that the view's anchor
        ``a`` shows.  Raises a ValueError for an unknown count or anchors without mirrors."""
        if views not in MIRROR_VIEWS:
            raise ValueError(f"mirror views must be one of {sorted(MIRROR_VIEWS)}, got {views!r}")
        anchors = self.anchors.cpu().numpy().astype(np.float64)
        ident = torch.arange(self.num_anchors)
        lr = torch.as_tensor(anchor_flip_permutation(anchors)) if views > 1 else ident
        tb = torch.as_tensor(anchor_flip_permutation(anchors, vertical=True)) if views > 2 else ident
        return [(f, v, (lr if f else ident)[tb if v else ident]) for f, v in MIRROR_VIEWS[views]]

    def view_logits(self, images: Sequence[np.ndarray], instructions: Sequence[str], views: int = 1,
                    threads: int = 0, looks: Sequence[CueMaps] | None = None) -> torch.Tensor:
        """``(B, N)`` logits of full-resolution images, averaged over ``views`` mirror views
        (test-time augmentation with the mirrors training used: the thumbnail, the cue maps
        and the per-anchor cues are mirrored together, one cue look per image, and each
        view's logits are mapped back to the frame's anchors).  ``views=1`` is the plain
        forward pass.  ``looks``: the images' cue looks when the caller already took them."""
        orders = self.mirror_orders(views)
        device = self.anchor_prior.device
        raw = self.raw_input(images).to(device) if self.cfg.use_cnn else None
        cues = raw_maps = None
        if self.cfg.reads_cues:
            anchors = self.anchors.cpu().numpy().astype(np.float64)
            if looks is None:
                looks = [cue_look(im, self.cfg, threads) for im in images]
            read = [look_inputs(lk, self.cfg, anchors) for lk in looks]
            cues = torch.from_numpy(np.stack([c for c, _ in read])) if self.n_cues else None
            raw_maps = torch.from_numpy(np.stack([m for _, m in read])) if self.cfg.map_inputs else None

        def mirror(t, f, v):
            t = t.flip(-1) if f else t
            return t.flip(-2) if v else t

        xs, cs, ms = [], [], []
        for f, v, order in orders:  # all views in one batch
            if raw is not None:
                xs.append(self.normalise(mirror(raw, f, v)))
            if cues is not None:
                cs.append(mirrored_cues(cues, order, f, v))
            if raw_maps is not None:
                ms.append(self.normalise_maps(mirror(raw_maps, f, v)))
        cat = (lambda t: torch.cat(t).to(device) if t else None)
        logits = self(cat(xs), list(instructions) * len(orders), cat(cs), cat(ms)).float().cpu()
        b = len(images)
        out = torch.zeros(b, self.num_anchors)
        for i, (_, _, order) in enumerate(orders):
            out[:, order] += logits[i * b:(i + 1) * b]
        return out / len(orders)

    def cues(self, images: Sequence[np.ndarray], threads: int = 0) -> torch.Tensor:
        """``(B, N, len(CUE_FEATURES))`` evidence of full-resolution images (see :mod:`.cues`)."""
        anchors = self.anchors.cpu().numpy().astype(np.float64)
        return torch.from_numpy(np.stack([anchor_features(cue_look(im, self.cfg, threads), anchors) for im in images]))

    def _embed(self, instructions: Sequence[str], device) -> torch.Tensor:
        return torch.stack([
            self.word_embedding(torch.tensor(instruction_buckets(t, self.cfg.instruction_buckets),
                                             device=device)).mean(0)
            for t in instructions])

    def forward(self, x: torch.Tensor | None, instructions: Sequence[str],
                cues: torch.Tensor | None = None, maps: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: preprocessed ``(B, 3, H, W)`` (None without the CNN); ``cues``: ``(B, N,
        F)`` from :meth:`cues` when the network reads them; ``maps``: normalised ``(B, M,
        H, W)`` from :meth:`normalise_maps` when it reads ``map_inputs``; returns ``(B, N)``
        logits."""
        if self.n_cues and (cues is None or cues.shape[-1] != self.n_cues):
            raise ValueError(f"this policy reads {self.n_cues} cue features per anchor; pass cues=net.cues(images)")
        n_maps = len(self.cfg.map_inputs) * self.cfg.input_scale ** 2
        if n_maps and (maps is None or maps.shape[1] != n_maps):
            raise ValueError(f"this policy reads the cue maps {self.cfg.map_inputs}; "
                             "pass maps=net.cue_inputs(images)[1]")
        if not self.cfg.use_cnn:
            z = self.head[0](cues.float()) + self._embed(instructions, cues.device)[:, None, :]
            return self.head[2](torch.relu(z)).squeeze(-1) + self.anchor_prior[None, :]
        feat = torch.cat([x, maps], 1) if n_maps else x
        for stage in range(len(self.cfg.channels)):
            feat = self.backbone[3 * stage:3 * stage + 3](feat)
            if stage < len(self.blocks):
                feat = self.blocks[stage](feat)                      # B, C, h, w after the last
        flat = feat.flatten(2)                                       # B, C, hw
        masks = self.anchor_masks                                    # N, hw
        mean = torch.einsum("bcp,np->bnc", flat, masks) / masks.sum(1)[None, :, None]
        mx = self._anchor_max(feat)                                  # B, N, C
        glob = flat.mean(-1)[:, None, :].expand(-1, mean.shape[1], -1)
        h = torch.cat([mean, mx, glob - mean], -1)                   # B, N, 3C
        h = h + self._embed(instructions, x.device)[:, None, :]    # B, N, 3C
        if self.cfg.edge_features:
            h = torch.cat([h, self._edge_features(x, feat.shape[-2:], masks)], -1)
        if self.n_cues:
            h = torch.cat([h, cues.float()], -1)
        return self.head(h).squeeze(-1) + self.anchor_prior[None, :]

    def _anchor_max(self, fmap: torch.Tensor) -> torch.Tensor:
        """Max of a ``(B, C, h, w)`` map inside every anchor's cells -> ``(B, N, C)``.

        WHY not a masked ``amax`` over a ``(B, N, C, h*w)`` tensor: that tensor (58 M floats
        for a batch of 16) and its backward were two thirds of a GRPO step.  Every anchor
        covers a rectangle of cells, so one stride-1 max-pool per rectangle size, read at
        each anchor's top-left cell, gives exactly the same values."""
        parts = [_window_max(fmap, *size).flatten(2)[:, :, offsets]   # B, C, group
                 for size, (_, offsets) in self._max_groups.items()]
        return torch.cat(parts, -1).transpose(1, 2)[:, self._max_order]         # B, N, C

    def _edge_features(self, x: torch.Tensor, size, masks: torch.Tensor) -> torch.Tensor:
        # the mean over all (folded) channels is the grey image at the input size, so
        # these statistics do not depend on input_scale
        gray = x.mean(1, keepdim=True)
        lap = F.conv2d(gray, self.laplacian, padding=1).abs()
        maps = torch.cat([torch.log1p(lap), (lap > 1.0).float()], 1)           # B, 2, H, W
        pooled = F.adaptive_avg_pool2d(maps, size).flatten(2)                    # B, 2, hw
        mean = torch.einsum("bcp,np->bnc", pooled, masks) / masks.sum(1)[None, :, None]
        mx = self._anchor_max(pooled.view(pooled.shape[0], pooled.shape[1], *size))
        glob = pooled.mean(-1)[:, None, :]
        return torch.cat([mean, mx, mean - glob], -1) * 4.0                      # B, N, 6


def _window_max(fmap: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Maximum over every ``kh x kw`` window of a ``(B, C, h, w)`` map, stride 1, no padding
    -> ``(B, C, h-kh+1, w-kw+1)``: ``F.max_pool2d(fmap, (kh, kw), stride=1)``, by shifted
    element-wise maxima, rows then columns (the same values: max is exact).

    WHY: on CPU, torch's NCHW max-pool kernel took about 4 ms for a 4x64x18x32 map (the
    mirror views' batch), shifted maxima under 0.1 ms; the policy runs seven of them."""
    oh, ow = fmap.shape[-2] - kh + 1, fmap.shape[-1] - kw + 1
    rows = fmap[..., :oh, :]
    for i in range(1, kh):
        rows = torch.maximum(rows, fmap[..., i:i + oh, :])
    out = rows[..., :ow]
    for j in range(1, kw):
        out = torch.maximum(out, rows[..., j:j + ow])
    return out


def _rectangle_groups(masks: torch.Tensor) -> dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]]:
    """Anchors grouped by their size in feature-map cells: ``{(kh, kw): (anchor indices,
    flat top-left offsets in the (h-kh+1, w-kw+1) max-pooled map)}``.  ``masks``: ``(N, h, w)``."""
    _, h, w = masks.shape
    groups: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
    for i, m in enumerate(masks.bool()):
        rows = torch.nonzero(m.any(1)).flatten()
        cols = torch.nonzero(m.any(0)).flatten()
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        if int(m.sum()) != (r1 - r0 + 1) * (c1 - c0 + 1):
            raise ValueError(f"anchor {i} does not cover a rectangle of feature cells")
        kh, kw = r1 - r0 + 1, c1 - c0 + 1
        idx, off = groups.setdefault((kh, kw), ([], []))
        idx.append(i)
        off.append(r0 * (w - kw + 1) + c0)
    return {k: (torch.tensor(i), torch.tensor(o)) for k, (i, o) in groups.items()}


def build_net(cfg: SmallPolicyConfig) -> SmallPolicyNet:
    """Seeded initialisation (the "untrained/reference" policy is reproducible)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(cfg.init_seed)
    try:
        net = SmallPolicyNet(cfg)
    finally:
        torch.random.set_rng_state(gen_state)
    return net


def save_weights(net: SmallPolicyNet, path: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """safetensors with the network config (and optional provenance) in its header."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {_METADATA_KEY: net.cfg.to_json()}
    if provenance:
        meta["provenance"] = json.dumps(provenance, sort_keys=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(path), metadata=meta)
    return path


def read_config(path: str | Path) -> SmallPolicyConfig:
    """The network configuration stored in a weights file's header (no tensors are read);
    any problem raises a ValueError naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"small_policy weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return SmallPolicyConfig.from_json((f.metadata() or {})[_METADATA_KEY])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"small_policy weights {path} carry no readable network config: {exc!r}") from exc


def bundled_config() -> SmallPolicyConfig:
    """The architecture of the shipped weights (anchors, sizes), read from their header.

    WHY: the untrained reference must have the *same* architecture as the trained policy
    it is compared with; the class defaults may differ from what was shipped."""
    try:
        return read_config(BUNDLED_WEIGHTS)
    except ValueError:  # no/odd bundled file: fall back to the defaults
        return SmallPolicyConfig()


def load_weights(path: str | Path) -> SmallPolicyNet:
    """Rebuild the network from a safetensors file; any problem raises a ValueError that
    says which file and what is wrong (never a bare deserialisation trace)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"small_policy weights not found: {path} (train them with "
                         "`python -m active_o3_training.grpo_policy`, or use model='' for the bundled ones)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"small_policy weights {path} are not a readable safetensors file: {exc}") from exc
    if _METADATA_KEY not in meta:
        raise ValueError(f"small_policy weights {path} lack the '{_METADATA_KEY}' header entry; "
                         "they were not written by save_weights()")
    try:
        cfg = SmallPolicyConfig.from_json(meta[_METADATA_KEY])
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"small_policy weights {path} carry an invalid config: {exc}") from exc
    net = SmallPolicyNet(cfg)
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"small_policy weights {path} do not match their config: {exc}") from exc
    return net


def read_provenance(path: str | Path) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta.get("provenance", "{}"))


# -- sampling (GRPO) and greedy selection (inference) -----------------------------------------
def sample_sets(logits: torch.Tensor, k: int, group: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``group`` ordered sets of ``k`` distinct anchors per row of ``(B, N)`` logits by
    sequential sampling without replacement; returns ``(B, group, k)`` anchor indices."""
    b, n = logits.shape
    k = min(k, n)
    lg = logits.detach()[:, None, :].expand(b, group, n).reshape(b * group, n).clone()
    out = torch.empty(b * group, k, dtype=torch.long)
    for step in range(k):
        probs = torch.softmax(lg, -1)
        idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        out[:, step] = idx
        lg[torch.arange(b * group), idx] = float("-inf")
    return out.view(b, group, k)


def greedy_sets(logits: torch.Tensor, k: int, iou: np.ndarray, tau: float) -> list[list[int]]:
    """Greedy: best-first anchors, skipping any with IoU >= ``tau`` to one already kept."""
    out = []
    for row in logits.detach().cpu().numpy():
        chosen: list[int] = []
        for a in np.argsort(-row, kind="stable"):
            if len(chosen) >= k:
                break
            # strictly below tau (minus float slack): the reward's non-overlap term fails
            # at IoU > tau, and an anchor nested in a chosen one (IoU == tau here) adds no
            # pixels the detector has not already seen.
            if all(iou[a, c] < tau - 1e-6 for c in chosen):
                chosen.append(int(a))
        out.append(chosen)
    return out


def adaptive_budget(chosen: Sequence[int], probs: np.ndarray, min_prob: float, min_regions: int = 1) -> list[int]:
    """The adaptive K: the best-first prefix of ``chosen`` whose anchor probabilities are at
    least ``min_prob``, and at least ``min_regions`` long (when that many were chosen)."""
    keep = list(chosen[:min_regions])
    for a in chosen[min_regions:]:
        if probs[a] < min_prob:
            break
        keep.append(a)
    return [int(a) for a in keep]


#: Frames whose aspect ratio is within this factor of the network's are not letterboxed.
LETTERBOX_TOLERANCE = 1.02
#: Grey of the letterbox border: ImageNet's mean, what the network's input normalisation maps to 0.
LETTERBOX_FILL = (124, 116, 104)


def letterbox_window(width: int, height: int, aspect: float, tolerance: float = LETTERBOX_TOLERANCE
                     ) -> tuple[int, int, int, int] | None:
    """Where a ``width x height`` image sits when padded (centred) to the width/height ratio
    ``aspect``: ``(x0, y0, padded_width, padded_height)`` in pixels, or ``None`` when its
    aspect is already within ``tolerance`` of ``aspect``."""
    ratio = (width / height) / aspect
    if 1.0 / tolerance <= ratio <= tolerance:
        return None
    pw, ph = (int(round(height * aspect)), height) if ratio < 1.0 else (width, int(round(width / aspect)))
    return (pw - width) // 2, (ph - height) // 2, pw, ph


def _fractions(width: int, height: int, px: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    x0, y0, pw, ph = px
    return x0 / pw, y0 / ph, width / pw, height / ph


def letterbox(image: np.ndarray, aspect: float, tolerance: float = LETTERBOX_TOLERANCE
              ) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """Pad ``image`` (centred, grey border) to the width/height ratio ``aspect``.

    Returns the padded image and where the image sits in it, ``(x0, y0, w, h)`` as fractions
    of the padded image; ``None`` (and the image itself) when its aspect is already within
    ``tolerance`` of ``aspect``.  The network then sees a 4:3 or portrait frame undistorted,
    with its anchors at the pixel shapes it was trained on, as YOLO-style letterboxing does."""
    h, w = image.shape[:2]
    px = letterbox_window(w, h, aspect, tolerance)
    if px is None:
        return image, None
    x0, y0, pw, ph = px
    out = np.empty((ph, pw) + image.shape[2:], dtype=image.dtype)
    out[...] = np.asarray(LETTERBOX_FILL, dtype=image.dtype)[: image.shape[2]] if image.ndim == 3 else LETTERBOX_FILL[0]
    out[y0:y0 + h, x0:x0 + w] = image
    return out, _fractions(w, h, px)


def anchors_in_window(anchors: np.ndarray, window: tuple[float, float, float, float] | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The normalised anchors ``(N, 4)`` of a letterboxed image as boxes of the image inside
    it (``window``, from :func:`letterbox`; None: no letterbox), and which of them may be
    chosen: an anchor lying mostly (over half its area) on a bar never is, and the others
    are clipped to the image."""
    if window is None:
        return anchors, np.ones(len(anchors), dtype=bool)
    return unletterbox(anchors, window), inside_fraction(anchors, window) >= 0.5


def anchors_in_frame(anchors: np.ndarray, width: int, height: int, aspect: float, letterboxed: bool = True
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`anchors_in_window` for a ``width x height`` frame letterboxed to ``aspect``: the
    one mapping the policy serves with and training
    (:func:`active_o3_training.anchor_cache.anchor_regions`) and the anchor oracle use."""
    px = letterbox_window(width, height, aspect) if letterboxed else None
    return anchors_in_window(anchors, _fractions(width, height, px) if px is not None else None)


def inside_fraction(anchors: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """Share of each normalised anchor box ``(N, 4)`` that lies inside ``window`` (x0, y0, w, h)."""
    x0, y0, w, h = window
    ix = np.clip(np.minimum(anchors[:, 2], x0 + w) - np.maximum(anchors[:, 0], x0), 0, None)
    iy = np.clip(np.minimum(anchors[:, 3], y0 + h) - np.maximum(anchors[:, 1], y0), 0, None)
    area = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    return ix * iy / np.maximum(area, 1e-12)


def unletterbox(boxes: np.ndarray, window: tuple[float, float, float, float] | None) -> np.ndarray:
    """Normalised boxes of the padded image -> normalised boxes of the image inside it (clipped)."""
    if window is None or not len(boxes):
        return boxes
    x0, y0, w, h = window
    out = (boxes.reshape(-1, 4) - np.array([x0, y0, x0, y0])) / np.array([w, h, w, h])
    return np.clip(out, 0.0, 1.0)


#: Default of the ``windows_above`` option (px of letterbox canvas; 0 would be never): chosen on
#: validation scenes drawn at 4:3 sizes (``benchmarks/results/windows_4x3_choice.md``).
WINDOWS_ABOVE = 2000
#: Default of the ``verify_top`` option (candidates looked at sharp; 0 would be off): chosen on
#: validation scenes (``benchmarks/results/verify_val.md``).
VERIFY_TOP = 6
#: Whether the regions the sharp look keeps are fitted to the lines it saw (``verify_fit``;
#: chosen on validation: ``benchmarks/results/verify_fit_val.md``).
VERIFY_FIT = True
#: Default of ``verify_fit_min_lines``: a kept region is fitted only where its look saw at least
#: this many lines (else it keeps its anchor).  2, chosen on validation by a rule written before
#: the run (``benchmarks/results/text_free_min_lines_val.md``, ``min_lines_val.md``): one false
#: read fewer on 48 text-free frames (4 -> 3), recall 0.819 -> 0.808 on ``val``.
VERIFY_FIT_MIN_LINES = 2
#: Defaults of ``cue_precision`` / ``verify_precision``: the detector the network's whole-frame
#: cue look and the sharp looks at its candidates run (:func:`.cues.look_detector`; ``int8``
#: only where the CPU computes it exactly, else fp32).  The cue look stays fp32, the detector the
#: weights were trained on.  Alone, int8 sharp looks kept recall (``val`` 0.808 -> 0.814) at 15-20 %
#: less sensing time but read one more texture on 48 text-free frames (3 -> 4), so a rule written
#: before the run kept fp32 (``benchmarks/results/look_precision_val.md``,
#: ``text_free_look_precision_val.md``); with ``verify_unseen`` "frame" they won the second rule
#: (:data:`VERIFY_UNSEEN`).
CUE_PRECISION = "fp32"
VERIFY_PRECISION = "int8"
#: Values of ``verify_unseen``, what happens to kept regions whose sharp look saw no text line:
#: ``keep`` them all; ``frame``: none is kept when no candidate's look saw a line (the pipeline
#: then runs its empty-proposal fallback, the full frame); ``region``: each kept region whose
#: own look saw no line is dropped.
VERIFY_UNSEEN_MODES: tuple[str, ...] = ("keep", "frame", "region")
#: Default of ``verify_unseen``: "frame", with int8 sharp looks, chosen by a rule written before
#: the run (``benchmarks/results/unseen_val.md``, ``text_free_unseen_val.md``): of "frame" and
#: "region", each with fp32 or int8 sharp looks, the only one keeping recall within 0.005 on both
#: validation sets (``val`` 0.808 -> 0.810, ``val_held_out`` 0.855 -> 0.851) with fewer false
#: detections on 48 text-free frames (3 -> 2), 0.87-0.91x the time per frame; confirmed on a second
#: validation draw (``unseen_recheck_val_b.md``: pooled over 224 frames, recall in domain 0.783 ->
#: 0.790, held out 0.808 -> 0.820, false detections on 96 text-free frames 10 -> 6).
VERIFY_UNSEEN = "frame"


def unseen_kept(picks: Sequence[int], counts: Sequence[int], mode: str) -> list[int]:
    """The ``picks`` (indices of candidates) that ``verify_unseen`` ``mode`` keeps, given each
    candidate's count of lines its sharp look saw (:func:`.cues.choose_by_hits`)."""
    if mode == "frame":
        return list(picks) if any(counts) else []
    if mode == "region":
        return [i for i in picks if counts[i] > 0]
    return list(picks)


def sensing_windows(width: int, height: int, aspect: float, windows_above: int, min_side: int = 0,
                    tolerance: float = LETTERBOX_TOLERANCE) -> list[tuple[int, int, int, int]] | None:
    """Overlapping windows of the network's aspect that tile a ``width x height`` image
    whose own aspect is not it, as ``(x0, y0, w, h)`` pixels, evenly spaced from one edge to
    the other; ``None`` when the image is read whole: ``windows_above`` 0, an image already of
    the network's aspect, one whose letterbox canvas is no wider than ``windows_above``
    pixels, or one whose windows would be shorter than ``min_side`` pixels.  A 4:3 frame gives
    2 windows one above the other, a 9:16 portrait frame 4.

    Why: letterboxed, a large 4:3 frame becomes a canvas wider than any training frame (5376
    px for 4032x3024), so its words are smaller in the network's input than in training;
    each window keeps the frame's own scale.  ``min_side`` (the policy passes the short side
    it reads a whole frame at) keeps frames whose windows would hold fewer pixels than that
    whole: a 1280x960 frame's windows are 1280x720, a 1080x1920 one's 1080x608, and on
    validation windows lost there (``benchmarks/results/windows_4x3_val.md``,
    ``windows_portrait_val.md``)."""
    px = letterbox_window(width, height, aspect, tolerance)
    if not windows_above or px is None or px[2] <= windows_above:
        return None
    if px[0]:  # taller than the aspect: full-width windows stacked top to bottom
        ww, wh = width, min(height, int(round(width / aspect)))
        if wh < min_side:
            return None
        n = math.ceil(height / wh - 1e-9)
        return [(0, int(round(i * (height - wh) / max(1, n - 1))), ww, wh) for i in range(n)]
    ww, wh = min(width, int(round(height * aspect))), height  # wider: full-height windows side by side
    if wh < min_side:
        return None
    n = math.ceil(width / ww - 1e-9)
    return [(int(round(i * (width - ww) / max(1, n - 1))), 0, ww, wh) for i in range(n)]


def frame_windows(width: int, height: int, cfg: "SmallPolicyConfig", windows_above: int, windows_min_side: int = -1
                  ) -> list[tuple[int, int, int, int]] | None:
    """:func:`sensing_windows` of a ``width x height`` frame for a network of ``cfg`` with the
    policy's options (``windows_min_side`` -1: the short side the network reads a whole frame
    at): the one rule the served policy and training
    (:func:`active_o3_training.policy_train.frame_views`) use."""
    tw, th = cfg.thumbnail_size
    side = cfg.image_short_side if windows_min_side < 0 else windows_min_side
    return sensing_windows(width, height, tw / th, windows_above, side)


def window_boxes(anchors: np.ndarray, window: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
    """Normalised anchor boxes ``(N, 4)`` of a window (:func:`sensing_windows`) as
    normalised boxes of the ``width x height`` image it was cut from."""
    x0, y0, w, h = window
    return (anchors.reshape(-1, 4) * np.array([w, h, w, h]) + np.array([x0, y0, x0, y0])) / np.array(
        [width, height, width, height])


# -- the SensingPolicy -------------------------------------------------------------------
class SmallSensingPolicy(SensingPolicy):
    """Registered as ``small_policy``.

    ``model``: a safetensors weights file; ``""`` = the bundled weights, ``"init"`` = the
    untrained seeded initialisation (the benchmarks' reference row).  ``weights`` is an
    alias for ``model`` (handy in ``sensing_options``).  ``sample=True`` makes ``propose``
    draw instead of returning the greedy answer (seeded by ``seed``).

    Adaptive budget: with ``min_prob > 0`` a region is kept only while the policy's own
    probability for its anchor is at least ``min_prob`` (best first), but never fewer than
    ``min_regions`` — so a frame with one cluster of targets costs one crop, a busy frame
    keeps up to ``max_regions``.  The threshold is chosen on validation frames
    (``benchmarks/choose_settings.py``); 0 = always ``max_regions``.

    ``mirror_views``: average the logits over 1, 2 or 4 mirror views of the frame (the
    mirrors training augmented with; one cue look, the CNN runs once per view in one
    batch).  4, the default, was chosen on validation frames
    (``benchmarks/results/mirror_views_val.md``: recall 0.751 -> 0.776 on ``val``, for about
    0.06 s more per frame).  Weights whose anchors have no mirror image fall back to 1 view
    with a warning.

    ``fit_regions``: fit each chosen anchor to the detector hits of the policy's own cue look
    (:func:`.cues.fit_to_hits`; ``fit_mode`` "hull" shrinks it to the hits inside it,
    hedged by ``fit_min_scale`` and ``fit_grow``; "union" grows it over hits its edge cuts;
    "shift" keeps its size and slides it by up to ``fit_shift`` of it onto hit mass the other
    regions have not taken, :func:`.cues.shift_to_hits`).  Off by default: on the validation
    frames every variant lost recall or broke even (``benchmarks/results/region_fit_val.md``,
    ``shift_fit_val.md``: shrinking cuts words the look cannot see, growing zooms less,
    sliding pulls the window toward words the detector finds anyway).

    ``cue_long_side``: cap on the long side of the detector look (0 = the weights' own, 960
    for the shipped ones).  A cheaper look saves detector time but is not what the weights
    were trained on; on the validation frames neither 768 nor 640 px kept recall within 0.01
    on both sets (``benchmarks/results/cue_side_val.md``), so the default stays.
    ``cue_fraction``: the look's long side as a fraction of the cue image's (0 = the
    weights' own, 0.5 for the shipped ones); with ``cue_long_side`` it makes the look
    sharper (1.0 and 1280: words twice as tall in the map at 720p).  On the validation
    frames that look gained 0.011 / 0.013 recall at 11 % more frame time, most of both at
    720p (``benchmarks/results/cue_sharp_val.md``, ``frame_profile_look_*.md``), so recall
    per second fell and the default stays.

    ``letterbox`` (default on): a frame whose aspect ratio is not the network's 16:9 (a 4:3
    or portrait camera) is padded with grey bars to 16:9 instead of squashed, anchors lying
    mostly on a bar are never chosen, and the chosen ones are clipped to the frame
    (:func:`letterbox`).  16:9 frames are untouched.  Chosen on validation scenes drawn at
    4:3 sizes (``benchmarks/results/aspect_4x3_val.md``).

    ``windows_above`` (pixels; 0 = never): a frame that is not 16:9, whose letterbox canvas
    would be wider than this and whose windows hold at least the short side the weights read
    a whole frame at (1080 px for the shipped ones: 4:3 from 1920x1440 up; no portrait frame
    narrower than 1920 px; ``windows_min_side``, -1 = that side, 0 = no minimum), is read
    instead as overlapping 16:9 windows
    (:func:`sensing_windows`: 2 for a 4:3 frame, 4 for a portrait one), each window at the
    thumbnail resolution the weights read a whole frame at (the pipeline is asked for a larger
    thumbnail, :meth:`thumbnail_short_side_for`); the best anchors over all windows are kept,
    skipping any whose IoU with one kept is ``overlap_tau`` or more (with ``letterbox`` off no
    frame is windowed).  Costs one cue look and CNN pass per window.  The default, 2000, was
    chosen on validation scenes drawn at 4:3 sizes (``benchmarks/results/windows_4x3_choice.md``:
    recall 0.627 -> 0.678 on ``val``, 0.671 -> 0.743 on ``val_held_out``, for about 0.3 s
    more sensing per windowed frame); the minimum side after a diagnosis on portrait ones,
    where windows of 1080x608 and 720x405 lost 0.15 / 0.22 recall
    (``benchmarks/results/windows_portrait_val.md``).

    ``verify_top`` (default :data:`VERIFY_TOP`, 6; 0 = off): the policy ranks its anchors as
    always, then the text detector looks at each of its best ``verify_top`` regions at up to
    ``verify_side`` px (480; the region grown by ``verify_context``, 1.0), sharper than the
    whole-frame cue look, and the ``max_regions`` regions kept are those that see the most
    distinct text lines (:func:`.cues.look_at_boxes`, :func:`.cues.choose_by_hits`; regions
    that see none keep the policy's order, so a frame without text gets the policy's own
    answer).  The pipeline then hands the policy the whole frame (``thumbnail_short_side_for``);
    the network still reads the thumbnail it was trained on.  Chosen on validation scenes
    (``benchmarks/results/verify_val.md``: recall 0.759 -> 0.770 on ``val``, 0.813 -> 0.845 on
    the held-out families, for about 0.1-0.25 s more sensing per frame).  ``sample``,
    ``min_prob`` and ``fit_regions`` shape the policy's own answer, so with any of them the
    default is off (and an explicit ``verify_top`` is an error).

    ``verify_fit`` (default on with ``verify_top``): each kept region is fitted to the text
    lines its sharp look saw (:func:`.cues.fit_to_hits`, "hull": their hull, within the
    region grown by ``verify_fit_grow``, 1.3, and no smaller than ``verify_fit_min_scale``,
    0.5, of it per side, a hedge for words the look cannot see); a region whose look saw fewer
    than ``verify_fit_min_lines`` (2) lines keeps its anchor.  Its crop then zooms more on the
    text at the same crop size, which matters at 1440p and 4K, where an anchor's crop is
    enlarged only 1.4x.  Unlike fitting to
    the coarse cue look (``fit_regions``, which lost recall), the sharp look sees the lines at
    about native resolution.  Chosen on validation scenes (``benchmarks/results/verify_fit_val.md``:
    recall 0.771 -> 0.806 on ``val``, 0.845 -> 0.849 on the held-out families, precision
    0.935 -> 0.952 and 0.942 -> 0.974; 0.1 s more per ``val`` frame).  ``verify_fit_min_lines``
    2 rather than 1: :data:`VERIFY_FIT_MIN_LINES`.

    ``verify_unseen`` (default "frame" with ``verify_top``; :data:`VERIFY_UNSEEN_MODES`): when no
    candidate's sharp look saw a text line, no region is proposed and the pipeline runs its
    empty-proposal fallback, the full frame (``fallback_full_frame``), instead of zooming into
    textures the detector may misread; "region" drops each kept region whose own look saw none;
    "keep" keeps them all (the previous releases).  ``verify_precision`` (default "int8") /
    ``cue_precision`` (default "fp32"): the detector the sharp looks / the network's cue look run
    (:func:`.cues.look_detector`: int8 only where the CPU computes it exactly).  Both defaults
    were chosen together on validation scenes by a rule written before the run
    (:data:`VERIFY_UNSEEN`, :data:`VERIFY_PRECISION`).
    """

    name = "small_policy"
    is_model_call = True

    def __init__(self, model: str = "", device: str = "cpu", dtype: str = "auto",
                 trust_remote_code: bool = False, weights: str | None = None, sample: bool = False,
                 seed: int = 0, num_threads: int = 0, min_prob: float = 0.0, min_regions: int = 1,
                 mirror_views: int = 4, fit_regions: bool = False, fit_grow: float = 1.0,
                 fit_min_scale: float = 0.0, fit_threshold: float = 0.3, fit_mode: str = "hull",
                 fit_shift: float = 0.5, cue_long_side: int = 0, cue_fraction: float = 0.0,
                 letterbox: bool = True, windows_above: int = WINDOWS_ABOVE, windows_min_side: int = -1,
                 verify_top: int | None = None, verify_side: int = 480, verify_context: float = 1.0,
                 verify_fit: bool | None = None, verify_fit_grow: float = 1.3, verify_fit_min_scale: float = 0.5,
                 verify_fit_min_lines: int = VERIFY_FIT_MIN_LINES, cue_precision: str = CUE_PRECISION,
                 verify_precision: str = VERIFY_PRECISION, verify_unseen: str | None = None, **_: Any) -> None:
        if not 0.0 <= float(min_prob) <= 1.0:
            raise ValueError(f"small_policy option min_prob must be in [0, 1], got {min_prob!r}")
        if int(min_regions) < 0:
            raise ValueError(f"small_policy option min_regions must be >= 0, got {min_regions!r}")
        self.min_prob, self.min_regions = float(min_prob), int(min_regions)
        if mirror_views not in MIRROR_VIEWS:
            raise ValueError(f"small_policy option mirror_views must be one of {sorted(MIRROR_VIEWS)}, "
                             f"got {mirror_views!r}")
        src = weights if weights is not None else model
        if src in ("", None):
            self.net = load_weights(BUNDLED_WEIGHTS)
            self.weights = str(BUNDLED_WEIGHTS)
        elif src == INIT_WEIGHTS:
            self.net = build_net(bundled_config())
            self.weights = INIT_WEIGHTS
        else:
            self.net = load_weights(src)
            self.weights = str(src)
        if int(cue_long_side):
            if int(cue_long_side) < 64:
                raise ValueError(f"small_policy option cue_long_side must be 0 (the weights' own) or >= 64, "
                                 f"got {cue_long_side!r}")
            self.net.cfg = replace(self.net.cfg, cue_detector_long_side=int(cue_long_side))
        if float(cue_fraction):
            if not 0.0 < float(cue_fraction) <= 1.0:
                raise ValueError(f"small_policy option cue_fraction must be 0 (the weights' own) or in (0, 1], "
                                 f"got {cue_fraction!r}")
            self.net.cfg = replace(self.net.cfg, cue_detector_fraction=float(cue_fraction))
        if dtype not in ("auto", "float32"):
            # Why: a CNN this small gains nothing from half precision on CPU, and the
            # option exists for the MLLM backends; accept but say so rather than ignore.
            import warnings
            warnings.warn(f"small_policy runs in float32; dtype={dtype!r} ignored", stacklevel=2)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = torch.device(device)
        self.net.to(self.device).eval()
        self.mirror_views = int(mirror_views)
        try:
            self.net.mirror_orders(self.mirror_views)
        except ValueError as exc:  # anchors without a mirror image (hand-made grids)
            import warnings
            warnings.warn(f"small_policy: {exc}; mirror_views={mirror_views} falls back to 1", stacklevel=2)
            self.mirror_views = 1
        if not (float(fit_grow) >= 1.0 and 0.0 <= float(fit_min_scale) <= 1.0 and 0.0 < float(fit_threshold) < 1.0):
            raise ValueError("small_policy options need fit_grow >= 1, 0 <= fit_min_scale <= 1 and "
                             f"0 < fit_threshold < 1, got {fit_grow!r}, {fit_min_scale!r}, {fit_threshold!r}")
        if fit_mode not in ("hull", "union", "shift"):
            raise ValueError(f"small_policy option fit_mode must be 'hull', 'union' or 'shift', got {fit_mode!r}")
        if not 0.0 <= float(fit_shift) <= 2.0:
            raise ValueError(f"small_policy option fit_shift must be in [0, 2], got {fit_shift!r}")
        self.fit_mode, self.fit_shift = fit_mode, float(fit_shift)
        self.fit_regions = bool(fit_regions) and self.net.cfg.reads_cues
        if fit_regions and not self.fit_regions:
            import warnings
            warnings.warn("small_policy: fit_regions needs weights that read the cue look; off", stacklevel=2)
        self.fit_grow, self.fit_min_scale, self.fit_threshold = float(fit_grow), float(fit_min_scale), float(fit_threshold)
        if not isinstance(letterbox, bool):
            raise ValueError(f"small_policy option letterbox must be true or false, got {letterbox!r}")
        self.letterbox = letterbox
        if isinstance(windows_above, bool) or not isinstance(windows_above, int) or windows_above < 0:
            raise ValueError(f"small_policy option windows_above must be 0 (never) or a width in pixels, "
                             f"got {windows_above!r}")
        self.windows_above = windows_above
        if isinstance(windows_min_side, bool) or not isinstance(windows_min_side, int) or windows_min_side < -1:
            raise ValueError(f"small_policy option windows_min_side must be -1 (the weights' whole-frame short "
                             f"side), 0 (none) or pixels, got {windows_min_side!r}")
        self.windows_min_side = windows_min_side
        own_answer = bool(sample) or float(min_prob) > 0 or bool(fit_regions)  # these shape the policy's own answer
        if verify_top is None:
            verify_top = 0 if own_answer else VERIFY_TOP
        if isinstance(verify_top, bool) or not isinstance(verify_top, int) or verify_top < 0:
            raise ValueError(f"small_policy option verify_top must be 0 (off) or a number of candidates, got {verify_top!r}")
        if isinstance(verify_side, bool) or not isinstance(verify_side, int) or verify_side < 32:
            raise ValueError(f"small_policy option verify_side must be pixels >= 32, got {verify_side!r}")
        if not 1.0 <= float(verify_context) <= 3.0:
            raise ValueError(f"small_policy option verify_context must be in [1, 3], got {verify_context!r}")
        if verify_top and own_answer:
            raise ValueError("small_policy option verify_top does not combine with sample, min_prob or fit_regions")
        self.verify_top, self.verify_side, self.verify_context = verify_top, verify_side, float(verify_context)
        if verify_fit is None:
            verify_fit = VERIFY_FIT and bool(verify_top)  # off with the policy's own answer
        if not isinstance(verify_fit, bool):
            raise ValueError(f"small_policy option verify_fit must be true or false, got {verify_fit!r}")
        if not (1.0 <= float(verify_fit_grow) <= 3.0 and 0.0 <= float(verify_fit_min_scale) <= 1.0):
            raise ValueError("small_policy options need 1 <= verify_fit_grow <= 3 and 0 <= verify_fit_min_scale <= 1, "
                             f"got {verify_fit_grow!r}, {verify_fit_min_scale!r}")
        if verify_fit and not verify_top:
            raise ValueError("small_policy option verify_fit fits the kept regions to the sharp look: it needs verify_top")
        self.verify_fit, self.verify_fit_grow = verify_fit, float(verify_fit_grow)
        self.verify_fit_min_scale = float(verify_fit_min_scale)
        if isinstance(verify_fit_min_lines, bool) or int(verify_fit_min_lines) != verify_fit_min_lines \
                or int(verify_fit_min_lines) < 1:
            raise ValueError(f"small_policy option verify_fit_min_lines must be an integer >= 1, got {verify_fit_min_lines!r}")
        self.verify_fit_min_lines = int(verify_fit_min_lines)
        models = {}
        for name, value in (("cue_precision", cue_precision), ("verify_precision", verify_precision)):
            try:  # int8 only where the CPU computes it exactly
                models[name] = look_detector(value)
            except ValueError as exc:
                raise ValueError(f"small_policy option {name}: {exc}") from None
        self.cue_precision, self.verify_precision = cue_precision, verify_precision
        self.cue_model, self.verify_model = models["cue_precision"], models["verify_precision"]
        if verify_unseen is None:
            verify_unseen = VERIFY_UNSEEN if verify_top else "keep"  # keep with the policy's own answer
        if verify_unseen not in VERIFY_UNSEEN_MODES:
            raise ValueError(f"small_policy option verify_unseen must be one of {', '.join(VERIFY_UNSEEN_MODES)}, "
                             f"got {verify_unseen!r}")
        if verify_unseen != "keep" and not verify_top:
            raise ValueError("small_policy option verify_unseen acts on what the sharp look saw: it needs verify_top")
        self.verify_unseen = verify_unseen
        self.sample = bool(sample)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.anchors = self.net.anchors.cpu().numpy().astype(np.float64)
        self.iou = anchor_iou_matrix(self.anchors)
        # The net reads ``input_height * input_scale`` rows; a bigger thumbnail only costs
        # resize time.
        # With cues it reads a larger image (the stroke cue's resolution).
        cfg = self.net.cfg
        self.preferred_thumbnail_short_side = cfg.image_short_side
        self.num_threads = int(num_threads)

    def windows_of(self, width: int, height: int) -> list[tuple[int, int, int, int]] | None:
        """The windows a ``width x height`` frame is read as (None: whole), frame pixels."""
        if not self.letterbox:
            return None
        return frame_windows(width, height, self.net.cfg, self.windows_above, self.windows_min_side)

    def thumbnail_short_side_for(self, width: int, height: int) -> int | None:
        """A frame read as windows gets a thumbnail whose windows have the short side the
        weights read a whole frame at; with ``verify_top`` the policy is given the whole
        frame (it makes the network's image itself, and looks at its candidates sharp)."""
        if self.verify_top:
            return min(width, height)
        return self._net_short_side(width, height)

    def _net_short_side(self, width: int, height: int) -> int | None:
        short = self.preferred_thumbnail_short_side
        wins = self.windows_of(width, height)
        if not wins or not short:
            return short
        return int(math.ceil(short * min(width, height) / wins[0][3]))

    @torch.no_grad()
    def logits(self, images: Sequence[np.ndarray], instructions: Sequence[str],
               looks: Sequence[CueMaps] | None = None) -> torch.Tensor:
        return self.net.view_logits(images, instructions, self.mirror_views, self.num_threads, looks)

    def _looks(self, images: Sequence[np.ndarray]) -> list[CueMaps] | None:
        """The cue looks of the images the network reads (None: it reads none), with the
        ``cue_precision`` detector."""
        if not self.net.cfg.reads_cues:
            return None
        return [cue_look(im, self.net.cfg, self.num_threads, self.cue_model) for im in images]

    def region_boxes(self, idx: Sequence[int], look: CueMaps | None) -> np.ndarray:
        """Normalised boxes of the chosen anchors, fitted to the look's detector hits
        (:func:`.cues.fit_to_hits`) when ``fit_regions`` is on."""
        boxes = self.anchors[list(idx)].reshape(-1, 4)
        if not self.fit_regions or look is None:
            return boxes
        if self.fit_mode == "shift":
            return shift_to_hits(boxes, look.det, self.fit_threshold, self.fit_shift)
        hits = hit_boxes(look.det, self.fit_threshold)
        return np.stack([fit_to_hits(b, hits, self.fit_grow, self.fit_min_scale, mode=self.fit_mode) for b in boxes]) if len(boxes) else boxes

    def propose(self, images, instructions, max_regions, context=None):
        if len(images) != len(instructions):
            raise ValueError("propose needs one instruction per image")
        if not images:
            return []
        images = [validate_image(im, "thumbnail") for im in images]
        frames = [_frame_size(im, c) for im, c in zip(images, context or [None] * len(images))]
        if self.verify_top:
            return [self._propose_verified(im, ins, max_regions, fr) for im, ins, fr in zip(images, instructions, frames)]
        return self._propose_frames(images, instructions, max_regions, frames)

    def _propose_frames(self, images: list[np.ndarray], instructions: Sequence[str], max_regions: int,
                        frames: list[tuple[int, int]]) -> list[SensingOutput]:
        wins = [self.windows_of(fw, fh) for fw, fh in frames]
        whole = [i for i, w in enumerate(wins) if not w]  # read as one image each, in one batch
        out: list[SensingOutput | None] = [None] * len(images)
        if whole:
            for i, o in zip(whole, self._propose_whole([images[i] for i in whole], [instructions[i] for i in whole],
                                                       max_regions)):
                out[i] = o
        for i, w in enumerate(wins):
            if w:
                out[i] = self._propose_windows(images[i], instructions[i], max_regions, w, *frames[i])
        return out

    def _propose_verified(self, image: np.ndarray, instruction: str, max_regions: int,
                          frame: tuple[int, int]) -> SensingOutput:
        """The policy's best ``verify_top`` regions, then the ``max_regions`` of them whose
        sharp looks (:func:`.cues.look_at_boxes` on ``image``, the whole frame) see the most
        distinct text (:func:`.cues.choose_by_hits`); the network reads the image it reads
        without ``verify_top``."""
        h, w = image.shape[:2]
        short = self._net_short_side(*frame)
        net_image = make_thumbnail(image, short)[0] if short and min(h, w) > short else image
        cand = self._propose_frames([net_image], [instruction], max(max_regions, self.verify_top), [frame])[0]
        if len(cand.regions) <= max_regions:
            return cand
        nh, nw = net_image.shape[:2]
        norm = np.array([r.box.as_list() for r in cand.regions]) / [nw, nh, nw, nh]
        hits = look_at_boxes(image, norm, self.verify_side, self.verify_context, threads=self.num_threads,
                             model=self.verify_model)
        picks, counts = choose_by_hits(hits, max_regions)
        picks = unseen_kept(picks, counts, self.verify_unseen)
        kept = norm[picks]
        if self.verify_fit and picks:  # each kept region fitted to the lines its look saw
            kept = np.stack([fit_to_hits(norm[i], hits[i], self.verify_fit_grow, self.verify_fit_min_scale,
                                         min_hits=self.verify_fit_min_lines) for i in picks])
        px = anchor_boxes_px(kept, w, h)
        named = re.findall(r"(?:w\d+)?#\d+ p=[0-9.]+", cand.text.split("</think>")[0])  # the candidates' anchors
        think = ("anchors " + (", ".join(named[i] for i in picks) or "none") + f"; kept of the policy's top {len(norm)} by the "
                 "text lines a sharp look saw in each: " + ", ".join(map(str, counts)))
        return SensingOutput([replace(cand.regions[i], box=b, rank=r) for r, (i, b) in enumerate(zip(picks, px))],
                             format_regions_answer(px, ["region that may contain the target"] * len(px), think))

    def _propose_whole(self, images: list[np.ndarray], instructions: Sequence[str], max_regions: int
                       ) -> list[SensingOutput]:
        """Thumbnails each read as one (letterboxed) image, in one batch."""
        tw, th = self.net.cfg.thumbnail_size
        padded = [letterbox(im, tw / th) if self.letterbox else (im, None) for im in images]
        images_in, windows = [p[0] for p in padded], [p[1] for p in padded]
        looks = self._looks(images_in)
        lg = self.logits(images_in, instructions, looks)
        for i, win in enumerate(windows):
            if win is not None:  # anchors mostly on a letterbox bar are never chosen
                lg[i, torch.from_numpy(~anchors_in_window(self.anchors, win)[1])] = torch.finfo(lg.dtype).min / 4
        if self.sample:
            chosen = [s.tolist() for s in sample_sets(lg, max_regions, 1, self.generator)[:, 0]]
        else:
            chosen = greedy_sets(lg, max_regions, self.iou, self.net.cfg.overlap_tau)
        probs = torch.softmax(lg, -1).numpy()
        if self.min_prob > 0:
            chosen = [adaptive_budget(idx, p, self.min_prob, self.min_regions) for idx, p in zip(chosen, probs)]
        out = []
        for i, (img, idx, p) in enumerate(zip(images, chosen, probs)):
            h, w = img.shape[:2]
            boxes = anchor_boxes_px(unletterbox(self.region_boxes(idx, looks[i] if looks else None), windows[i]), w, h)
            think = "anchors " + ", ".join(f"#{a} p={p[a]:.3f}" for a in idx)
            out.append(SensingOutput(
                [Region(b, "small_policy", r, float(p[a])) for r, (b, a) in enumerate(zip(boxes, idx))],
                format_regions_answer(boxes, ["region that may contain the target"] * len(boxes), think)))
        return out

    def _propose_windows(self, image: np.ndarray, instruction: str, max_regions: int,
                         wins: list[tuple[int, int, int, int]], frame_w: int, frame_h: int) -> SensingOutput:
        """One thumbnail read as its frame's windows (:meth:`windows_of`, frame pixels)."""
        h, w = image.shape[:2]
        sx, sy = w / frame_w, h / frame_h  # frame windows -> thumbnail pixels
        cuts = [(int(round(x * sx)), int(round(y * sy)), max(1, int(round(ww * sx))), max(1, int(round(wh * sy))))
                for x, y, ww, wh in wins]
        crops = [np.ascontiguousarray(image[y:y + ch, x:x + cw]) for x, y, cw, ch in cuts]
        looks = self._looks(crops)
        lg = self.logits(crops, [instruction] * len(crops), looks)  # (windows, anchors)
        probs = torch.softmax(lg, -1).numpy()
        n = self.anchors.shape[0]
        boxes = np.concatenate([window_boxes(self.region_boxes(range(n), looks[i] if looks else None), c, w, h)
                                for i, c in enumerate(cuts)])
        flat = lg.reshape(-1)
        if self.sample:
            chosen = [int(a) for a in sample_sets(flat[None], max_regions, 1, self.generator)[0, 0]]
        else:
            chosen = greedy_sets(flat[None], max_regions, anchor_iou_matrix(boxes, w / h), self.net.cfg.overlap_tau)[0]
        p = probs.reshape(-1)  # each anchor's probability within its own window
        if self.min_prob > 0:
            chosen = adaptive_budget(chosen, p, self.min_prob, self.min_regions)
        px = anchor_boxes_px(boxes[chosen], w, h)
        think = "windows " + str(len(cuts)) + "; anchors " + ", ".join(
            f"w{a // n}#{a % n} p={p[a]:.3f}" for a in chosen)
        return SensingOutput([Region(b, "small_policy", r, float(p[a])) for r, (b, a) in enumerate(zip(px, chosen))],
                             format_regions_answer(px, ["region that may contain the target"] * len(px), think))


def _frame_size(image: np.ndarray, context: dict[str, Any] | None) -> tuple[int, int]:
    """The frame a thumbnail was made from (the ``thumbnail_transform`` of the pipeline's
    context), else the thumbnail itself."""
    h, w = image.shape[:2]
    tf = (context or {}).get("thumbnail_transform")
    if tf is not None:
        return int(round(w / tf.scale_x)), int(round(h / tf.scale_y))
    return w, h


__all__ = [
    "AnchorGrid", "SmallPolicyConfig", "SmallPolicyNet", "SmallSensingPolicy", "build_net", "load_weights",
    "cue_look", "look_inputs", "letterbox", "letterbox_window", "anchors_in_window", "anchors_in_frame", "inside_fraction", "unletterbox",
    "sensing_windows", "frame_windows", "window_boxes", "WINDOWS_ABOVE", "VERIFY_TOP", "VERIFY_FIT",
    "CUE_PRECISION", "VERIFY_PRECISION", "VERIFY_UNSEEN", "VERIFY_UNSEEN_MODES", "unseen_kept",
    "read_config", "save_weights", "sample_sets", "greedy_sets", "anchor_flip_permutation", "mirrored_cues",
    "MIRROR_VIEWS", "adaptive_budget", "make_anchors", "anchor_iou_matrix", "anchor_boxes_px",
    "BUNDLED_WEIGHTS", "INIT_WEIGHTS",
]
