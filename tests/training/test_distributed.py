"""Distributed GRPO on the engines the recipes name, run here on 2 CPU processes.

``accelerate launch`` with the repo's own accelerate configs (``--num_processes 2
--mixed_precision no`` for CPU) runs the trainer of ``active-o3-train grpo`` (TRL
GRPOTrainer, dual reward with a frozen task model) under DDP and DeepSpeed ZeRO-3.  The
worker (``dist_worker.py``) saves through :func:`save_policy` and separately gathers the
trained weights by the engine's own collective.  The test reloads the saved directory with
``from_pretrained`` and compares every tensor with that gathered state, and checks the
weights moved from the initial ones by gradients (weight decay off).

FSDP: accelerate shards with FSDP only on GPU-class devices; on CPU processes it would train
plain DDP without saying so.  The trainer refuses that launch with a clear message (tested).

The tiny random Qwen2.5-VL cannot produce a parseable answer, so every reward would tie and
GRPO would have no signal; it is warm-started for a few seconds on well-formed answers
(the learning check's ``warm_start``) so the groups differ and gradients flow.
"""
from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "training" / "configs"
WORKER = Path(__file__).resolve().parent / "dist_worker.py"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A warm-started tiny Qwen2.5-VL and a COCO-format set of 8 frames (a square in the top left)."""
    import cv2

    from active_o3_training.learning_check import make_dataset, warm_start

    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    tmp = tmp_path_factory.mktemp("dist")
    base = build_tiny_qwen(tmp / "tiny_qwen")
    policy = warm_start(base, tmp / "warm", make_dataset(8, 0, tmp / "warm_frames"), steps=60, seed=0)
    rng = np.random.default_rng(1)
    images, anns = [], []
    for i in range(8):
        img = rng.integers(0, 50, (112, 112, 3), dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(4, 32, 2))
        img[y:y + 20, x:x + 20] = 255
        cv2.imwrite(str(tmp / f"{i}.png"), img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 112, "height": 112})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [x, y, 20, 20], "area": 400,
                     "iscrowd": 0})
    ann = tmp / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "square"}]}))
    return {"tmp": tmp, "policy": policy, "ann": ann}


def _launch(setup, config: str, name: str, timeout: int = 600, extra: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, Path]:
    out = setup["tmp"] / name
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "MASTER_PORT": str(random.randint(20000, 40000))}
    sets = [f"data.ann_file={setup['ann']}", f"data.image_dir={setup['tmp']}", f"model.policy={setup['policy']}",
            "model.task_options={max_new_tokens: 8, score_mode: constant}", "reward.crop_size=112",
            "reward.max_regions=1", f"trainer.output_dir={out}", "trainer.num_generations=4",
            "trainer.per_device_train_batch_size=4", "trainer.max_steps=2", "trainer.max_completion_length=48",
            "trainer.learning_rate=1e-3", "trainer.weight_decay=0", "trainer.report_to=none", "trainer.device=cpu",
            "trainer.save_steps=100000", *extra]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIGS / config),
           "--num_processes", "2", "--mixed_precision", "no", "--main_process_port", env["MASTER_PORT"],
           str(WORKER), str(out)]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, out


def _check_saved_equals_gathered(setup, out: Path) -> dict:
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration as Qwen

    run = json.loads((out / "run.json").read_text())
    gathered = load_file(str(out / "gathered.safetensors"))
    reloaded = Qwen.from_pretrained(run["final"], dtype=torch.float32).state_dict()
    initial = Qwen.from_pretrained(str(setup["policy"]), dtype=torch.float32).state_dict()
    assert set(reloaded) <= set(gathered)
    assert all("rotary" in k for k in set(gathered) - set(reloaded)), set(gathered) - set(reloaded)
    for k, v in reloaded.items():
        assert torch.equal(v, gathered[k].to(v.dtype)), f"{k}: saved weights differ from the gathered trained state"
    moved = [k for k in reloaded if not torch.equal(reloaded[k], initial[k])]
    assert len(moved) > len(reloaded) // 2, f"only {len(moved)} of {len(reloaded)} tensors moved"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert rows and any(float(r["reward_std"]) > 0 for r in rows), "no reward variance: GRPO had no signal"
    assert "rewards/task/mean" in rows[0]
    return run


def test_ddp_two_processes_saves_the_trained_weights(setup):
    proc, out = _launch(setup, "accelerate_ddp.yaml", "ddp")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = _check_saved_equals_gathered(setup, out)
    assert run["num_processes"] == 2 and run["distributed_type"].endswith("MULTI_CPU"), run


def test_deepspeed_zero3_two_processes_gathers_shards_into_one_directory(setup):
    pytest.importorskip("deepspeed")
    proc, out = _launch(setup, "accelerate_zero3.yaml", "zero3")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = _check_saved_equals_gathered(setup, out)
    assert run["num_processes"] == 2 and run["distributed_type"].endswith("DEEPSPEED"), run
    assert run["zero3_params"] == run["params"] - 4, run   # every weight partitioned (4 rotary buffers are not)
    assert run["task_zero3_params"] == 0, "the frozen task model must not be partitioned by ZeRO-3"


def test_deepspeed_zero3_lora_is_merged_from_the_gathered_adapters(setup):
    """LoRA under ZeRO-3: the saved directory is the initial weights plus B @ A * alpha / r of
    the gathered adapters, and the frozen base weights are untouched."""
    pytest.importorskip("deepspeed")
    import torch
    from safetensors.torch import load_file
    from transformers import Qwen2_5_VLForConditionalGeneration as Qwen

    proc, out = _launch(setup, "accelerate_zero3.yaml", "zero3_lora",
                        extra=("model.lora=true", "model.lora_r=4", "model.lora_alpha=8", "trainer.learning_rate=1e-2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["num_processes"] == 2 and run["zero3_params"] > 0, run
    gathered = load_file(str(out / "gathered.safetensors"))
    saved = Qwen.from_pretrained(run["final"], dtype=torch.float32).state_dict()
    initial = Qwen.from_pretrained(str(setup["policy"]), dtype=torch.float32).state_dict()
    assert not any("lora" in k for k in saved)
    lora_a = {k.replace(".lora_A.default.weight", ""): v for k, v in gathered.items() if k.endswith("lora_A.default.weight")}
    assert lora_a, sorted(gathered)[:5]
    checked = 0
    for prefix, a in lora_a.items():
        b = gathered[prefix + ".lora_B.default.weight"]
        key = prefix.replace("base_model.model.", "", 1) + ".weight"
        expected = initial[key] + (b @ a) * (8 / 4)
        assert torch.allclose(saved[key], expected, atol=1e-6), key
        checked += int(not torch.equal(saved[key], initial[key]))
    assert checked, "no adapter moved its layer"
    untouched = [k for k in saved if "proj" not in k and "embed" not in k]
    assert untouched and all(torch.equal(saved[k], initial[k]) for k in untouched)


def test_fsdp_on_cpu_is_refused_not_silently_ddp(setup):
    proc, out = _launch(setup, "accelerate_fsdp.yaml", "fsdp", timeout=300)
    assert proc.returncode != 0
    assert "accelerate shards with FSDP only on GPU-class devices" in proc.stdout + proc.stderr
    assert not (out / "final").exists()
