"""Camera source (``active-o3-camera``): publish frames as a camera driver would.

Sources: a video file (anything OpenCV reads), an image folder (sorted by name), a rosbag2
(its Image/CompressedImage topic), or ``synthetic:WIDTHxHEIGHT`` (generated frames with
bright shapes and text, for tests and benchmarks without any file).  Frames go out at
``--fps`` with a fresh header stamp and ``--frame-id``; the tool ends when the source is
exhausted (``--loop`` starts over) or after ``--max-frames``.

Ground truth: with ``--labels COCO.json`` (image-folder sources only) every published image
whose file name matches an entry's ``file_name`` (by basename) is followed by an
``active_o3_ros/msg/DetectionArray`` on ``--labels-topic`` with the image's header (same
stamp and frame_id), mode ``labels``, one Detection per annotation (label = category name,
text = the annotation's ``text``, score 1, box in published pixels, scaled with ``--resize``);
an entry with no annotations gives an empty array (a frame with nothing is a valid label).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.ros.env import publish_unless_shut_down, ros_defaults, split_ros_args

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def synthetic_frame(width: int, height: int, index: int = 0) -> np.ndarray:
    """A dark frame with a few small bright rectangles and a line of text.

    Deterministic in ``index`` so tests can predict it; the shapes are small relative to
    the frame, which is exactly the case active zooming is for.
    """
    rng = np.random.default_rng(index)
    frame = np.full((height, width, 3), 20, np.uint8)
    for _ in range(3):
        w = int(rng.integers(max(4, width // 80), max(5, width // 20)))
        h = int(rng.integers(max(4, height // 80), max(5, height // 20)))
        x = int(rng.integers(0, max(1, width - w)))
        y = int(rng.integers(0, max(1, height - h)))
        frame[y:y + h, x:x + w] = 255
    scale = max(0.4, height / 720)
    cv2.putText(frame, f"ACTIVE-o3 frame {index}", (max(2, width // 20), max(12, height - height // 12)),
                cv2.FONT_HERSHEY_SIMPLEX, scale, (230, 230, 230), max(1, int(2 * scale)), cv2.LINE_AA)
    return frame


@dataclass
class Frame:
    rgb: np.ndarray
    stamp_ns: int | None = None  # original stamp (bag sources), None = stamp now
    frame_id: str | None = None
    path: Path | None = None  # the file it came from (image-folder sources)


@dataclass(frozen=True)
class LabelBox:
    label: str
    text: str
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in source-image pixels


@dataclass(frozen=True)
class Labels:
    """COCO ground truth by image basename, and the instruction (the category names joined)."""

    by_name: dict[str, tuple[LabelBox, ...]]
    instruction: str


def _is_bag_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "metadata.yaml").exists() or any(path.glob("*.mcap"))
                              or any(path.glob("*.db3")))


def folder_images(path: Path) -> list[Path]:
    """The image files of a folder source, in publishing order (sorted by name)."""
    return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_labels(path: str | Path) -> Labels:
    """Read a COCO detection file into :class:`Labels`.  Raises ValueError saying what is
    wrong (unreadable, not JSON, not COCO, an annotation of an unknown image or category, a
    bad bbox, two entries with the same basename)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"--labels {p}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"--labels {p}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("categories"), list) or not isinstance(data.get("annotations", []), list):
        raise ValueError(f"--labels {p}: not COCO (needs lists 'images', 'categories' and 'annotations')")
    cats: dict[object, str] = {}
    for c in data["categories"]:
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise ValueError(f"--labels {p}: a category without an id and a name: {str(c)[:80]}")
        cats[c["id"]] = c["name"]
    names: dict[object, str] = {}
    seen: set[str] = set()
    for im in data["images"]:
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"--labels {p}: an image entry without an id and a file_name: {str(im)[:80]}")
        base = Path(im["file_name"]).name
        if base in seen:
            raise ValueError(f"--labels {p}: two image entries have the basename {base!r} (images are matched "
                             "by basename)")
        seen.add(base)
        names[im["id"]] = base
    by_name: dict[str, list[LabelBox]] = {n: [] for n in names.values()}
    for a in data.get("annotations", []):
        if not isinstance(a, dict):
            raise ValueError(f"--labels {p}: an annotation is not an object: {str(a)[:80]}")
        if a.get("image_id") not in names:
            raise ValueError(f"--labels {p}: annotation {a.get('id')} refers to unknown image {a.get('image_id')!r}")
        if a.get("category_id") not in cats:
            raise ValueError(f"--labels {p}: annotation {a.get('id')} has unknown category {a.get('category_id')!r}")
        bb = a.get("bbox")
        if not (isinstance(bb, list) and len(bb) == 4 and all(_finite(v) for v in bb) and bb[2] >= 0 and bb[3] >= 0):
            raise ValueError(f"--labels {p}: annotation {a.get('id')} has no valid bbox [x, y, w, h]: {bb!r}")
        x, y, w, h = (float(v) for v in bb)
        text = a.get("text", "")
        by_name[names[a["image_id"]]].append(
            LabelBox(cats[a["category_id"]], text if isinstance(text, str) else str(text), (x, y, x + w, y + h)))
    return Labels({k: tuple(v) for k, v in by_name.items()}, ", ".join(cats.values()))


