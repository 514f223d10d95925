"""Helpers for the reliability tests: loopback ROS env with a random domain, the shared ROS
test helpers (``tests/ros``: Probe, test backends) on the path, /proc readings.

WHY no conftest.py here: ``tests/ros`` already has a rootless ``conftest`` module that its
tests import by name; a second one would shadow it depending on collection order.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ROS_TESTS = REPO / "tests" / "ros"
for p in (str(ROS_TESTS), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from rosutil import ros_env as _ros_env, start, stop  # noqa: E402,F401 - shared with tests/ros


def ros_env(domain: int) -> dict[str, str]:
    return _ros_env(domain, extra_paths=[HERE])


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A random ROS_DOMAIN_ID (loopback only) for this test and its child processes."""
    domain = random.randint(1, 100)
    for k, v in ros_env(domain).items():
        monkeypatch.setenv(k, v)
    return domain


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS (kB) and Threads of a process, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "Threads"):
            out[key] = int(val.split()[0])
    return out


def node_args(*extra: str, task: str = "blob", task_options: str = "{}", plugins: str = "ros_test_backends") -> list[str]:
    """The node on tiling sensing + a test task (fast, deterministic), reliable QoS."""
    return ["--ros-args", "-r", "image:=/camera/image_raw", "-p", "sensing_backend:=tiling", "-p", "sensing_options:='{\"rows\": 1, \"cols\": 2}'",
            "-p", f"task_module:={task}", "-p", f"task_options:='{task_options}'", "-p", f"plugins:={plugins}",
            "-p", "qos_reliability:=reliable", "-p", "max_regions:=2", "-p", "instruction:=bright blobs",
            "-p", "diagnostics_period:=0.5", "-p", "crop_size:=160", *extra]


def diag(probe, key: str) -> str | None:
    for arr in reversed(probe.got("/diagnostics")):
        for s in arr.status:
            if s.name.startswith("/active_o3"):
                return {kv.key: kv.value for kv in s.values}.get(key)
    return None


def counter(probe, *keys: str) -> int:
    """Sum of integer /diagnostics counters (0 before the first message)."""
    return sum(int(diag(probe, k) or 0) for k in keys)


def publish_each_counted(probe, pub, msgs, *keys: str, timeout: float = 30.0) -> None:
    """Publish one message at a time and wait until the node has counted it under ``keys``.

    WHY one at a time: the node keeps only the latest frame (a newer one replaces a pending one,
    counted as dropped), so a burst on a loaded machine is legitimately partly dropped; a test
    that every message is handled the way it claims must not depend on the machine's speed."""
    base = counter(probe, *keys)
    for i, msg in enumerate(msgs, 1):
        pub.publish(msg)
        probe.wait_for(lambda: counter(probe, *keys) >= base + i, timeout,
                       f"message {i} counted as {' or '.join(keys)}")


def diag_levels(probe) -> list[tuple[int, str]]:
    out = []
    for arr in probe.got("/diagnostics"):
        for s in arr.status:
            if s.name.startswith("/active_o3"):
                lvl = s.level if isinstance(s.level, int) else int.from_bytes(s.level, "little")
                out.append((lvl, s.message))
    return out
