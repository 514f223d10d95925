"""GRPO for the multimodal sensing policy (Qwen2.5-VL) with TRL's ``GRPOTrainer``.

Nothing about GRPO is hand-written here: TRL samples G completions per prompt, computes
group-relative advantages, the clipped objective and the KL to the reference model.  This
module only wires our parts in:

* data     — ``active_o3_training.data`` (COCO/LVIS/SODA or a robot's bag) as a
             ``datasets.Dataset`` with a lazily decoded ``image`` column and chat prompts;
* rewards  — one TRL reward function per term of ``active_o3_ros.core.rewards``
             (:mod:`active_o3_training.rewards_trl`), weights as ``GRPOConfig.reward_weights``;
* task     — the FROZEN task module (by default a separate copy of the initial policy
             weights, as in the paper) runs on the proposed regions through the pipeline;
* output   — a Hugging Face model directory (LoRA merged) with the processor files, which
             ``QwenVLSensing(model=<dir>)`` and the node (``model:=<dir>``) load directly.

Metrics: TRL logs ``rewards/<term>/mean``, ``kl``, ``completions/mean_length`` and our
``rewards/parse_failure/mean`` (weight 0); :class:`CsvLogger` writes them to
``<output_dir>/metrics.csv``; TensorBoard receives them when installed.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from active_o3_ros.backends.hf import torch_dtype
from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig
from active_o3_training.config import ConfigError, TrainConfig
from active_o3_training.rewards_trl import InputSpace, TrlRewards

log = logging.getLogger(__name__)


# -- pieces -------------------------------------------------------------------------------
def build_dataset(cfg: TrainConfig):
    """The configured data source as a ``datasets.Dataset`` (see ``training/data``)."""
    from active_o3_ros.core.prompts import PromptSet
    from active_o3_training.data import coco, rosbag

    d, k = cfg.data, cfg.reward.max_regions
    if d.kind == "rosbag":
        bcfg = rosbag.BagDatasetConfig(camera_topic=d.camera_topic, labels_topic=d.labels_topic,
                                       tolerance_s=d.tolerance_s, min_interval_s=d.min_interval_s,
                                       dedup_threshold=d.dedup_threshold, instruction=d.instruction,
                                       per_class=d.per_class, max_samples=d.max_samples)
        return rosbag.bag_dataset([d.bag, d.labels_bag] if d.labels_bag else d.bag, d.cache_dir, bcfg, PromptSet(), k)
    sub = coco.CocoSubsetConfig(subset=d.subset, small_area=d.small_area, dense_min_instances=d.dense_min_instances,
                                classes=tuple(d.classes), max_samples=d.max_samples,
                                with_masks=cfg.reward.task_metric == "segmentation")
    if d.kind == "soda_a":
        data = coco.soda_a_to_coco(d.ann_file, d.image_dir)
        return coco.records_to_dataset(coco.coco_records(data, d.image_dir, sub, PromptSet(), k, "soda_a"))
    return coco.coco_dataset(d.ann_file, d.image_dir, sub, PromptSet(), k, d.kind)


def resolve_device(cfg: TrainConfig) -> str:
    if cfg.trainer.device != "auto":
        return cfg.trainer.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"




def load_policy(cfg: TrainConfig, device: str):
    """The trainable policy model and its processor (image-only processor on CPU installs)."""
    from transformers import AutoModelForImageTextToText

    from active_o3_ros.backends.qwen_vl import load_processor

    m = cfg.model
    kw: dict[str, Any] = {"dtype": torch_dtype(m.dtype, device, auto_cuda="bfloat16"), "trust_remote_code": m.trust_remote_code}
    if m.attn_implementation:
        kw["attn_implementation"] = m.attn_implementation
    try:
        model = AutoModelForImageTextToText.from_pretrained(m.policy, **kw)
    except OSError as exc:
        raise FileNotFoundError(f"cannot load the policy model {m.policy!r}: {exc}") from exc
    processor = load_processor(m.policy, m.trust_remote_code, m.min_pixels or None, m.max_pixels or None)
    return model, processor


def build_task_model(cfg: TrainConfig, device: str):
    """The frozen task module, or None for heuristic-only training."""
    if cfg.reward.signal == "heuristic" or cfg.model.task_backend == "none":
        return None
    from active_o3_ros.backends.base import build_task

    m = cfg.model
    task_device = m.task_device or device
    opts = dict(m.task_options)
    task = build_task(m.task_backend, model=m.task_model or m.policy, device=task_device,
                      dtype=m.dtype, trust_remote_code=m.trust_remote_code, **opts)
    if cfg.reward.task_metric == "segmentation" and not getattr(task, "produces_masks", False):
        task.close()
        raise ConfigError(f"reward.task_metric=segmentation needs a task module that returns masks "
                          f"(e.g. model.task_backend=sam); {m.task_backend!r} returns boxes only")
    return task


def build_rewards(cfg: TrainConfig, processor: Any, task_model: Any) -> TrlRewards:
    r = cfg.reward
    rcfg = r.reward_config()
    return TrlRewards(rcfg, InputSpace.from_processor(processor), task_model, task_pipeline(cfg))


def task_pipeline(cfg: TrainConfig) -> PipelineConfig:
    """The pipeline settings the task term runs: the node's crop (size, zoom, context) and merge;
    no full-frame fallback (proposing nothing must not earn a free full-frame pass)."""
    r = cfg.reward
    return PipelineConfig(max_regions=r.max_regions, crop=ResizeCropConfig(r.crop_size, r.max_zoom, r.crop_context),
                          fallback_full_frame=False)


def grpo_args(cfg: TrainConfig, device: str, reward_weights: list[float]):
    """TRL ``GRPOConfig`` with the paper's defaults from :class:`TrainerSection`."""
    from trl import GRPOConfig

    t = cfg.trainer
    bf16 = device == "cuda" if t.bf16 == "auto" else str(t.bf16).lower() == "true"
    if t.report_to == "auto":
        report_to = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    else:
        report_to = [] if t.report_to in ("", "none") else [s.strip() for s in t.report_to.split(",")]
    kw: dict[str, Any] = dict(
        output_dir=t.output_dir, num_generations=t.num_generations, beta=t.beta, learning_rate=t.learning_rate,
        weight_decay=t.weight_decay, optim=t.optim, per_device_train_batch_size=t.per_device_train_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps, max_completion_length=t.max_completion_length, temperature=t.temperature,
        logging_steps=t.logging_steps, save_steps=t.save_steps, save_total_limit=t.save_total_limit, seed=t.seed,
        bf16=bf16, use_cpu=device == "cpu", use_vllm=t.use_vllm, report_to=report_to,
        reward_weights=reward_weights, log_completions=t.log_completions, remove_unused_columns=False,
        dataloader_num_workers=t.dataloader_num_workers,
    )
    if cfg.model.gradient_checkpointing:
        kw["gradient_checkpointing"] = True
    if t.use_vllm:
        kw.update(vllm_mode=t.vllm_mode, vllm_gpu_memory_utilization=t.vllm_gpu_memory_utilization)
    if device == "cpu":
        _cpu_engine(kw)
    kw.update(t.extra)
    return GRPOConfig(**kw)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true", "yes")


