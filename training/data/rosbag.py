"""A robot's rosbag2 (camera topic + labels topic) -> sensing-policy training samples.

The labels topic carries our ``active_o3_ros/msg/DetectionArray`` (written by the node's
offline bag mode, by a labelling tool, or by :func:`coco_to_bag`).  Each labels message is
paired with the camera frame whose ``header.stamp`` is nearest, within a tolerance; frames
can be subsampled in time and near-duplicates skipped (a robot standing still records
the same image for minutes, and GRPO learns nothing from copies).

Pixels are written once to a cache folder as PNG and the dataset keeps the paths in a
lazily decoded ``datasets.Image`` column, so a long bag never sits in memory.

Bad data never stops a run: an undecodable image, a labels message with no frame in
tolerance or a box outside the frame is skipped and counted in :class:`BagReport`, and
the report is logged — nothing is dropped silently.

Reads and writes both mcap and sqlite3 bags through ``rosbags`` (no ROS install needed).
"""
from __future__ import annotations

import bisect
import contextlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.core.prompts import PromptSet
from active_o3_ros.core.types import Box

log = logging.getLogger(__name__)

DETECTION_ARRAY = "active_o3_ros/msg/DetectionArray"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


# -- type store and image decoding: the ros/ room's implementations, one of each --------
def typestore(msg_dir: str | Path | None = None):
    """A ROS 2 Kilted ``rosbags`` type store with our messages registered (same definitions,
    hence the same type hashes, as the rosidl-generated ones).  ``msg_dir`` overrides where
    the ``.msg`` files are read from (default: ``active_o3_ros.ros.bags.msg_dir()``)."""
    from active_o3_ros.ros import bags

    if msg_dir is None:
        return bags.typestore()
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name in bags.OUR_TYPES:
        types.update(get_types_from_msg((Path(msg_dir) / f"{name}.msg").read_text(encoding="utf-8"),
                                        f"active_o3_ros/msg/{name}"))
    store.register(types)
    return store


def decode_image(msg: Any) -> np.ndarray:
    """``sensor_msgs`` Image / CompressedImage (rosbags object) -> RGB uint8 array, via
    ``active_o3_ros.ros.images`` (strict size checks before any allocation).
    Raises ValueError with the reason."""
    from active_o3_ros.ros.images import ImageConversionError, msg_to_rgb

    try:
        return msg_to_rgb(msg)
    except ImageConversionError as exc:
        raise ValueError(str(exc)) from exc


def stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


# -- options and report -------------------------------------------------------------------
@dataclass(frozen=True)
class BagDatasetConfig:
    """How a bag becomes samples.

    ``tolerance_s``: largest |stamp(labels) - stamp(image)| accepted as the same frame.
    ``min_interval_s``: keep at most one sample per this many seconds (0 = all).
    ``dedup_threshold``: skip a frame whose 32x32 grey thumbnail differs from the last kept
    one by less than this mean absolute difference (0..255; 0 = keep duplicates).
    ``instruction``: used when a labels message has an empty ``instruction``;
    ``per_class``: one sample per label present (like the COCO adapter) instead of one per frame.
    """

    camera_topic: str = "/camera/image_raw"
    labels_topic: str = "/active_o3/detections"
    tolerance_s: float = 0.02
    min_interval_s: float = 0.0
    dedup_threshold: float = 0.0
    instruction: str = ""
    per_class: bool = False
    min_score: float = 0.0
    max_samples: int = 0

    def __post_init__(self) -> None:
        if self.tolerance_s < 0 or self.min_interval_s < 0 or self.dedup_threshold < 0:
            raise ValueError("tolerance_s, min_interval_s and dedup_threshold must be >= 0")


@dataclass
class BagReport:
    """What happened to every labels message (logged; returned for tests and the CLI)."""

    labels_messages: int = 0
    images: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        return (f"{self.labels_messages} labels messages, {self.images} images, {self.kept} samples kept, "
                f"skipped: {self.skipped or 'none'}")


