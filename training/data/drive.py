"""A new-domain recording: a robot driving along a warehouse aisle, with small-text ground truth.

WHY this exists: every other generator draws independent frames.  A robot records a *drive*:
frames overlap, the camera zooms a little and bobs, the robot stops (near-duplicate frames),
and later frames show places earlier ones never saw.  This module renders that, as a new
domain for the sensing policy:

* **one world** per seed: a pallet-rack aisle about 6 frame widths long and 1.3 frame
  heights tall (uprights, orange/blue/yellow shelf beams, goods in varying colours), with
  small text: shelf-edge labels (white/yellow plates, dark text) at regular-ish spacing on
  every beam, a few aisle signs high up, and printing on some boxes; plus distractors a
  cheap cue takes for text (barcodes on labels and boxes, hazard and strapping stripes,
  the punched holes of the uprights).  Fonts come only from the held-out font families of
  :mod:`.scenes` (``HELD_OUT["font"]``: URW, Comic Neue, Hershey), which no training set uses.
  Words are about 8..18 px tall in a 1080p frame (sizes scale with the frame height);
* **a camera trajectory** over the world: left to right (so the last 30 % of the frames show
  world the first 70 % never saw), a slight vertical bob, a slowly varying zoom
  (0.85..1.15) and a few stops of 3..6 frames; mild camera effects (a fixed vignette,
  a 1 % exposure flicker, sensor noise; JPEG off unless asked for);
* **ground truth**: every word whose box is at least 80 % inside the frame, clipped to it,
  with its string.

Everything is a pure function of the seed (the world depends on the seed and the frame
size only; the trajectory also on the number of frames).  Frames are cheap: the world is
rendered once and each frame is one ``cv2.warpAffine`` of it plus the camera effects.

CLI: ``python -m active_o3_training.data.drive OUT_DIR --frames 300 --seed 0``
(``--help``) writes ``OUT_DIR/images/frame_000000.png ...`` and ``OUT_DIR/annotations.json``
(COCO), which ``active-o3-camera OUT_DIR/images --labels OUT_DIR/annotations.json`` replays.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.core.types import Box

from .scenes import HELD_OUT, SceneConfig, _families_with_fonts, _noise, _tint, font_files
from .synthetic import (TEXT_LABEL, SyntheticTextConfig, _contrast_colour, _draw_cluster, _Layout, _luma, _paste,
                        _random_word, _render_mask)

#: Salt of every random stream here (the world, the trajectory, the per-frame effects).
_SALT = 0xD21E
#: Header stamp of frame 0: 1_700_000_000 s (2023-11-14), frame ``i`` is ``i / fps`` later.
EPOCH_NS = 1_700_000_000 * 1_000_000_000

_SIGN_WORDS = ("BEVERAGES", "CANNED GOODS", "PAPER", "DAIRY", "TOOLS", "SPARE PARTS", "RETURNS", "PICKING",
               "BULK", "FRAGILE", "CLEANING", "OUTBOUND", "INBOUND", "HARDWARE", "ELECTRICAL", "PACKAGING")


@dataclass(frozen=True)
class DriveConfig:
    """A drive: the frame stream of a camera moving along a warehouse aisle."""

    seed: int = 0
    frames: int = 300
    fps: float = 2.0
    width: int = 1920
    height: int = 1080
    #: World size as multiples of the frame width / height.
    world_width: float = 6.0
    world_height: float = 1.3
    #: Zoom range (1 = one world pixel per frame pixel; > 1 magnifies).
    zoom: tuple[float, float] = (0.85, 1.15)
    #: Number of stops, and frames per stop (the robot stands still: same pose).
    pauses: tuple[int, int] = (3, 5)
    pause_frames: tuple[int, int] = (3, 6)
    #: A word is ground truth when at least this share of its box is in the frame.
    min_visible: float = 0.8
    #: Sensor noise standard deviation (grey levels), drawn once per sequence.
    noise_sigma: tuple[float, float] = (1.0, 2.5)
    #: JPEG quality applied to every frame; 0 = off (8-px words do not survive strong JPEG).
    jpeg_quality: int = 0
    #: Header stamp of frame 0 in nanoseconds.
    epoch_ns: int = EPOCH_NS

    def __post_init__(self) -> None:
        def rng_ok(r: tuple, lo: float) -> bool:
            return len(r) == 2 and lo <= r[0] <= r[1]

        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"fps must be a positive number, got {self.fps}")
        if not (64 <= self.width <= 8192 and 64 <= self.height <= 8192):
            raise ValueError(f"frame size must be within 64..8192 px, got {self.width}x{self.height}")
        if not rng_ok(self.zoom, 0.1) or self.zoom[1] > 10:
            raise ValueError(f"zoom must be a (lo, hi) range within 0.1..10, got {self.zoom}")
        if self.world_width < 1.5 / self.zoom[0]:
            raise ValueError(f"world_width must be >= 1.5 / zoom[0] = {1.5 / self.zoom[0]:.2f} frame widths "
                             f"(the camera must travel), got {self.world_width}")
        if self.world_height < 1.0 / self.zoom[0]:
            raise ValueError(f"world_height must be >= 1 / zoom[0] = {1 / self.zoom[0]:.3f} frame heights "
                             f"(the view must fit), got {self.world_height}")
        if not rng_ok(self.pauses, 0) or not rng_ok(self.pause_frames, 2):
            raise ValueError(f"pauses must be a (lo, hi) range >= 0 and pause_frames one >= 2, "
                             f"got {self.pauses} and {self.pause_frames}")
        if not 0 < self.min_visible <= 1:
            raise ValueError(f"min_visible must be in (0, 1], got {self.min_visible}")
        if not rng_ok(self.noise_sigma, 0):
            raise ValueError(f"noise_sigma must be a (lo, hi) range >= 0, got {self.noise_sigma}")
        if not (self.jpeg_quality == 0 or 30 <= self.jpeg_quality <= 100):
            raise ValueError(f"jpeg_quality must be 0 (off) or 30..100, got {self.jpeg_quality}")

    @property
    def world_size(self) -> tuple[int, int]:
        """``(width, height)`` of the world image in pixels."""
        return int(round(self.world_width * self.width)), int(round(self.world_height * self.height))

    def stamp_ns(self, index: int) -> int:
        return self.epoch_ns + int(round(index * 1e9 / self.fps))


@dataclass
class World:
    """The rendered aisle: RGB image, tight word boxes (world pixels), the words, and what
    each word is printed on (``"label"``, ``"sign"`` or ``"box"``)."""

    image: np.ndarray
    boxes: list[Box]
    words: list[str]
    kinds: list[str]


@dataclass(frozen=True)
class Pose:
    """Where the camera looks: world point ``(cx, cy)`` at the frame centre, ``zoom``
    frame pixels per world pixel; ``stopped``: part of a stop (same pose as its neighbours)."""

    cx: float
    cy: float
    zoom: float
    stopped: bool = False

    def affine(self, width: int, height: int) -> tuple[float, float, float]:
        """``(zoom, tx, ty)``: frame = zoom * world + t, in pixel-edge coordinates."""
        return self.zoom, width / 2 - self.zoom * self.cx, height / 2 - self.zoom * self.cy

    def view(self, width: int, height: int) -> Box:
        """The world rectangle the frame shows."""
        hw, hh = width / (2 * self.zoom), height / (2 * self.zoom)
        return Box(self.cx - hw, self.cy - hh, self.cx + hw, self.cy + hh)


@dataclass
class DriveFrame:
    index: int
    stamp_ns: int
    image: np.ndarray
    boxes: list[Box]
    words: list[str]
    kinds: list[str]
    pose: Pose


# -- fonts -------------------------------------------------------------------------------------
def held_out_fonts() -> dict[str, tuple[str, ...]]:
    """``{family: font files}`` of the held-out font families (RuntimeError naming the Debian
    packages when one is missing here)."""
    return {fam: font_files(fam) for fam in _families_with_fonts(SceneConfig("held_out"))}


def _pick_font(rng: np.random.Generator, fonts: dict[str, tuple[str, ...]]) -> str:
    fams = sorted(fonts)
    files = fonts[fams[int(rng.integers(len(fams)))]]
    return files[int(rng.integers(len(files)))]


# -- world geometry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Geometry:
    """Where things are in the world (pixels); sizes scale with the frame height (1080p = 1)."""

    s: float
    w: int
    h: int
    label_cap: tuple[int, int]
    box_cap: tuple[int, int]
    sign_cap: tuple[int, int]
    beam_h: int
    beams: tuple[int, ...]  # top y of each shelf beam, top to bottom
    rack_top: int
    floor_y: int
    sign_band: tuple[int, int]
    upright_w: int


def _cap(px: float) -> int:
    return max(4, int(round(px)))


def _geometry(cfg: DriveConfig) -> _Geometry:
    ww, wh = cfg.world_size
    H = cfg.height
    s = H / 1080.0
    # cap heights at zoom 1; ink boxes run from ~0.7x (x-height words) to ~1.3x (descenders)
    # of the cap, so at zoom 0.85..1.15 most words are 8..18 px tall in a 1080p frame
    label_cap = (_cap(10 * s), _cap(14 * s))
    box_cap = (_cap(10 * s), _cap(13 * s))
    sign_cap = (_cap(11 * s), _cap(14 * s))
    beam_h = max(int(round(32 * s)), label_cap[1] + 2 * max(2, label_cap[1] // 3) + 4)
    # the view centre is at wh/2; keep the rack where every zoom shows it (and the signs in
    # the top band of the most zoomed-in view), the floor and the ceiling beyond
    top_seen = wh / 2 - H / (2 * cfg.zoom[1])
    rack_top = int(round(top_seen + 0.085 * H))
    floor_y = int(round(wh - 0.12 * H))
    lowest = floor_y - beam_h - max(2, int(0.02 * H))
    beams = tuple(int(round(v)) for v in np.linspace(rack_top, lowest, 5))
    sign_band = (int(round(top_seen + 0.012 * H)), rack_top - max(2, int(0.01 * H)))
    return _Geometry(s, ww, wh, label_cap, box_cap, sign_cap, beam_h, beams, rack_top, floor_y, sign_band,
                     max(3, int(round(24 * s))))


def _lowres(rng: np.random.Generator, w: int, h: int, base: int, lo: int, hi: int, amount: float = 1.0) -> np.ndarray:
    """Tinted fractal noise drawn at 1/4 resolution and resized (backgrounds are low-frequency)."""
    sw, sh = max(8, w // 4), max(8, h // 4)
    small = _tint(_noise(rng, sw, sh, base=base) * amount, rng, lo, hi)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _rect(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, colour) -> None:
    """Fill a rectangle, clipped to the image."""
    H, W = img.shape[:2]
    a, b = max(0, int(round(x1))), min(W, int(round(x2)))
    c, d = max(0, int(round(y1))), min(H, int(round(y2)))
    if a < b and c < d:
        img[c:d, a:b] = colour


def _barcode(rng: np.random.Generator, img: np.ndarray, x: int, y: int, w: int, h: int,
             ink=(15, 15, 15), paper=None) -> None:
    """A barcode (vertical bars 1..3 px wide): looks like text to an edge-density cue."""
    patch = img[y:y + h, x:x + w]
    if paper is not None:
        patch[:] = paper
    i = 1
    while i < patch.shape[1] - 1:
        t = int(rng.integers(1, 4))
        if rng.random() < 0.55:
            patch[:, i:i + t] = ink
        i += t


def _stripes(img: np.ndarray, x: int, y: int, w: int, h: int, period: int, a, b, diagonal: bool = True) -> None:
    """Two-colour stripes (hazard tape on rack protectors, strapping and printed bands)."""
    patch = img[y:y + h, x:x + w]
    if patch.size == 0:
        return
    yy, xx = np.mgrid[0:patch.shape[0], 0:patch.shape[1]]
    band = ((xx + yy) if diagonal else xx) // max(1, period) % 2 == 0
    patch[band] = a
    patch[~band] = b


# -- world parts -------------------------------------------------------------------------------
def _backdrop(rng: np.random.Generator, g: _Geometry) -> np.ndarray:
    """Dark back of the rack, the lit ceiling zone above it and the concrete floor below."""
    img = _lowres(rng, g.w, g.h, 6, 25, 75, 0.8)
    top = g.rack_top - max(2, int(0.02 * g.h))
    img[:top] = _lowres(rng, g.w, top, 4, 95, 165, 0.5)
    lights_y = max(0, int(top * 0.3))
    step = int(rng.integers(int(700 * g.s) + 20, int(1100 * g.s) + 40))
    for x in range(int(rng.integers(0, step)), g.w, step):
        _rect(img, x, lights_y, x + 160 * g.s, lights_y + max(2, 10 * g.s), (250, 250, 240))
    _rect(img, 0, top - max(2, 14 * g.s), g.w, top, (70, 72, 78))  # a ceiling girder
    img[g.floor_y:] = _lowres(rng, g.w, g.h - g.floor_y, 8, 110, 175, 0.6)
    lane = g.floor_y + (g.h - g.floor_y) // 2
    dash = max(4, int(120 * g.s))
    for x in range(0, g.w, 2 * dash):  # a dashed yellow lane marking
        _rect(img, x, lane, x + dash, lane + max(2, 8 * g.s), (235, 200, 40))
    return img


def _bays(rng: np.random.Generator, g: _Geometry) -> tuple[list[int], list[tuple[int, int]]]:
    """The left x of every upright, and ``(x_start, x_end)`` of the free span of every bay
    (between two uprights, clipped to the world)."""
    uprights, spans = [], []
    x = -int(rng.integers(0, int(600 * g.s) + 1))
    while x < g.w:
        bw = int(rng.uniform(520, 760) * g.s)
        uprights.append(x)
        sx, ex = max(0, x + g.upright_w), min(g.w, x + bw)
        if ex - sx > 16:
            spans.append((sx, ex))
        x += bw
    return uprights, spans


def _uprights(rng: np.random.Generator, img: np.ndarray, g: _Geometry, uprights: list[int],
              colour: np.ndarray) -> None:
    top = g.rack_top - max(2, int(0.02 * g.h))
    hole_w, hole_h = max(1, int(5 * g.s)), max(2, int(9 * g.s))
    pitch = max(hole_h + 2, int(18 * g.s))
    prot_h = int(70 * g.s) + 4
    for x0 in uprights:
        x1 = x0 + g.upright_w
        _rect(img, x0, top, x1, g.floor_y, colour)
        _rect(img, x1 - max(1, g.upright_w // 6), top, x1, g.floor_y, colour * 0.7)  # shaded side
        hx = x0 + (g.upright_w - hole_w) // 2
        for y in range(top + pitch // 2, g.floor_y - prot_h, pitch):  # punched holes: a dot column
            _rect(img, hx, y, hx + hole_w, y + hole_h, (20, 20, 25))
        a = max(0, x0)
        if x1 > a:
            _stripes(img, a, g.floor_y - prot_h, x1 - a, prot_h, max(2, int(9 * g.s)), (240, 200, 20), (20, 20, 20))


def _box_text(rng, img, x, y, w, h, g, fonts, reserved, boxes, words, kinds) -> None:
    """Printing on a box face: one of scenes' sign / bare clusters, drawn into the face."""
    face = img[y:y + h, x:x + w]
    if face.shape[0] < 4 * g.box_cap[0] or face.shape[1] < 6 * g.box_cap[0]:
        return
    layout = _Layout(face.shape[1], face.shape[0])
    layout.taken.extend(Box(b.x1 - x, b.y1 - y, b.x2 - x, b.y2 - y) for b in reserved)
    tcfg = SyntheticTextConfig(word_height=g.box_cap, max_word_height_fraction=1.0, min_contrast=80.0,
                               fonts=(_pick_font(rng, fonts),), words_per_cluster=(1, 3), max_words_per_item=2)
    b_local: list[Box] = []
    w_local: list[str] = []
    kind = "bare" if rng.random() < 0.6 else "sign"
    _draw_cluster(rng, face, layout, tcfg, kind, b_local, w_local)
    for b, word in zip(b_local, w_local):
        boxes.append(Box(b.x1 + x, b.y1 + y, b.x2 + x, b.y2 + y))
        words.append(word)
        kinds.append("box")


