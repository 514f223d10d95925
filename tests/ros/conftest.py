"""Shared helpers for the ROS tests: loopback-only DDS with a random domain, the test
backends on the path, and subprocess launchers for the real entry points."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # ros_test_backends importable here and (via PYTHONPATH) in children


def ros_env(domain: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", ROS_DOMAIN_ID=str(domain), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")]),
               PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    profile = REPO / "config" / "fastdds_shm.xml"
    if profile.is_file():
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    return env


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A random ROS_DOMAIN_ID for this test, exported to this process and its children."""
    domain = random.randint(1, 100)
    for k, v in ros_env(domain).items():
        monkeypatch.setenv(k, v)
    return domain


def start(module: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``python -m module args`` as a real separate process, output to ``log``."""
    fh = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=fh,
                            stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT: graceful
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(5)
    return proc.returncode
