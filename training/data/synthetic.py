"""Seeded synthetic "small text in a big frame" data: the embedded default's train/val/test set.

WHY this exists: the ACTIVE-o3 claim (zooming into the right regions finds small things a
downscaled frame misses) needs frames where the targets are *small* relative to the frame
and the background is *busy* (so tiling pays in false positives).  No dataset can be
downloaded here, so frames are composed from what ships inside pip wheels:

* backgrounds: the natural photos bundled with scikit-image (``skimage.data``), tiled,
  flipped, rescaled and colour-jittered into 1080p..4K canvases;
* text: words rendered with matplotlib's bundled TrueType fonts (DejaVu, STIX, Computer
  Modern), 8-24 px tall, grouped into clusters that look like signs, shelf labels or
  painted/bare lettering;
* ground truth: the *exact* tight ink box of every rendered word, in frame pixels.

Everything is a pure function of the seed (numpy ``default_rng`` + deterministic FreeType
rendering), so splits are seed ranges (:data:`SPLIT_OFFSETS`) and nothing is stored.

Writers: COCO JSON + images (:func:`write_coco`) and a rosbag2 camera recording of a
panning camera over a big canvas (:func:`write_bag`) with the per-frame ground truth as our
``active_o3_ros/msg/DetectionArray`` (types registered from the ``msg/*.msg`` text by the ROS
room's rclpy-free helper, so no ROS install or built message package is needed).

CLI: ``python -m active_o3_training.data.synthetic --help``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.core.types import Box

#: First seed of each split; frame ``i`` of a split uses seed ``SPLIT_OFFSETS[split] + i``.
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 1_000_000, "test": 2_000_000}

#: The label every word carries (the ``text`` task module's label).
TEXT_LABEL = "text"

#: skimage.data loaders whose images ship inside the scikit-image wheel (no download).
#: ``page``/``text`` are left out on purpose: they contain real, unlabelled text.
BACKGROUND_NAMES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "coins", "camera",
    "hubble_deep_field", "retina", "brick", "grass", "gravel", "moon", "cat", "cell",
)

#: matplotlib font files with real Latin glyphs (cmsy/cmex/STIX symbol fonts are left out).
FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf",
    "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf",
)

_WORDS = (
    "EXIT OPEN SALE SHOP CAFE PARKING STOP ENTRY PUSH PULL HOTEL BAR TAXI BUS PHARMACY BANK "
    "MENU FRESH BREAD MILK APPLES COFFEE TEA SUGAR RICE PASTA SOAP JUICE WATER SALT "
    "station market street avenue north south east west platform gate office library museum "
    "garden bakery kitchen delivery service closed welcome caution danger private staff only "
    "organic special discount limited offer today tomorrow monday friday weekend "
    "Tomato Onion Pepper Lemon Orange Banana Cheese Butter Yogurt Honey Flour Olive Cereal "
    "Window Door Level Floor Room Hall Lift Stairs Toilet Info Tickets Police Fire Hospital"
).split()


@dataclass(frozen=True)
class SyntheticTextConfig:
    """What a synthetic frame looks like.  Defaults are tuned (see the README section
    "Embedded CPU default") so that text is unreadable on the frame downscaled to ~960 px,
    partly readable at native resolution and readable when a region is enlarged 2-3x."""

    #: ``(width, height)`` choices; the frame size is drawn uniformly from these.
    frame_sizes: tuple[tuple[int, int], ...] = ((1920, 1080), (2560, 1440), (3840, 2160))
    #: Cap height of the words in frame pixels (ink boxes are a bit taller with descenders).
    word_height: tuple[int, int] = (8, 24)
    #: Number of text clusters (signs, shelf rows, bare lettering) per frame.
    clusters: tuple[int, int] = (2, 4)
    #: Text items (one line each: a word or a short phrase) per cluster.
    words_per_cluster: tuple[int, int] = (3, 8)
    #: Most words in one item (sign lines like "FRESH BREAD"); shelf cards hold one word.
    max_words_per_item: int = 2
    #: Cap height is at most this fraction of the frame height (so 1080p frames get 8 px
    #: words, 4K frames up to 16 px: small *relative to the frame* everywhere).
    max_word_height_fraction: float = 0.0075
    #: Cluster kinds to draw from.  "sign": words on a plate; "shelf": a row of small label
    #: cards on a shelf edge; "bare": words directly on the photo with a contrasting colour.
    cluster_kinds: tuple[str, ...] = ("sign", "shelf", "bare")
    #: Background sources (``BACKGROUND_NAMES`` entries) or "flat" for a uniform colour.
    backgrounds: tuple[str, ...] = BACKGROUND_NAMES
    #: Photo tile scale relative to its stored size (bigger = smoother texture).
    tile_scale: tuple[float, float] = (0.8, 3.0)
    #: Least luminance difference (0..255) between text and what is directly behind it.
    min_contrast: float = 90.0
    #: Gaussian sensor noise (std, grey levels) added to the whole frame; 0 disables.
    noise_sigma: float = 2.0
    fonts: tuple[str, ...] = FONT_FILES

    def __post_init__(self) -> None:
        lo, hi = self.word_height
        if not 4 <= lo <= hi <= 200:
            raise ValueError(f"word_height must satisfy 4 <= lo <= hi <= 200, got {self.word_height}")
        if not self.frame_sizes or any(w < 64 or h < 64 for w, h in self.frame_sizes):
            raise ValueError(f"frame_sizes must be non-empty and at least 64x64, got {self.frame_sizes}")
        bad = set(self.cluster_kinds) - {"sign", "shelf", "bare"}
        if bad or not self.cluster_kinds:
            raise ValueError(f"cluster_kinds must be a non-empty subset of sign/shelf/bare, got {self.cluster_kinds}")
        bad = set(self.backgrounds) - set(BACKGROUND_NAMES) - {"flat"}
        if bad or not self.backgrounds:
            raise ValueError(f"unknown backgrounds {sorted(bad)}; choose from {BACKGROUND_NAMES + ('flat',)}")
        if self.clusters[0] < 0 or self.clusters[0] > self.clusters[1]:
            raise ValueError(f"clusters must be a (lo, hi) range, got {self.clusters}")
        if self.words_per_cluster[0] < 1 or self.words_per_cluster[0] > self.words_per_cluster[1]:
            raise ValueError(f"words_per_cluster must be a (lo, hi) range >= 1, got {self.words_per_cluster}")


@dataclass
class SyntheticFrame:
    """One generated frame: RGB image, tight word boxes (frame pixels), the words, and the
    cluster boxes (signs/shelves; useful as oracle regions and for debugging)."""

    image: np.ndarray
    boxes: list[Box]
    words: list[str]
    clusters: list[Box] = field(default_factory=list)
    seed: int = 0


# -- resources --------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _background(name: str) -> np.ndarray:
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = np.clip(img * (255.0 if img.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def font_dir() -> Path:
    """matplotlib's bundled TTF folder (present wherever matplotlib is installed)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@lru_cache(maxsize=512)
