"""A teacher for unlabelled logs: the expensive search, run offline, becomes the label.

WHY: a robot's bags carry no "where to look" labels, and labels taken from the node's own
``/active_o3/detections`` would teach the policy its own earlier misses.  Offline there is
time the node does not have: the same task module the node runs looks at every tile of the
frame at the zoom the node uses (``crop_size / zoom`` pixels per tile, with overlap) plus
the full frame, and the merged detections are the ground truth of the coverage and task
reward terms.

Brute force costs about 45 zoomed crops per 1080p frame (``hint="all"``).  The default is
coarse-to-fine (``hint="coarse"``): the detector's text-probability map of the whole frame
at ``coarse_long_side`` (one cheap pass, :func:`active_o3_ros.backends.cues.detector_map`)
says which tiles hold a hint of text, and only those (at most ``max_tiles``, strongest
first) are zoomed.  ``python -m active_o3_training.teacher --help`` (or
``active-o3-train label``) labels a bag; ``benchmarks/adapt_robot.py`` reports the
teacher's recall and cost for each setting tried.

Labels carry the instruction's class (``label``, e.g. "text"); what the detector read goes
in ``text``.  Work is cached per frame (keyed by the frame's stamp and pixels and by every
setting), so a long labelling job can be stopped and rerun: done frames are read back.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig, tile_boxes
from active_o3_ros.core.merge import MergeConfig
from active_o3_ros.core.types import Box, Detection

#: Where per-frame teacher results go unless told otherwise (not committed).
DEFAULT_CACHE_DIR = ".cache/teacher"
TEACHER_TOPIC = "/active_o3/teacher"
HINTS = ("coarse", "all")


@dataclass(frozen=True)
class TeacherConfig:
    """How the teacher looks.  ``crop_size``/``zoom`` default to the node's ``crop_size`` and
    ``max_zoom``: the teacher sees each tile at the enlargement the node gives a region."""

    instruction: str = "text"
    task: str = "text"
    #: task-module options (default: the node's, so labels are what the node's detector can
    #: see when zoomed; ``benchmarks/teacher_settings.py`` compares the fp32 detector at 736 px)
    task_options: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 840
    zoom: float = 3.0
    overlap: float = 0.25
    hint: str = "coarse"
    coarse_long_side: int = 1280
    hint_threshold: float = 0.3
    max_tiles: int = 16
    full_frame: bool = True
    merge_iou: float = 0.5
    min_score: float = 0.5

    def __post_init__(self) -> None:
        if self.hint not in HINTS:
            raise ValueError(f"teacher hint must be one of {HINTS}, got {self.hint!r}")
        if not (self.crop_size >= 32 and self.zoom >= 1.0 and 0.0 <= self.overlap < 0.9):
            raise ValueError("teacher needs crop_size >= 32, zoom >= 1 and 0 <= overlap < 0.9")
        if self.max_tiles < 0 or self.coarse_long_side < 64 or not 0.0 <= self.hint_threshold <= 1.0:
            raise ValueError("teacher needs max_tiles >= 0, coarse_long_side >= 64 and hint_threshold in [0, 1]")
        if not str(self.instruction).strip():
            raise ValueError("teacher instruction must not be empty")

    def tile_side(self) -> float:
        return self.crop_size / self.zoom

    def key(self) -> str:
        """Hash of every setting a label depends on (cache folder name)."""
        return hashlib.sha256(json.dumps({**asdict(self), "version": 1}, sort_keys=True).encode()).hexdigest()[:16]


def teacher_tiles(width: int, height: int, cfg: TeacherConfig) -> list[Box]:
    """Tiles of about ``crop_size / zoom`` pixels with ``overlap``, covering the frame."""
    side = cfg.tile_side()

    def count(n: float) -> int:
        return max(1, math.ceil((n / side - cfg.overlap) / (1.0 - cfg.overlap) - 1e-9))

    return tile_boxes(width, height, count(height), count(width), cfg.overlap)


def tile_scores(prob: np.ndarray, tiles: Sequence[Box], width: int, height: int) -> np.ndarray:
    """Largest text probability of the coarse map inside each tile."""
    H, W = prob.shape
    out = np.zeros(len(tiles), np.float32)
    for i, t in enumerate(tiles):
        c1, r1 = int(t.x1 / width * W), int(t.y1 / height * H)
        c2, r2 = max(c1 + 1, int(math.ceil(t.x2 / width * W))), max(r1 + 1, int(math.ceil(t.y2 / height * H)))
        out[i] = float(prob[r1:r2, c1:c2].max()) if r2 > r1 and c2 > c1 else 0.0
    return out


@dataclass
class TeacherLabel:
    """One frame's labels and what they cost."""

    detections: list[Detection]
    tiles_total: int
    tiles_run: int
    seconds: float
    coarse_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"detections": [{"box": [round(v, 2) for v in d.box.as_list()], "label": d.label, "text": d.text,
                                "score": round(float(d.score), 4)} for d in self.detections],
                "tiles_total": self.tiles_total, "tiles_run": self.tiles_run, "seconds": round(self.seconds, 3),
                "coarse_s": round(self.coarse_s, 3)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TeacherLabel":
        dets = [Detection(Box(*x["box"]), x["label"], float(x["score"]), -1, x.get("text", "")) for x in d["detections"]]
        return cls(dets, int(d["tiles_total"]), int(d["tiles_run"]), float(d["seconds"]), float(d.get("coarse_s", 0)))


