"""Camera source (``active-o3-camera``): publish frames as a camera driver would.

Sources: a video file (anything OpenCV reads), an image folder (sorted by name), a rosbag2
(its Image/CompressedImage topic), or ``synthetic:WIDTHxHEIGHT`` (generated frames with
bright shapes and text, for tests and benchmarks without any file).  Frames go out at
``--fps`` with a fresh header stamp and ``--frame-id``; the tool ends when the source is
exhausted (``--loop`` starts over) or after ``--max-frames``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from active_o3_ros.ros.env import ros_defaults, split_ros_args

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
    if path.is_dir() and ((path / "metadata.yaml").exists() or any(path.glob("*.mcap")) or any(path.glob("*.db3"))):
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
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"image folder {path} holds no {sorted(IMAGE_SUFFIXES)} files")
        for f in files:
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                print(f"active-o3-camera: skipping unreadable image {f}", file=sys.stderr)
                continue
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
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
    p.add_argument("--wait-subscribers", type=int, default=0, help="wait for this many subscribers before publishing")
    p.add_argument("--wait-timeout", type=float, default=30.0)
    p.add_argument("--ack-timeout", type=float, default=5.0,
                   help="reliable QoS: seconds for every subscriber to acknowledge every frame at the end; "
                        "exit 1 when one did not (frames may be lost)")
    return p


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
    sent = 0
    status = 0
    try:
        deadline = time.monotonic() + args.wait_timeout
        while args.wait_subscribers and pub.get_subscription_count() < args.wait_subscribers:
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
                pub.publish(msg)
                sent += 1
                if args.max_frames and sent >= args.max_frames:
                    break
                if not rclpy.ok():
                    break
            if not args.loop or (args.max_frames and sent >= args.max_frames):
                break
        if args.qos == "reliable":
            from active_o3_ros.ros.bags import DeliveryError, wait_acked

            try:
                wait_acked({topic: pub}, args.ack_timeout, {topic: sent})
            except DeliveryError as exc:
                print(f"active-o3-camera: error: {exc}", file=sys.stderr)
                status = 1
    except ValueError as exc:
        print(f"active-o3-camera: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        node.get_logger().info(f"published {sent} frames on {topic}")
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
