"""Evaluation data: COCO/LVIS/SODA-style JSON + images, labelled rosbags, or the embedded
synthetic small-text split, all turned into one list of :class:`EvalSample`.

Why its own module: ``active-o3-eval`` and the benchmarks read the same inputs, and the
frames are loaded lazily (``EvalSample.load``) so a large dataset never sits in memory.
Box reading is the training adapter's (:mod:`active_o3_training.data.coco`), so training and
evaluation agree on what a ground-truth box is.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from active_o3_ros.core.metrics import ImageAnnotations
from active_o3_ros.core.types import Box


class EvalError(ValueError):
    """Bad evaluation input (missing files, unreadable annotations); the message says which."""


# -- data --------------------------------------------------------------------------------
@dataclass
class EvalSample:
    """One labelled image.  ``load`` returns the RGB ``HxWx3 uint8`` frame on demand so a
    large dataset is never held in memory at once."""

    image_id: int
    file_name: str
    width: int
    height: int
    gt: ImageAnnotations
    instruction: str
    load: Callable[[], np.ndarray]


@dataclass
class DatasetInfo:
    name: str
    categories: list[str]
    samples: list[EvalSample]


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise EvalError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def load_coco(annotations: str | Path, images: str | Path | None = None, with_masks: bool = False,
              instruction: str | None = None, max_images: int = 0) -> DatasetInfo:
    """Read a COCO/LVIS/SODA-style JSON (boxes in ``[x, y, w, h]``) + its image folder.

    Boxes are read by the training data adapter (:func:`active_o3_training.data.coco.annotation_box`),
    so SODA-A's oriented boxes become their enclosing axis-aligned boxes here as in training.
    Per-image instructions: an image entry's ``"instruction"`` field wins; else ``instruction``;
    else the dataset's category names joined by commas.  Crowd annotations are skipped
    (COCO ignores them for AP as well).  Masks are decoded only when ``with_masks``.
    """
    from active_o3_training.data.coco import annotation_box, image_relpath, load_coco_json, resolve_image

    ann_path = Path(annotations)
    try:
        data = load_coco_json(ann_path)
    except (FileNotFoundError, ValueError) as exc:
        raise EvalError(str(exc)) from exc
    img_dir = Path(images) if images else ann_path.parent
    if not img_dir.is_dir():
        raise EvalError(f"image folder not found: {img_dir}")
    cats: dict[int, str] = {}
    for i, c in enumerate(data.get("categories", [])):
        with _entry(ann_path, "categories", i):
            cats[int(c["id"])] = str(c["name"])
    by_image: dict[int, list[dict]] = {}
    for i, a in enumerate(data["annotations"]):
        with _entry(ann_path, "annotations", i):
            by_image.setdefault(int(a["image_id"]), []).append(a)
    default_instr = instruction or ", ".join(sorted(set(cats.values()))) or "object"
    coco = None
    if with_masks:
        from pycocotools.coco import COCO
        import io

        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    samples: list[EvalSample] = []
    for n, im in enumerate(data["images"]):
        with _entry(ann_path, "images", n):
            iid, w, h = int(im["id"]), int(im["width"]), int(im["height"])
            if w <= 0 or h <= 0:
                raise ValueError(f"width/height must be positive, got {w}x{h}")
            file_name = image_relpath(im)
        boxes, labels, masks = [], [], []
        for a in by_image.get(iid, []):
            with _entry(ann_path, "annotations of image", iid):
                if a.get("iscrowd", 0):
                    continue
                box = annotation_box(a)  # COCO xywh, SODA-A oriented boxes, polygons
                if box is None or box.width <= 0 or box.height <= 0:
                    continue
                labels.append(cats.get(int(a["category_id"]), str(a["category_id"])))
                boxes.append(box.clip(w, h))
                if coco is not None:
                    masks.append(coco.annToMask(a).astype(bool) if a.get("segmentation") else box_mask(boxes[-1], w, h))
        gt = ImageAnnotations(iid, w, h, boxes, labels, masks=masks if coco is not None else None)
        path = resolve_image(img_dir, im)
        samples.append(EvalSample(iid, file_name, w, h, gt, str(im.get("instruction") or default_instr),
                                  (lambda p=path: _read_rgb(p))))
        if max_images and len(samples) >= max_images:
            break
    if not samples:
        raise EvalError(f"{ann_path} lists no images")
    return DatasetInfo(ann_path.stem, sorted(set(cats.values())), samples)


@contextlib.contextmanager
def _entry(path: Path, kind: str, index: int) -> Iterator[None]:
    """Turn a malformed JSON entry (missing key, wrong type) into one EvalError naming the
    file and the entry, instead of a KeyError deep in the loader."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise EvalError(f"{path}: {kind} entry {index} is malformed ({type(exc).__name__}: {exc}); "
                        "COCO needs images[id, width, height, file_name], annotations[image_id, "
                        "category_id, bbox], categories[id, name]") from exc


def load_bag(bag: str | Path, instruction: str | None = None, max_images: int = 0,
             camera_topic: str = "/camera/image_raw", labels_topic: str = "/active_o3/detections") -> DatasetInfo:
    """A labelled rosbag2 (camera images + ``DetectionArray`` labels paired by stamp) via the
    training adapter :func:`active_o3_training.data.rosbag.iter_labeled_frames`.

    Frames are decoded once and kept: a labelled bag for evaluation is small, and re-reading
    the bag per mode would cost more than the memory.
    """
    from active_o3_training.data.rosbag import BagDatasetConfig, BagReport, iter_labeled_frames

    cfg = BagDatasetConfig(camera_topic=camera_topic, labels_topic=labels_topic, instruction=instruction or "",
                           max_samples=max_images)
    report = BagReport()
    samples: list[EvalSample] = []
    cats: set[str] = set()
    try:
        for i, f in enumerate(iter_labeled_frames(bag, cfg, report)):
            frame = np.ascontiguousarray(f.image)
            h, w = frame.shape[:2]
            cats.update(f.labels)
            gt = ImageAnnotations(i + 1, w, h, list(f.boxes), list(f.labels))
            instr = instruction or f.instruction or ", ".join(sorted(set(f.labels))) or "object"
            samples.append(EvalSample(i + 1, f"{f.frame_id or 'frame'}@{f.stamp_ns}", w, h, gt, instr,
                                      (lambda fr=frame: fr)))
            if max_images and len(samples) >= max_images:
                break
    except (FileNotFoundError, ValueError) as exc:
        raise EvalError(f"cannot read labelled bag {bag}: {exc}") from exc
    if not samples:
        raise EvalError(f"no labelled frames in {bag} ({report.summary()})")
    return DatasetInfo(Path(bag).name, sorted(cats), samples)


def box_mask(box: Box, w: int, h: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[int(box.y1):int(math.ceil(box.y2)), int(box.x1):int(math.ceil(box.x2))] = True
    return m


def synthetic_dataset(n: int, out_dir: str | Path, frame_size: tuple[int, int] | None = None,
                      split: str = "test") -> tuple[Path, Path]:
    """Write ``n`` frames of the embedded small-text benchmark's held-out split as COCO JSON
    + PNGs (the CPU/CI default target); ``frame_size`` shrinks frames for quick runs."""
    from active_o3_training.data import synthetic  # noqa: PLC0415

    cfg = synthetic.SyntheticTextConfig(frame_sizes=(tuple(frame_size),)) if frame_size else None
    ann = Path(synthetic.write_coco(out_dir, split, n, cfg, progress=False))
    return ann, ann.parent