def _cpu_engine(kw: dict[str, Any]) -> None:
    """Make ``accelerate launch`` on CPU processes run the engine its config names.

    * DDP (any multi-process launch): ``use_cpu`` makes accelerate join the processes with
      gloo (``MULTI_CPU``).
    * DeepSpeed: accelerate 1.15 finds no collective backend on a CPU and reports ONE process
      to the trainer, while DeepSpeed itself sees all of them (its batch-size check then
      fails).  Creating the process state with gloo first and letting the trainer use it
      (``use_configured_state``) gives the trainer the true world size; the DeepSpeed config
      file of the accelerate config goes to ``GRPOConfig.deepspeed`` so that TRL's reference
      model is built under ZeRO-3 as well.
    * FSDP: accelerate enables FSDP only on GPU-class devices; on CPU it would silently
      train unsharded DDP.  Refused with a clear message instead.
    """
    if _env_flag("ACCELERATE_USE_FSDP"):
        raise ConfigError("FSDP was requested (accelerate config) but the trainer runs on CPU: accelerate "
                          "shards with FSDP only on GPU-class devices and would silently fall back to unsharded "
                          "DDP. Use a DDP or DeepSpeed config on CPU, or trainer.device=cuda")
    if _env_flag("ACCELERATE_USE_DEEPSPEED") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState(backend="gloo")
        kw.update(use_cpu=False, accelerator_config={"use_configured_state": True})
        ds_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "")
        if ds_file:
            kw["deepspeed"] = ds_file