def labels_message(DetectionArray, Detection, header, labels: tuple[LabelBox, ...], instruction: str,
                   size: tuple[int, int], source_size: tuple[int, int]):
    """The DetectionArray of one image: boxes scaled from ``source_size`` to ``size`` (w, h)."""
    sx, sy = size[0] / source_size[0], size[1] / source_size[1]
    dets = [Detection(label=lb.label, text=lb.text, score=1.0, x_min=lb.box[0] * sx, y_min=lb.box[1] * sy,
                      x_max=lb.box[2] * sx, y_max=lb.box[3] * sy, region_index=-1, mask_index=-1) for lb in labels]
    return DetectionArray(header=header, image_width=int(size[0]), image_height=int(size[1]), instruction=instruction,
                          mode="labels", detections=dets, model_calls=0, sensing_status="ok")


def parse_synthetic(spec: str) -> tuple[int, int]:
    try:
        w, h = spec.split(":", 1)[1].lower().split("x")
        w_i, h_i = int(w), int(h)
    except (ValueError, IndexError):
        raise ValueError(f"synthetic source must look like synthetic:1280x720, got {spec!r}") from None
    if not (1 <= w_i <= 16384 and 1 <= h_i <= 16384):
        raise ValueError(f"synthetic size must be within 1..16384, got {w_i}x{h_i}")
    return w_i, h_i


def iter_source(source: str, bag_topic: str = "/camera/image_raw", count: int = 0) -> Iterator[Frame]:
    """Frames from any supported source, in order.  Raises ValueError for a bad source."""
    from active_o3_ros.ros.images import ImageConversionError, msg_to_rgb

    if source.startswith("synthetic:"):
        w, h = parse_synthetic(source)
        i = 0
        while not count or i < count:
            yield Frame(synthetic_frame(w, h, i))
            i += 1
        return
    path = Path(source)
    if not path.exists():
        raise ValueError(f"source {source} does not exist (video file, image folder, bag, or synthetic:WxH)")
    if _is_bag_dir(path):
        from active_o3_ros.ros.bags import iter_raw, typestore

        store = typestore()
        for _topic, msgtype, _ts, raw in iter_raw(path, [bag_topic]):
            msg = store.deserialize_cdr(raw, msgtype)
            try:
                rgb = msg_to_rgb(msg, max_pixels=16384 * 16384)
            except ImageConversionError as exc:
                print(f"active-o3-camera: skipping a bag frame: {exc}", file=sys.stderr)
                continue
            stamp = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
            yield Frame(rgb, stamp, msg.header.frame_id)
        return
    if path.is_dir():
        files = folder_images(path)
        if not files:
            raise ValueError(f"image folder {path} holds no {sorted(IMAGE_SUFFIXES)} files")
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"active-o3-camera: skipping unreadable image {f}", file=sys.stderr)
                continue
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), path=f)
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="active-o3-camera", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="video file, image folder, rosbag2 directory, or synthetic:WIDTHxHEIGHT")
    p.add_argument("--topic", default="/camera/image_raw", help="image topic to publish")
    p.add_argument("--bag-topic", default="/camera/image_raw", help="image topic to read from a bag source")
    p.add_argument("--frame-id", default="camera", help="header.frame_id (bag sources keep theirs unless set)")
    p.add_argument("--fps", type=float, default=10.0, help="publishing rate, frames per second")
    p.add_argument("--encoding", default="rgb8", choices=("rgb8", "bgr8", "mono8", "rgba8", "bgra8"))
    p.add_argument("--compressed", action="store_true", help="publish sensor_msgs/CompressedImage (jpeg) on TOPIC/compressed")
    p.add_argument("--resize", default="", help="WIDTHxHEIGHT to resize every frame to")
    p.add_argument("--loop", action="store_true", help="start over when the source ends")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: no limit)")
    p.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable")
    p.add_argument("--depth", type=int, default=1, help="QoS history depth")
    p.add_argument("--wait-subscribers", type=int, default=0,
                   help="wait for this many subscribers before publishing (on the image topic and, with --labels, "
                        "on the labels topic too)")
    p.add_argument("--wait-timeout", type=float, default=30.0)
    p.add_argument("--ack-timeout", type=float, default=5.0,
                   help="reliable QoS: seconds for every subscriber to acknowledge every frame (and labels "
                        "message) at the end; exit 1 when one did not (messages may be lost)")
    p.add_argument("--labels", default="", metavar="COCO.json",
                   help="image-folder sources: COCO ground truth; each image whose basename matches an entry's "
                        "file_name is followed by a DetectionArray (mode 'labels', same header) on --labels-topic")
    p.add_argument("--labels-topic", default="/ground_truth/detections", help="topic of the --labels messages")
    return p


