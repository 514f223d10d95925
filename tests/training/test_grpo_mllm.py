"""TRL GRPOTrainer end to end on CPU: the tiny random Qwen2.5-VL trains a few steps on a
dataset built from a real bag written here; per-term rewards logged; the checkpoint is a
model directory that the pipeline loads."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from _bagutil import robot_bag, write_bag

MS = 1_000_000
S0 = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory):
    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))


@pytest.mark.slow
def test_tiny_qwen_grpo_on_bag_saves_loadable_checkpoint(tiny_qwen, tmp_path):
    from active_o3_ros.backends.qwen_vl import QwenVLSensing, QwenVLTask
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.geometry import ResizeCropConfig
    from active_o3_ros.core.pipeline import ActivePerception
    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import build_trainer, save_policy

    bag = robot_bag(tmp_path / "robot_bag")
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


@pytest.mark.slow
def test_robot_lora_recipe_runs_one_step_at_tiny_size(tiny_qwen, tmp_path):
    """training/configs/robot_bag_lora_1gpu.yaml as written (one process, LoRA, teacher labels
    topic, dedup), with only the model, the device and the sizes made tiny: one GRPO step, and
    the saved directory is the LoRA-merged model (no adapter keys) that the pipeline loads."""
    from pathlib import Path

    from active_o3_ros.backends.qwen_vl import QwenVLTask
    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import train

    recipe = Path(__file__).resolve().parents[2] / "training" / "configs" / "robot_bag_lora_1gpu.yaml"
    stamps = [S0 + k * 600 * MS for k in range(4)]  # 0.6 s apart: above the recipe's min_interval_s
    images = [(t, np.full((112, 168, 3), 40 * k, np.uint8)) for k, t in enumerate(stamps)]
    labels = [(t + 2 * MS, [[20 + 30 * k, 40, 40 + 30 * k, 60]], ["text"], "text") for k, t in enumerate(stamps)]
    bag = write_bag(tmp_path / "bag", images, labels, labels_topic="/active_o3/teacher")
    cfg = load_config(recipe, [
        f"data.bag={bag}", f"data.cache_dir={tmp_path / 'cache'}", f"model.policy={tiny_qwen}",
        "model.dtype=float32", "model.task_options={max_new_tokens: 8, score_mode: constant}",
        "model.lora_target_modules=[q_proj, v_proj]", f"trainer.output_dir={tmp_path / 'run'}",
        "trainer.device=cpu", "trainer.num_generations=4", "trainer.per_device_train_batch_size=4",
        "trainer.max_steps=1", "trainer.max_completion_length=24", "trainer.report_to=none",
        "reward.crop_size=112"])
    assert cfg.model.lora and cfg.data.labels_topic == "/active_o3/teacher" and cfg.data.dedup_threshold > 0
    final = train(cfg)
    from safetensors import safe_open

    keys = [k for f in Path(final).glob("*.safetensors") for k in safe_open(str(f), "pt").keys()]
    assert keys and not any("lora" in k for k in keys)
    task = QwenVLTask(model=str(final), max_new_tokens=4, score_mode="constant")
    try:
        assert len(task.detect([np.zeros((56, 56, 3), np.uint8)], ["text"])) == 1
    finally:
        task.close()
