"""Soak test: N frames at camera rate through the REAL node -> ``benchmarks/results/soak.json``.

WHY: a perception node runs for hours; leaks and stalls show up only after thousands of
frames.  This runner starts ``active_o3_ros.ros.node`` as its own process (real DDS,
loopback, random ROS_DOMAIN_ID), publishes ``--frames`` images at ``--fps`` from this
process, and reports:

* frames sent / received by the node / processed / dropped (by design: the node keeps only
  the latest frame -- in its one-slot buffer and, with ``qos_depth`` 1, in the DDS reader
  queue -- so a model slower than the camera drops the frames in between) / rejected /
  failed, and DetectionArray messages received back (output messages lost must be 0);
* crashes: 1 if the node process died or exited non-zero on SIGINT (must be 0);
* the node's RSS (``/proc/<pid>/status`` VmRSS) at start / middle / end and whether it is
  flat within 5 %.  "start" is taken after the first 10 % of the frames (``--warmup``):
  before that, allocator pools, DDS buffers and lazily built model state are still growing,
  which is start-up cost, not a leak.  A least-squares slope (kB per 1000 frames) is reported
  too.

Backends (``--backend``): ``embedded`` is the node's default (small_policy + text);
``fast`` is tiling sensing + the ``blob`` connected-components detector (tests/ros test
backend: a real cv2 detector, deterministic, ~ms per frame) -- it keeps the soak about the
node, not the model; ``text`` is tiling + the rapidocr text task model (real ONNX model).
``auto`` picks ``embedded`` when its bundled weights exist, else ``fast``; the JSON says
which ran.

    python benchmarks/soak.py                       # 10 000 frames at 30 fps (~6 min)
    python benchmarks/soak.py --frames 300 --out /tmp/soak.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

BACKENDS = {
    "embedded": [],  # the node's defaults (config/perceive.yaml)
    "fast": ["-p", "sensing_backend:=tiling", "-p", "sensing_options:='{\"rows\": 1, \"cols\": 3}'",
             "-p", "task_module:=blob", "-p", "plugins:=ros_test_backends", "-p", "instruction:=bright blobs"],
    "text": ["-p", "sensing_backend:=tiling", "-p", "sensing_options:='{\"rows\": 1, \"cols\": 2}'",
             "-p", "task_module:=text", "-p", "instruction:=text"],
}


def pick_backend(name: str) -> str:
    if name != "auto":
        return name
    try:
        from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS

        return "embedded" if Path(BUNDLED_WEIGHTS).is_file() else "fast"
    except Exception:  # noqa: BLE001 - any import problem means the embedded default is not usable here
        return "fast"


def vm_rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               ROS_DOMAIN_ID=os.environ.get("SOAK_ROS_DOMAIN_ID", str(random.randint(1, 100))),
               PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "ros"), str(REPO), env.get("PYTHONPATH", "")]))
    profile = REPO / "config" / "fastdds_shm.xml"
    if profile.is_file():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    return env


def rss_at(samples: list[tuple[int, int]], frame: int) -> int | None:
    """RSS of the first sample taken once ``frame`` frames had been sent."""
    for sent, rss in samples:
        if sent >= frame:
            return rss
    return samples[-1][1] if samples else None


def slope_kb_per_1000(samples: list[tuple[int, int]], from_frame: int) -> float | None:
    pts = [(s, r) for s, r in samples if s >= from_frame]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(s for s, _ in pts) / n
    my = sum(r for _, r in pts) / n
    den = sum((s - mx) ** 2 for s, _ in pts)
    return round(1000 * sum((s - mx) * (r - my) for s, r in pts) / den, 2) if den else None


def run(frames: int, fps: float, width: int, height: int, backend: str, warmup: float, settle_s: float,
        log_path: Path, progress: bool = True) -> dict[str, Any]:
    env = ros_env()
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    if "FASTDDS_DEFAULT_PROFILES_FILE" in env:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = env["FASTDDS_DEFAULT_PROFILES_FILE"]
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from tqdm import tqdm

    from active_o3_ros.msg import DetectionArray
    from active_o3_ros.ros.camera_source import synthetic_frame
    from active_o3_ros.ros.images import rgb_to_image
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    args = [sys.executable, "-m", "active_o3_ros.ros.node", "--ros-args", "-r", "image:=/camera/image_raw",
            *BACKENDS[backend],
            "-p", "qos_reliability:=reliable", "-p", "diagnostics_period:=0.5"]
    log = open(log_path, "wb")
    node_proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    bench = rclpy.create_node("soak_bench")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    # deep publisher history: on a loaded host the node's DDS reader may lag a few frames
    # behind; with a shallow KEEP_LAST history those frames would be overwritten unsent and
    # show up as transport loss, which is not what this soak measures
    pub = bench.create_publisher(Image, "/camera/image_raw", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    lock = threading.Lock()
    got = {"detections": 0, "last_stamp": -1, "diag": {}}

    def on_det(m: Any) -> None:
        with lock:
            got["detections"] += 1
            got["last_stamp"] = max(got["last_stamp"], m.header.stamp.sec)

    def on_diag(arr: Any) -> None:
        for s in arr.status:
            if s.name.startswith("/active_o3"):
                with lock:
                    got["diag"] = {kv.key: kv.value for kv in s.values}

    bench.create_subscription(DetectionArray, "/active_o3/detections", on_det, qos)
    bench.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(bench)
    spinning = True

    def spin() -> None:
        while spinning:
            ex.spin_once(timeout_sec=0.05)

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    samples: list[tuple[int, int]] = []
    sent = 0
    crashed_at: int | None = None
    try:
        end = time.monotonic() + 120
        while pub.get_subscription_count() == 0 and time.monotonic() < end and node_proc.poll() is None:
            time.sleep(0.1)
        if pub.get_subscription_count() == 0:
            raise RuntimeError(f"node did not subscribe within 120 s; see {log_path}")
        pool = [rgb_to_image(synthetic_frame(width, height, i)) for i in range(16)]
        period = 1.0 / fps
        t0 = time.monotonic()
        next_rss = t0
        bar = tqdm(total=frames, desc=f"soak ({backend})", unit="frame", disable=not progress)
        for i in range(frames):
            target = t0 + i * period
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            msg = pool[i % len(pool)]
            msg.header.stamp.sec, msg.header.stamp.nanosec = i, 0
            msg.header.frame_id = "soak"
            pub.publish(msg)
            sent += 1
            bar.update(1)
            if time.monotonic() >= next_rss:
                rss = vm_rss_kb(node_proc.pid)
                if rss is not None:
                    samples.append((sent, rss))
                next_rss += 1.0
            if node_proc.poll() is not None:
                crashed_at = sent
                break
        bar.close()
        wall = time.monotonic() - t0
        # the latest frame must come out (latest frame wins), then let diagnostics catch up
        end = time.monotonic() + settle_s
        while time.monotonic() < end and got["last_stamp"] < frames - 1 and node_proc.poll() is None:
            time.sleep(0.1)
        time.sleep(1.5)
        rss = vm_rss_kb(node_proc.pid)
        if rss is not None:
            samples.append((sent, rss))
    finally:
        spinning = False
        spinner.join(5)
        alive = node_proc.poll() is None
        if alive:
            node_proc.send_signal(signal.SIGINT)
        try:
            code = node_proc.wait(30)
        except subprocess.TimeoutExpired:
            node_proc.kill()
            code = node_proc.wait(5)
        bench.destroy_node()
        rclpy.shutdown()
        log.close()
    d = {k: got["diag"].get(k) for k in ("frames_received", "frames_processed", "frames_dropped", "frames_rejected",
                                         "frames_failed")}
    to_int = {k: int(v) if v is not None else None for k, v in d.items()}
    start_frame = int(frames * warmup)
    r_start, r_mid, r_end = rss_at(samples, start_frame), rss_at(samples, frames // 2), samples[-1][1] if samples else None
    flat = (r_start is not None and r_end is not None and abs(r_end - r_start) / r_start <= 0.05)
    return {
        "backend": backend, "node_args": BACKENDS[backend], "frames_requested": frames, "fps_target": fps,
        "frame_size": f"{width}x{height}", "frames_sent": sent, "publish_wall_s": round(wall, 1),
        "fps_achieved": round(sent / wall, 2) if wall else None,
        "node_frames_received": to_int["frames_received"], "frames_processed": to_int["frames_processed"],
        "frames_dropped_latest_wins": to_int["frames_dropped"], "frames_rejected": to_int["frames_rejected"],
        "frames_failed": to_int["frames_failed"],
        # the node's image subscription keeps qos_depth=1 (latest frame only), so a frame can also be
        # superseded in the DDS reader queue before the callback runs: dropped by design as well
        "frames_dropped_in_reader_queue": (sent - to_int["frames_received"]) if to_int["frames_received"] is not None
        else None,
        "frames_dropped_total": (sent - to_int["frames_processed"] - to_int["frames_rejected"] - to_int["frames_failed"])
        if to_int["frames_processed"] is not None else None,
        "detection_messages_received": got["detections"],
        # every processed frame's DetectionArray (reliable QoS) must reach the subscriber
        "output_messages_lost": (to_int["frames_processed"] - got["detections"])
        if to_int["frames_processed"] is not None else None,
        "last_frame_processed": got["last_stamp"] == frames - 1,
        "crashes": int(crashed_at is not None or code != 0 or not alive), "node_exit_code": code,
        "rss_kb": {"start_after_warmup": r_start, "middle": r_mid, "end": r_end, "max": max((r for _, r in samples),
                                                                                            default=None),
                   "first_sample": samples[0][1] if samples else None, "warmup_frames": start_frame},
        "rss_change_pct": round(100 * (r_end - r_start) / r_start, 2) if r_start and r_end else None,
        "rss_flat_within_5pct": bool(flat),
        "rss_slope_kb_per_1000_frames": slope_kb_per_1000(samples, start_frame),
        "rss_samples": samples[:: max(1, len(samples) // 200)],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Exit status 1 when the node crashed or RSS was not flat within 5 %.")
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--fps", type=float, default=30.0, help="camera rate")
    ap.add_argument("--size", default="640x480", help="frame WIDTHxHEIGHT")
    ap.add_argument("--backend", choices=["auto", *BACKENDS], default="auto")
    ap.add_argument("--warmup", type=float, default=0.1, help="fraction of frames before the 'start' RSS reading")
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to wait for the last frame's detections")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    ap.add_argument("--log", type=Path, default=None, help="node log file (default: next to --out)")
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error(f"--size must look like 640x480, got {args.size!r}")
    if args.frames < 10 or args.fps <= 0:
        ap.error("--frames must be >= 10 and --fps > 0")
    backend = pick_backend(args.backend)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = args.log or args.out.with_suffix(".node.log")
    report = run(args.frames, args.fps, w, h, backend, args.warmup, args.settle, log)
    report.update(command="python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
                  machine=f"{platform.machine()} {os.cpu_count()} cpus", python=platform.python_version())
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("rss_samples", "node_args")}, indent=2))
    return 0 if report["crashes"] == 0 and report["rss_flat_within_5pct"] else 1


if __name__ == "__main__":
    sys.exit(main())
