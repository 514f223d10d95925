"""COCO / LVIS / SODA-D / SODA-A annotations -> sensing-policy training samples.

One sample = one (image, queried class) pair: the policy is asked for regions likely to
contain that class and is rewarded against that class's ground-truth boxes.  The paper's
subsets are options, not separate loaders:

* ``small``  (LVIS small): only instances whose area is below ``small_area`` (COCO's 32^2)
  count as ground truth; a pair is kept when it has at least one.
* ``dense``  : pairs with MORE than ``dense_min_instances`` (paper: 15) instances.
* ``all``    : every non-crowd instance.

SODA-A stores oriented boxes (8-number polygons ``poly`` or ``[cx, cy, w, h, angle]``);
:func:`oriented_to_aligned` turns them into the enclosing axis-aligned box, since the
pipeline, rewards and metrics are axis-aligned.

Why records + :func:`records_to_dataset` rather than loading pixels: the dataset keeps the
image *path* in a ``datasets.Image`` column, decoded only when a row is read, so LVIS-sized
sets never load into memory at once.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from active_o3_ros.core.prompts import PromptSet
from active_o3_ros.core.types import Box

log = logging.getLogger(__name__)

SUBSETS = ("all", "small", "dense")


@dataclass(frozen=True)
class CocoSubsetConfig:
    """Which (image, class) pairs become samples and which instances count as ground truth."""

    subset: str = "all"
    small_area: float = 32.0 ** 2
    dense_min_instances: int = 15
    classes: tuple[str, ...] = ()          # empty: every category
    min_instances: int = 1
    max_samples: int = 0                    # 0: no cap
    include_crowd: bool = False
    #: LVIS: also a sample with no ground truth for every class in an image's
    #: ``neg_category_ids`` (verified absent): the task term then punishes detections there.
    include_negatives: bool = False
    #: Also a ``gt_masks`` column (one COCO RLE per ground-truth box, JSON text) for the
    #: segmentation task term; an instance without ``segmentation`` gets its box as mask.
    with_masks: bool = False

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {self.subset!r}")
        if self.small_area <= 0:
            raise ValueError(f"small_area must be > 0, got {self.small_area}")
        if self.dense_min_instances < 0 or self.min_instances < 1 or self.max_samples < 0:
            raise ValueError("dense_min_instances >= 0, min_instances >= 1 and max_samples >= 0 are required")


def oriented_to_aligned(obb: Sequence[float]) -> Box:
    """Enclosing axis-aligned box of an oriented box.

    Accepts an 8-number polygon ``[x1, y1, ..., x4, y4]`` (SODA-A ``poly``/DOTA) or
    ``[cx, cy, w, h, angle]`` with the angle in radians (degrees when |angle| > 2*pi).
    """
    vals = [float(v) for v in obb]
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"oriented box has non-finite values: {obb}")
    if len(vals) >= 8 and len(vals) % 2 == 0:
        xs, ys = vals[0::2], vals[1::2]
        return Box(min(xs), min(ys), max(xs), max(ys))
    if len(vals) == 5:
        cx, cy, w, h, a = vals
        if abs(a) > 2 * math.pi:
            a = math.radians(a)
        c, s = abs(math.cos(a)), abs(math.sin(a))
        hw, hh = 0.5 * (w * c + h * s), 0.5 * (w * s + h * c)
        return Box(cx - hw, cy - hh, cx + hw, cy + hh)
    raise ValueError(f"oriented box must be an 8+-number polygon or [cx, cy, w, h, angle], got {len(vals)} numbers")


def annotation_box(ann: dict[str, Any]) -> Box | None:
    """Axis-aligned box of one annotation: COCO ``bbox`` (xywh), else SODA-A ``poly`` /
    ``rbox`` / polygon ``segmentation``.  None (with a log line) when unusable."""
    try:
        if "poly" in ann:
            return oriented_to_aligned(ann["poly"])
        if "rbox" in ann:
            return oriented_to_aligned(ann["rbox"])
        bbox = ann.get("bbox")
        if isinstance(bbox, (list, tuple)) and len(bbox) == 4:
            x, y, w, h = (float(v) for v in bbox)
            if w < 0 or h < 0:
                raise ValueError(f"negative size in bbox {bbox}")
            return Box.from_xywh(x, y, w, h)
        if isinstance(bbox, (list, tuple)) and len(bbox) in (5, 8):
            return oriented_to_aligned(bbox)
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg and isinstance(seg[0], list):
            pts = [v for poly in seg for v in poly]
            return oriented_to_aligned(pts)
    except (TypeError, ValueError) as exc:
        log.warning("annotation %s skipped: %s", ann.get("id"), exc)
        return None
    log.warning("annotation %s has no usable box", ann.get("id"))
    return None


def _area(ann: dict[str, Any], box: Box) -> float:
    """COCO's ``area`` field (segment area) when present, else the box area.  For SODA-A
    (oriented) the polygon's own area is the honest size, so use it when given."""
    if "area" in ann and isinstance(ann["area"], (int, float)) and ann["area"] > 0:
        return float(ann["area"])
    if "poly" in ann and len(ann["poly"]) >= 6:
        xs, ys = ann["poly"][0::2], ann["poly"][1::2]
        return 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs))))
    return box.area


