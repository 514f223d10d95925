"""The README's main job (``active-o3-demo``): the node on its embedded default, live over DDS.

What runs, as separate processes on loopback with a random ``ROS_DOMAIN_ID``:

* ``active-o3-node`` with the embedded CPU default (GRPO-trained small sensing policy +
  rapidocr ``text`` task module) and its debug image enabled;
* ``active-o3-bag record`` writing the camera topic and the node's outputs to a new bag;
* ``active-o3-camera`` replaying a camera recording (generated once, seeded: a camera
  panning over a 4K scene with small text) at ``--fps``;
* this process, which listens: prints each DetectionArray as it arrives, writes the debug
  images as annotated PNGs, scores detections against the recording's ground truth and
  ends when the recording has ended and its last frame is processed (``--loop``: until
  Ctrl-C), with one summary line and ``summary.json``.

Latest frame wins in the node, so a camera faster than the model drops frames by design;
the summary counts them.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.ros.env import data_path, ros_defaults

DEFAULT_OUT = Path("artifacts") / "demo"


def _ensure_recording(path: Path, frames: int, seed: int, frame_size: tuple[int, int]) -> Path:
    """Generate the seeded camera recording once (reused on later runs)."""
    if (path / "metadata.yaml").exists():
        return path
    from active_o3_training.data.synthetic import PanConfig, write_bag

    print(f"active-o3-demo: generating camera recording {path} ({frames} frames, "
          f"{frame_size[0]}x{frame_size[1]}) ...", flush=True)
    canvas = (max(3840, frame_size[0]), max(2160, frame_size[1]))
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    write_bag(tmp, seed=seed, n=frames, pan=PanConfig(frame_size=frame_size, canvas_size=canvas), progress=False)
    tmp.rename(path)
    return path


def _ground_truth(path: Path) -> list[list[Any]]:
    """Per-frame ground-truth boxes from the recording's ``/ground_truth`` topic, in order."""
    from active_o3_ros.core.types import Box
    from active_o3_ros.ros.bags import iter_raw, typestore

    store = typestore()
    out = []
    for topic, msgtype, _, raw in iter_raw(path, ["/ground_truth"]):
        msg = store.deserialize_cdr(raw, msgtype)
        out.append([Box(d.x_min, d.y_min, d.x_max, d.y_max) for d in msg.detections])
    return out


