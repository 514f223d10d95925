"""Domain families of "small text in a big frame" scenes, and the frozen evaluation sets.

WHY this exists: the first generator (:mod:`.synthetic`) draws every frame from one
recipe (scikit-image photo tiles, matplotlib fonts, three cluster kinds).  A policy trained
on it learned that recipe, not where small text is: on frames of an independent generator
it was near random.  Here a frame is drawn from *families* that can be held out whole:

* **backgrounds** (:data:`BACKGROUND_FAMILIES`): ``photo`` (the scikit-image tiles),
  ``surface`` (concrete, plaster, wood, brick, tiles), ``structure`` (facades with windows,
  shelving with goods), ``clutter`` (objects piled on a floor), ``vegetation`` (foliage,
  hedges), ``sky`` (sky, horizon and ground);
* **fonts** (:data:`FONT_FAMILIES`): matplotlib's fonts plus the Debian font packages the
  set-up installs, grouped by family, and OpenCV's Hershey stroke fonts (another
  rendering engine); :func:`available_font_families` says what was found;
* **layouts** (:data:`LAYOUT_FAMILIES`): sign plates, shelf label rows, bare lettering,
  rotated signs and rows, dense notice boards;
* **distractors** that look like text to a cheap cue (barcodes, stripes, grids, fences,
  dot matrices, foliage) and a share of frames with no text at all;
* **camera**: 720p to 4K, lighting gradients, blur, sensor noise, JPEG artefacts.

:data:`HELD_OUT` names the families that training never sees.  Frames are a pure function
of the seed.  :data:`FROZEN_SETS` are seed ranges written here once: ``val`` is where every
decision is made; ``test_in`` (training families) and ``test_held_out`` (held-out families
only) are looked at once per release, never to pick anything.  The ``*_text_free`` sets hold
frames with no text at all, to count false detections on more frames than the mixed sets'
few text-free ones.

CLI: ``python -m active_o3_training.data.scenes --help`` (writes a set as COCO JSON).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.core.types import Box

from .synthetic import (FONT_FILES, HERSHEY_PREFIX, SyntheticFrame, SyntheticTextConfig, _draw_cluster, _Layout,
                        _make_background, font_dir)

BACKGROUND_FAMILIES: tuple[str, ...] = ("photo", "surface", "structure", "clutter", "vegetation", "sky")
LAYOUT_FAMILIES: tuple[str, ...] = ("sign", "shelf", "bare", "rotated", "notice")
DISTRACTOR_KINDS: tuple[str, ...] = ("barcode", "stripes", "grid", "fence", "dots", "foliage")

#: Font families: glob patterns (absolute, or relative to matplotlib's font folder).
#: Symbol and dingbat faces are left out (their glyphs are not letters).
FONT_FAMILIES: dict[str, tuple[str, ...]] = {
    "matplotlib": FONT_FILES,
    "dejavu": ("/usr/share/fonts/truetype/dejavu/*.ttf",),
    "liberation": ("/usr/share/fonts/truetype/liberation2/*.ttf", "/usr/share/fonts/truetype/liberation/*.ttf"),
    "freefont": ("/usr/share/fonts/truetype/freefont/*.ttf",),
    "roboto": ("/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/*.ttf",),
    "lato": ("/usr/share/fonts/truetype/lato/*.ttf",),
    "open-sans": ("/usr/share/fonts/truetype/open-sans/*.ttf",),
    "crosextra": ("/usr/share/fonts/truetype/crosextra/*.ttf",),
    "cantarell": ("/usr/share/fonts/opentype/cantarell/*.otf",),
    "mono": ("/usr/share/fonts/truetype/firacode/*.ttf", "/usr/share/fonts/truetype/inconsolata/*.otf",
             "/usr/share/fonts/truetype/noto/NotoMono*.ttf"),
    "oxygen": ("/usr/share/fonts/truetype/oxygen/*.ttf",),
    # held out (see HELD_OUT)
    "urw": ("/usr/share/fonts/opentype/urw-base35/*.otf",),
    "comic-neue": ("/usr/share/fonts/opentype/comic-neue/*.otf",),
    "hershey": tuple(f"{HERSHEY_PREFIX}{i}" for i in (0, 1, 2, 3, 4, 6, 7)),
}
_SKIP_FONTS = ("Symbol", "D050000L", "Dingbat", "Math")

#: Families no training frame ever uses (the held-out-domain test draws only these for
#: backgrounds and fonts, and mixes the held-out layout with the others).
HELD_OUT: dict[str, tuple[str, ...]] = {
    "background": ("structure",),
    "font": ("urw", "comic-neue", "hershey"),
    "layout": ("notice",),
}

#: The Debian packages that provide the non-matplotlib font families.
FONT_PACKAGES: tuple[str, ...] = (
    "fonts-dejavu-extra", "fonts-liberation2", "fonts-freefont-ttf", "fonts-roboto-unhinted", "fonts-lato",
    "fonts-open-sans", "fonts-crosextra-carlito", "fonts-crosextra-caladea", "fonts-cantarell", "fonts-firacode",
    "fonts-inconsolata", "fonts-noto-mono", "fonts-oxygen", "fonts-urw-base35", "fonts-comic-neue",
)


@dataclass(frozen=True)
class FrozenSet:
    """A seed range and the domain its frames come from."""

    first_seed: int
    frames: int
    domain: str  # "train", "in" (training families) or "held_out"
    purpose: str
    #: Share of frames with no text (``None``: :class:`SceneConfig`'s own, 0.1).  The text-free
    #: sets (1.0) measure false detections on many more frames than the mixed sets hold.
    text_free: float | None = None


#: Written once; never changed (a change makes earlier numbers incomparable).  Training
#: seeds are ``TRAIN_SEED0 + i``; no other range overlaps them.
TRAIN_SEED0 = 10_000_000
FROZEN_SETS: dict[str, FrozenSet] = {
    "val": FrozenSet(20_000_000, 64, "in", "every decision: weights, settings, anchors, stopping"),
    "val_held_out": FrozenSet(21_000_000, 32, "held_out",
                              "diagnosis only; frames of held-out families must not steer training"),
    "test_in": FrozenSet(30_000_000, 24, "in", "frozen: looked at once per release"),
    "test_held_out": FrozenSet(31_000_000, 24, "held_out", "frozen: looked at once per release"),
    # text-free frames only (distractors: barcodes, stripes, grids, foliage, fences): false detections
    "val_text_free": FrozenSet(22_000_000, 48, "in", "every decision that can add false detections", 1.0),
    "val_held_out_text_free": FrozenSet(23_000_000, 24, "held_out", "diagnosis only", 1.0),
    "test_text_free": FrozenSet(32_000_000, 24, "in", "frozen: looked at once per release", 1.0),
    "test_held_out_text_free": FrozenSet(33_000_000, 24, "held_out", "frozen: looked at once per release", 1.0),
    # a second validation draw, for decisions the first sets are too small to resolve
    "val_b": FrozenSet(24_000_000, 64, "in", "decisions that need more frames than val"),
    "val_held_out_b": FrozenSet(25_000_000, 64, "held_out", "decisions that need more frames; diagnosis"),
    "val_text_free_b": FrozenSet(26_000_000, 48, "in", "decisions that can add false detections, more frames", 1.0),
}


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn.  ``domain``: "in" = training families, "held_out" = the
    held-out families only (backgrounds and fonts; layouts mix the held-out one in)."""

    domain: str = "in"
    frame_sizes: tuple[tuple[int, int], ...] = ((1280, 720), (1920, 1080), (2560, 1440), (3840, 2160))
    #: Share of frames with no text at all (only distractors).
    text_free: float = 0.1
    clusters: tuple[int, int] = (1, 4)
    distractors: tuple[int, int] = (0, 4)
    word_height: tuple[int, int] = (8, 24)
    max_word_height_fraction: float = 0.0075
    min_contrast: float = 70.0

    def __post_init__(self) -> None:
        if self.domain not in ("in", "held_out"):
            raise ValueError(f"domain must be 'in' or 'held_out', got {self.domain!r}")

    def families(self, kind: str) -> tuple[str, ...]:
        every = {"background": BACKGROUND_FAMILIES, "font": tuple(FONT_FAMILIES), "layout": LAYOUT_FAMILIES}[kind]
        held = HELD_OUT[kind]
        if self.domain == "in":
            return tuple(f for f in every if f not in held)
        if kind == "layout":
            return every  # the held-out layout is mixed with the others (drawn half the time)
        return held