def _vllm_cpu_plain_weights() -> None:
    """Keep vLLM's Linear/embedding weights as plain parameters on CPU (colocated vLLM only).

    WHY: TRL's colocate mode copies the policy into the in-process vLLM model before each
    generation (``model.load_weights``, which calls each parameter's ``weight_loader``).  vLLM's
    CPU backend repacks every 2-D weight after loading (oneDNN / AMX kernels) and replaces the
    parameter with an empty one, so the first sync fails with "'Parameter' object has no
    attribute 'weight_loader'" (and the embedding path, which keeps its parameter, would keep
    computing with the stale packed copy).  With this, every 2-D weight computes with
    ``torch.nn.functional.linear`` on the live parameter, so synced weights take effect; other
    layers (conv/MoE) keep vLLM's own dispatch.  Must run before TRL builds the ``LLM``.
    """
    import torch
    from vllm.model_executor.layers import utils as vllm_layer_utils

    original = vllm_layer_utils.dispatch_cpu_unquantized_gemm
    if getattr(original, "_keeps_plain_weights", False):
        return

    def dispatch_keeping_weights(layer: Any, remove_weight: bool) -> None:
        if layer.weight.ndim != 2 or layer.weight.is_meta:
            return original(layer, remove_weight)
        layer.cpu_linear = lambda x, weight, bias: torch.nn.functional.linear(x, weight, bias)

    dispatch_keeping_weights._keeps_plain_weights = True  # type: ignore[attr-defined]
    vllm_layer_utils.dispatch_cpu_unquantized_gemm = dispatch_keeping_weights


def lora_config(cfg: TrainConfig):
    if not cfg.model.lora:
        return None
    from peft import LoraConfig

    m = cfg.model
    return LoraConfig(r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=list(m.lora_target_modules), task_type="CAUSAL_LM")


def _csv_logger_class():
    from transformers import TrainerCallback

    class CsvLogger(TrainerCallback):
        """Appends every log event (rewards per term, kl, lengths, loss) to ``metrics.csv``
        and prints a one-line summary — readable without TensorBoard."""

        KEYS = ("loss", "reward", "reward_std", "kl", "completions/mean_length", "rewards/format/mean",
                "rewards/non_overlap/mean", "rewards/area/mean", "rewards/coverage/mean", "rewards/task/mean",
                "rewards/parse_failure/mean")

        def __init__(self, path: Path) -> None:
            self.path = path
            self.rows: list[dict[str, Any]] = []
            self.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "reward" not in logs and "loss" not in logs:
                return
            row = {"step": state.global_step, "time_s": round(time.perf_counter() - self.t0, 3), **logs}
            self.rows.append(row)
            cols = ["step", "time_s"] + sorted({k for r in self.rows for k in r} - {"step", "time_s"})
            with self.path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                w.writerows(self.rows)
            shown = " ".join(f"{k.split('/')[-2] if '/' in k else k}={logs[k]:.3g}" for k in self.KEYS
                             if isinstance(logs.get(k), (int, float)))
            print(f"[grpo] step {state.global_step}: {shown}", flush=True)

    return CsvLogger


def save_processor_files(processor: Any, out_dir: str | Path) -> None:
    """Tokenizer + image processor + ``processor_config.json``, the layout ``load_processor``
    reads.  Why not ``processor.save_pretrained``: the image-only processor (CPU installs
    without torchvision) has no video processor, which upstream saving requires."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    if not (out / "processor_config.json").exists():
        (out / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}))


def _saveable(processor: Any) -> Any:
    """Make the Trainer's checkpoint saving use :func:`save_processor_files` when needed."""
    if getattr(processor, "video_processor", None) is None and hasattr(processor, "image_processor"):
        processor.save_pretrained = lambda save_directory, *a, **k: save_processor_files(processor, save_directory)
    return processor