_GOODS = (((150, 200), (110, 150), (70, 100)),  # cardboard
          ((150, 200), (110, 150), (70, 100)),
          ((150, 200), (110, 150), (70, 100)),
          ((200, 250), (200, 250), (200, 250)),  # white
          ((20, 80), (60, 120), (140, 210)),  # blue totes
          ((170, 230), (30, 70), (30, 70)),  # red
          ((30, 80), (120, 170), (50, 90)),  # green
          ((60, 90), (60, 90), (60, 90)))  # dark grey


def _goods(rng, img, g: _Geometry, bays, fonts, boxes, words, kinds) -> None:
    """Boxes standing on each shelf level; some printed, some with a barcode sticker or stripes."""
    for lvl in range(1, len(g.beams)):
        floor = g.beams[lvl]
        ceil = g.beams[lvl - 1] + g.beam_h
        clearance = floor - ceil
        for sx, ex in bays:
            x = sx + int(rng.integers(2, max(3, int(20 * g.s) + 3)))
            while x < ex - 8:
                span = ex - sx
                bw = int(rng.uniform(0.12, 0.42) * span)
                bw = min(bw, ex - 2 - x)
                if bw < max(8, span // 12):
                    break
                if rng.random() < 0.1:  # an empty slot: the dark back shows
                    x += bw
                    continue
                bh = int(rng.uniform(0.4, 0.92) * clearance)
                stack = [bh]
                if bh < 0.5 * clearance and rng.random() < 0.5:
                    stack.append(int(rng.uniform(0.5, 0.95) * (clearance - bh - 4)))
                y_bottom = floor
                for k, h in enumerate(stack):
                    if h < 6:
                        break
                    w = bw if k == 0 else int(bw * rng.uniform(0.7, 1.0))
                    x0 = x + (bw - w) // 2
                    _one_box(rng, img, x0, y_bottom - h, w, h, g, fonts, boxes, words, kinds)
                    y_bottom -= h + 1
                x += bw + int(rng.integers(1, max(2, int(14 * g.s) + 2)))


def _one_box(rng, img, x, y, w, h, g, fonts, boxes, words, kinds) -> None:
    lo_hi = _GOODS[int(rng.integers(len(_GOODS)))]
    base = np.array([rng.integers(lo, hi + 1) for lo, hi in lo_hi], np.float32)
    shade = np.linspace(1.05, 0.85, h, dtype=np.float32)[:, None, None]
    img[y:y + h, x:x + w] = np.clip(base * shade, 0, 255).astype(np.uint8)
    edge = max(1, int(2 * g.s))
    dark = tuple(int(v) for v in base * 0.55)
    _rect(img, x, y, x + w, y + edge, dark)
    _rect(img, x, y, x + edge, y + h, dark)
    _rect(img, x + w - edge, y, x + w, y + h, dark)
    r = rng.random()
    if r < 0.35 and w > 20:  # packing tape down the middle of the lid
        tw = max(2, w // 10)
        _rect(img, x + (w - tw) // 2, y, x + (w + tw) // 2, y + int(h * rng.uniform(0.2, 0.4)),
              tuple(int(min(255, v * 1.15 + 15)) for v in base))
    elif r < 0.5 and w > 12:  # strapping bands or printed stripes
        sh = max(4, int(h * rng.uniform(0.1, 0.25)))
        sy = y + int(rng.integers(edge, max(edge + 1, h - sh - edge)))
        _stripes(img, x + edge, sy, w - 2 * edge, sh, max(2, int(rng.integers(2, 7) * g.s) + 1),
                 tuple(int(v) for v in rng.integers(0, 90, 3)), tuple(int(v) for v in base), diagonal=rng.random() < 0.5)
    reserved: list[Box] = []
    if rng.random() < 0.3:  # a shipping sticker with a barcode and no text
        bw, bh = int(w * rng.uniform(0.22, 0.4)), int(h * rng.uniform(0.12, 0.22))
        if bw >= 10 and bh >= 6:
            bx = x + int(rng.integers(edge + 1, max(edge + 2, w - bw - edge)))
            by = y + int(rng.integers(edge + 1, max(edge + 2, h - bh - edge)))
            _rect(img, bx, by, bx + bw, by + bh, (245, 245, 240))
            m = max(1, bh // 6)
            _barcode(rng, img, bx + m, by + m, bw - 2 * m, bh - 2 * m)
            reserved.append(Box(bx, by, bx + bw, by + bh))
    if rng.random() < 0.35:
        _box_text(rng, img, x + edge, y + edge, w - 2 * edge, h - 2 * edge, g, fonts, reserved, boxes, words, kinds)


def _beams(rng, img, g: _Geometry, bays, colour: np.ndarray) -> None:
    for y in g.beams:
        for sx, ex in bays:
            _rect(img, sx, y, ex, y + g.beam_h, colour)
            _rect(img, sx, y, ex, y + max(1, g.beam_h // 10), np.minimum(255, colour * 1.2 + 20))
            _rect(img, sx, y + g.beam_h - max(1, g.beam_h // 8), ex, y + g.beam_h, colour * 0.6)


def _labels(rng, img, g: _Geometry, bays, fonts, boxes, words, kinds) -> None:
    """Shelf-edge labels on every beam: white or yellow plates, dark text, most with a barcode,
    2..5 per bay at regular-ish spacing.  The label font changes every few bays (a section)."""
    aisle = chr(65 + int(rng.integers(26))) + f"{int(rng.integers(1, 40)):02d}"
    font, left = "", 0
    for bay_i, (sx, ex) in enumerate(bays):
        if left <= 0:
            font, left = _pick_font(rng, fonts), int(rng.integers(3, 9))
        left -= 1
        yellow = rng.random() < 0.3
        n = int(rng.integers(2, 6))
        slot = (ex - sx) / n
        for lvl, by in enumerate(g.beams):
            cap = int(rng.integers(g.label_cap[0], g.label_cap[1] + 1))
            pad = max(2, cap // 3)
            for k in range(n):
                r = rng.random()
                if r < 0.7:
                    text = f"{aisle}-{bay_i + 1:02d}-{lvl + 1}{'ABCDE'[k]}"
                elif r < 0.85:
                    text = f"{int(rng.integers(10000, 99999))}"
                else:
                    text = _random_word(rng)
                items = [text]
                if rng.random() < 0.25:
                    items.append(_random_word(rng))
                glyphs = [(t, *_render_mask(t, font, cap, 0)) for t in items]
                glyphs = [gl for gl in glyphs if gl[1].size]
                if not glyphs:
                    continue
                ink_h = max(gl[1].shape[0] for gl in glyphs)
                plate_h = ink_h + 2 * pad
                if plate_h > g.beam_h - 2:
                    continue
                bar_w = int(rng.uniform(1.5, 3.0) * cap) if rng.random() < 0.7 else 0
                widths = [gl[1].shape[1] for gl in glyphs]
                plate_w = sum(widths) + pad * (len(widths) + 1) + (bar_w + pad if bar_w else 0)
                if plate_w > slot - 4:
                    glyphs, widths = glyphs[:1], widths[:1]
                    plate_w = widths[0] + 2 * pad + (bar_w + pad if bar_w else 0)
                    if plate_w > slot - 4:
                        continue
                cx = sx + (k + 0.5) * slot + rng.uniform(-0.08, 0.08) * slot
                px = int(round(min(max(cx - plate_w / 2, sx + 2), ex - 2 - plate_w)))
                py = by + (g.beam_h - plate_h) // 2
                if px < 0 or px + plate_w > g.w:
                    continue
                paper = np.array([245, 215, 40] if yellow else [242, 242, 236], np.float32) + rng.normal(0, 4, 3)
                _rect(img, px, py, px + plate_w, py + plate_h, np.clip(paper, 0, 255))
                ink = np.array(rng.integers(0, 50, 3), np.float32)
                x = px + pad
                for (t, fill, _outer), wdt in zip(glyphs[:1], widths[:1]):
                    y = py + pad + (ink_h - fill.shape[0]) // 2
                    _paste(img, fill, ink, x, y)
                    boxes.append(Box(x, y, x + fill.shape[1], y + fill.shape[0]))
                    words.append(t)
                    kinds.append("label")
                    x += wdt + pad
                if bar_w:
                    _barcode(rng, img, x, py + pad, bar_w, plate_h - 2 * pad, ink=tuple(int(v) for v in ink))
                    x += bar_w + pad
                for t, fill, _outer in glyphs[1:]:
                    y = py + pad + (ink_h - fill.shape[0]) // 2
                    _paste(img, fill, ink, x, y)
                    boxes.append(Box(x, y, x + fill.shape[1], y + fill.shape[0]))
                    words.append(t)
                    kinds.append("label")
                    x += fill.shape[1] + pad


def _signs(rng, img, g: _Geometry, fonts, boxes, words, kinds, frame_w: int) -> None:
    """A few aisle signs hanging from the ceiling, one every 1.2..2.2 frame widths."""
    x = int(rng.uniform(0.3, 0.8) * frame_w)
    number = int(rng.integers(1, 40))
    while x < g.w:
        font = _pick_font(rng, fonts)
        cap = int(rng.integers(g.sign_cap[0], g.sign_cap[1] + 1))
        lines = [f"AISLE {number}" if rng.random() < 0.7 else f"ZONE {chr(65 + int(rng.integers(8)))}"]
        if rng.random() < 0.6:
            lines.append(_SIGN_WORDS[int(rng.integers(len(_SIGN_WORDS)))])
        glyphs = [(t, _render_mask(t, font, cap, 0)[0]) for t in lines]
        glyphs = [gl for gl in glyphs if gl[1].size]
        pad = max(3, int(round(cap * 0.6)))
        line_h = max(gl[1].shape[0] for gl in glyphs) + pad if glyphs else 0
        pw = max((gl[1].shape[1] for gl in glyphs), default=0) + 2 * pad
        ph = line_h * len(glyphs) + pad
        top = g.sign_band[1] - ph
        if glyphs and top >= g.sign_band[0] - 2 * cap and x + pw < g.w and top > 0:
            plate = [(25, 65, 150), (20, 110, 60), (240, 200, 30), (240, 240, 235)][int(rng.integers(4))]
            plate = np.clip(np.array(plate, np.float32) + rng.normal(0, 6, 3), 0, 255)
            wire = max(1, int(2 * g.s))
            for wx in (x + pad, x + pw - pad):
                _rect(img, wx, 0, wx + wire, top, (40, 40, 45))
            _rect(img, x, top, x + pw, top + ph, plate)
            colour = _contrast_colour(rng, float(_luma(plate)), 110.0)
            y = top + pad
            for t, fill in glyphs:
                gx = x + (pw - fill.shape[1]) // 2
                _paste(img, fill, colour, gx, y)
                boxes.append(Box(gx, y, gx + fill.shape[1], y + fill.shape[0]))
                words.append(t)
                kinds.append("sign")
                y += line_h
        number += 1
        x += int(rng.uniform(1.2, 2.2) * frame_w)


def render_world(cfg: DriveConfig | None = None) -> World:
    """The aisle of ``cfg.seed`` at the scale of ``cfg``'s frame size (deterministic for a given
    set of installed fonts).  Raises RuntimeError when a held-out font family is missing."""
    cfg = cfg or DriveConfig()
    fonts = held_out_fonts()
    g = _geometry(cfg)
    rng = np.random.default_rng([int(cfg.seed), _SALT, 0])
    img = np.clip(_backdrop(rng, g), 0, 255).astype(np.uint8)
    uprights, bays = _bays(rng, g)
    upright = np.array([(35, 75, 165), (50, 110, 190), (230, 110, 25), (120, 125, 130)][int(rng.integers(4))], np.float32)
    beam = np.array([(230, 110, 25), (235, 190, 30), (40, 80, 170)][int(rng.integers(3))], np.float32)
    boxes: list[Box] = []
    words: list[str] = []
    kinds: list[str] = []
    _uprights(rng, img, g, uprights, upright)
    _goods(rng, img, g, bays, fonts, boxes, words, kinds)
    _beams(rng, img, g, bays, beam)
    _labels(rng, img, g, bays, fonts, boxes, words, kinds)
    _signs(rng, img, g, fonts, boxes, words, kinds, cfg.width)
    return World(img, boxes, words, kinds)


# -- trajectory -------------------------------------------------------------------------------
def _stops(rng: np.random.Generator, cfg: DriveConfig) -> list[tuple[int, int]]:
    """``(first frame, length)`` of every stop: apart, inside the drive, never at frame 0."""
    n = cfg.frames
    lo, hi = cfg.pause_frames
    count = int(rng.integers(cfg.pauses[0], cfg.pauses[1] + 1))
    count = min(count, max(0, (n - 2) // (hi + 2)))
    out = []
    seg = (n - 2) / max(1, count)
    for k in range(count):
        length = int(rng.integers(lo, hi + 1))
        start = 1 + int(k * seg) + int(rng.integers(0, max(1, int(seg) - length)))
        out.append((start, length))
    return out


def trajectory(cfg: DriveConfig | None = None) -> list[Pose]:
    """The camera pose of every frame: left to right over the world, with bob, zoom and stops."""
    cfg = cfg or DriveConfig()
    rng = np.random.default_rng([int(cfg.seed), _SALT, 1])
    n, W, H = cfg.frames, cfg.width, cfg.height
    ww, wh = cfg.world_size
    stopped = np.zeros(n, bool)
    step = np.ones(n)  # step[i]: travel from frame i-1 to frame i
    step[0] = 0.0
    period = rng.uniform(40, 90)
    phase = rng.uniform(0, 2 * math.pi)
    step[1:] = 1.0 + 0.3 * np.sin(2 * math.pi * np.arange(1, n) / period + phase)
    for start, length in _stops(rng, cfg):
        stopped[start:start + length] = True
        step[start + 1:start + length] = 0.0
    u = np.cumsum(step)
    u = u / u[-1] if u[-1] > 0 else u
    zlo, zhi = cfg.zoom
    x0 = W / (2 * zlo) + 1
    x1 = ww - x0
    fz, pz = rng.uniform(1.0, 2.5), rng.uniform(0, 2 * math.pi)
    zoom = (zlo + zhi) / 2 + (zhi - zlo) / 2 * np.sin(2 * math.pi * fz * u + pz)
    moving = max(1, n - int(stopped.sum()))
    fb, pb = moving / rng.uniform(8, 16), rng.uniform(0, 2 * math.pi)
    slack = (wh - H / zlo) / 2
    bob = min(0.02 * H, 0.8 * slack) * np.sin(2 * math.pi * fb * u + pb)
    jitter = rng.normal(0, 0.002 * H, n)
    poses: list[Pose] = []
    for i in range(n):
        if i > 0 and step[i] == 0.0:  # standing still: the previous pose exactly
            p = poses[-1]
            poses.append(Pose(p.cx, p.cy, p.zoom, True))
            continue
        z = float(zoom[i])
        hh = H / (2 * z)
        cy = min(max(wh / 2 + float(bob[i] + jitter[i]), hh), wh - hh)
        poses.append(Pose(float(x0 + u[i] * (x1 - x0)), cy, z, bool(stopped[i])))
    return poses


# -- frames ------------------------------------------------------------------------------------
def frame_ground_truth(world: World, pose: Pose, cfg: DriveConfig) -> tuple[list[Box], list[str], list[str]]:
    """``(boxes, words, kinds)`` seen from ``pose``: every world word at least ``min_visible``
    inside the frame, its box mapped into the frame and clipped to it (no pixels rendered)."""
    z, tx, ty = pose.affine(cfg.width, cfg.height)
    frame = Box(0, 0, cfg.width, cfg.height)
    view = pose.view(cfg.width, cfg.height)
    boxes, words, kinds = [], [], []
    for b, word, kind in zip(world.boxes, world.words, world.kinds):
        if b.x2 < view.x1 or b.x1 > view.x2 or b.y2 < view.y1 or b.y1 > view.y2:
            continue
        fb = Box(z * b.x1 + tx, z * b.y1 + ty, z * b.x2 + tx, z * b.y2 + ty)
        if fb.area > 0 and frame.intersection(fb) >= cfg.min_visible * fb.area:
            boxes.append(fb.clip(cfg.width, cfg.height))
            words.append(word)
            kinds.append(kind)
    return boxes, words, kinds


class _Camera:
    """Per-sequence camera: fixed vignette, sensor noise from one noise bank read at a random
    offset per frame (fast, and frames of a stop differ only by noise and a 1 % flicker).

    WHY not :func:`.scenes._camera`: it draws a new lighting gradient and blur per frame, so
    the frames of a stop would not be near-duplicates (a stopped robot sees the same scene)."""

    PAD = 48

    def __init__(self, cfg: DriveConfig) -> None:
        rng = np.random.default_rng([int(cfg.seed), _SALT, 2])
        W, H = cfg.width, cfg.height
        yy, xx = np.mgrid[0:H:8, 0:W:8].astype(np.float32)
        r2 = ((xx / W - 0.5) ** 2 + (yy / H - 0.5) ** 2) / 0.5
        gx = float(rng.uniform(-0.08, 0.08))
        small = (1.0 - float(rng.uniform(0.05, 0.15)) * r2) * (1 + gx * (xx / W - 0.5))
        self.gain = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)[..., None]
        self.sigma = float(rng.uniform(*cfg.noise_sigma))
        self.bank = rng.standard_normal((H + self.PAD, W + self.PAD), dtype=np.float32) * self.sigma
        self.cfg = cfg

    def __call__(self, img: np.ndarray, index: int) -> np.ndarray:
        cfg = self.cfg
        rng = np.random.default_rng([int(cfg.seed), _SALT, 3, int(index)])
        dx, dy = (int(v) for v in rng.integers(0, self.PAD + 1, 2))
        flicker = float(rng.uniform(0.99, 1.01))
        f = img.astype(np.float32)
        f *= self.gain * flicker
        f += self.bank[dy:dy + cfg.height, dx:dx + cfg.width, None]
        f += 0.5
        out = np.clip(f, 0, 255, out=f).astype(np.uint8)
        if cfg.jpeg_quality:
            ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            out = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)
        return out


def render_view(world: World, pose: Pose, cfg: DriveConfig) -> np.ndarray:
    """The world seen from ``pose`` (no camera effects): one warpAffine."""
    z, tx, ty = pose.affine(cfg.width, cfg.height)
    # OpenCV maps pixel *centres*; the boxes use pixel *edges* (centre = edge - 0.5)
    m = np.array([[z, 0.0, tx + 0.5 * (z - 1)], [0.0, z, ty + 0.5 * (z - 1)]], np.float64)
    return cv2.warpAffine(world.image, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def iter_drive(cfg: DriveConfig | None = None, world: World | None = None) -> Iterator[DriveFrame]:
    """The frames of the drive, in time order (``world``: a :func:`render_world` of ``cfg``
    already at hand)."""
    cfg = cfg or DriveConfig()
    world = world or render_world(cfg)
    camera = _Camera(cfg)
    for i, pose in enumerate(trajectory(cfg)):
        boxes, words, kinds = frame_ground_truth(world, pose, cfg)
        img = camera(render_view(world, pose, cfg), i)
        yield DriveFrame(i, cfg.stamp_ns(i), img, boxes, words, kinds, pose)


# -- writer ------------------------------------------------------------------------------------
def frame_name(index: int) -> str:
    return f"images/frame_{index:06d}.png"


def write_sequence(out_dir: str | Path, cfg: DriveConfig | None = None, progress: bool = True,
                   overwrite: bool = False) -> Path:
    """Write the drive as ``out_dir/images/frame_000000.png ...`` and ``out_dir/annotations.json``
    (COCO: one category "text"; each annotation carries the word in ``text`` and what it is
    printed on in ``kind``; each image its ``stamp_ns``).  Returns the JSON path.

    Refuses a folder that already holds frames (a shorter drive over a longer one would leave
    stale frames that a folder source replays) unless ``overwrite``, which deletes them."""
    from tqdm import tqdm

    cfg = cfg or DriveConfig()
    out = Path(out_dir)
    img_dir = out / "images"
    old = sorted(img_dir.glob("frame_*.png")) if img_dir.is_dir() else []
    if (old or (out / "annotations.json").exists()) and not overwrite:
        raise FileExistsError(f"{out} already holds a sequence ({len(old)} frames); choose a new folder "
                              "or overwrite it")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder")
    if overwrite and img_dir.is_dir():
        shutil.rmtree(img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    world = render_world(cfg)
    images, anns = [], []
    pending: list[Future] = []

    def save(path: Path, rgb: np.ndarray) -> None:
        # level 1: sensor noise makes every level ~2.5 MB per 1080p frame; 1 is the fastest of them
        if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise OSError(f"could not write {path}")

    with ThreadPoolExecutor(max_workers=2) as pool:  # PNG encoding releases the GIL
        frames = tqdm(iter_drive(cfg, world), total=cfg.frames, desc="drive", unit="frame", disable=not progress)
        for f in frames:
            name = frame_name(f.index)
            pending.append(pool.submit(save, out / name, f.image))
            if len(pending) >= 4:
                pending.pop(0).result()
            v = f.pose.view(cfg.width, cfg.height)
            images.append({"id": f.index + 1, "file_name": name, "width": cfg.width, "height": cfg.height,
                           "stamp_ns": f.stamp_ns, "stopped": f.pose.stopped, "zoom": round(f.pose.zoom, 5),
                           "view": [round(c, 3) for c in v.as_xywh()]})
            for b, word, kind in zip(f.boxes, f.words, f.kinds):
                x, y, w, h = (round(float(c), 3) for c in b.as_xywh())
                anns.append({"id": len(anns) + 1, "image_id": f.index + 1, "category_id": 1, "bbox": [x, y, w, h],
                             "area": round(w * h, 3), "iscrowd": 0, "text": word, "kind": kind})
        for p in pending:
            p.result()
    ww, wh = cfg.world_size
    data = {"info": {"description": f"active_o3_ros warehouse drive, seed {cfg.seed}",
                     "generator": "active_o3_training.data.drive", "config": asdict(cfg),
                     "world_size": [ww, wh], "fonts": list(HELD_OUT["font"])},
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": TEXT_LABEL, "supercategory": "text"}]}
    path = out / "annotations.json"
    path.write_text(json.dumps(data))
    return path


# -- CLI ---------------------------------------------------------------------------------------
def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1920x1080, got {text!r}") from None
    return w, h


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m active_o3_training.data.drive",
        description="Render a robot's drive along a warehouse aisle (new domain, held-out fonts) as PNG frames "
                    "+ COCO ground truth: OUT_DIR/images/frame_000000.png ... and OUT_DIR/annotations.json.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder (must not hold a sequence yet, see --overwrite)")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    p.add_argument("--seed", type=int, default=0, help="world and trajectory seed (default 0)")
    p.add_argument("--fps", type=float, default=2.0, help="frame rate for the stamps (default 2.0)")
    p.add_argument("--size", type=_size, default=(1920, 1080), help="frame WIDTHxHEIGHT (default 1920x1080)")
    p.add_argument("--jpeg-quality", type=int, default=0, help="JPEG quality applied to every frame (0: off)")
    p.add_argument("--overwrite", action="store_true", help="replace a sequence already in OUT_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cfg = DriveConfig(seed=args.seed, frames=args.frames, fps=args.fps, width=args.size[0], height=args.size[1],
                          jpeg_quality=args.jpeg_quality)
        path = write_sequence(args.out_dir, cfg, progress=not args.quiet, overwrite=args.overwrite)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.frames} frames and {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
