"""Per-anchor evidence for the small sensing policy: what a cheap look at the frame says.

WHY: at the policy's 512x288 thumbnail a 9 px word of a 4K frame is about 1 px tall; no
network can find it there (the first shipped policy learned its generator's layouts
instead, and was near random on other scenes).  Two cheap looks at higher resolution do
see it, so the policy scores anchors from these numbers:

* **detector cue**: the text detector's own probability map (the DB head of the PP-OCR
  det model shipped in the rapidocr wheel, the same model the ``text`` task module runs)
  on the policy's image downscaled to half its long side, at most 960 px (about 0.4 s on
  2 cores at 960, 0.16 s at 640).  At that size it reads few words, but it lights up
  where text is.
* **stroke cue**: the density of thin dark-on-light and light-on-dark strokes
  (morphological top-hat and black-hat, 5x5 kernel) at up to 1080 px short side, and the
  Laplacian energy there (about 0.02 s).

Each anchor gets the mean and maxima of these maps inside it and inside its context
window, the same relative to the frame (a busy frame lights up everywhere), its rank among
the anchors, and its position and size: :data:`CUE_FEATURES`.  Measured on the validation
scenes before any training (K=3, share of words inside the chosen anchors): anchor oracle
0.87, the detector cue's maximum alone 0.36 at 640 px and 0.54 at 1280 px, the stroke cue
alone 0.25, random anchors 0.04.  Training caches the maps (:class:`CueMaps`), not the
features, so features and anchors can change without re-rendering.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from active_o3_ros.core.merge import iou_matrix

#: Names of the per-anchor numbers, in order ("_w": on the anchor grown by ``WINDOW`` around
#: its centre, about what the task model's crop shows with the node's crop_context).
CUE_FEATURES: tuple[str, ...] = (
    "det_mean", "det_max", "det_dense_max", "det_frac", "det_mean_rel", "det_max_rel", "det_max_rank",
    "det_mean_w", "det_max_w", "det_share",
    "stroke_mean", "stroke_max", "stroke_mean_w", "stroke_mean_rel", "lap_mean_rel",
    "cx", "cy", "edge_dist", "size", "det_global", "stroke_global",
)
WINDOW = 1.3
#: Maps a policy can read as extra CNN input channels (``SmallPolicyConfig.map_inputs``).
MAP_INPUTS: tuple[str, ...] = ("det", "stroke", "lap")
#: Map channels are stored as uint8 of ``value / ceiling`` and fed to the network as
#: ``byte / 255 / MAP_SCALE`` (so a fully lit detector map reads 4, like a bright pixel).
MAP_SCALE = 0.25
#: The value each map reaches at 255 (the Laplacian map is log1p of a grey-level Laplacian).
_MAP_CEILING = {"det": 1.0, "stroke": 1.0, "lap": 8.0}
#: Stroke and Laplacian maps are kept at this fraction of their computed resolution.
STROKE_MAP_STRIDE = 4


@dataclass
class CueMaps:
    """The cheap looks at one frame (what training caches; features are derived from these)."""

    det: np.ndarray      # detector text probability, float32 0..1 (~360x640)
    stroke: np.ndarray   # thin-stroke density (9x9 box mean), float32 0..1, 1/4 of <=1080p
    lap: np.ndarray      # log Laplacian energy (box mean), float32, same size as stroke

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {"det": self.det.astype(np.float16), "stroke": self.stroke.astype(np.float16),
                "lap": self.lap.astype(np.float16)}

    @classmethod
    def from_arrays(cls, d) -> "CueMaps":
        return cls(*(np.asarray(d[k], np.float32) for k in ("det", "stroke", "lap")))

    def thumbnail_channels(self, names, width: int, height: int) -> np.ndarray:
        """uint8 ``(len(names), height, width)``: the named maps resized to a thumbnail
        (area-averaged when shrinking), each scaled so its ceiling reads 255."""
        out = np.empty((len(names), height, width), np.uint8)
        for i, name in enumerate(names):
            m = np.asarray(getattr(self, name), np.float32)
            interp = cv2.INTER_AREA if m.shape[1] >= width else cv2.INTER_LINEAR
            r = cv2.resize(m, (width, height), interpolation=interp) / _MAP_CEILING[name]
            out[i] = np.clip(np.rint(r * 255.0), 0, 255).astype(np.uint8)
        return out


_SESSIONS: dict[tuple[str, int], object] = {}
_LOCK = threading.Lock()


def detector_model_path() -> Path:
    """The PP-OCR text-detection ONNX file inside the rapidocr wheel (no download)."""
    try:
        import rapidocr
    except ImportError as exc:  # pragma: no cover - depends on install
        raise RuntimeError("the detector cue needs rapidocr: pip install 'active-o3-ros-py[text]'") from exc
    models = Path(rapidocr.__file__).resolve().parent / "models"
    found = sorted(models.glob("*det*.onnx"))
    if not found:
        raise RuntimeError(f"no text-detection ONNX model in {models}")
    return found[-1]


#: ``precision`` values of :func:`look_detector`.
LOOK_PRECISIONS: tuple[str, ...] = ("fp32", "int8")


def look_detector(precision: str = "fp32") -> Path:
    """The detector model a look runs: ``fp32``, rapidocr's own (:func:`detector_model_path`);
    ``int8``, the text module's shipped int8 detector where this CPU computes it exactly
    (:func:`active_o3_ros.backends.text.int8_exact_here`), else the fp32 one with a warning."""
    if precision not in LOOK_PRECISIONS:
        raise ValueError(f"look precision must be one of {', '.join(LOOK_PRECISIONS)}, got {precision!r}")
    if precision == "int8":
        from active_o3_ros.backends.text import int8_detector, int8_exact_here

        if int8_exact_here():
            return int8_detector()
        import warnings

        warnings.warn("this CPU has no VNNI int8 dot products, where the int8 detector saturates; the looks "
                      "run the fp32 detector", stacklevel=2)
    return detector_model_path()


def _session(path: Path, threads: int):
    key = (str(path), int(threads))
    with _LOCK:
        if key not in _SESSIONS:
            import onnxruntime as ort

            from active_o3_ros.backends.ort_sessions import DEFAULT_ARENA, DEFAULT_SPIN, session_options

            # The node's session settings (arena on, no spin-wait): a pool spinning after the
            # look takes a core from the stroke maps and the network that follow it.
            so = session_options(threads=int(threads) if threads else None, arena=DEFAULT_ARENA, spin=DEFAULT_SPIN)
            _SESSIONS[key] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return _SESSIONS[key]


def detector_map(image: np.ndarray, long_side: int, threads: int = 0, model: Path | None = None) -> np.ndarray:
    """The detector's text probability map (float32, 0..1) of ``image`` downscaled to
    ``long_side`` (sides rounded to multiples of 32, as the model needs); ``model``: the
    detector file (None: rapidocr's fp32 one; see :func:`look_detector`)."""
    h, w = image.shape[:2]
    s = min(1.0, long_side / max(h, w))
    nw, nh = max(32, int(round(w * s / 32)) * 32), max(32, int(round(h * s / 32)) * 32)
    x = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA).astype(np.float32)
    x = (x / 255.0 - 0.5) / 0.5  # rapidocr's det normalisation (its input is BGR; the map is colour-blind)
    sess = _session(model if model is not None else detector_model_path(), threads)
    out = sess.run(None, {sess.get_inputs()[0].name: x[:, :, ::-1].transpose(2, 0, 1)[None].copy()})[0]
    return np.asarray(out[0, 0], np.float32)


