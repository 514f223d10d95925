"""Tiny random SAM / Grounding DINO, built offline ONCE per test session (no downloads)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_gdino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from active_o3_ros.testing.tiny_models import build_tiny_grounding_dino

    return build_tiny_grounding_dino(tmp_path_factory.mktemp("gdino"), seed=0)


@pytest.fixture(scope="session")
def tiny_hf_sam_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from active_o3_ros.testing.tiny_models import build_tiny_hf_sam

    return build_tiny_hf_sam(tmp_path_factory.mktemp("sam_hf"), seed=0)


@pytest.fixture(scope="session")
def tiny_sa_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from active_o3_ros.testing.tiny_models import save_tiny_segment_anything

    return save_tiny_segment_anything(tmp_path_factory.mktemp("sam_sa") / "sam_tiny.safetensors", seed=0)


@pytest.fixture(scope="session", params=["segment_anything", "transformers"])
def sam_weights(request: pytest.FixtureRequest, tiny_sa_checkpoint: Path, tiny_hf_sam_dir: Path) -> tuple[str, str]:
    """``(implementation, path)`` for both SAM implementations, loaded the same way as real weights."""
    return request.param, str(tiny_sa_checkpoint if request.param == "segment_anything" else tiny_hf_sam_dir)