def load_coco_json(path: str | Path) -> dict[str, Any]:
    """Read and sanity-check a COCO-style annotation file (clear errors, no deep traces)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"annotation file not found: {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not valid JSON: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{p} is not UTF-8 text (a binary or corrupt file?): {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{p} nests JSON too deeply to be an annotation file") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{p} is not COCO-style: the top level is a {type(data).__name__}, not an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{p} is not COCO-style: missing list {key!r}")
    _check_entries(p, data)
    return data


def image_relpath(im: dict[str, Any]) -> str:
    """An image entry's path relative to the image folder.

    COCO, SODA and Objects365 entries carry ``file_name``.  LVIS v1 entries carry only
    ``coco_url`` (``http://images.cocodataset.org/val2017/000000397133.jpg``): the path is its
    last two parts, ``val2017/000000397133.jpg``, as LVIS users lay out the COCO images
    (:func:`resolve_image` also accepts the bare file name directly in the folder).
    """
    name = im.get("file_name")
    if isinstance(name, str) and name:
        return name
    url = im.get("coco_url")
    if isinstance(url, str) and url.rstrip("/").count("/") >= 1:
        return "/".join(url.rstrip("/").split("/")[-2:])
    raise ValueError(f"image {im.get('id')!r} has neither 'file_name' nor 'coco_url'")


def resolve_image(image_dir: str | Path, im: dict[str, Any]) -> Path:
    """The image file of an entry: ``image_dir / image_relpath(im)``, or for an LVIS entry whose
    split folder is absent, the bare file name in ``image_dir``."""
    rel = image_relpath(im)
    path = Path(image_dir) / rel
    if not path.exists() and "file_name" not in im:
        flat = Path(image_dir) / Path(rel).name
        if flat.exists():
            return flat
    return path


def _check_entries(p: Path, data: dict[str, Any]) -> None:
    """The fields every reader indexes, checked once so a bad file fails here with the entry
    named instead of a KeyError/TypeError deep inside a loader (found by the reliability tests)."""
    def bad(section: str, i: int, what: str) -> ValueError:
        return ValueError(f"{p}: {section}[{i}] {what}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict):
            raise bad("images", i, f"is a {type(im).__name__}, not an object")
        if not is_int(im.get("id")) and not isinstance(im.get("id"), str):
            raise bad("images", i, f"has no integer/string 'id' (got {im.get('id')!r})")
        if not isinstance(im.get("file_name"), str) and not isinstance(im.get("coco_url"), str):
            raise bad("images", i, f"has no string 'file_name' or 'coco_url' (got {im.get('file_name')!r})")
        for key in ("width", "height"):
            if key in im and not (is_int(im[key]) and im[key] >= 0):
                raise bad("images", i, f"'{key}' must be a non-negative integer, got {im[key]!r}")
    for i, c in enumerate(data["categories"]):
        if not isinstance(c, dict) or not is_int(c.get("id")):
            raise bad("categories", i, f"needs an integer 'id', got {c!r:.80}")
        if not isinstance(c.get("name", ""), str):
            raise bad("categories", i, f"'name' must be a string, got {c.get('name')!r:.80}")
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict):
            raise bad("annotations", i, f"is a {type(a).__name__}, not an object")
        for key in ("image_id", "category_id"):
            if not (is_int(a.get(key)) or isinstance(a.get(key), str)):
                raise bad("annotations", i, f"has no integer '{key}' (got {a.get(key)!r:.80})")


def coco_records(data: dict[str, Any], image_dir: str | Path, cfg: CocoSubsetConfig = CocoSubsetConfig(),
                 prompts: PromptSet = PromptSet(), max_regions: int = 3, source: str = "coco") -> list[dict[str, Any]]:
    """Per-class samples from a loaded COCO dict.

    Each record: ``image`` (path), ``image_id``, ``width``, ``height``, ``instruction``
    (the class name), ``gt_boxes`` (frame-pixel xyxy lists), ``gt_labels``, ``prompt``
    (chat messages with the sensing prompt), ``source``; with ``cfg.with_masks`` also
    ``gt_masks`` (one RLE JSON string per box, :func:`decode_masks` reads them).
    """
    image_dir = Path(image_dir)
    cats = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    wanted = set(cfg.classes)
    unknown = wanted - set(cats.values())
    if unknown:
        raise ValueError(f"classes {sorted(unknown)} are not in the annotation file; known: {sorted(cats.values())[:20]}...")
    per_pair: dict[tuple[int, int], list[Box]] = {}
    pair_anns: dict[tuple[int, int], list[dict[str, Any]]] = {}
    counts: dict[tuple[int, int], int] = {}
    for ann in data["annotations"]:
        if ann.get("iscrowd", 0) and not cfg.include_crowd:
            continue
        cid, iid = ann.get("category_id"), ann.get("image_id")
        if cid not in cats:
            log.warning("annotation %s has unknown category %s; skipped", ann.get("id"), cid)
            continue
        if wanted and cats[cid] not in wanted:
            continue
        box = annotation_box(ann)
        if box is None:
            continue
        key = (iid, cid)
        counts[key] = counts.get(key, 0) + 1
        if cfg.subset == "small" and _area(ann, box) >= cfg.small_area:
            continue
        per_pair.setdefault(key, []).append(box)
        pair_anns.setdefault(key, []).append(ann)
    images = {im["id"]: im for im in data["images"]}
    records: list[dict[str, Any]] = []
    skipped_not_exhaustive = 0
    for (iid, cid), boxes in sorted(per_pair.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        if len(boxes) < cfg.min_instances:
            continue
        if cfg.subset == "dense" and counts[(iid, cid)] <= cfg.dense_min_instances:
            continue
        im = images.get(iid)
        if im is None:
            log.warning("annotations reference missing image id %s; skipped", iid)
            continue
        w, h = int(im.get("width", 0)), int(im.get("height", 0))
        if w <= 0 or h <= 0:
            log.warning("image %s has no valid width/height; skipped", iid)
            continue
        if cid in (im.get("not_exhaustive_category_ids") or ()):
            # LVIS: this class is not labelled exhaustively in this image, so unlabelled instances
            # would be scored as false positives by the task term; such pairs are not used
            skipped_not_exhaustive += 1
            continue
        name = cats[cid]
        clipped = [bb.clip(w, h) for bb in boxes]
        rec = {
            "image": str(resolve_image(image_dir, im)),
            "image_id": str(iid),
            "width": w,
            "height": h,
            "instruction": name,
            "gt_boxes": [[b.x1, b.y1, b.x2, b.y2] for b in clipped],
            "gt_labels": [name] * len(boxes),
            "prompt": sensing_messages(name, prompts, max_regions),
            "source": source,
        }
        if cfg.with_masks:
            rec["gt_masks"] = [annotation_rle(a, b, w, h) for a, b in zip(pair_anns[(iid, cid)], clipped)]
        records.append(rec)
        if cfg.max_samples and len(records) >= cfg.max_samples:
            break
    if cfg.include_negatives:
        n_neg = 0
        for im in data["images"]:
            w, h = int(im.get("width", 0)), int(im.get("height", 0))
            if w <= 0 or h <= 0:
                continue
            for cid in im.get("neg_category_ids") or ():
                if cid not in cats or (wanted and cats[cid] not in wanted) or (im["id"], cid) in per_pair:
                    continue
                if cfg.max_samples and len(records) >= cfg.max_samples:
                    break
                name = cats[cid]
                rec = {"image": str(resolve_image(image_dir, im)), "image_id": str(im["id"]), "width": w,
                       "height": h, "instruction": name, "gt_boxes": [], "gt_labels": [],
                       "prompt": sensing_messages(name, prompts, max_regions), "source": source}
                if cfg.with_masks:
                    rec["gt_masks"] = []
                records.append(rec)
                n_neg += 1
        log.info("%d negative image-class pairs (LVIS neg_category_ids: verified absent) added", n_neg)
    if skipped_not_exhaustive:
        log.info("%d image-class pairs skipped: class listed in the image's not_exhaustive_category_ids (LVIS)",
                 skipped_not_exhaustive)
    return records


def annotation_rle(ann: dict[str, Any], box: Box, width: int, height: int) -> str:
    """One instance's mask as compressed COCO RLE in JSON text (a ``datasets`` column holds it
    as a plain string): polygons and RLE (compressed or not) through pycocotools; an
    annotation without ``segmentation`` gets its box as mask (SODA boxes, hand-made sets)."""
    from pycocotools import mask as mask_utils

    seg = ann.get("segmentation")
    rle = None
    try:
        if isinstance(seg, list) and seg:
            polys = [p for p in seg if isinstance(p, list) and len(p) >= 6]
            if polys:
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
        elif isinstance(seg, dict) and "counts" in seg:
            if list(seg.get("size", ())) != [height, width]:
                raise ValueError(f"RLE size {seg.get('size')!r} is not the image's [{height}, {width}]")
            if isinstance(seg["counts"], list):
                rle = mask_utils.frPyObjects(seg, height, width)
            elif isinstance(seg["counts"], (str, bytes)):
                rle = {"size": [height, width], "counts": seg["counts"]}
            else:
                raise ValueError(f"RLE counts must be a list or a string, got {type(seg['counts']).__name__}")
    except (TypeError, ValueError, IndexError) as exc:
        log.warning("annotation %s: unusable segmentation (%s); its box is used as mask", ann.get("id"), exc)
        rle = None
    if rle is None:
        m = np.zeros((height, width), np.uint8)
        x1, y1 = int(math.floor(box.x1)), int(math.floor(box.y1))
        m[y1:max(y1 + 1, int(math.ceil(box.y2))), x1:max(x1 + 1, int(math.ceil(box.x2)))] = 1
        rle = mask_utils.encode(np.asfortranarray(m))
    counts = rle["counts"]
    return json.dumps({"size": [int(v) for v in rle["size"]],
                       "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts})


def decode_masks(rles: Sequence[str]) -> list[np.ndarray]:
    """``gt_masks`` column entries (see :func:`annotation_rle`) -> full-frame boolean masks."""
    from pycocotools import mask as mask_utils

    out = []
    for r in rles:
        d = json.loads(r)
        out.append(mask_utils.decode({"size": d["size"], "counts": d["counts"].encode("ascii")}).astype(bool))
    return out


def sensing_messages(instruction: str, prompts: PromptSet = PromptSet(), max_regions: int = 3) -> list[dict[str, Any]]:
    """The chat prompt the sensing policy is trained on — the same text and system prompt
    ``QwenVLSensing`` uses at inference (TRL inserts the image before the user text)."""
    return [{"role": "system", "content": prompts.system},
            {"role": "user", "content": prompts.sensing_prompt(instruction, max_regions)}]


def records_to_dataset(records: Iterable[dict[str, Any]], check_files: bool = True):
    """``datasets.Dataset`` with a lazily decoded ``image`` column.

    ``check_files``: drop (and report) records whose image file is missing, so training
    does not die an hour in on one absent file.
    """
    from datasets import Dataset, Image

    rows = list(records)
    if check_files:
        missing = [r["image"] for r in rows if not Path(r["image"]).is_file()]
        if missing:
            log.warning("%d sample(s) dropped: image file missing (first: %s)", len(missing), missing[0])
            rows = [r for r in rows if Path(r["image"]).is_file()]
    if not rows:
        raise ValueError("no samples: check the annotation file, image folder and subset options")
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    return Dataset.from_dict(columns).cast_column("image", Image())


def coco_dataset(ann_file: str | Path, image_dir: str | Path, cfg: CocoSubsetConfig = CocoSubsetConfig(),
                 prompts: PromptSet = PromptSet(), max_regions: int = 3, source: str = "coco"):
    """COCO/LVIS/SODA-D (and SODA-A via ``poly``) file + image folder -> ``datasets.Dataset``."""
    return records_to_dataset(coco_records(load_coco_json(ann_file), image_dir, cfg, prompts, max_regions, source))


def soda_a_to_coco(ann_dir: str | Path, image_dir: str | Path) -> dict[str, Any]:
    """Merge SODA-A's per-image JSON files into one COCO dict with axis-aligned ``bbox``.

    SODA-A ships one JSON per image (``images`` with one entry, ``annotations`` with
    ``poly``, ``categories``).  Files already in single COCO form work too.
    """
    ann_dir = Path(ann_dir)
    files = sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else [ann_dir]
    if not files:
        raise FileNotFoundError(f"no SODA-A JSON files in {ann_dir}")
    images, anns, cats = [], [], {}
    next_img, next_ann = 1, 1
    for f in files:
        d = load_coco_json(f)
        idmap = {}
        for im in d["images"]:
            idmap[im["id"]] = next_img
            images.append({**im, "id": next_img})
            next_img += 1
        for c in d["categories"]:
            cats[c["id"]] = c
        for a in d["annotations"]:
            box = annotation_box(a)
            if box is None or a.get("image_id") not in idmap:
                continue
            anns.append({**a, "id": next_ann, "image_id": idmap[a["image_id"]], "bbox": box.as_xywh(),
                         "area": _area(a, box)})
            next_ann += 1
    return {"images": images, "annotations": anns, "categories": list(cats.values())}


__all__ = ["CocoSubsetConfig", "SUBSETS", "annotation_box", "annotation_rle", "decode_masks", "coco_dataset", "coco_records", "load_coco_json",
           "oriented_to_aligned", "records_to_dataset", "sensing_messages", "soda_a_to_coco"]