def _font(name: str, size: int):
    from PIL import ImageFont

    path = Path(name) if Path(name).is_absolute() else font_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"font {name!r} not found in {font_dir()} (is matplotlib installed?)")
    return ImageFont.truetype(str(path), size)


@lru_cache(maxsize=256)
def _cap_ratio(name: str) -> float:
    """Cap height / font size of a font, measured on 'H' (so word heights mean the same in
    every font)."""
    f = _font(name, 100)
    x1, y1, x2, y2 = f.getbbox("H")
    return max(0.3, (y2 - y1) / 100.0)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


# -- background ---------------------------------------------------------------------------
def _make_background(rng: np.random.Generator, w: int, h: int, cfg: SyntheticTextConfig) -> np.ndarray:
    """Fill ``w x h`` with jittered, flipped, rescaled photo tiles (or a flat colour)."""
    name = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    if name == "flat":
        return np.full((h, w, 3), rng.integers(40, 216, size=3), dtype=np.uint8)
    canvas = np.zeros((h, w, 3), np.uint8)
    y = 0
    while y < h:
        x = 0
        row_h = None
        while x < w:
            src = _background(cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]) \
                if rng.random() < 0.5 else _background(name)
            if src is None:  # pragma: no cover - defensive
                src = _background(name)
            s = float(rng.uniform(*cfg.tile_scale))
            th = max(8, int(round(src.shape[0] * s))) if row_h is None else row_h
            tw = max(8, int(round(src.shape[1] * th / src.shape[0])))
            tile = cv2.resize(src, (tw, th), interpolation=cv2.INTER_LINEAR if th > src.shape[0] else cv2.INTER_AREA)
            if rng.random() < 0.5:
                tile = tile[:, ::-1]
            if rng.random() < 0.3:
                tile = tile[::-1]
            gain = rng.uniform(0.7, 1.3, size=3)
            bias = rng.uniform(-25, 25, size=3)
            tile = np.clip(tile.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
            row_h = th
            cw, ch = min(tw, w - x), min(th, h - y)
            canvas[y:y + ch, x:x + cw] = tile[:ch, :cw]
            x += tw
        y += row_h or h
    return canvas


# -- text rendering -----------------------------------------------------------------------
def _random_phrase(rng: np.random.Generator, max_words: int = 1) -> str:
    """One text item: 1..``max_words`` words on one line (a detector's unit is the line)."""
    n = int(rng.integers(1, max_words + 1))
    return " ".join(_random_word(rng) for _ in range(n))


def _random_word(rng: np.random.Generator) -> str:
    r = rng.random()
    if r < 0.15:
        return f"${rng.integers(0, 100)}.{rng.integers(0, 100):02d}"
    if r < 0.25:
        return f"{chr(65 + int(rng.integers(26)))}{rng.integers(1, 999)}"
    return str(_WORDS[int(rng.integers(len(_WORDS)))])


def _render_mask(word: str, font_name: str, cap_px: int, stroke: int) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased ``(fill, fill+stroke)`` alpha masks (float 0..1), cropped to the ink.

    Faint anti-aliasing below 1/10 is dropped so the ink box is exactly where the word
    changes pixels (the generator's ground truth is "tight" by construction).  A font named
    ``hershey:<n>`` is one of OpenCV's stroke fonts (another rendering engine altogether)."""
    from PIL import Image, ImageDraw

    if font_name.startswith(HERSHEY_PREFIX):
        return _render_hershey(word, int(font_name[len(HERSHEY_PREFIX):]), cap_px, stroke)

    size = max(4, int(round(cap_px / _cap_ratio(font_name))))
    font = _font(font_name, size)
    x1, y1, x2, y2 = font.getbbox(word, stroke_width=stroke)
    pad = 2 + stroke
    W, H = int(x2 - x1) + 2 * pad, int(y2 - y1) + 2 * pad
    outer = Image.new("L", (W, H), 0)
    inner = Image.new("L", (W, H), 0)
    org = (pad - x1, pad - y1)
    ImageDraw.Draw(outer).text(org, word, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    ImageDraw.Draw(inner).text(org, word, font=font, fill=255)
    return _ink_masks(np.asarray(inner), np.asarray(outer))


def _ink_masks(inner: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(fill, fill+stroke)`` renderings -> float masks without faint anti-aliasing,
    both cropped to the ink of ``outer``."""
    o = outer.astype(np.float32) / 255.0
    i = inner.astype(np.float32) / 255.0
    o[o < 0.1] = 0.0
    i[i < 0.1] = 0.0
    ys, xs = np.nonzero(o)
    if ys.size == 0:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return i[sl], o[sl]


#: Font names ``hershey:<cv2 font id>`` select OpenCV's Hershey stroke fonts.
HERSHEY_PREFIX = "hershey:"


def _render_hershey(word: str, font: int, cap_px: int, stroke: int) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`_render_mask` for an OpenCV Hershey font (vector strokes, anti-aliased)."""
    thick = 1 if cap_px < 14 else 2
    (_, h_cap), _ = cv2.getTextSize("H", font, 1.0, thick)
    scale = cap_px / max(1, h_cap)
    (tw, th), base = cv2.getTextSize(word, font, scale, thick)
    pad = 4 + stroke + thick
    W, H = tw + 2 * pad, th + base + 2 * pad
    inner = np.zeros((H, W), np.uint8)
    cv2.putText(inner, word, (pad, pad + th), font, scale, 255, thick, cv2.LINE_AA)
    outer = inner if not stroke else \
        cv2.dilate(inner, np.ones((2 * stroke + 1, 2 * stroke + 1), np.uint8))
    return _ink_masks(inner, outer)


def _contrast_colour(rng: np.random.Generator, behind_luma: float, min_contrast: float) -> np.ndarray:
    """A text colour whose luminance differs from ``behind_luma`` by >= ``min_contrast``
    (dark on light, light on dark, a random hue)."""
    for _ in range(32):
        c = rng.integers(0, 256, size=3).astype(np.float32)
        if abs(float(_luma(c)) - behind_luma) >= min_contrast:
            return c
    return np.array([0.0, 0.0, 0.0]) if behind_luma > 127 else np.array([255.0, 255.0, 255.0])


def _paste(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray, x: int, y: int) -> None:
    h, w = alpha.shape
    patch = img[y:y + h, x:x + w].astype(np.float32)
    a = alpha[:, :, None]
    img[y:y + h, x:x + w] = np.clip(patch * (1 - a) + colour * a + 0.5, 0, 255).astype(np.uint8)


class _Layout:
    """Keeps placed rectangles apart so clusters never overlap."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.taken: list[Box] = []

    def place(self, rng: np.random.Generator, bw: int, bh: int, margin: int = 12, tries: int = 60) -> Box | None:
        if bw + 2 * margin >= self.w or bh + 2 * margin >= self.h:
            return None
        for _ in range(tries):
            x = int(rng.integers(margin, self.w - bw - margin))
            y = int(rng.integers(margin, self.h - bh - margin))
            b = Box(x, y, x + bw, y + bh)
            grown = Box(x - margin, y - margin, x + bw + margin, y + bh + margin)
            if all(grown.intersection(t) == 0 for t in self.taken):
                self.taken.append(grown)
                return b
        return None


def _word_glyphs(rng, cfg, n, cap_px, font_name, stroke, max_words=1):
    out = []
    for _ in range(n):
        word = _random_phrase(rng, max_words)
        fill, outer = _render_mask(word, font_name, cap_px, stroke)
        if fill.size:
            out.append((word, fill, outer))
    return out


def _draw_cluster(rng: np.random.Generator, img: np.ndarray, layout: _Layout, cfg: SyntheticTextConfig,
                  kind: str, boxes: list[Box], words: list[str]) -> Box | None:
    """Draw one cluster; appends the tight word boxes and returns the cluster's box."""
    H, W = img.shape[:2]
    hi = max(cfg.word_height[0], min(cfg.word_height[1], int(cfg.max_word_height_fraction * H)))
    cap_px = int(rng.integers(cfg.word_height[0], hi + 1))
    font_name = cfg.fonts[int(rng.integers(len(cfg.fonts)))]
    n = int(rng.integers(cfg.words_per_cluster[0], cfg.words_per_cluster[1] + 1))
    gap = max(3, int(round(cap_px * 0.6)))

    if kind == "shelf":
        glyphs = _word_glyphs(rng, cfg, n, cap_px, font_name, 0)
        if not glyphs:
            return None
        pad = max(2, cap_px // 3)
        cards = [(g, g[1].shape[1] + 2 * pad, g[1].shape[0] + 2 * pad) for g in glyphs]
        spacing = int(rng.integers(2 * cap_px, 6 * cap_px))
        row_w = sum(c[1] for c in cards) + spacing * (len(cards) - 1) + 2 * pad
        row_h = max(c[2] for c in cards) + 2 * pad
        where = layout.place(rng, row_w, row_h)
        if where is None:
            return None
        x0, y0 = int(where.x1), int(where.y1)
        strip = rng.integers(0, 256, size=3).astype(np.float32)
        img[y0:y0 + row_h, x0:x0 + row_w] = strip.astype(np.uint8)
        card_col = rng.integers(190, 256, size=3).astype(np.float32) if rng.random() < 0.8 else \
            np.array([250.0, 220.0, 40.0])
        x = x0 + pad
        for (word, fill, _), cw, ch in cards:
            cy = y0 + pad + (row_h - 2 * pad - ch) // 2
            img[cy:cy + ch, x:x + cw] = card_col.astype(np.uint8)
            colour = _contrast_colour(rng, float(_luma(card_col)), cfg.min_contrast)
            _paste(img, fill, colour, x + pad, cy + pad)
            boxes.append(Box(x + pad, cy + pad, x + pad + fill.shape[1], cy + pad + fill.shape[0]))
            words.append(word)
            x += cw + spacing
        return where

    stroke = 0
    if kind == "bare" and cap_px >= 10 and rng.random() < 0.5:
        stroke = 1
    glyphs = _word_glyphs(rng, cfg, n, cap_px, font_name, stroke, cfg.max_words_per_item)
    if not glyphs:
        return None
    # one item per line: a text detector's unit is the line, so items sharing a line
    # would be found as one box and could never match the per-item ground truth
    lines = [[g] for g in glyphs]
    line_h = max(g[2].shape[0] for g in glyphs) + gap
    line_ws = [ln[0][2].shape[1] for ln in lines]
    pad = gap if kind == "sign" else 2
    bw, bh = max(line_ws) + 2 * pad, line_h * len(lines) - gap + 2 * pad
    where = layout.place(rng, bw, bh)
    if where is None:
        return None
    x0, y0 = int(where.x1), int(where.y1)
    if kind == "sign":
        plate = rng.integers(0, 256, size=3).astype(np.float32)
        img[y0:y0 + bh, x0:x0 + bw] = plate.astype(np.uint8)
        colour = _contrast_colour(rng, float(_luma(plate)), cfg.min_contrast)
    y = y0 + pad
    for ln, lw in zip(lines, line_ws):
        x = x0 + pad + (max(line_ws) - lw) // 2 if kind == "sign" else x0 + pad
        for word, fill, outer in ln:
            gh, gw = outer.shape
            if kind == "bare":
                behind = img[y:y + gh, x:x + gw]
                lum = float(_luma(behind.astype(np.float32)).mean())
                colour = _contrast_colour(rng, lum, cfg.min_contrast)
                if stroke:
                    halo = np.array([255.0, 255.0, 255.0]) if _luma(colour) < 128 else np.zeros(3)
                    _paste(img, outer, halo, x, y)
                    _paste(img, fill, colour, x, y)  # same crop as ``outer``
                else:
                    _paste(img, fill, colour, x, y)
            else:
                _paste(img, fill, colour, x, y)
            boxes.append(Box(x, y, x + gw, y + gh))
            words.append(word)
            x += gw + gap
        y += line_h
    return where


# -- public API ---------------------------------------------------------------------------
def render_frame(seed: int, config: SyntheticTextConfig | None = None,
                 size: tuple[int, int] | None = None) -> SyntheticFrame:
    """Generate one frame from ``seed`` (deterministic).  ``size`` overrides the drawn
    ``(width, height)`` (the panning bag uses it for its big canvas)."""
    cfg = config or SyntheticTextConfig()
    rng = np.random.default_rng([int(seed), 0xAC70])
    w, h = cfg.frame_sizes[int(rng.integers(len(cfg.frame_sizes)))]
    if size is not None:
        w, h = int(size[0]), int(size[1])
    img = _make_background(rng, w, h, cfg)
    layout = _Layout(w, h)
    boxes: list[Box] = []
    words: list[str] = []
    clusters: list[Box] = []
    area_scale = max(1, int(round((w * h) / (3840 * 2160) * 1.0)))
    n_clusters = int(rng.integers(cfg.clusters[0], cfg.clusters[1] + 1)) * area_scale
    for _ in range(n_clusters):
        kind = cfg.cluster_kinds[int(rng.integers(len(cfg.cluster_kinds)))]
        c = _draw_cluster(rng, img, layout, cfg, kind, boxes, words)
        if c is not None:
            clusters.append(c)
    if cfg.noise_sigma > 0:
        noise = rng.normal(0.0, cfg.noise_sigma, size=img.shape).astype(np.float32)
        img = np.clip(img.astype(np.float32) + noise + 0.5, 0, 255).astype(np.uint8)
    return SyntheticFrame(img, boxes, words, clusters, int(seed))


def generate_frame(seed: int, config: SyntheticTextConfig | None = None) -> tuple[np.ndarray, list[Box], list[str]]:
    """``(rgb uint8 HxWx3, tight word boxes in frame pixels, words)`` for ``seed``."""
    f = render_frame(seed, config)
    return f.image, f.boxes, f.words


def split_seed(split: str, index: int) -> int:
    """The seed of frame ``index`` of ``split`` (train / val / test never overlap)."""
    if split not in SPLIT_OFFSETS:
        raise ValueError(f"split must be one of {sorted(SPLIT_OFFSETS)}, got {split!r}")
    if not 0 <= index < 1_000_000:
        raise ValueError(f"index must be in [0, 1e6), got {index}")
    return SPLIT_OFFSETS[split] + int(index)


def iter_split(split: str, n: int, start: int = 0,
               config: SyntheticTextConfig | None = None) -> Iterator[SyntheticFrame]:
    """Frames ``start .. start+n-1`` of a split."""
    for i in range(start, start + n):
        yield render_frame(split_seed(split, i), config)


# -- COCO writer ----------------------------------------------------------------------------
def write_coco(out_dir: str | Path, split: str, n: int, config: SyntheticTextConfig | None = None,
               image_format: str = "png", start: int = 0, progress: bool = True) -> Path:
    """Write ``n`` frames of ``split`` as images + ``<out_dir>/<split>.json`` (COCO detection
    format, one category "text", the word in each annotation's ``text`` field).

    PNG by default: JPEG's 8x8 blocks smear 8-px words, which would change the task."""
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    out = Path(out_dir)
    img_dir = out / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    it = range(start, start + n)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"synthetic {split}", unit="frame")
    for i in it:
        seed = split_seed(split, i)
        f = render_frame(seed, config)
        name = f"{split}_{i:06d}.{image_format}"
        bgr = cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
        if not cv2.imwrite(str(img_dir / name), bgr, params):
            raise OSError(f"could not write {img_dir / name}")
        h, w = f.image.shape[:2]
        image_id = i + 1
        images.append({"id": image_id, "file_name": f"{split}/{name}", "width": w, "height": h, "seed": seed})
        for b, word in zip(f.boxes, f.words):
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "bbox": b.as_xywh(),
                         "area": b.area, "iscrowd": 0, "text": word})
    cfg = config or SyntheticTextConfig()
    data = {
        "info": {"description": f"active_o3_ros synthetic small text, split {split}",
                 "generator": "active_o3_training.data.synthetic", "config": _jsonable(asdict(cfg))},
        "images": images, "annotations": anns,
        "categories": [{"id": 1, "name": TEXT_LABEL, "supercategory": "text"}],
    }
    path = out / f"{split}.json"
    path.write_text(json.dumps(data))
    return path


def _jsonable(x):
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    return x


# -- rosbag2 writer -------------------------------------------------------------------------
def make_typestore():
    """A rosbags typestore (ROS 2 Kilted) with our ``active_o3_ros/msg/*`` types registered
    from the .msg text: the ROS room's helper (``active_o3_ros.ros.bags.typestore``), which
    imports no rclpy, so writing a bag needs no ROS install or built messages."""
    from active_o3_ros.ros.bags import typestore

    return typestore()


@dataclass(frozen=True)
class PanConfig:
    """A camera panning over a big canvas: a ``frame_size`` window moves along a smooth
    closed path (a Lissajous curve) at ``fps`` frames per second."""

    frame_size: tuple[int, int] = (1920, 1080)
    canvas_size: tuple[int, int] = (3840, 2160)
    fps: float = 5.0
    #: Fraction of a word's box that must be in view for it to count as ground truth
    #: (its box is then clipped to the view).
    min_visible: float = 0.6

    def __post_init__(self) -> None:
        fw, fh = self.frame_size
        cw, ch = self.canvas_size
        if fw > cw or fh > ch:
            raise ValueError(f"frame_size {self.frame_size} must fit in canvas_size {self.canvas_size}")
        if not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")


def pan_offsets(n: int, pan: PanConfig) -> list[tuple[int, int]]:
    """Top-left corner of the view for frames ``0..n-1`` (integer pixels)."""
    fw, fh = pan.frame_size
    cw, ch = pan.canvas_size
    out = []
    for i in range(n):
        t = 2 * math.pi * i / max(n, 2)
        x = (cw - fw) * 0.5 * (1 - math.cos(t))
        y = (ch - fh) * 0.5 * (1 - math.cos(2 * t + math.pi / 3)) if ch > fh else 0.0
        out.append((int(round(x)), int(round(y))))
    return out


def pan_frames(seed: int, n: int, pan: PanConfig | None = None,
               config: SyntheticTextConfig | None = None) -> Iterator[tuple[np.ndarray, list[Box], list[str]]]:
    """The panning camera's frames with their (shifted, clipped) ground truth."""
    pan = pan or PanConfig()
    canvas = render_frame(seed, config, size=pan.canvas_size)
    fw, fh = pan.frame_size
    for ox, oy in pan_offsets(n, pan):
        view = Box(ox, oy, ox + fw, oy + fh)
        boxes, words = [], []
        for b, w in zip(canvas.boxes, canvas.words):
            if b.area > 0 and view.intersection(b) >= pan.min_visible * b.area:
                c = b.clip(view.x2, view.y2)
                c = Box(max(c.x1, ox) - ox, max(c.y1, oy) - oy, c.x2 - ox, c.y2 - oy)
                boxes.append(c)
                words.append(w)
        yield np.ascontiguousarray(canvas.image[oy:oy + fh, ox:ox + fw]), boxes, words


def write_bag(out: str | Path, seed: int = 0, n: int = 50, pan: PanConfig | None = None,
              config: SyntheticTextConfig | None = None, storage: str = "mcap",
              image_topic: str = "/camera/image_raw", gt_topic: str = "/ground_truth",
              frame_id: str = "camera", start_time_ns: int = 1_700_000_000_000_000_000,
              progress: bool = True) -> Path:
    """Record a panning camera as a rosbag2 (``storage`` "mcap" or "sqlite3").

    Topics: ``image_topic`` (sensor_msgs/msg/Image, rgb8) and ``gt_topic``
    (active_o3_ros/msg/DetectionArray, one Detection per visible word, label = the word,
    score 1, header identical to the image's so consumers can pair them by stamp)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    pan = pan or PanConfig()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"bag {out} already exists; choose another path or delete it")
    store = make_typestore()
    Image = store.types["sensor_msgs/msg/Image"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    DetArray = store.types["active_o3_ros/msg/DetectionArray"]
    Det = store.types["active_o3_ros/msg/Detection"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    period_ns = int(round(1e9 / pan.fps))
    frames = pan_frames(seed, n, pan, config)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, total=n, desc="synthetic bag", unit="frame")
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        c_img = writer.add_connection(image_topic, Image.__msgtype__, typestore=store)
        c_gt = writer.add_connection(gt_topic, DetArray.__msgtype__, typestore=store)
        for i, (img, boxes, words) in enumerate(frames):
            t = start_time_ns + i * period_ns
            header = Header(stamp=Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000), frame_id=frame_id)
            h, w = img.shape[:2]
            msg = Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                        data=np.ascontiguousarray(img).reshape(-1))
            writer.write(c_img, t, store.serialize_cdr(msg, Image.__msgtype__))
            dets = [Det(label=TEXT_LABEL, text=word, score=1.0, x_min=b.x1, y_min=b.y1, x_max=b.x2, y_max=b.y2,
                        region_index=-1, mask_index=-1) for b, word in zip(boxes, words)]
            gt = DetArray(header=header, image_width=w, image_height=h, instruction=TEXT_LABEL,
                          mode="ground_truth", detections=dets, model_calls=0, preprocess_time=0.0,
                          sensing_time=0.0, crop_time=0.0, task_time=0.0, merge_time=0.0, total_time=0.0,
                          latency=0.0, sensing_status="ok")
            writer.write(c_gt, t, store.serialize_cdr(gt, DetArray.__msgtype__))
    return out


# -- CLI ------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m active_o3_training.data.synthetic",
        description="Seeded synthetic small-text frames (1080p-4K photos + 8-24 px words) with exact "
                    "ground truth, as COCO JSON + images or as a rosbag2 panning-camera recording.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("coco", help="write N frames of a split as images + <split>.json (COCO)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--split", default="train", choices=sorted(SPLIT_OFFSETS))
    c.add_argument("--n", type=int, default=20, help="number of frames")
    c.add_argument("--start", type=int, default=0, help="first frame index within the split")
    c.add_argument("--format", default="png", choices=("png", "jpg"), help="image format (png: lossless)")
    b = sub.add_parser("bag", help="write a rosbag2 of a camera panning over a big synthetic canvas")
    b.add_argument("--out", required=True, help="bag folder to create (must not exist)")
    b.add_argument("--seed", type=int, default=split_seed("test", 999_000), help="canvas seed")
    b.add_argument("--n", type=int, default=50, help="number of frames")
    b.add_argument("--fps", type=float, default=5.0)
    b.add_argument("--frame-size", default="1920x1080", help="WxH of the camera frames")
    b.add_argument("--canvas-size", default="3840x2160", help="WxH of the canvas the camera pans over")
    b.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    b.add_argument("--image-topic", default="/camera/image_raw")
    b.add_argument("--gt-topic", default="/ground_truth")
    return p


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise SystemExit(f"error: size must look like 1920x1080, got {text!r}") from exc
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "coco":
            path = write_coco(args.out, args.split, args.n, image_format=args.format, start=args.start)
            print(f"wrote {args.n} {args.split} frames and {path}")
        else:
            pan = PanConfig(frame_size=_size(args.frame_size), canvas_size=_size(args.canvas_size), fps=args.fps)
            path = write_bag(args.out, seed=args.seed, n=args.n, pan=pan, storage=args.storage,
                             image_topic=args.image_topic, gt_topic=args.gt_topic)
            print(f"wrote {args.n} frames to bag {path} ({args.storage})")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
