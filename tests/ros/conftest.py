"""Shared helpers for the ROS tests: loopback-only DDS with a random domain, the test
backends on the path, and subprocess launchers for the real entry points."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))  # ros_test_backends importable here and (via PYTHONPATH) in children

from rosutil import ros_env  # noqa: E402


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A random ROS_DOMAIN_ID for this test, exported to this process and its children."""
    domain = random.randint(1, 100)
    for k, v in ros_env(domain).items():
        monkeypatch.setenv(k, v)
    return domain