# -- reading --------------------------------------------------------------------------------
@dataclass
class LabeledFrame:
    """One paired frame: RGB pixels, the labels, and where they came from."""

    stamp_ns: int
    frame_id: str
    image: np.ndarray
    boxes: list[Box]
    labels: list[str]
    scores: list[float]
    instruction: str
    #: what the task model read in each box (empty when the labels carry none)
    texts: list[str] = field(default_factory=list)


def _bag_paths(bag: str | Path | Sequence[str | Path]) -> list[Path]:
    paths = [Path(b) for b in ([bag] if isinstance(bag, (str, Path)) else bag)]
    if not paths:
        raise ValueError("no bag given")
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"bag not found: {p}")
    return paths


@contextlib.contextmanager
def _open_reader(bag: str | Path | Sequence[str | Path], store: Any) -> Iterator[Any]:
    """One reader over one or several bags (e.g. a recording and its teacher labels bag)."""
    from rosbags.highlevel import AnyReader

    paths = _bag_paths(bag)
    try:
        reader = AnyReader(paths, default_typestore=store)
        reader.open()
    except Exception as exc:  # rosbags raises several types for corrupt metadata/storage
        raise ValueError(f"cannot open bag {', '.join(map(str, paths))}: {type(exc).__name__}: {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


class _Dedup:
    """Skip near-duplicates: a 32x32 grey thumbnail within ``threshold`` (mean abs diff,
    0..255) of the last kept frame's.  WHY: a robot standing still records the same view."""

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)
        self.last: np.ndarray | None = None

    def duplicate(self, image: np.ndarray) -> bool:
        if self.threshold <= 0:
            return False
        g = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[:, :, :3]), cv2.COLOR_RGB2GRAY)
        thumb = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self.last is not None and float(np.abs(thumb - self.last).mean()) < self.threshold:
            return True
        self.last = thumb
        return False


