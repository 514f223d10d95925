"""Listener (``active-o3-listen``): print the detections the node publishes, one line a frame.

Used by the README demo to show detections arriving; ``--count`` exits after N messages
(non-zero exit status if they do not arrive within ``--timeout``), ``--json`` prints JSON lines.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from active_o3_ros.ros.env import ros_defaults, split_ros_args


def format_detections(msg: Any, as_json: bool = False) -> str:
    dets = [{"label": d.label, **({"text": d.text} if getattr(d, "text", "") else {}), "score": round(float(d.score), 3),
             "box": [round(float(v), 1) for v in (d.x_min, d.y_min, d.x_max, d.y_max)], "region": int(d.region_index)}
            for d in msg.detections]
    stamp = f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
    if as_json:
        return json.dumps({"stamp": stamp, "frame_id": msg.header.frame_id, "size": [msg.image_width, msg.image_height],
                           "instruction": msg.instruction, "latency_s": round(float(msg.latency), 4),
                           "model_calls": int(msg.model_calls), "detections": dets})
    head = (f"[{stamp} {msg.header.frame_id} {msg.image_width}x{msg.image_height}] {len(dets)} detection(s), "
            f"latency {msg.latency * 1000:.0f} ms, {msg.model_calls} model call(s)")
    body = "".join(f"\n    {d['label']!r}{' ' + repr(d['text']) if d.get('text') else ''} {d['score']:.2f} {d['box']} (region {d['region']})" for d in dets[:20])
    return head + body + ("\n    ..." if len(dets) > 20 else "")


def main(argv: Sequence[str] | None = None) -> int:
    ros_defaults()
    ours, ros_args = split_ros_args(list(sys.argv[1:] if argv is None else argv))
    p = argparse.ArgumentParser(prog="active-o3-listen", description=__doc__.split("\n\n")[0])
    p.add_argument("--topic", default="/active_o3/detections")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (0: run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0.0, help="give up after this many seconds (0: never)")
    p.add_argument("--json", action="store_true", help="print one JSON object per message")
    args = p.parse_args(ours)
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from active_o3_ros.msg import DetectionArray

    rclpy.init(args=["active-o3-listen", *ros_args])
    node = rclpy.create_node("active_o3_listener")
    got = 0

    def cb(msg: Any) -> None:
        nonlocal got
        got += 1
        print(format_detections(msg, args.json), flush=True)

    node.create_subscription(DetectionArray, args.topic, cb, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    start = time.monotonic()
    try:
        while rclpy.ok() and (not args.count or got < args.count):
            rclpy.spin_once(node, timeout_sec=0.1)
            if args.timeout and time.monotonic() - start > args.timeout:
                print(f"active-o3-listen: {got} message(s) within {args.timeout}s", file=sys.stderr)
                return 1 if args.count else 0
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C, or SIGTERM from a launch system
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