def save_policy(trainer: Any, processor: Any, out_dir: str | Path, policy: str = "") -> Path:
    """Save an HF model directory the pipeline loads: LoRA merged, processor files alongside.

    Collective under a distributed engine (every rank calls it).  Sharded engines (FSDP,
    DeepSpeed ZeRO-3) hold only a slice of each weight per rank, so the full state is first
    gathered by the accelerator (``get_state_dict``; ZeRO-3 needs ``zero3_save_16bit_model``)
    and rank 0 writes it; saving the unwrapped module there would write rank 0's shards.
    ``policy``: the initial weights, needed to merge LoRA adapters from a gathered state.
    """
    from accelerate.utils import DistributedType

    out = Path(out_dir)
    acc = trainer.accelerator
    sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    unwrapped = acc.unwrap_model(trainer.model)
    state = acc.get_state_dict(getattr(trainer, "model_wrapped", None) or trainer.model) if sharded else None
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if state is None:
            if hasattr(unwrapped, "merge_and_unload"):
                unwrapped = unwrapped.merge_and_unload()
            unwrapped.save_pretrained(out, safe_serialization=True)
        elif hasattr(unwrapped, "merge_and_unload"):
            _merged_from_state(unwrapped, state, policy).save_pretrained(out, safe_serialization=True)
        else:
            unwrapped.save_pretrained(out, state_dict=state, safe_serialization=True)
        save_processor_files(processor, out)
    acc.wait_for_everyone()
    return out


@contextmanager
def _without_zero3_init():
    """Load a model on this rank alone while a ZeRO-3 run is active.

    WHY: with ZeRO-3 on, transformers' ``from_pretrained`` builds the model inside
    ``deepspeed.zero.Init``, a collective that partitions every weight over all ranks; called on
    rank 0 alone it waits forever for the others (found by the distributed LoRA test).  The
    trainer's DeepSpeed config stays registered; only this load sees it unset."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = getattr(hf_deepspeed, "_hf_deepspeed_config_weak_ref", None)  # no public getter
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = ref


def _merged_from_state(peft_model: Any, state: dict[str, Any], policy: str) -> Any:
    """A CPU copy of the initial policy with the gathered LoRA state loaded, then merged."""
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    if not policy:
        raise ValueError("save_policy needs the initial policy path to merge LoRA weights gathered from shards")
    with _without_zero3_init():
        base = AutoModelForImageTextToText.from_pretrained(policy, dtype=next(iter(state.values())).dtype)
    model = get_peft_model(base, peft_model.peft_config["default"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "lora_" in k]:
        raise RuntimeError(f"gathered LoRA state does not fit the policy: missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]}")
    return model.merge_and_unload()


# -- the whole run --------------------------------------------------------------------------
def build_trainer(cfg: TrainConfig, train_dataset: Any = None, callbacks: list[Any] | None = None):
    """Everything wired; returns ``(trainer, processor, rewards)`` (tests and notebooks use it)."""
    from trl import GRPOTrainer

    cfg.validate()
    device = resolve_device(cfg)
    dataset = train_dataset if train_dataset is not None else build_dataset(cfg)
    model, processor = load_policy(cfg, device)
    processor = _saveable(processor)
    task = build_task_model(cfg, device)
    rewards = build_rewards(cfg, processor, task)
    funcs, weights = rewards.functions()
    args = grpo_args(cfg, device, weights)
    if cfg.trainer.use_vllm and cfg.trainer.vllm_mode == "colocate" and device == "cpu":
        _vllm_cpu_plain_weights()
    Path(cfg.trainer.output_dir).mkdir(parents=True, exist_ok=True)
    (Path(cfg.trainer.output_dir) / "train_config.json").write_text(
        json.dumps(__import__("dataclasses").asdict(cfg), indent=1, default=str))
    csv_logger = _csv_logger_class()(Path(cfg.trainer.output_dir) / "metrics.csv")
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=processor, callbacks=[csv_logger, *(callbacks or [])],
                          peft_config=lora_config(cfg))
    trainer.csv_logger = csv_logger
    return trainer, processor, rewards


def train(cfg: TrainConfig, train_dataset: Any = None) -> Path:
    """Train and save ``<output_dir>/final``; returns that directory."""
    trainer, processor, rewards = build_trainer(cfg, train_dataset)
    try:
        trainer.train()
        return save_policy(trainer, processor, Path(cfg.trainer.output_dir) / "final", cfg.model.policy)
    finally:
        if rewards.task_model is not None:
            rewards.task_model.close()


__all__ = ["build_dataset", "build_rewards", "task_pipeline", "build_task_model", "build_trainer", "grpo_args", "load_policy",
           "save_policy", "train"]
