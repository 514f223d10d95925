"""Shared model fixtures: the tiny random Qwen2.5-VL is built ONCE per test session.

Import the fixture into a test module with ``from fixtures_models import tiny_qwen_dir``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding a tiny random Qwen2.5-VL (built offline, a few MB)."""
    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"), seed=0)