def check_image_topic(reader: Any, topic: str, what: str = "camera") -> list[Any]:
    """The connections of an image topic; ValueError naming the bag's topics otherwise."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise ValueError(f"{what} topic {topic!r} not in bag; topics: {sorted({c.topic for c in reader.connections})}")
    for c in conns:
        if c.msgtype not in (IMAGE, COMPRESSED):
            raise ValueError(f"{what} topic {topic!r} has type {c.msgtype}, expected {IMAGE} or {COMPRESSED}")
    return conns


@dataclass
class CameraFrame:
    """One decoded camera frame of a bag."""

    stamp_ns: int
    frame_id: str
    image: np.ndarray


def segment_bounds(stamps: Sequence[int], segment: tuple[float, float]) -> tuple[int, int]:
    """``[lo, hi)`` in nanoseconds of a fraction ``(a, b)`` of the stamps' time span (the
    last segment includes the last frame)."""
    a, b = float(segment[0]), float(segment[1])
    if not 0.0 <= a < b <= 1.0:
        raise ValueError(f"segment must be 0 <= start < end <= 1 (fractions of the bag's time span), got {segment}")
    t0, t1 = min(stamps), max(stamps)
    span = t1 - t0
    lo = t0 + int(round(a * span))
    hi = t0 + int(round(b * span)) + (1 if b >= 1.0 else 0)
    return lo, hi


def iter_camera_frames(bag: str | Path | Sequence[str | Path], camera_topic: str = "/camera/image_raw",
                       report: BagReport | None = None, dedup_threshold: float = 0.0, min_interval_s: float = 0.0,
                       segment: tuple[float, float] = (0.0, 1.0), msg_dir: str | Path | None = None
                       ) -> Iterator[CameraFrame]:
    """Every camera frame of a bag (raw or compressed) in stamp order, within a time
    ``segment`` (fractions of the span of header stamps), with time subsampling and
    near-duplicate skipping.  A corrupt image message is counted and skipped; a bag without
    the topic, with no frame, or with frames of mixed sizes raises ValueError."""
    report = report if report is not None else BagReport()
    store = typestore(msg_dir)
    with _open_reader(bag, store) as reader:
        conns = check_image_topic(reader, camera_topic)
        order: list[tuple[int, int]] = []  # (header stamp, position)
        for pos, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
            report.images += 1
            try:
                order.append((stamp_ns(reader.deserialize(raw, conn.msgtype).header), pos))
            except Exception as exc:
                report.skip(f"image message undecodable ({type(exc).__name__})")
        if not order:
            raise ValueError(f"camera topic {camera_topic!r} holds no readable frame")
        lo, hi = segment_bounds([s for s, _ in order], segment)
        wanted = {pos: s for s, pos in order if lo <= s < hi}
        outside = len(order) - len(wanted)
        if outside:
            report.skipped["outside the time segment"] = report.skipped.get("outside the time segment", 0) + outside
        dedup = _Dedup(dedup_threshold)
        size: tuple[int, int] | None = None
        last_ns: int | None = None
        frames: list[tuple[int, int]] = sorted((s, pos) for pos, s in wanted.items())
        rank = {pos: i for i, (_s, pos) in enumerate(frames)}
        pending: dict[int, CameraFrame] = {}
        next_i = 0
        # bag order is receive order; yield in stamp order (buffering only out-of-order frames)
        for pos, (conn, _t, raw) in enumerate(reader.messages(connections=conns)):
            if pos not in wanted:
                continue
            s = wanted[pos]
            try:
                msg = reader.deserialize(raw, conn.msgtype)
                image = decode_image(msg)
            except Exception as exc:
                report.skip(f"bad image: {exc}" if isinstance(exc, ValueError) else
                            f"image message undecodable ({type(exc).__name__})")
                pending[rank[pos]] = None  # type: ignore[assignment]
            else:
                pending[rank[pos]] = CameraFrame(s, str(msg.header.frame_id), image)
            while next_i in pending:
                fr = pending.pop(next_i)
                next_i += 1
                if fr is None:
                    continue
                hw = fr.image.shape[:2]
                if size is None:
                    size = hw
                elif hw != size:
                    raise ValueError(f"frames of mixed sizes on {camera_topic!r}: {size[1]}x{size[0]} and "
                                     f"{hw[1]}x{hw[0]} (at stamp {fr.stamp_ns}); record one camera mode per bag")
                if last_ns is not None and min_interval_s > 0 and fr.stamp_ns - last_ns < min_interval_s * 1e9:
                    report.skip("time subsampling")
                    continue
                if dedup.duplicate(fr.image):
                    report.skip("near-duplicate frame")
                    continue
                last_ns = fr.stamp_ns
                report.kept += 1
                yield fr


def iter_labeled_frames(bag: str | Path | Sequence[str | Path], cfg: BagDatasetConfig = BagDatasetConfig(),
                        report: BagReport | None = None, msg_dir: str | Path | None = None,
                        segment: tuple[float, float] = (0.0, 1.0)) -> Iterator[LabeledFrame]:
    """Pair labels with frames by header stamp; apply subsampling and duplicate skipping.

    ``bag``: one bag, or several read as one (a recording and the labels bag a teacher
    wrote for it).  ``segment``: keep labels whose stamp lies in this fraction of the labels'
    time span (split by time, never by random frames: neighbours are near-duplicates).
    Two passes over the bag: image stamps (and message positions) first, then only the
    paired images are decoded — a 30 Hz camera with 1 Hz labels decodes 1 frame in 30.
    """
    report = report if report is not None else BagReport()
    store = typestore(msg_dir)
    tol = int(round(cfg.tolerance_s * 1e9))
    with _open_reader(bag, store) as reader:
        topics = {c.topic: c for c in reader.connections}
        for topic, what in ((cfg.camera_topic, "camera"), (cfg.labels_topic, "labels")):
            if topic not in topics:
                raise ValueError(f"{what} topic {topic!r} not in bag {bag}; topics: {sorted(topics)}")
        cam = check_image_topic(reader, cfg.camera_topic)
        lab = [c for c in reader.connections if c.topic == cfg.labels_topic]
        for c in lab:
            if c.msgtype != DETECTION_ARRAY:
                raise ValueError(f"labels topic {cfg.labels_topic!r} has type {c.msgtype}, expected {DETECTION_ARRAY}")
        # pass 1: every labels message (small), sorted by stamp
        labels: list[tuple[int, Any]] = []
        for conn, _t, raw in reader.messages(connections=lab):
            report.labels_messages += 1
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:  # corrupt message: count it, keep going
                report.skip(f"labels message undecodable ({type(exc).__name__})")
                continue
            labels.append((stamp_ns(msg.header), msg))
        labels.sort(key=lambda x: x[0])
        if not labels:
            raise ValueError(f"labels topic {cfg.labels_topic!r} holds no readable message")
        if tuple(segment) != (0.0, 1.0):
            lo, hi = segment_bounds([s for s, _ in labels], segment)
            n = len(labels)
            labels = [x for x in labels if lo <= x[0] < hi]
            if n - len(labels):
                report.skipped["outside the time segment"] = report.skipped.get("outside the time segment", 0) + n - len(labels)
        label_stamps = [s for s, _ in labels]
        # pass 2: image header stamps only -> the nearest image (by position) for each label
        best: dict[int, tuple[int, int]] = {}   # label index -> (|dt|, image position)
        for pos, (conn, _t, raw) in enumerate(reader.messages(connections=cam)):
            report.images += 1
            try:
                hdr_stamp = stamp_ns(reader.deserialize(raw, conn.msgtype).header)
            except Exception as exc:
                report.skip(f"image message undecodable ({type(exc).__name__})")
                continue
            i = bisect.bisect_left(label_stamps, hdr_stamp - tol)
            while i < len(label_stamps) and label_stamps[i] <= hdr_stamp + tol:
                dt = abs(label_stamps[i] - hdr_stamp)
                if i not in best or dt < best[i][0]:
                    best[i] = (dt, pos)
                i += 1
        for i in range(len(labels)):
            if i not in best:
                report.skip("no image within tolerance")
        need: dict[int, list[int]] = {}
        for i, (_dt, pos) in best.items():
            need.setdefault(pos, []).append(i)
        # pass 3: decode only the paired images, in bag order (memory: one frame at a time)
        last_kept_ns: int | None = None
        dedup = _Dedup(cfg.dedup_threshold)
        size: tuple[int, int] | None = None
        for pos, (conn, _t, raw) in enumerate(reader.messages(connections=cam)):
            if pos not in need:
                continue
            image = None
            for i in sorted(need[pos]):
                s, msg = labels[i]
                if last_kept_ns is not None and cfg.min_interval_s > 0 and abs(s - last_kept_ns) < cfg.min_interval_s * 1e9:
                    report.skip("time subsampling")
                    continue
                if image is None:
                    try:
                        image = decode_image(reader.deserialize(raw, conn.msgtype))
                    except ValueError as exc:
                        report.skip(f"bad image: {exc}")
                        break
                if size is None:
                    size = image.shape[:2]
                elif image.shape[:2] != size:
                    raise ValueError(f"frames of mixed sizes on {cfg.camera_topic!r}: {size[1]}x{size[0]} and "
                                     f"{image.shape[1]}x{image.shape[0]}; record one camera mode per bag")
                if dedup.duplicate(image):
                    report.skip("near-duplicate frame")
                    continue
                last_kept_ns = s
                report.kept += 1
                yield _labeled_frame(s, msg, image, cfg, report)


def _labeled_frame(s: int, msg: Any, image: np.ndarray, cfg: BagDatasetConfig, report: BagReport) -> LabeledFrame:
    """Labels message -> frame-pixel boxes (clipped); bad boxes are counted, not fatal."""
    h, w = image.shape[:2]
    boxes, names, scores, texts = [], [], [], []
    for d in msg.detections:
        if d.score < cfg.min_score:
            continue
        try:
            box = Box.from_any(float(d.x_min), float(d.y_min), float(d.x_max), float(d.y_max)).clip(w, h)
        except ValueError:
            report.skip("non-finite box")
            continue
        if box.width <= 0 or box.height <= 0:
            report.skip("box outside the frame")
            continue
        boxes.append(box)
        names.append(str(d.label) or "object")
        texts.append(str(getattr(d, "text", "")))
        scores.append(float(d.score))
    return LabeledFrame(s, str(msg.header.frame_id), image, boxes, names, scores,
                        str(msg.instruction) or cfg.instruction, texts)


def bag_records(bag: str | Path | Sequence[str | Path], cache_dir: str | Path, cfg: BagDatasetConfig = BagDatasetConfig(),
                prompts: PromptSet = PromptSet(), max_regions: int = 3, report: BagReport | None = None,
                msg_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Samples (same columns as :func:`coco.coco_records`) with images cached as PNG."""
    from active_o3_training.data.coco import sensing_messages

    report = report if report is not None else BagReport()
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    for fr in iter_labeled_frames(bag, cfg, report, msg_dir):
        path = cache / f"{fr.stamp_ns}.png"
        if not path.is_file():
            cv2.imwrite(str(path), cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR))
        h, w = fr.image.shape[:2]
        groups: list[tuple[str, list[Box]]]
        if cfg.per_class:
            groups = [(n, [b for b, l in zip(fr.boxes, fr.labels) if l == n]) for n in sorted(set(fr.labels))]
        else:
            instr = fr.instruction or ", ".join(sorted(set(fr.labels)))
            groups = [(instr, fr.boxes)] if instr else []
        if not groups:
            report.skip("no instruction and no labels")
            continue
        for instr, boxes in groups:
            records.append({
                "image": str(path), "image_id": str(fr.stamp_ns), "width": w, "height": h,
                "instruction": instr, "gt_boxes": [b.as_list() for b in boxes],
                "gt_labels": [instr] * len(boxes) if cfg.per_class else list(fr.labels),
                "prompt": sensing_messages(instr, prompts, max_regions), "source": "bag:" + "+".join(p.name for p in _bag_paths(bag)),
            })
        if cfg.max_samples and len(records) >= cfg.max_samples:
            break
    log.info("bag %s: %s", bag, report.summary())
    return records