# -- fonts ----------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def font_files(family: str) -> tuple[str, ...]:
    """The font files of a family found on this machine (sorted, so seeds stay stable)."""
    if family not in FONT_FAMILIES:
        raise ValueError(f"unknown font family {family!r}; choose from {sorted(FONT_FAMILIES)}")
    out: list[str] = []
    for pat in FONT_FAMILIES[family]:
        if pat.startswith(HERSHEY_PREFIX):
            out.append(pat)
        elif Path(pat).is_absolute():
            out += sorted(glob.glob(pat))
        elif (font_dir() / pat).is_file():
            out.append(pat)
    return tuple(f for f in out if not any(s in Path(f).name for s in _SKIP_FONTS))


def available_font_families() -> dict[str, int]:
    """``{family: number of font files found}`` (0 = its Debian package is missing)."""
    return {f: len(font_files(f)) for f in FONT_FAMILIES}


def _families_with_fonts(cfg: SceneConfig) -> tuple[str, ...]:
    fams = tuple(f for f in cfg.families("font") if font_files(f))
    if not fams or (cfg.domain == "held_out" and len(fams) < len(cfg.families("font"))):
        missing = [f for f in cfg.families("font") if not font_files(f)]
        raise RuntimeError(f"font families {missing} have no files here; install the Debian packages "
                           f"{' '.join(FONT_PACKAGES)} (scripts/setup_env.sh does)")
    return fams