class Teacher:
    """Labels frames with the task module over (hinted) zoomed tiles plus the full frame."""

    def __init__(self, cfg: TeacherConfig = TeacherConfig(), threads: int = 0) -> None:
        from active_o3_ros.backends.base import build_task
        from active_o3_ros.core.pipeline import ActivePerception

        self.cfg = cfg
        self.threads = int(threads)
        opts = dict(cfg.task_options)
        if cfg.task == "text":
            opts.setdefault("label", cfg.instruction)
            if threads:
                opts.setdefault("threads", int(threads))
        self.task = build_task(cfg.task, **opts)
        # the pipeline's own task stage: same ResizeCrop, one call, map back, score filter, merge
        self.stage = ActivePerception(None, self.task, PipelineConfig(
            crop=ResizeCropConfig(cfg.crop_size, cfg.zoom, 1.0), merge=MergeConfig("nms", cfg.merge_iou),
            full_frame_pass=cfg.full_frame, fallback_full_frame=cfg.full_frame, score_threshold=cfg.min_score))

    def close(self) -> None:
        self.task.close()

    def choose_tiles(self, image: np.ndarray) -> tuple[list[Box], int, float]:
        """``(tiles to zoom, tiles in the grid, seconds of the coarse pass)``."""
        h, w = image.shape[:2]
        tiles = teacher_tiles(w, h, self.cfg)
        if self.cfg.hint == "all":
            return tiles, len(tiles), 0.0
        from active_o3_ros.backends.cues import detector_map

        t = time.perf_counter()
        prob = detector_map(image, self.cfg.coarse_long_side, self.threads)
        scores = tile_scores(prob, tiles, w, h)
        order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= self.cfg.hint_threshold]
        return [tiles[i] for i in order[: self.cfg.max_tiles]], len(tiles), time.perf_counter() - t

    def label(self, image: np.ndarray) -> TeacherLabel:
        t0 = time.perf_counter()
        tiles, total, coarse_s = self.choose_tiles(image)
        each = self.stage.detect_each(image, tiles, self.cfg.instruction)
        dets = [Detection(d.box, d.label, d.score, -1, d.text) for d in self.stage.merge(each)]
        return TeacherLabel(dets, total, len(tiles), time.perf_counter() - t0, coarse_s)