def bag_dataset(bag: str | Path | Sequence[str | Path], cache_dir: str | Path, cfg: BagDatasetConfig = BagDatasetConfig(),
                prompts: PromptSet = PromptSet(), max_regions: int = 3, msg_dir: str | Path | None = None):
    """Bag -> ``datasets.Dataset`` (lazily decoded image column); see :func:`bag_records`."""
    from active_o3_training.data.coco import records_to_dataset

    return records_to_dataset(bag_records(bag, cache_dir, cfg, prompts, max_regions, msg_dir=msg_dir))


# -- export / import ------------------------------------------------------------------------
def bag_to_coco(bag: str | Path, out_dir: str | Path, cfg: BagDatasetConfig = BagDatasetConfig(),
                msg_dir: str | Path | None = None) -> tuple[Path, BagReport]:
    """Write paired frames as ``out_dir/images/<stamp_ns>.png`` + ``out_dir/annotations.json``.

    Each COCO image keeps ``stamp_ns``, ``frame_id`` and ``instruction`` so
    :func:`coco_to_bag` restores the exact stamps.  Scores are kept on annotations.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    report = BagReport()
    images, anns, cats = [], [], {}
    for fr in iter_labeled_frames(bag, cfg, report, msg_dir):
        name = f"images/{fr.stamp_ns}.png"
        cv2.imwrite(str(out / name), cv2.cvtColor(fr.image, cv2.COLOR_RGB2BGR))
        iid = len(images) + 1
        h, w = fr.image.shape[:2]
        images.append({"id": iid, "file_name": name, "width": w, "height": h, "stamp_ns": fr.stamp_ns,
                       "frame_id": fr.frame_id, "instruction": fr.instruction})
        for j, (b, l, s) in enumerate(zip(fr.boxes, fr.labels, fr.scores)):
            cid = cats.setdefault(l, len(cats) + 1)
            anns.append({"id": len(anns) + 1, "image_id": iid, "category_id": cid, "bbox": b.as_xywh(),
                         "area": b.area, "iscrowd": 0, "score": s,
                         **({"text": fr.texts[j]} if j < len(fr.texts) and fr.texts[j] else {})})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": n} for n, i in sorted(cats.items(), key=lambda kv: kv[1])]}
    path = out / "annotations.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    log.info("exported %s -> %s: %s", bag, path, report.summary())
    return path, report


def coco_to_bag(ann_file: str | Path, image_dir: str | Path, out_bag: str | Path,
                camera_topic: str = "/camera/image_raw", labels_topic: str = "/active_o3/detections",
                storage: str = "mcap", fps: float = 10.0, frame_id: str = "camera",
                msg_dir: str | Path | None = None) -> int:
    """Write a COCO file + images as a bag: ``sensor_msgs/Image`` (rgb8) + our DetectionArray
    with identical header stamps.  Stamps come from ``stamp_ns`` when present, else
    ``i / fps``.  Returns the number of frames written; unreadable images are skipped
    with a warning (and counted in the return value's shortfall)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from active_o3_training.data.coco import annotation_box, load_coco_json

    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be 'mcap' or 'sqlite3', got {storage!r}")
    data = load_coco_json(ann_file)
    store = typestore(msg_dir)
    T = store.types
    cats = {c["id"]: str(c.get("name", c["id"])) for c in data["categories"]}
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    out = Path(out_bag)
    if out.exists():
        raise FileExistsError(f"output bag {out} exists; remove it or choose another path")
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    written = 0
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        c_img = writer.add_connection(camera_topic, IMAGE, typestore=store)
        c_lab = writer.add_connection(labels_topic, DETECTION_ARRAY, typestore=store)
        for i, im in enumerate(data["images"]):
            path = Path(image_dir) / im["file_name"]
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("image %s unreadable; frame skipped", path)
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            s = int(im.get("stamp_ns", round(i * 1e9 / fps)))
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=s // 1_000_000_000,
                                              nanosec=s % 1_000_000_000), frame_id=str(im.get("frame_id", frame_id)))
            img = T[IMAGE](header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                           data=np.ascontiguousarray(rgb).reshape(-1))
            dets = []
            for a in by_image.get(im["id"], []):
                b = annotation_box(a)
                if b is None:
                    continue
                dets.append(T["active_o3_ros/msg/Detection"](
                    label=cats.get(a.get("category_id"), "object"), text=str(a.get("text", "")),
                    score=float(a.get("score", 1.0)),
                    x_min=b.x1, y_min=b.y1, x_max=b.x2, y_max=b.y2, region_index=-1, mask_index=-1))
            arr = T[DETECTION_ARRAY](
                header=header, image_width=w, image_height=h, instruction=str(im.get("instruction", "")),
                mode="labels", detections=dets, model_calls=0, preprocess_time=0.0, sensing_time=0.0,
                crop_time=0.0, task_time=0.0, merge_time=0.0, total_time=0.0, latency=0.0, sensing_status="ok")
            writer.write(c_img, s, store.serialize_cdr(img, IMAGE))
            writer.write(c_lab, s, store.serialize_cdr(arr, DETECTION_ARRAY))
            written += 1
    return written


__all__ = ["BagDatasetConfig", "BagReport", "LabeledFrame", "bag_dataset", "bag_records", "bag_to_coco",
           "coco_to_bag", "decode_image", "iter_labeled_frames", "typestore"]
