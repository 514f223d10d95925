"""TRL GRPO with colocated vLLM generation (``use_vllm=True``, ``vllm_mode=colocate``) on CPU,
through the project's trainer and CLI: the tiny random Qwen2.5-VL trains 2 steps on a bag
written here, TRL generates the completions with the in-process vLLM engine and copies the
policy weights into it before generating; the saved checkpoint reloads in both backends.

Each run is a separate process (the CLI, or a small driver for the weight-sync check): the
engine TRL builds joins a torch.distributed group of its own, which must not meet the engines
of other tests in the pytest process.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
pytest.importorskip("vllm", reason="vllm is not importable here: the vLLM tests run in the second "
                    "environment (scripts/test_vllm.sh)")

import torch  # noqa: E402
from _bagutil import robot_bag  # noqa: E402
from fixtures_models import tiny_qwen_dir  # noqa: E402,F401  (session fixture)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _overrides(tmp_path: Path, policy: Path) -> list[str]:
    return [f"data.bag={robot_bag(tmp_path / 'robot_bag')}", f"data.cache_dir={tmp_path / 'cache'}",
            f"model.policy={policy}", f"trainer.output_dir={tmp_path / 'run'}", "trainer.max_steps=2",
            "trainer.max_completion_length=24", "trainer.report_to=none",
            "trainer.use_vllm=true", "trainer.vllm_mode=colocate"]


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
                VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CPU_KVCACHE_SPACE="1")


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, f"{cmd[0]} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}"
    return proc


def _state(path) -> dict[str, torch.Tensor]:
    from transformers import Qwen2_5_VLForConditionalGeneration as Qwen

    return {k: v.detach().clone() for k, v in Qwen.from_pretrained(str(path), dtype=torch.float32).state_dict().items()}


def test_cli_grpo_with_colocated_vllm_trains_and_saves_a_loadable_checkpoint(tiny_qwen_dir, tmp_path):  # noqa: F811
    cli = Path(sys.executable).with_name("active-o3-train")
    cmd = [str(cli), "grpo", "--config", str(ROOT / "training/configs/cpu_smoke.yaml")]
    for kv in _overrides(tmp_path, tiny_qwen_dir):
        cmd += ["--set", kv]
    proc = _run(cmd, tmp_path)
    final = tmp_path / "run" / "final"
    assert f"policy saved to {final}" in proc.stdout

    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == 2 and [int(r["step"]) for r in rows] == [1, 2]
    # TRL logs the vLLM-vs-policy sampling metrics only when vLLM generated the completions
    assert all("sampling/importance_sampling_ratio/mean" in r for r in rows)
    assert all(math.isfinite(float(r["loss"])) and float(r["completions/mean_length"]) > 0 for r in rows)

    initial, reloaded = _state(tiny_qwen_dir), _state(final)
    assert set(reloaded) == set(initial)
    moved = [k for k in reloaded if not torch.equal(reloaded[k], initial[k])]
    assert moved, "no weight changed in 2 GRPO steps"

    # the checkpoint is a model directory both backends load (transformers, then vLLM)
    from active_o3_ros.backends.qwen_vl import QwenVLTask
    from active_o3_ros.backends.vllm_qwen import VLLMQwenTask

    crop = np.zeros((112, 112, 3), np.uint8)
    ref = QwenVLTask(model=str(final), dtype="float32", max_new_tokens=8)
    eng = VLLMQwenTask(model=str(final), dtype="float32", max_new_tokens=8, enforce_eager=True, max_model_len=2048,
                       kv_cache_memory_bytes=1 << 30)
    try:
        assert [o.text for o in eng.detect([crop], ["box"])] == [o.text for o in ref.detect([crop], ["box"])]
    finally:
        eng.close()
        ref.close()


def test_weight_sync_reaches_the_colocated_vllm_engine(tiny_qwen_dir, tmp_path):  # noqa: F811
    """TRL's colocate sync (``sync_weights``) must change what vLLM computes: with the CPU
    backend's packed weights it failed ('Parameter' object has no attribute 'weight_loader')."""
    out = tmp_path / "sync.json"
    _run([sys.executable, str(Path(__file__).with_name("_grpo_vllm_sync.py")), str(out),
          *_overrides(tmp_path, tiny_qwen_dir)], tmp_path)
    res = json.loads(out.read_text())
    assert res["compared"] >= 4, res  # o_proj/down_proj of every layer + lm_head
    assert res["equal_before"] == res["compared"], res
    assert res["equal_after"] == res["compared"], res  # vLLM holds the perturbed policy weights
    assert res["changed_after"] == res["compared"], res
    assert res["logprobs_before"] != res["logprobs_after"], res  # and computes with them
