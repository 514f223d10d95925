"""In-test ROS participant: a real rclpy node in the test process that collects messages."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy


ROS_TESTS = Path(__file__).resolve().parent
REPO = ROS_TESTS.parents[1]


def ros_env(domain: int, extra_paths: Sequence[Path] = ()) -> dict[str, str]:
    """Loopback-only DDS on ``domain`` with the shared-memory profile, for child processes;
    ``tests/ros`` (test backends) and ``extra_paths`` importable there."""
    env = dict(os.environ)
    paths = [*(str(p) for p in extra_paths), str(ROS_TESTS), str(REPO), env.get("PYTHONPATH", "")]
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    profile = REPO / "config" / "fastdds_shm.xml"
    if profile.is_file():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return env


def start(module: str, *args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python -m module args`` as a real separate process, output to ``log``."""
    fh = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env or dict(os.environ),
                            stdout=fh, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    """SIGINT (graceful), then kill after ``timeout``; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)
    return proc.returncode


def call_service(client: Any, request: Any, timeout: float = 15.0) -> Any:
    """Call a ROS service from a Probe's node (spun in its thread) and return the response."""
    assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
    fut = client.call_async(request)
    end = time.monotonic() + timeout
    while not fut.done() and time.monotonic() < end:
        time.sleep(0.01)
    assert fut.done(), f"{client.srv_name} timed out"
    return fut.result()


def assert_bags_equal(first: Path, second: Path, topics: Sequence[str]) -> None:
    """Both bags hold the same serialized messages, in order, on every topic (nothing lost)."""
    from active_o3_ros.ros import bags

    for t in topics:
        a = [raw for _t, _m, _ts, raw in bags.iter_raw(first, [t])]
        b = [raw for _t, _m, _ts, raw in bags.iter_raw(second, [t])]
        assert len(a) == len(b) and a == b, t


class Probe:
    """Subscribes to topics and spins in a background thread; ``wait_for`` polls a condition."""

    def __init__(self, name: str = "test_probe") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.msgs: dict[str, list[Any]] = {}
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def subscribe(self, msg_type: Any, topic: str, depth: int = 100, reliable: bool = True) -> None:
        """Record ``topic``; ``reliable=False`` also hears best-effort publishers."""
        self.msgs[topic] = []

        def cb(m: Any, t: str = topic) -> None:
            with self._lock:
                self.msgs[t].append(m)

        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        self.node.create_subscription(msg_type, topic, cb, QoSProfile(depth=depth, reliability=rel))

    def publisher(self, msg_type: Any, topic: str, depth: int = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))

    def got(self, topic: str) -> list[Any]:
        with self._lock:
            return list(self.msgs[topic])

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def close(self) -> None:
        self._running = False
        self._thread.join(5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
