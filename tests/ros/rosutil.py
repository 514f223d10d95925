"""In-test ROS participant: a real rclpy node in the test process that collects messages."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy


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

    def subscribe(self, msg_type: Any, topic: str, depth: int = 100) -> None:
        self.msgs[topic] = []

        def cb(m: Any, t: str = topic) -> None:
            with self._lock:
                self.msgs[t].append(m)

        self.node.create_subscription(msg_type, topic, cb, QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE))

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
