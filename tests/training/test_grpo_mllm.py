"""TRL GRPOTrainer end to end on CPU: the tiny random Qwen2.5-VL trains a few steps on a
dataset built from a real bag written here; per-term rewards logged; the checkpoint is a
model directory that the pipeline loads."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from _bagutil import write_bag

MS = 1_000_000
S0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))


def _robot_bag(path):
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for k in range(4):
        img = rng.integers(0, 60, (112, 168, 3), dtype=np.uint8)
        x = 20 + 30 * k
        img[40:60, x:x + 20] = 250
        imgs.append((S0 + k * 100 * MS, img))
        labels.append((S0 + k * 100 * MS + 2 * MS, [[x, 40, x + 20, 60]], ["box"], "box"))
    return write_bag(path, imgs, labels)


@pytest.mark.slow
def test_tiny_qwen_grpo_on_bag_saves_loadable_checkpoint(tiny_qwen, tmp_path):
    from active_o3_ros.backends.qwen_vl import QwenVLSensing, QwenVLTask
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.geometry import ResizeCropConfig
    from active_o3_ros.core.pipeline import ActivePerception
    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import build_trainer, save_policy

    bag = _robot_bag(tmp_path / "robot_bag")
    cfg = load_config(None, [
        "data.kind=rosbag", f"data.bag={bag}", f"data.cache_dir={tmp_path / 'cache'}",
        f"model.policy={tiny_qwen}", "model.task_options={max_new_tokens: 8, score_mode: constant}",
        f"trainer.output_dir={tmp_path / 'run'}", "trainer.num_generations=4",
        "trainer.per_device_train_batch_size=4", "trainer.max_steps=2", "trainer.max_completion_length=24",
        "trainer.learning_rate=1e-4", "trainer.save_steps=1000", "trainer.report_to=none",
        "reward.crop_size=112",
    ])
    assert cfg.reward.signal == "both" and cfg.trainer.beta == 0.04
    trainer, processor, rewards = build_trainer(cfg)
    try:
        trainer.train()
        final = save_policy(trainer, processor, tmp_path / "run" / "final")
    finally:
        rewards.task_model.close()
    # the checkpoint holds exactly the trained weights, and training moved them
    from transformers import Qwen2_5_VLForConditionalGeneration as Qwen

    def state(model) -> dict:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}

    reloaded = state(Qwen.from_pretrained(str(final), dtype=torch.float32))
    initial = state(Qwen.from_pretrained(str(tiny_qwen), dtype=torch.float32))
    trained = state(trainer.accelerator.unwrap_model(trainer.model))
    assert set(reloaded) == set(trained)
    for k, v in reloaded.items():
        assert torch.equal(v, trained[k].to(v.dtype)), f"{k}: checkpoint differs from the trainer's weights"
    moved = [k for k in reloaded if not torch.equal(reloaded[k], initial[k])]
    assert moved, "no weight changed in 2 GRPO steps"
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) >= 2
    for term in ("format", "non_overlap", "area", "coverage", "task", "parse_failure"):
        assert f"rewards/{term}/mean" in rows[0], term
    assert all(math.isfinite(float(r["loss"])) for r in rows if r.get("loss"))
    assert "kl" in rows[0] and "completions/mean_length" in rows[0]
    # the checkpoint is a plain HF model dir the pipeline loads through the same code path
    sensing = QwenVLSensing(model=str(final), max_new_tokens=16)
    task = QwenVLTask(model=str(tiny_qwen), max_new_tokens=8)
    pipe = ActivePerception(sensing, task, PipelineConfig(crop=ResizeCropConfig(112)))
    res = pipe(np.zeros((112, 168, 3), np.uint8), "box")
    assert res.model_calls >= 1 and res.image_width == 168
    pipe.close()