def stroke_maps(image: np.ndarray, short_side: int = 1080) -> tuple[np.ndarray, np.ndarray]:
    """``(thin-stroke density, log Laplacian energy)``: computed at up to ``short_side``,
    averaged over 9x9 px, kept at 1/:data:`STROKE_MAP_STRIDE` of that resolution."""
    h, w = image.shape[:2]
    s = min(1.0, short_side / min(h, w))
    img = cv2.resize(image, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else image
    g = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    k = np.ones((5, 5), np.uint8)
    hat = np.maximum(cv2.morphologyEx(g, cv2.MORPH_TOPHAT, k), cv2.morphologyEx(g, cv2.MORPH_BLACKHAT, k))
    lap = np.log1p(np.abs(cv2.Laplacian(g, cv2.CV_32F, ksize=3)))
    size = (max(1, g.shape[1] // STROKE_MAP_STRIDE), max(1, g.shape[0] // STROKE_MAP_STRIDE))
    dens = cv2.resize(cv2.blur((hat > 40).astype(np.float32), (9, 9)), size, interpolation=cv2.INTER_AREA)
    return dens, cv2.resize(lap, size, interpolation=cv2.INTER_AREA)


def cue_maps(image: np.ndarray, detector_long_side: int = 640, stroke_short_side: int = 1080,
             threads: int = 0, model: Path | None = None) -> CueMaps:
    stroke, lap = stroke_maps(image, stroke_short_side)
    return CueMaps(detector_map(image, detector_long_side, threads, model), stroke, lap)


def _box_stats(m: np.ndarray, boxes: np.ndarray, dense: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per normalised box: sum, mean and max (of the ``dense``-cell box-filtered map)."""
    H, W = m.shape
    ii = cv2.integral(m.astype(np.float64))
    dm = cv2.blur(m, (dense, dense)) if dense > 1 else m
    sums, means, maxs = [], [], []
    for x1, y1, x2, y2 in boxes:
        c1, r1 = min(W - 1, max(0, int(x1 * W))), min(H - 1, max(0, int(y1 * H)))
        c2 = min(W, max(c1 + 1, int(round(x2 * W))))
        r2 = min(H, max(r1 + 1, int(round(y2 * H))))
        total = ii[r2, c2] - ii[r1, c2] - ii[r2, c1] + ii[r1, c1]
        sums.append(total)
        means.append(total / max(1, (c2 - c1) * (r2 - r1)))
        maxs.append(float(dm[r1:r2, c1:c2].max()))
    return np.array(sums), np.array(means), np.array(maxs)


def anchor_features(maps: CueMaps, anchors: np.ndarray) -> np.ndarray:
    """``(N, len(CUE_FEATURES))`` float32 evidence for each normalised ``xyxy`` anchor."""
    det, stroke, lap = maps.det, maps.stroke, maps.lap
    cx, cy = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    hw, hh = (anchors[:, 2] - anchors[:, 0]) * WINDOW / 2, (anchors[:, 3] - anchors[:, 1]) * WINDOW / 2
    window = np.clip(np.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1), 0.0, 1.0)
    d_sum, d_mean, d_max = _box_stats(det, anchors)
    _, _, d_dense = _box_stats(det, anchors, 3)
    _, d_frac, _ = _box_stats((det > 0.3).astype(np.float32), anchors)
    dw_sum, dw_mean, dw_max = _box_stats(det, window)
    _, s_mean, s_max = _box_stats(stroke, anchors)
    _, sw_mean, _ = _box_stats(stroke, window)
    _, l_mean, _ = _box_stats(lap, anchors)
    g_det, g_stroke, g_lap = float(det.mean()), float(stroke.mean()), float(lap.mean())
    rank = np.argsort(np.argsort(-d_max, kind="stable"), kind="stable") / max(1, len(anchors) - 1)
    size = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    edge = np.minimum.reduce([anchors[:, 0], anchors[:, 1], 1 - anchors[:, 2], 1 - anchors[:, 3]])
    n = np.ones(len(anchors))
    feats = np.stack([
        d_mean * 10, d_max * 2, d_dense * 4, d_frac * 10, (d_mean - g_det) * 10, (d_max - d_max.mean()) * 2,
        1 - rank, dw_mean * 10, dw_max * 2, d_sum / np.maximum(dw_sum, 1e-6),
        s_mean * 10, s_max * 4, sw_mean * 10, (s_mean - g_stroke) * 10, l_mean - g_lap,
        cx - 0.5, cy - 0.5, edge * 4, size * 10, n * g_det * 10, n * g_stroke * 10,
    ], 1).astype(np.float32)
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)


def hit_boxes(det: np.ndarray, threshold: float = 0.3, min_score: float = 0.0, min_aspect: float = 0.0,
              min_height: int = 0) -> np.ndarray:
    """``(M, 4)`` normalised ``xyxy`` boxes of the detector map's connected regions above
    ``threshold`` (where the cheap look sees text; imprecise, and blind to the smallest words),
    keeping only those whose mean probability is at least ``min_score`` (the DB head's box
    score), that are at least ``min_aspect`` times as wide as tall and ``min_height`` map
    pixels tall (all off by default)."""
    H, W = det.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats((det > threshold).astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros((0, 4))
    x, y, w, h = (stats[1:, i].astype(np.float64) for i in range(4))
    keep = (w >= min_aspect * h) & (h >= min_height)
    if min_score > 0:
        keep &= (np.bincount(labels.ravel(), det.ravel(), n) / np.maximum(stats[:, 4], 1))[1:] >= min_score
    return np.stack([x / W, y / H, (x + w) / W, (y + h) / H], 1)[keep]


def fit_to_hits(box: np.ndarray, hits: np.ndarray, grow: float = 1.0, min_scale: float = 0.0,
                margin: float = 0.004, mode: str = "hull", min_hits: int = 1) -> np.ndarray:
    """The normalised ``box`` fitted to the detector-map ``hits`` (:func:`hit_boxes`) whose
    centres lie in ``box`` grown by ``grow`` around its centre: their hull, padded by
    ``margin``, kept inside the grown box and no smaller than ``min_scale`` of ``box`` per side
    (a hedge for words the look cannot see).  ``box`` itself when fewer than ``min_hits``
    hits are there (hull mode).
    ``mode="union"`` instead grows ``box`` to take in whole the hits that overlap it (never
    smaller than ``box``, at most the grown box): text cut by the anchor's edge.

    WHY: the policy chooses among fixed anchors, which zoom less than a region fitted to the
    text (in domain the best anchors reach 0.87x the recall of free regions); the look the
    policy already took says where in the anchor the text is."""
    box = np.asarray(box, np.float64)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    bw, bh = box[2] - box[0], box[3] - box[1]
    gx1, gy1, gx2, gy2 = cx - bw * grow / 2, cy - bh * grow / 2, cx + bw * grow / 2, cy + bh * grow / 2
    if len(hits) == 0:
        return box
    if mode == "union":
        cut = hits[(hits[:, 2] > box[0]) & (hits[:, 0] < box[2]) & (hits[:, 3] > box[1]) & (hits[:, 1] < box[3])]
        if len(cut) == 0:
            return box
        return np.clip(np.array([max(gx1, min(box[0], cut[:, 0].min() - margin)),
                                 max(gy1, min(box[1], cut[:, 1].min() - margin)),
                                 min(gx2, max(box[2], cut[:, 2].max() + margin)),
                                 min(gy2, max(box[3], cut[:, 3].max() + margin))]), 0.0, 1.0)
    if mode != "hull":
        raise ValueError(f"fit mode must be 'hull' or 'union', got {mode!r}")
    hx, hy = (hits[:, 0] + hits[:, 2]) / 2, (hits[:, 1] + hits[:, 3]) / 2
    inside = hits[(hx >= gx1) & (hx <= gx2) & (hy >= gy1) & (hy <= gy2)]
    if len(inside) < max(int(min_hits), 1):
        return box
    x1, y1 = max(gx1, inside[:, 0].min() - margin), max(gy1, inside[:, 1].min() - margin)
    x2, y2 = min(gx2, inside[:, 2].max() + margin), min(gy2, inside[:, 3].max() + margin)
    out = []
    for lo, hi, side, glo, ghi in ((x1, x2, bw, gx1, gx2), (y1, y2, bh, gy1, gy2)):
        need = min_scale * side - (hi - lo)
        if need > 0:  # grow around the hull's centre, shifted to stay in the grown box
            lo, hi = lo - need / 2, hi + need / 2
            shift = max(0.0, glo - lo) - max(0.0, hi - ghi)
            lo, hi = lo + shift, hi + shift
        out.append((lo, hi))
    (x1, x2), (y1, y2) = out
    return np.clip(np.array([x1, y1, x2, y2]), 0.0, 1.0)


def shift_to_hits(boxes: np.ndarray, det: np.ndarray, threshold: float = 0.3, max_shift: float = 0.5,
                  steps: int = 4, gain: float = 0.1) -> np.ndarray:
    """The normalised ``(K, 4)`` ``boxes`` slid, size kept, to take in more of the detector
    map's hit mass (``det`` above ``threshold``), best-first: each box may move up to
    ``max_shift`` of its width / height in ``2 * steps + 1`` positions per axis (kept inside
    the frame), and moves only where that adds more than ``gain`` of its own mass; mass a
    box already took is not counted again for the next ones.

    WHY: unlike shrinking (:func:`fit_to_hits`, "hull") a slide keeps the anchor's zoom, so
    words the look cannot see lose nothing they would have had from the size; it only
    re-centres the window on what the look does see (text cut by the anchor's edge)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if not len(boxes):
        return boxes
    H, W = det.shape
    mass = np.where(det > threshold, det, 0.0).astype(np.float64)
    out = []
    offs = np.linspace(-1.0, 1.0, 2 * int(steps) + 1) * float(max_shift)
    for box in boxes:
        S = np.zeros((H + 1, W + 1))
        S[1:, 1:] = mass.cumsum(0).cumsum(1)
        bw, bh = box[2] - box[0], box[3] - box[1]
        x1 = np.clip(box[0] + offs * bw, 0.0, max(0.0, 1.0 - bw))  # candidate left edges
        y1 = np.clip(box[1] + offs * bh, 0.0, max(0.0, 1.0 - bh))
        X1 = np.rint(x1 * W).astype(int)
        X2 = np.clip(np.rint((x1 + bw) * W).astype(int), 0, W)
        Y1 = np.rint(y1 * H).astype(int)
        Y2 = np.clip(np.rint((y1 + bh) * H).astype(int), 0, H)
        got = S[Y2][:, X2] - S[Y1][:, X2] - S[Y2][:, X1] + S[Y1][:, X1]  # (rows: y, cols: x)
        c = len(offs) // 2
        here = got[c, c]
        # the largest gain; among near-ties (1 %) the smallest move
        dist = np.abs(offs)[:, None] + np.abs(offs)[None, :]
        best = got.max()
        cand = np.argwhere(got >= best - 0.01 * max(best, 1e-9))
        j, i = min(cand, key=lambda yx: dist[yx[0], yx[1]])
        if best > here * (1.0 + gain) + 1e-9:
            nb = np.array([x1[i], y1[j], x1[i] + bw, y1[j] + bh])
        else:
            nb = box.copy()
        out.append(np.clip(nb, 0.0, 1.0))
        xa, xb = int(round(nb[0] * W)), int(round(nb[2] * W))
        ya, yb = int(round(nb[1] * H)), int(round(nb[3] * H))
        mass[ya:yb, xa:xb] = 0.0
    return np.stack(out)


def anchor_cues(image: np.ndarray, anchors: np.ndarray, detector_long_side: int = 640,
                stroke_short_side: int = 1080, threads: int = 0) -> np.ndarray:
    """:func:`anchor_features` of :func:`cue_maps` of ``image``."""
    return anchor_features(cue_maps(image, detector_long_side, stroke_short_side, threads), anchors)


def look_at_boxes(image: np.ndarray, boxes: np.ndarray, long_side: int = 480, context: float = WINDOW,
                  threshold: float = 0.3, min_score: float = 0.6, min_aspect: float = 1.5, min_height: int = 3,
                  threads: int = 0, model: Path | None = None) -> list[np.ndarray]:
    """Per normalised ``box`` (grown by ``context`` around its centre, clipped to the image),
    the text lines the detector sees on its crop of ``image`` read at up to ``long_side`` px
    (never enlarged), as ``(M, 4)`` boxes normalised to the whole image: connected regions of
    the map above ``threshold`` whose mean probability is at least ``min_score`` (the DB
    head's box score), at least ``min_aspect`` times as wide as tall and ``min_height`` map
    pixels tall.

    WHY the shape and score: on validation scenes 90 % of the regions on words had a mean
    probability above 0.72 and were 2.5x as wide as tall or more; the regions on stripes,
    grids and foliage had a median of 0.35 and were about square."""
    H, W = image.shape[:2]
    out = []
    for b in np.asarray(boxes, np.float64).reshape(-1, 4):
        cx, cy, bw, bh = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) * context, (b[3] - b[1]) * context
        x1, x2 = int(max(0, np.floor((cx - bw / 2) * W))), int(min(W, np.ceil((cx + bw / 2) * W)))
        y1, y2 = int(max(0, np.floor((cy - bh / 2) * H))), int(min(H, np.ceil((cy + bh / 2) * H)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            out.append(np.zeros((0, 4)))
            continue
        det = detector_map(np.ascontiguousarray(image[y1:y2, x1:x2]), long_side, threads, model)
        hits = hit_boxes(det, threshold, min_score, min_aspect, min_height)  # normalised to the crop
        out.append(hits * np.array([(x2 - x1) / W, (y2 - y1) / H] * 2) + np.array([x1 / W, y1 / H] * 2))
    return out


def choose_by_hits(hits: Sequence[np.ndarray], k: int, same_iou: float = 0.3) -> tuple[list[int], list[int]]:
    """``k`` of the candidates (given best first) whose looks (:func:`look_at_boxes`) saw the
    most distinct text, greedily: each next pick adds the most hits no pick so far saw (a hit
    seen by two overlapping candidates, IoU >= ``same_iou``, counts once); ties and
    candidates that add nothing keep the given order.  Returns the picks and each
    candidate's own count of distinct hits."""
    per = [np.asarray(hs, np.float64).reshape(-1, 4) for hs in hits]
    owner = [i for i, hs in enumerate(per) for _ in range(len(hs))]
    flat = np.concatenate(per) if per else np.zeros((0, 4))
    same = iou_matrix(flat) >= same_iou
    ids: list[int] = []  # distinct-text id of each hit: the first earlier hit it matches
    for j in range(len(flat)):
        ids.append(next((ids[m] for m in range(j) if same[j, m]), j))
    seen: list[set[int]] = [set() for _ in hits]
    for i, t in zip(owner, ids):
        seen[i].add(t)
    picks: list[int] = []
    covered: set[int] = set()
    while len(picks) < min(k, len(hits)):
        gains = [(len(seen[i] - covered), -i) for i in range(len(hits)) if i not in picks]
        g, neg_i = max(gains)
        if g == 0:
            break
        picks.append(-neg_i)
        covered |= seen[-neg_i]
    picks += [i for i in range(len(hits)) if i not in picks][: max(0, k - len(picks))]
    return picks, [len(s) for s in seen]


__all__ = ["CUE_FEATURES", "MAP_INPUTS", "MAP_SCALE", "CueMaps", "anchor_cues", "anchor_features", "choose_by_hits", "cue_maps", "detector_map",
           "detector_model_path", "LOOK_PRECISIONS", "look_detector", "fit_to_hits", "hit_boxes", "look_at_boxes", "shift_to_hits", "stroke_maps"]
