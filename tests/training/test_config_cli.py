"""Training config (YAML + overrides, validation) and the active-o3-train CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from active_o3_training import cli
from active_o3_training.config import ConfigError, TrainConfig, load_config

from _bagutil import write_bag

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_defaults_are_the_papers():
    t = TrainConfig().trainer
    assert (t.num_generations, t.beta, t.learning_rate, t.weight_decay, t.optim) == (8, 0.04, 1e-6, 0.01, "adamw_torch")
    r = TrainConfig().reward
    assert (r.max_regions, r.overlap_tau, r.min_area_frac, r.max_area_frac) == (3, 0.3, 0.01, 0.5)


MLLM_RECIPES = sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith(("accelerate_", "policy_")))


def test_recipe_list_is_complete():
    assert {"cpu_smoke.yaml", "lvis_qwen7b_8gpu.yaml", "soda_qwen7b_8gpu.yaml", "robot_bag_lora_1gpu.yaml",
            "seg_sam_qwen7b_8gpu.yaml"} <= set(MLLM_RECIPES)


@pytest.mark.parametrize("name", MLLM_RECIPES)
def test_recipes_load_and_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.model.policy


def test_accelerate_configs_are_real_accelerate_files():
    from accelerate.commands.config.config_args import load_config_from_file

    z3 = load_config_from_file(str(CONFIGS / "accelerate_zero3.yaml"))
    assert z3.distributed_type == "DEEPSPEED" and z3.deepspeed_config["zero_stage"] == 3 and z3.num_processes == 8
    fsdp = load_config_from_file(str(CONFIGS / "accelerate_fsdp.yaml"))
    assert fsdp.distributed_type == "FSDP" and fsdp.num_processes == 8
    ddp = load_config_from_file(str(CONFIGS / "accelerate_ddp.yaml"))
    assert ddp.distributed_type == "MULTI_GPU" and ddp.num_processes == 8


def test_overrides_and_errors(tmp_path):
    cfg = load_config(CONFIGS / "cpu_smoke.yaml", ["trainer.learning_rate=3e-5", "model.lora=true",
                                                   "data.classes=person,car", "reward.weights={format: 0.5}"])
    assert cfg.trainer.learning_rate == 3e-5 and cfg.model.lora is True
    assert cfg.data.classes == ["person", "car"] and cfg.reward.weights == {"format": 0.5}
    with pytest.raises(ConfigError, match="unknown key trainer.learnin_rate"):
        load_config(CONFIGS / "cpu_smoke.yaml", ["trainer.learnin_rate=1"])
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        load_config(CONFIGS / "cpu_smoke.yaml", ["trainer.max_steps=abc"])
    with pytest.raises(ConfigError, match="multiple of num_generations"):
        load_config(CONFIGS / "cpu_smoke.yaml", ["trainer.per_device_train_batch_size=3"])
    with pytest.raises(ConfigError, match="model.policy is required"):
        load_config(None, ["data.kind=rosbag", "data.bag=x"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")



@pytest.mark.parametrize("bad,words", [("reward.signal=nope", "signal must be one of"),
                                       ("reward.task_metric=miou", "task_metric must be one of"),
                                       ("reward.weights={bogus: 1}", "unknown reward terms")])
def test_bad_reward_section_is_a_config_error_for_both_trainers(bad, words):
    """Both trainers report the core's own reward checks as a ConfigError of the reward section."""
    from active_o3_training.policy_train import PolicyTrainConfig

    with pytest.raises(ConfigError, match=f"reward: .*{words}"):
        load_config(None, ["data.kind=rosbag", "data.bag=x", "model.policy=p", bad]).validate()
    with pytest.raises(ConfigError, match=f"reward: .*{words}"):
        load_config(None, ["data.bag=x", bad], root=PolicyTrainConfig).validate()


def test_cli_help_lists_every_key(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["grpo", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "trainer.num_generations = 8" in out and "data.subset = 'all'" in out


def test_cli_export_import_and_dataset(tmp_path, capsys):
    S0 = 1_700_000_000 * 10**9
    rng = np.random.default_rng(1)
    imgs = [(S0 + k * 10**8, rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)) for k in range(3)]
    labels = [(s, [[1, 2, 11, 12]], ["cup"], "cup") for s, _ in imgs]
    bag = write_bag(tmp_path / "bag", imgs, labels)
    assert cli.main(["export-bag", str(bag), str(tmp_path / "coco")]) == 0
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert len(data["images"]) == 3
    assert cli.main(["import-coco", str(tmp_path / "coco" / "annotations.json"), str(tmp_path / "coco"),
                     str(tmp_path / "bag2")]) == 0
    assert cli.main(["dataset", "--set", "data.kind=rosbag", "--set", f"data.bag={tmp_path / 'bag2'}",
                     "--set", f"data.cache_dir={tmp_path / 'c'}", "--set", "model.policy=unused"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["samples"] == 3 and summary["gt_boxes"] == 3
    # clear one-line errors, exit status 2
    assert cli.main(["import-coco", str(tmp_path / "nope.json"), str(tmp_path), str(tmp_path / "b3")]) == 2
    assert "annotation file not found" in capsys.readouterr().err
    assert cli.main(["grpo", "--set", "trainer.bogus=1"]) == 2


def test_mllm_task_reward_crops_like_the_node():
    """No train/serve skew: the task term's ResizeCrop and merge equal the node's defaults."""
    from active_o3_ros.core.config import PerceptionConfig
    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import task_pipeline

    served = PerceptionConfig.from_flat({}).pipeline
    data = ["data.kind=rosbag", "data.bag=x", "model.policy=x"]
    trained = task_pipeline(load_config(None, data))
    assert trained.crop == served.crop and trained.crop.context == 1.3
    assert trained.merge == served.merge
    assert task_pipeline(load_config(None, [*data, "reward.crop_context=1.0"])).crop.context == 1.0
