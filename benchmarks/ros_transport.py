"""ROS transport and node end-to-end latency -> benchmarks/results/ros_transport.json.

1. Transport: rgb8 frames (720p, 1080p, 4K) published by this process and received by a
   separate subscriber process (real DDS, FastDDS shared-memory profile, loopback); one-way
   latency = receive wall time - header stamp (same host clock).  Reported next to an
   in-process ``numpy.copyto`` of the same frame (the floor any transport is compared to).
2. End to end: this process publishes frames to the ``active_o3`` node (separate process) and
   measures image stamp -> DetectionArray received, for the embedded default (falls back to
   ``--fallback-sensing``/``--fallback-task`` when the default's weights are not available,
   and says so in the JSON).

    python benchmarks/ros_transport.py --frames 30 --e2e-frames 5
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SIZES  # noqa: E402


def stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1000.0
    return {"n": int(a.size), "median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "min_ms": round(float(a.min()), 3)} if a.size else {"n": 0}


def receiver(topic: str, count: int, out: str) -> None:
    """Subscriber process: record one-way latencies, write them to ``out``."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_receiver")
    lat: list[float] = []

    def cb(msg: Image) -> None:
        now = time.time_ns()
        lat.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) / 1e9)

    node.create_subscription(Image, topic, cb, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    end = time.monotonic() + 120
    while len(lat) < count and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    Path(out).write_text(json.dumps(lat))
    node.destroy_node()
    rclpy.shutdown()


def transport(frames: int, env: dict[str, str], tmp: Path) -> dict[str, object]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from active_o3_ros.ros.images import rgb_to_image

    rclpy.init()
    node = rclpy.create_node("bench_sender")
    results: dict[str, object] = {}
    try:
        for name, (w, h) in SIZES.items():
            topic = f"/bench/frame_{name}"
            out = tmp / f"lat_{name}.json"
            proc = subprocess.Popen([sys.executable, __file__, "--receiver", topic, str(frames), str(out)], env=env)
            pub = node.create_publisher(Image, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
            end = time.monotonic() + 30
            while pub.get_subscription_count() == 0 and time.monotonic() < end:
                time.sleep(0.05)
            time.sleep(0.5)
            rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
            msg = rgb_to_image(rgb)
            for _ in range(frames):
                t = time.time_ns()
                msg.header.stamp.sec, msg.header.stamp.nanosec = t // 10**9, t % 10**9
                pub.publish(msg)
                time.sleep(0.1)
            proc.wait(120)
            lat = json.loads(out.read_text()) if out.exists() else []
            dst = np.empty_like(rgb)
            copies = []
            for _ in range(frames):
                t0 = time.perf_counter()
                np.copyto(dst, rgb)
                copies.append(time.perf_counter() - t0)
            results[name] = {"size": [w, h], "bytes": int(rgb.nbytes), "ros_two_process": stats(lat),
                             "received": len(lat), "sent": frames, "memcpy_in_process": stats(copies)}
            print(name, results[name], flush=True)
            node.destroy_publisher(pub)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    return results


def end_to_end(frames: int, env: dict[str, str], tmp: Path, size: tuple[int, int], fallback: tuple[str, str],
               timeout: float) -> dict[str, object]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from active_o3_ros.core.config import PerceptionConfig
    from active_o3_ros.backends.base import build_pipeline
    from active_o3_ros.msg import DetectionArray
    from active_o3_ros.ros.camera_source import synthetic_frame
    from active_o3_ros.ros.images import rgb_to_image

    backend = {"sensing_backend": "small_policy", "task_module": "text"}
    note = "embedded default (small_policy + text)"
    try:
        build_pipeline(PerceptionConfig.from_flat(backend)).close()
    except Exception as exc:
        backend = {"sensing_backend": fallback[0], "task_module": fallback[1]}
        reason = str(exc).replace(str(REPO), "<repo>")[:160]
        note = f"embedded default unavailable ({type(exc).__name__}: {reason}); used {fallback}"
    print("e2e:", note, flush=True)
    args = [sys.executable, "-m", "active_o3_ros.ros.node", "--ros-args", "-r", "image:=/camera/image_raw",
            "-p", "qos_reliability:=reliable"]
    for k, v in backend.items():
        args += ["-p", f"{k}:={v}"]
    if backend["sensing_backend"] == "tiling":
        args += ["-p", "sensing_options:='{\"rows\": 1, \"cols\": 3}'"]
    log = open(tmp / "node.log", "wb")
    node_proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("bench_e2e")
    got: list[float] = []
    stages: list[dict[str, float]] = []

    def cb(m: DetectionArray) -> None:
        got.append((time.time_ns() - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e9)
        stages.append({"node_latency": m.latency, "sensing": m.sensing_time, "task": m.task_time, "total": m.total_time})

    node.create_subscription(DetectionArray, "/active_o3/detections", cb,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    pub = node.create_publisher(Image, "/camera/image_raw", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    try:
        end = time.monotonic() + 120
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        for i in range(frames):
            msg = rgb_to_image(synthetic_frame(size[0], size[1], i))
            t = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = t // 10**9, t % 10**9
            pub.publish(msg)
            end = time.monotonic() + timeout
            while len(got) <= i and time.monotonic() < end:  # one frame in flight: no queueing in the figure
                rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        node_proc.send_signal(2)
        node_proc.wait(30)
    mean = {k: round(float(np.mean([s[k] for s in stages])) * 1000, 2) for k in stages[0]} if stages else {}
    return {"backend": backend, "note": note, "frame_size": list(size), "frames_sent": frames,
            "detections_received": len(got), "image_stamp_to_detections": stats(got), "mean_stage_ms": mean}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--receiver":
        receiver(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=30, help="frames per size for the transport test")
    p.add_argument("--e2e-frames", type=int, default=5)
    p.add_argument("--e2e-size", default="1280x720")
    p.add_argument("--e2e-timeout", type=float, default=120.0, help="seconds to wait for one frame's detections")
    p.add_argument("--fallback-sensing", default="tiling")
    p.add_argument("--fallback-task", default="text")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ros_transport.json")
    a = p.parse_args()
    from active_o3_ros.ros.env import ros_defaults

    ros_defaults()
    os.environ["ROS_DOMAIN_ID"] = os.environ.get("ROS_DOMAIN_ID") or str(random.randint(1, 100))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"active_o3_bench_{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    res: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                    "fastdds_profile": Path(os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")).name},
        "transport_rgb8": transport(a.frames, env, tmp),
    }
    if not a.skip_e2e:
        w, h = (int(x) for x in a.e2e_size.split("x"))
        res["end_to_end"] = end_to_end(a.e2e_frames, env, tmp, (w, h), (a.fallback_sensing, a.fallback_task),
                                       a.e2e_timeout)
        print("e2e", res["end_to_end"], flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