def check_labels(source: str, labels_file: str) -> Labels:
    """Load ``--labels`` for ``source``; ValueError unless the source is an image folder and at
    least one of its images has an entry."""
    path = Path(source)
    if source.startswith("synthetic:") or not path.is_dir() or _is_bag_dir(path):
        raise ValueError(f"--labels needs an image-folder source, got {source!r} (a video, bag or synthetic source "
                         "has no file names to match)")
    labels = load_labels(labels_file)
    files = folder_images(path)
    if not files:
        raise ValueError(f"image folder {path} holds no {sorted(IMAGE_SUFFIXES)} files")
    if not any(f.name in labels.by_name for f in files):
        raise ValueError(f"none of the {len(files)} images in {path} has an entry in {labels_file} "
                         "(file names are compared by basename)")
    return labels


def main(argv: Sequence[str] | None = None) -> int:
    ros_defaults()
    ours, ros_args = split_ros_args(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(ours)
    if args.fps <= 0:
        print("active-o3-camera: error: --fps must be > 0", file=sys.stderr)
        return 2
    resize = None
    if args.resize:
        try:
            resize = parse_synthetic("s:" + args.resize)
        except ValueError as exc:
            print(f"active-o3-camera: error: --resize: {exc}", file=sys.stderr)
            return 2
    labels = None
    if args.labels:
        try:
            if args.labels_topic in (args.topic, args.topic.rstrip("/") + "/compressed"):
                raise ValueError(f"--labels-topic {args.labels_topic} must differ from the image topic")
            labels = check_labels(args.source, args.labels)
            from active_o3_ros.msg import Detection, DetectionArray
        except ValueError as exc:
            print(f"active-o3-camera: error: {exc}", file=sys.stderr)
            return 2
        except ImportError as exc:
            print(f"active-o3-camera: error: --labels needs the built active_o3_ros messages ({exc}); "
                  "run `make setup`", file=sys.stderr)
            return 2
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from active_o3_ros.ros.images import rgb_to_compressed, rgb_to_image

    rclpy.init(args=["active-o3-camera", *ros_args])
    node = rclpy.create_node("active_o3_camera")
    qos = QoSProfile(depth=max(1, args.depth), reliability=ReliabilityPolicy.RELIABLE if args.qos == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT)
    topic = args.topic.rstrip("/") + "/compressed" if args.compressed else args.topic
    pub = node.create_publisher(CompressedImage if args.compressed else Image, topic, qos)
    pubs = {topic: pub}
    counts = {topic: 0}
    lpub = None
    if labels is not None:
        lpub = node.create_publisher(DetectionArray, args.labels_topic, qos)
        pubs[args.labels_topic] = lpub
        counts[args.labels_topic] = 0
    sent = 0
    status = 0
    try:
        deadline = time.monotonic() + args.wait_timeout
        while args.wait_subscribers and min(p.get_subscription_count() for p in pubs.values()) < args.wait_subscribers:
            if time.monotonic() > deadline:
                node.get_logger().warning("no subscriber yet; publishing anyway")
                break
            rclpy.spin_once(node, timeout_sec=0.05)
        period = 1.0 / args.fps
        next_t = time.monotonic()
        while rclpy.ok():
            for frame in iter_source(args.source, args.bag_topic, args.max_frames):
                rgb = frame.rgb if resize is None else cv2.resize(frame.rgb, resize, interpolation=cv2.INTER_AREA)
                now = node.get_clock().now().to_msg()
                header = Header(stamp=now, frame_id=args.frame_id)
                if frame.stamp_ns is not None and "--frame-id" not in ours:
                    header.frame_id = frame.frame_id or args.frame_id
                msg = rgb_to_compressed(rgb, header) if args.compressed else rgb_to_image(rgb, header, args.encoding)
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + period, time.monotonic() - period)
                msg.header.stamp = node.get_clock().now().to_msg()
                if not publish_unless_shut_down(pub, msg):  # Ctrl-C: a clean stop, exit 0
                    break
                sent += 1
                counts[topic] = sent
                entry = labels.by_name.get(frame.path.name) if lpub is not None and frame.path is not None else None
                if entry is not None:
                    h0, w0 = frame.rgb.shape[:2]
                    h1, w1 = rgb.shape[:2]
                    if publish_unless_shut_down(lpub, labels_message(DetectionArray, Detection, msg.header, entry,
                                                                     labels.instruction, (w1, h1), (w0, h0))):
                        counts[args.labels_topic] += 1
                if args.max_frames and sent >= args.max_frames:
                    break
                if not rclpy.ok():
                    break
            if not args.loop or (args.max_frames and sent >= args.max_frames):
                break
        if args.qos == "reliable" and rclpy.ok():  # after Ctrl-C there is no DDS left to wait on
            from active_o3_ros.ros.bags import DeliveryError, wait_acked

            try:
                wait_acked(pubs, args.ack_timeout, counts)
            except DeliveryError as exc:
                print(f"active-o3-camera: error: {exc}", file=sys.stderr)
                status = 1
    except ValueError as exc:
        print(f"active-o3-camera: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        node.get_logger().info(f"published {sent} frames on {topic}"
                               + (f" and {counts[args.labels_topic]} labels on {args.labels_topic}" if lpub else ""))
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