def _child_env(domain: str) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_DOMAIN_ID"] = domain
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _stop(proc: subprocess.Popen | None, timeout: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="active-o3-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (annotated PNGs, bag, summary)")
    p.add_argument("--recording", type=Path, default=None,
                   help="camera rosbag2 to replay (default: <out>/camera_recording, generated once)")
    p.add_argument("--frames", type=int, default=8, help="frames in the generated recording")
    p.add_argument("--frame-size", default="1920x1080", help="WxH of the generated recording")
    p.add_argument("--seed", type=int, default=2_000_007, help="seed of the generated scene (test split range)")
    p.add_argument("--fps", type=float, default=0.25,
                   help="camera rate (the embedded default takes ~2-4 s a 1080p frame on 2 cores)")
    p.add_argument("--loop", action="store_true", help="replay the recording until Ctrl-C")
    p.add_argument("--params-file", type=Path, default=None, help="node parameters (default config/perceive.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                   help="extra node parameter, e.g. --set max_regions:=2 (repeatable)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds to wait for the node to come up")
    p.add_argument("--drain-timeout", type=float, default=240.0,
                   help="seconds to wait for the last frame's detections after the recording ends")
    return p


def main(argv: Sequence[str] | None = None) -> int:  # noqa: C901 - one linear script
    args = build_parser().parse_args(argv)
    ros_defaults()
    domain = os.environ.get("ROS_DOMAIN_ID") or str(random.randint(1, 101))
    os.environ["ROS_DOMAIN_ID"] = domain
    try:
        w, h = (int(v) for v in args.frame_size.lower().split("x"))
    except ValueError:
        print(f"active-o3-demo: error: --frame-size must look like 1920x1080, got {args.frame_size!r}", file=sys.stderr)
        return 2
    if args.fps <= 0 or args.frames < 1:
        print("active-o3-demo: error: --fps must be > 0 and --frames >= 1", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    recording = args.recording or _ensure_recording(out / "camera_recording", args.frames, args.seed, (w, h))
    if not (recording / "metadata.yaml").exists():
        print(f"active-o3-demo: error: {recording} is not a rosbag2 folder (no metadata.yaml)", file=sys.stderr)
        return 2
    gt = _ground_truth(recording)
    annotated = out / "annotated"
    annotated.mkdir(exist_ok=True)
    for old in annotated.glob("frame_*.png"):
        old.unlink()
    run_bag = out / "run_bag"
    if run_bag.exists():
        import shutil

        shutil.rmtree(run_bag)

    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from active_o3_ros.core.metrics import recall_precision
    from active_o3_ros.core.types import Box
    from active_o3_ros.msg import DetectionArray
    from active_o3_ros.ros.images import msg_to_rgb
    from active_o3_ros.ros.listener import format_detections

    env = _child_env(domain)
    py = sys.executable
    params = args.params_file or data_path("config/perceive.yaml")
    node_cmd = [py, "-m", "active_o3_ros.ros.node", "--params-file", str(params), "--ros-args",
                "-r", "image:=/camera/image_raw", "-p", "publish_debug_image:=true", "-p", "qos_reliability:=reliable"]
    for item in args.set:
        node_cmd += ["-p", item]
    rec_cmd = [py, "-m", "active_o3_ros.ros.bags", "record", "-o", str(run_bag), "/camera/image_raw",
               "/active_o3/detections", "/active_o3/regions"]
    cam_cmd = [py, "-m", "active_o3_ros.ros.camera_source", str(recording), "--fps", str(args.fps),
               "--qos", "reliable", "--wait-subscribers", "3", "--wait-timeout", str(args.startup_timeout)]
    if args.loop:
        cam_cmd.append("--loop")

    rclpy.init(args=["active-o3-demo"])
    node = rclpy.create_node("active_o3_demo")
    lock = threading.Lock()
    camera_stamps: list[int] = []       # stamps of frames published, in order
    results: dict[int, dict[str, Any]] = {}
    debug_written: set[int] = set()     # stamps whose annotated PNG is on disk

    def key(stamp: Any) -> int:
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)

    def on_image(msg: Any) -> None:
        with lock:
            camera_stamps.append(key(msg.header.stamp))

    def on_detections(msg: Any) -> None:
        print(format_detections(msg), flush=True)
        with lock:
            k = key(msg.header.stamp)
            idx = camera_stamps.index(k) if k in camera_stamps else -1
        boxes = [Box(d.x_min, d.y_min, d.x_max, d.y_max) for d in msg.detections]
        entry: dict[str, Any] = {"frame": idx, "detections": len(boxes), "latency_s": float(msg.latency),
                                 "total_s": float(msg.total_time), "model_calls": int(msg.model_calls)}
        if 0 <= idx and gt:
            truth = gt[idx % len(gt)]
            rec, prec = recall_precision(boxes, [d.score for d in msg.detections], truth)
            entry.update(gt=len(truth), recall=rec, precision=prec)
            print(f"    vs ground truth: recall@0.5 {rec:.2f} ({len(truth)} words), precision {prec:.2f}", flush=True)
        with lock:
            results[k] = entry

    def on_debug(msg: Any) -> None:
        import cv2

        try:
            rgb = msg_to_rgb(msg)
        except Exception as exc:  # noqa: BLE001 - a bad debug image must not stop the demo
            print(f"active-o3-demo: debug image skipped: {exc}", file=sys.stderr)
            return
        with lock:
            k = key(msg.header.stamp)
            idx = camera_stamps.index(k) if k in camera_stamps else len(results)
        cv2.imwrite(str(annotated / f"frame_{idx:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        with lock:
            debug_written.add(k)

    reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Image, "/camera/image_raw", on_image, reliable)
    node.create_subscription(DetectionArray, "/active_o3/detections", on_detections, reliable)
    node.create_subscription(Image, "/active_o3/debug_image", on_debug, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))

    procs: dict[str, subprocess.Popen] = {}
    logs = {name: open(out / f"{name}.log", "w") for name in ("node", "recorder", "camera")}
    rc = 0
    try:
        print(f"active-o3-demo: ROS_DOMAIN_ID={domain} (loopback only); starting node, recorder, camera ...", flush=True)
        procs["node"] = subprocess.Popen(node_cmd, env=env, stdout=logs["node"], stderr=subprocess.STDOUT)
        procs["recorder"] = subprocess.Popen(rec_cmd, env=env, stdout=logs["recorder"], stderr=subprocess.STDOUT)
        procs["camera"] = subprocess.Popen(cam_cmd, env=env, stdout=logs["camera"], stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        camera_done_at = None
        finished = False
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
            for name in ("node", "recorder"):
                if procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited early with status {procs[name].returncode}; "
                                       f"see {out / (name + '.log')}")
            cam_rc = procs["camera"].poll()
            if cam_rc is not None and camera_done_at is None:
                if cam_rc != 0:
                    raise RuntimeError(f"camera exited with status {cam_rc}; see {out / 'camera.log'}")
                camera_done_at = time.monotonic()
            if camera_done_at is not None:
                with lock:
                    last = camera_stamps[-1] if camera_stamps else None
                    done = last is not None and last in results
                if done:
                    # the debug image of the last frame follows its detections: let it land
                    until = time.monotonic() + 10.0
                    while time.monotonic() < until and not set(results) <= debug_written:
                        rclpy.spin_once(node, timeout_sec=0.1)
                    finished = True
                    break
                if time.monotonic() - camera_done_at > args.drain_timeout:
                    raise RuntimeError(f"no detections for the last frame within {args.drain_timeout}s")
            elif not camera_stamps and time.monotonic() - t0 > args.startup_timeout + 30:
                raise RuntimeError(f"no camera frame within {args.startup_timeout}s; see {out / 'node.log'}")
        if not finished:  # a signal shut the context down between two spins: the loop ended, no exception
            raise ExternalShutdownException()
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C, or SIGTERM: stop the parts, then summarise
        print("active-o3-demo: interrupted", file=sys.stderr)
    except RuntimeError as exc:
        print(f"active-o3-demo: error: {exc}", file=sys.stderr)
        rc = 1
    finally:
        for name in ("camera", "recorder", "node"):
            _stop(procs.get(name))
        for f in logs.values():
            f.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()

    frames = [r for r in results.values() if r["frame"] >= 0]
    scored = [r for r in frames if "recall" in r]
    summary = {
        "frames_published": len(camera_stamps),
        "frames_processed": len(results),
        "frames_dropped": max(0, len(camera_stamps) - len(results)),
        "detections": int(sum(r["detections"] for r in results.values())),
        "mean_latency_s": float(np.mean([r["latency_s"] for r in results.values()])) if results else None,
        "mean_pipeline_s": float(np.mean([r["total_s"] for r in results.values()])) if results else None,
        "model_calls_per_frame": float(np.mean([r["model_calls"] for r in results.values()])) if results else None,
        "recall_at_0.5": float(np.mean([r["recall"] for r in scored])) if scored else None,
        "precision": float(np.mean([r["precision"] for r in scored])) if scored else None,
        "annotated_images": str(annotated),
        "bag": str(run_bag),
        "ros_domain_id": int(domain),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if summary["frames_processed"]:
        print(f"active-o3-demo: {summary['frames_processed']} frame(s) processed, {summary['frames_dropped']} dropped "
              f"(latest frame wins), {summary['detections']} detections, mean latency "
              f"{summary['mean_latency_s']:.2f} s, {summary['model_calls_per_frame']:.1f} model calls/frame, "
              f"recall@0.5 {summary['recall_at_0.5'] if summary['recall_at_0.5'] is not None else float('nan'):.2f}; "
              f"annotated PNGs in {annotated}, bag in {run_bag}", flush=True)
    else:
        print("active-o3-demo: no frame was processed", file=sys.stderr)
        rc = rc or 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