# -- procedural backgrounds ---------------------------------------------------------------------
def _noise(rng: np.random.Generator, w: int, h: int, octaves: int = 5, base: int = 4) -> np.ndarray:
    """Fractal value noise in ``[0, 1]``: octaves of random grids resized up (fast at 4K)."""
    acc = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        gh, gw = max(2, base * 2 ** o * h // max(w, h)), max(2, base * 2 ** o * w // max(w, h))
        g = rng.random((gh, gw), dtype=np.float32)
        acc += amp * cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    acc /= total
    return (acc - acc.min()) / max(1e-6, float(acc.max() - acc.min()))


def _tint(gray: np.ndarray, rng: np.random.Generator, lo: int = 40, hi: int = 220) -> np.ndarray:
    c0 = rng.integers(lo, hi, size=3).astype(np.float32)
    c1 = np.clip(c0 + rng.normal(0, 40, size=3), 0, 255).astype(np.float32)
    return gray[..., None] * c1 + (1 - gray[..., None]) * c0


def _bg_surface(rng, w, h):
    kind = rng.choice(["concrete", "wood", "brick", "tiles"])
    n = _noise(rng, w, h, octaves=6, base=int(rng.integers(3, 12)))
    if kind == "wood":
        yy = np.arange(h, dtype=np.float32)[:, None]
        n = 0.5 + 0.5 * np.sin(yy / rng.uniform(6, 30) + 8 * n)
    img = _tint(n, rng)
    if kind in ("brick", "tiles"):
        bh = int(rng.integers(h // 40 + 8, h // 12 + 16))
        bw = bh * (int(rng.integers(2, 4)) if kind == "brick" else 1)
        mortar = rng.integers(60, 230, size=3).astype(np.float32)
        t = max(1, bh // 10)
        for r, y in enumerate(range(0, h, bh)):
            img[y:y + t] = mortar
            off = (bw // 2) * (r % 2) if kind == "brick" else 0
            for x in range(-off, w, bw):
                if x >= 0:
                    img[y:y + bh, x:x + t] = mortar
    return img


def _bg_structure(rng, w, h):
    if rng.random() < 0.5:  # facade: wall, floors, windows
        img = _tint(_noise(rng, w, h, base=6) * 0.4, rng, 90, 230)
        fh = int(rng.integers(h // 8, h // 3))
        ww = int(rng.integers(w // 30 + 10, w // 8))
        for y in range(int(rng.integers(0, fh)), h, fh):
            img[y:y + max(2, fh // 20)] *= 0.7
            glass = rng.integers(20, 120, size=3).astype(np.float32)
            for x in range(int(rng.integers(0, ww)), w - ww, int(ww * rng.uniform(1.4, 2.5))):
                y1, y2 = y + fh // 5, y + fh * 4 // 5
                img[y1:y2, x:x + ww] = glass + rng.normal(0, 12, size=3)
                img[y1:y2, x:x + 3] = 220
                img[(y1 + y2) // 2:(y1 + y2) // 2 + 2, x:x + ww] = 200
    else:  # shelving with goods
        img = _tint(_noise(rng, w, h, base=5) * 0.3, rng, 30, 120)
        sh = int(rng.integers(h // 6, h // 3))
        for y in range(0, h, sh):
            img[y + sh - max(4, sh // 12):y + sh] = rng.integers(120, 240, size=3)
            x = 0
            while x < w:
                bw = int(rng.integers(w // 60 + 6, w // 12))
                bh = int(rng.integers(sh // 3, sh - sh // 10))
                img[y + sh - sh // 12 - bh:y + sh - sh // 12, x:x + bw - 2] = rng.integers(20, 250, size=3)
                x += bw
    return img


def _bg_clutter(rng, w, h):
    img = _tint(_noise(rng, w, h, base=4) * 0.5, rng)
    for _ in range(int(rng.integers(40, 160))):
        c = tuple(int(v) for v in rng.integers(0, 256, size=3))
        s = int(rng.integers(max(w, h) // 80 + 4, max(w, h) // 10))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = rng.random()
        if r < 0.4:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 1.5))), c, -1)
        elif r < 0.7:
            cv2.ellipse(img, (x, y), (s // 2, int(s * rng.uniform(0.2, 0.6))), float(rng.uniform(0, 180)), 0, 360, c, -1)
        else:
            pts = (rng.random((int(rng.integers(3, 7)), 2)) * s + [x, y]).astype(np.int32)
            cv2.fillPoly(img, [pts], c)
    return img


def _bg_vegetation(rng, w, h):
    img = _tint(_noise(rng, w, h, base=10), rng, 20, 120) * np.array([0.6, 1.1, 0.5], np.float32)
    n = int(w * h / 900 * rng.uniform(0.3, 1.0))
    xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
    sizes = rng.integers(2, max(3, max(w, h) // 250 + 4), n)
    greens = rng.integers(0, 256, (n, 3)) * np.array([0.4, 0.8, 0.3]) + np.array([10, 40, 0])
    for x, y, s, c in zip(xs, ys, sizes, greens):
        cv2.ellipse(img, (int(x), int(y)), (int(s), int(s * 0.6)), float((x * 37) % 180), 0, 360,
                    tuple(float(v) for v in c), -1)
    return img


def _bg_sky(rng, w, h):
    horizon = int(h * rng.uniform(0.3, 0.75))
    top, bot = rng.integers(90, 200, size=3), rng.integers(170, 255, size=3)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    img = np.empty((h, w, 3), np.float32)
    img[:horizon] = top * (1 - t) + bot * t
    clouds = _noise(rng, w, horizon, base=3)
    img[:horizon] = img[:horizon] * (1 - 0.5 * clouds[..., None]) + 255 * 0.5 * clouds[..., None]
    img[horizon:] = _tint(_noise(rng, w, h - horizon, base=8), rng, 40, 160)
    return img


def _photo(rng, w, h):
    return _make_background(rng, w, h, SyntheticTextConfig()).astype(np.float32)


_BACKGROUNDS = {"photo": _photo, "surface": _bg_surface, "structure": _bg_structure, "clutter": _bg_clutter,
                "vegetation": _bg_vegetation, "sky": _bg_sky}


# -- distractors (text-like texture that is not text) ------------------------------------------
def _distractor(rng: np.random.Generator, img: np.ndarray, layout: _Layout, kind: str) -> None:
    H, W = img.shape[:2]
    s = H / 1080.0
    bw, bh = int(rng.integers(40, 360) * s) + 8, int(rng.integers(16, 160) * s) + 8
    where = layout.place(rng, bw, bh, margin=4)
    if where is None:
        return
    x0, y0 = int(where.x1), int(where.y1)
    patch = img[y0:y0 + bh, x0:x0 + bw]
    ink = rng.integers(0, 80, size=3) if rng.random() < 0.7 else rng.integers(0, 256, size=3)
    paper = rng.integers(170, 256, size=3)
    if kind == "barcode":
        patch[:] = paper
        x = 2
        while x < bw - 2:
            t = int(rng.integers(1, 4))
            if rng.random() < 0.55:
                patch[2:-2, x:x + t] = ink
            x += t
    elif kind == "stripes":
        p = int(rng.integers(2, 7))
        if rng.random() < 0.5:
            patch[:, ::p] = ink
        else:
            patch[::p] = ink
    elif kind == "grid":
        p = int(rng.integers(3, 12))
        patch[::p] = ink
        patch[:, ::p] = ink
    elif kind == "fence":
        p = int(rng.integers(4, 14))
        patch[:, ::p] = ink
        patch[bh // 4:bh // 4 + 2] = ink
        patch[3 * bh // 4:3 * bh // 4 + 2] = ink
    elif kind == "dots":
        p = int(rng.integers(3, 8))
        patch[::p, ::p] = ink
    else:  # foliage
        for _ in range(int(bw * bh / 30)):
            cv2.circle(patch, (int(rng.integers(0, bw)), int(rng.integers(0, bh))), int(rng.integers(1, 3)),
                       tuple(float(v) for v in rng.integers(0, 256, 3) * [0.4, 0.9, 0.3]), -1)


# -- layouts ------------------------------------------------------------------------------------
class _FixedLayout(_Layout):
    """Places the one cluster of a scratch canvas at a fixed spot and remembers it."""

    def place(self, rng, bw, bh, margin=12, tries=60):  # noqa: ARG002 - same signature as _Layout
        if bw + 2 * margin >= self.w or bh + 2 * margin >= self.h:
            return None
        b = Box(margin, margin, margin + bw, margin + bh)
        self.taken.append(b)
        return b


def _rotated_cluster(rng, img, layout, tcfg, boxes, words) -> Box | None:
    """A sign or shelf row drawn on a scratch canvas, rotated by 3-15 degrees, pasted."""
    H, W = img.shape[:2]
    scratch = np.zeros((H // 2, W // 2, 3), np.uint8)
    fixed = _FixedLayout(W // 2, H // 2)
    b_local: list[Box] = []
    w_local: list[str] = []
    kind = "sign" if rng.random() < 0.6 else "shelf"
    where = _draw_cluster(rng, scratch, fixed, tcfg, kind, b_local, w_local)
    if where is None or not b_local:
        return None
    x1, y1, x2, y2 = (int(v) for v in (where.x1, where.y1, where.x2, where.y2))
    patch = scratch[y1:y2, x1:x2]
    ph, pw = patch.shape[:2]
    ang = float(rng.uniform(3, 15)) * (1 if rng.random() < 0.5 else -1)
    m = cv2.getRotationMatrix2D((pw / 2, ph / 2), ang, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(pw * c + ph * s)) + 2, int(math.ceil(pw * s + ph * c)) + 2
    m[0, 2] += nw / 2 - pw / 2
    m[1, 2] += nh / 2 - ph / 2
    rot = cv2.warpAffine(patch, m, (nw, nh), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(np.ones((ph, pw), np.float32), m, (nw, nh), flags=cv2.INTER_LINEAR)
    place = layout.place(rng, nw, nh)
    if place is None:
        return None
    px, py = int(place.x1), int(place.y1)
    dst = img[py:py + nh, px:px + nw].astype(np.float32)
    a = alpha[..., None]
    img[py:py + nh, px:px + nw] = np.clip(dst * (1 - a) + rot * a + 0.5, 0, 255).astype(np.uint8)
    for b, word in zip(b_local, w_local):
        pts = np.array([[b.x1 - x1, b.y1 - y1, 1], [b.x2 - x1, b.y1 - y1, 1],
                        [b.x1 - x1, b.y2 - y1, 1], [b.x2 - x1, b.y2 - y1, 1]], np.float64) @ m.T
        boxes.append(Box(px + float(pts[:, 0].min()), py + float(pts[:, 1].min()),
                         px + float(pts[:, 0].max()), py + float(pts[:, 1].max())))
        words.append(word)
    return Box(px, py, px + nw, py + nh)


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Lighting gradient, slight blur, sensor noise and (sometimes) JPEG artefacts."""
    H, W = img.shape[:2]
    f = img.astype(np.float32)
    if rng.random() < 0.6:
        gx, gy = rng.uniform(-0.35, 0.35, size=2)
        yy, xx = np.mgrid[0:H:8, 0:W:8].astype(np.float32)
        g = 1 + gx * (xx / W - 0.5) + gy * (yy / H - 0.5)
        f *= cv2.resize(g, (W, H))[..., None]
    if rng.random() < 0.3:
        f = cv2.GaussianBlur(f, (0, 0), float(rng.uniform(0.4, 0.8)))
    f += rng.normal(0, float(rng.uniform(0.5, 4.0)), size=(H, W, 1)).astype(np.float32)
    out = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.4:
        ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 96))])
        out = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
    return out


# -- public API -------------------------------------------------------------------------------
@dataclass
class Scene(SyntheticFrame):
    """A frame plus the families it was drawn from."""

    families: dict | None = None


def render_scene(seed: int, config: SceneConfig | None = None) -> Scene:
    """One scene from ``seed`` (deterministic for a given set of installed fonts)."""
    cfg = config or SceneConfig()
    rng = np.random.default_rng([int(seed), 0x5CE4E])
    w, h = cfg.frame_sizes[int(rng.integers(len(cfg.frame_sizes)))]
    bg_fams = cfg.families("background")
    bg = bg_fams[int(rng.integers(len(bg_fams)))]
    img = np.clip(_BACKGROUNDS[bg](rng, w, h), 0, 255).astype(np.uint8)
    layout = _Layout(w, h)
    boxes: list[Box] = []
    words: list[str] = []
    clusters: list[Box] = []
    fonts_used: list[str] = []
    layouts_used: list[str] = []
    text_free = bool(rng.random() < cfg.text_free)
    if not text_free:
        font_fams = _families_with_fonts(cfg)
        lay_fams = cfg.families("layout")
        for _ in range(int(rng.integers(cfg.clusters[0], cfg.clusters[1] + 1))):
            fam = font_fams[int(rng.integers(len(font_fams)))]
            files = font_files(fam)
            lay = lay_fams[int(rng.integers(len(lay_fams)))]
            if cfg.domain == "held_out" and rng.random() < 0.5:
                lay = HELD_OUT["layout"][int(rng.integers(len(HELD_OUT["layout"])))]
            tcfg = SyntheticTextConfig(
                word_height=cfg.word_height, max_word_height_fraction=cfg.max_word_height_fraction,
                min_contrast=cfg.min_contrast, fonts=(files[int(rng.integers(len(files)))],),
                words_per_cluster=(5, 12) if lay == "notice" else (2, 8),
                max_words_per_item=5 if lay == "notice" else 2)
            if lay == "rotated":
                c = _rotated_cluster(rng, img, layout, tcfg, boxes, words)
            else:
                c = _draw_cluster(rng, img, layout, tcfg, "sign" if lay == "notice" else lay, boxes, words)
            if c is not None:
                clusters.append(c)
                fonts_used.append(fam)
                layouts_used.append(lay)
    n_dis = int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1)) + (2 if text_free else 0)
    dis = [DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))] for _ in range(n_dis)]
    for kind in dis:
        _distractor(rng, img, layout, kind)
    img = _camera(rng, img)
    fam = {"background": bg, "fonts": sorted(set(fonts_used)), "layouts": sorted(set(layouts_used)),
           "distractors": sorted(set(dis)), "text_free": text_free, "size": [w, h]}
    return Scene(img, boxes, words, clusters, int(seed), fam)


def frozen_seeds(name: str) -> list[int]:
    if name not in FROZEN_SETS:
        raise ValueError(f"unknown set {name!r}; choose from {sorted(FROZEN_SETS)}")
    s = FROZEN_SETS[name]
    return list(range(s.first_seed, s.first_seed + s.frames))


def set_config(name: str) -> SceneConfig:
    """The :class:`SceneConfig` of a frozen set ("train" = the training families)."""
    if name == "train":
        return SceneConfig("in")
    s = FROZEN_SETS[name]
    return SceneConfig(s.domain) if s.text_free is None else SceneConfig(s.domain, text_free=s.text_free)


def train_seed(index: int) -> int:
    if not 0 <= index < 10_000_000:
        raise ValueError(f"train index must be in [0, 1e7), got {index}")
    return TRAIN_SEED0 + int(index)


def iter_set(name: str, n: int | None = None, start: int = 0) -> Iterator[Scene]:
    """Frames of a frozen set, or of ``"train"`` (``n`` frames from index ``start``)."""
    cfg = set_config(name)
    if name == "train":
        seeds = [train_seed(i) for i in range(start, start + (n or 0))]
    else:
        seeds = frozen_seeds(name)[start:None if n is None else start + n]
    for s in seeds:
        yield render_scene(s, cfg)


def write_coco(out_dir: str | Path, name: str, n: int | None = None, progress: bool = True) -> Path:
    """A frozen set (or ``n`` training frames) as PNG images + ``<out_dir>/<name>.json``."""
    from tqdm import tqdm

    out = Path(out_dir)
    (out / name).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    frames = iter_set(name, n)
    for i, f in enumerate(tqdm(frames, desc=f"scenes {name}", unit="frame", disable=not progress)):
        fn = f"{name}/{name}_{i:04d}.png"
        if not cv2.imwrite(str(out / fn), cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OSError(f"could not write {out / fn}")
        h, w = f.image.shape[:2]
        images.append({"id": i + 1, "file_name": fn, "width": w, "height": h, "seed": f.seed,
                       "families": f.families})
        for b, word in zip(f.boxes, f.words):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": b.as_xywh(),
                         "area": b.area, "iscrowd": 0, "text": word})
    data = {"info": {"description": f"active_o3_ros scene set {name}", "generator": "active_o3_training.data.scenes",
                     "config": asdict(set_config(name)), "held_out": HELD_OUT,
                     "fonts_found": available_font_families()},
            "images": images, "annotations": anns, "categories": [{"id": 1, "name": "text", "supercategory": "text"}]}
    path = out / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m active_o3_training.data.scenes", description=__doc__.split("\n")[0])
    p.add_argument("set", nargs="?", choices=sorted(FROZEN_SETS) + ["train"], help="which set to write")
    p.add_argument("--out", default="runs/scenes", help="output folder (COCO JSON + PNG)")
    p.add_argument("--frames", type=int, default=None, help="frames to write (default: the whole frozen set)")
    p.add_argument("--fonts", action="store_true", help="list the font families found and exit")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.fonts or not args.set:
        for fam, n in available_font_families().items():
            held = " (held out)" if fam in HELD_OUT["font"] else ""
            print(f"{fam:12s} {n:3d} files{held}")
        return 0
    if args.set == "train" and not args.frames:
        print("error: --frames is required for the train set", file=sys.stderr)
        return 2
    print(write_coco(args.out, args.set, args.frames))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