def frame_key(stamp_ns: int, image: np.ndarray) -> str:
    """Cache key of a frame: its stamp and a hash of a pixel subsample (a re-recorded bag
    with the same stamps but other pixels never reuses a label)."""
    h = hashlib.sha1(np.ascontiguousarray(image[::7, ::7]).tobytes()).hexdigest()[:12]
    return f"{int(stamp_ns)}_{image.shape[1]}x{image.shape[0]}_{h}"


# -- parallel labelling with a resumable cache ----------------------------------------------
_WORKER: Teacher | None = None


def _init_worker(cfg: TeacherConfig, threads: int) -> None:
    global _WORKER
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
    _WORKER = Teacher(cfg, threads)


def _label_job(args: tuple[np.ndarray, str]) -> tuple[str, dict[str, Any]]:
    image, path = args
    assert _WORKER is not None
    lab = _WORKER.label(image).to_json()
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(lab))
    os.replace(tmp, path)
    return path, lab


def label_frames(frames: Iterable[tuple[int, np.ndarray]], cfg: TeacherConfig, cache_dir: str | Path = DEFAULT_CACHE_DIR,
                 workers: int = 2, threads: int = 1, progress: bool = True, total: int | None = None,
                 counts: dict[str, int] | None = None) -> dict[int, TeacherLabel]:
    """Label ``(stamp_ns, image)`` frames; cached frames are read back, the rest run in
    ``workers`` processes (each with its own task model, ``threads`` threads). ``counts``,
    when given, receives how many frames were ``read_back`` and how many ``computed``."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    import multiprocessing as mp

    from tqdm import tqdm

    folder = Path(cache_dir) / cfg.key()
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "teacher.json"
    if not meta.is_file():
        meta.write_text(json.dumps(asdict(cfg), indent=1, sort_keys=True))
    out: dict[int, TeacherLabel] = {}
    counts = {} if counts is None else counts
    counts.update(read_back=0, computed=0)
    bar = tqdm(total=total, desc="teacher labels", unit="frame", disable=not progress)
    pool = ProcessPoolExecutor(max(1, workers), mp.get_context("spawn"), _init_worker, (cfg, threads)) \
        if workers > 1 else None
    local: Teacher | None = None
    pending: dict[Any, int] = {}
    try:
        for stamp, image in frames:
            path = folder / f"{frame_key(stamp, image)}.json"
            if path.is_file():
                try:
                    out[stamp] = TeacherLabel.from_json(json.loads(path.read_text()))
                    counts["read_back"] += 1
                    bar.update(1)
                    continue
                except (ValueError, KeyError):
                    path.unlink()  # a damaged entry is recomputed
            counts["computed"] += 1
            if pool is None:
                if local is None:
                    local = Teacher(cfg, threads)
                lab = local.label(image).to_json()  # stored rounded: a rerun reads back the same labels
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(lab))
                os.replace(tmp, path)
                out[stamp] = TeacherLabel.from_json(lab)
                bar.update(1)
                continue
            pending[pool.submit(_label_job, (image, str(path)))] = stamp
            while len(pending) >= 2 * workers:  # bounded: frames are megabytes each
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for f in done:
                    out[pending.pop(f)] = TeacherLabel.from_json(f.result()[1])
                    bar.update(1)
        for f in list(pending):
            out[pending.pop(f)] = TeacherLabel.from_json(f.result()[1])
            bar.update(1)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if local is not None:
            local.close()
    return out


def write_labels_bag(out_bag: str | Path, labels: dict[int, TeacherLabel], frames: dict[int, tuple[str, int, int]],
                     instruction: str, topic: str = TEACHER_TOPIC, storage: str = "mcap") -> int:
    """One ``DetectionArray`` per labelled frame, with the frame's stamp and frame_id."""
    from active_o3_ros.ros.bags import open_writer
    from active_o3_training.data.rosbag import DETECTION_ARRAY, typestore

    store = typestore()
    T = store.types
    writer = open_writer(Path(out_bag), storage)
    try:
        conn = writer.add_connection(topic, DETECTION_ARRAY, typestore=store)
        for s in sorted(labels):
            frame_id, w, h = frames[s]
            header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](
                sec=s // 1_000_000_000, nanosec=s % 1_000_000_000), frame_id=frame_id)
            lab = labels[s]
            dets = [T["active_o3_ros/msg/Detection"](
                label=d.label, text=d.text, score=float(d.score), x_min=d.box.x1, y_min=d.box.y1, x_max=d.box.x2,
                y_max=d.box.y2, region_index=-1, mask_index=-1) for d in lab.detections]
            msg = T[DETECTION_ARRAY](header=header, image_width=w, image_height=h, instruction=instruction,
                                     mode="teacher", detections=dets, model_calls=lab.tiles_run + 1,
                                     preprocess_time=0.0, sensing_time=float(lab.coarse_s), crop_time=0.0,
                                     task_time=float(lab.seconds - lab.coarse_s), merge_time=0.0,
                                     total_time=float(lab.seconds), latency=0.0, sensing_status="ok")
            writer.write(conn, s, store.serialize_cdr(msg, DETECTION_ARRAY))
    finally:
        writer.close()
    return len(labels)


def label_bag(bag: str | Path, out_bag: str | Path, cfg: TeacherConfig = TeacherConfig(),
              camera_topic: str = "/camera/image_raw", labels_topic: str = TEACHER_TOPIC,
              dedup_threshold: float = 2.0, min_interval_s: float = 0.0, segment: tuple[float, float] = (0.0, 1.0),
              cache_dir: str | Path = DEFAULT_CACHE_DIR, workers: int = 2, threads: int = 1, storage: str = "mcap",
              progress: bool = True, command: str = "") -> dict[str, Any]:
    """Label every kept camera frame of ``bag``; write ``out_bag`` (the labels topic only,
    same stamps as the camera frames: read it together with the recording) and
    ``out_bag/teacher.json`` (settings, frames used and skipped and why, cost)."""
    from active_o3_training.data.rosbag import BagReport, iter_camera_frames

    out = Path(out_bag)
    if out.exists():
        raise FileExistsError(f"output bag {out} exists; remove it or choose another path (finished frames are "
                              f"cached in {cache_dir}: a rerun reads them back)")
    report = BagReport()
    info: dict[int, tuple[str, int, int]] = {}

    def frames():
        for fr in iter_camera_frames(bag, camera_topic, report, dedup_threshold, min_interval_s, segment):
            info[fr.stamp_ns] = (fr.frame_id, fr.image.shape[1], fr.image.shape[0])
            yield fr.stamp_ns, fr.image

    t0 = time.perf_counter()
    counts: dict[str, int] = {}
    labels = label_frames(frames(), cfg, cache_dir, workers, threads, progress, counts=counts)
    wall = time.perf_counter() - t0
    if not labels:
        raise ValueError(f"no frame of {bag} was labelled ({report.summary()})")
    write_labels_bag(out, labels, info, cfg.instruction, labels_topic, storage)
    secs = [lab.seconds for lab in labels.values()]
    summary = {
        "bag": Path(bag).name, "camera_topic": camera_topic, "labels_topic": labels_topic,
        "teacher": asdict(cfg), "teacher_key": cfg.key(),
        "frames": {"images": report.images, "labelled": len(labels), "skipped": report.skipped},
        "dedup_threshold": dedup_threshold, "min_interval_s": min_interval_s, "segment": list(segment),
        "tiles_per_frame": {"grid": int(np.mean([lab.tiles_total for lab in labels.values()])),
                            "zoomed_mean": round(float(np.mean([lab.tiles_run for lab in labels.values()])), 2)},
        "labels_per_frame": round(float(np.mean([len(lab.detections) for lab in labels.values()])), 2),
        "seconds": {"wall": round(wall, 1), "per_frame_mean": round(float(np.mean(secs)), 3),
                    "workers": workers, "threads_per_worker": threads},
        "cache": counts,  # frames read back from the per-frame cache vs computed by the teacher
        "command": command,
    }
    (out / "teacher.json").write_text(json.dumps(summary, indent=1))
    return summary


def _parser() -> argparse.ArgumentParser:
    d = TeacherConfig()
    p = argparse.ArgumentParser(
        prog="active-o3-train label", description="Label an unlabelled rosbag2 with the offline teacher: the task "
        "module over zoomed tiles (where a coarse pass sees a hint, or all of them) plus the full frame. Writes a "
        "labels bag (DetectionArray on --labels-topic, same stamps as the camera) to read with the recording.")
    p.add_argument("bag", help="the recording (rosbag2 folder, mcap or sqlite3; raw or compressed images)")
    p.add_argument("-o", "--output", required=True, help="new labels bag folder (must not exist)")
    p.add_argument("--camera-topic", default="/camera/image_raw")
    p.add_argument("--labels-topic", default=TEACHER_TOPIC)
    p.add_argument("--instruction", default=d.instruction, help="the class every label gets")
    p.add_argument("--task", default=d.task, help="task module (the one the node runs)")
    p.add_argument("--task-options", default=json.dumps(d.task_options), help="JSON task options")
    p.add_argument("--hint", choices=HINTS, default=d.hint,
                   help="coarse: zoom only tiles where the coarse probability map sees text; all: every tile")
    p.add_argument("--coarse-long-side", type=int, default=d.coarse_long_side)
    p.add_argument("--hint-threshold", type=float, default=d.hint_threshold)
    p.add_argument("--max-tiles", type=int, default=d.max_tiles, help="most zoomed tiles per frame (coarse)")
    p.add_argument("--zoom", type=float, default=d.zoom, help="tile enlargement (the node's max_zoom)")
    p.add_argument("--crop-size", type=int, default=d.crop_size, help="the node's crop_size")
    p.add_argument("--overlap", type=float, default=d.overlap)
    p.add_argument("--min-score", type=float, default=d.min_score, help="drop teacher detections below this")
    p.add_argument("--no-full-frame", action="store_true", help="skip the full-frame pass")
    p.add_argument("--dedup", type=float, default=2.0,
                   help="skip near-duplicate frames (mean abs diff of 32x32 grey thumbnails, 0-255; 0 = keep all)")
    p.add_argument("--min-interval", type=float, default=0.0, help="keep at most one frame per this many seconds")
    p.add_argument("--segment", default="0,1", help="fraction of the bag's time span to label, e.g. 0,0.7")
    p.add_argument("--cache-dir", default=DEFAULT_CACHE_DIR, help="per-frame results (a rerun resumes from them)")
    p.add_argument("--workers", type=int, default=2, help="processes (each loads its own task model)")
    p.add_argument("--threads", type=int, default=1, help="threads per worker")
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    return p


def parse_segment(text: str) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ValueError(f"segment must look like 0,0.7 (fractions of the bag's time span), got {text!r}") from None
    return a, b


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        opts = json.loads(args.task_options)
        if not isinstance(opts, dict):
            raise ValueError("--task-options must be a JSON object")
        cfg = TeacherConfig(args.instruction, args.task, opts, args.crop_size, args.zoom, args.overlap, args.hint,
                            args.coarse_long_side, args.hint_threshold, args.max_tiles, not args.no_full_frame,
                            min_score=args.min_score)
        summary = label_bag(args.bag, args.output, cfg, args.camera_topic, args.labels_topic, args.dedup,
                            args.min_interval, parse_segment(args.segment), args.cache_dir, args.workers,
                            args.threads, args.storage,
                            command="active-o3-train label " + shlex.join(argv if argv is not None else sys.argv[1:]))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"active-o3-train label: error: {exc}", file=sys.stderr)
        return 2
    f = summary["frames"]
    print(f"{args.output}: {f['labelled']} frames labelled of {f['images']} images (skipped: {f['skipped'] or 'none'}); "
          f"{summary['labels_per_frame']} labels/frame, {summary['tiles_per_frame']['zoomed_mean']} of "
          f"{summary['tiles_per_frame']['grid']} tiles zoomed, {summary['seconds']['wall']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
