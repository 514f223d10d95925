"""Training configuration: dataclasses, loaded from YAML, overridden from the CLI.

One nested :class:`TrainConfig` (``data``, ``model``, ``reward``, ``trainer``) is the only
place defaults live; ``training/configs/*.yaml`` recipes override a few of them and
``--set section.key=value`` overrides anything at launch.  Defaults are the paper's
(G=8, beta 0.04, lr 1e-6, AdamW wd 0.01, K=3, tau 0.3, area 1-50 %).  Unknown keys and bad
values raise :class:`ConfigError` naming the key — a typo must not silently train with a
default for hours.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from active_o3_ros.core.config import PARAMETER_INDEX, ConfigError as _CoreConfigError
from active_o3_ros.core.rewards import RewardConfig

DATA_KINDS = ("coco", "soda_a", "rosbag")


# One ConfigError for the node, the CLI and the trainers: a config value is wrong, the message
# names the key and the fix.
ConfigError = _CoreConfigError


@dataclass
class DataConfig:
    """Where samples come from.  ``coco`` covers COCO, LVIS and SODA-D (COCO-style JSON);
    ``soda_a`` reads SODA-A's per-image JSON (oriented -> axis-aligned); ``rosbag`` a robot's bag."""

    kind: str = "coco"
    ann_file: str = ""                 # coco: JSON file; soda_a: folder of per-image JSON files
    image_dir: str = ""
    subset: str = "all"                # all | small (LVIS small) | dense (> dense_min_instances)
    small_area: float = 1024.0
    dense_min_instances: int = 15
    classes: list[str] = field(default_factory=list)
    max_samples: int = 0
    bag: str = ""
    labels_bag: str = ""               # teacher labels for `bag` (`active-o3-train label`); "" = in `bag`
    camera_topic: str = "/camera/image_raw"
    labels_topic: str = "/active_o3/detections"
    tolerance_s: float = 0.02
    min_interval_s: float = 0.0
    dedup_threshold: float = 0.0
    instruction: str = ""
    per_class: bool = False
    cache_dir: str = "runs/cache"      # decoded bag frames (PNG)


@dataclass
class ModelConfig:
    """The trainable policy and the frozen task module.

    ``task_backend``: a registered task backend (``qwen_vl`` = a frozen copy of the initial
    policy weights, the paper's setup) or ``none`` for heuristic-only rewards.
    ``task_model``: weights of the task module (empty: the initial ``policy``).
    """

    policy: str = ""
    task_backend: str = "qwen_vl"
    task_model: str = ""
    task_options: dict[str, Any] = field(default_factory=dict)
    task_device: str = ""               # empty: same device as training
    dtype: str = "auto"                 # auto -> bfloat16 on GPU, float32 on CPU
    attn_implementation: str = ""
    trust_remote_code: bool = False
    min_pixels: int = 0                 # 0: the processor's own budget
    max_pixels: int = 0
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    gradient_checkpointing: bool = False


def _fields_of(source: type):
    """Class decorator (before ``@dataclass``): give the class every field of the dataclass
    ``source`` with the same type and default, declared there once."""
    def add(cls: type) -> type:
        own = dict(cls.__dict__.get("__annotations__", {}))
        for f in fields(source):
            default = (field(default_factory=f.default_factory) if f.default is dataclasses.MISSING
                       else field(default=f.default))
            setattr(cls, f.name, default)
        cls.__annotations__ = {**{f.name: f.type for f in fields(source)}, **own}
        return cls
    return add


@dataclass
@_fields_of(RewardConfig)
class RewardSection:
    """The dual reward: every field of the core's
    :class:`~active_o3_ros.core.rewards.RewardConfig` (``signal`` both | task | heuristic, the
    paper's ablation; ``max_regions`` = K; the heuristic thresholds; ``task_metric``
    detection | segmentation; ``weights``), declared there once, plus the task term's crop
    settings."""

    # The task term crops exactly as the node serves (same defaults as the node's parameters):
    # a reward measured on other crops would train for a pipeline that is never run.
    crop_size: int = PARAMETER_INDEX["crop_size"].default
    max_zoom: float = PARAMETER_INDEX["max_zoom"].default
    crop_context: float = PARAMETER_INDEX["crop_context"].default

    def reward_config(self) -> RewardConfig:
        """The shared reward module's :class:`~active_o3_ros.core.rewards.RewardConfig`."""
        return RewardConfig(**{f.name: getattr(self, f.name) for f in fields(RewardConfig)})

    def validate(self) -> RewardConfig:
        """The core's own checks of the reward (signal, task metric, term names), reported as a
        :class:`ConfigError` of the ``reward`` section, for both trainers."""
        try:
            return self.reward_config()
        except ValueError as exc:
            raise ConfigError(f"reward: {exc}") from exc


@dataclass
class TrainerSection:
    """TRL ``GRPOConfig`` fields we set (everything else keeps TRL's default).

    ``device``: auto | cpu | cuda.  ``bf16``: auto = on for CUDA.  ``report_to``: auto =
    TensorBoard when installed (CSV + stdout always).
    """

    output_dir: str = "runs/grpo"
    device: str = "auto"
    num_generations: int = 8
    beta: float = 0.04
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    optim: str = "adamw_torch"
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    max_completion_length: int = 512
    temperature: float = 1.0
    logging_steps: int = 1
    save_steps: int = 200
    save_total_limit: int = 2
    seed: int = 42
    bf16: str = "auto"
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    report_to: str = "auto"
    log_completions: bool = False
    dataloader_num_workers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)   # any other GRPOConfig field, passed through


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    reward: RewardSection = field(default_factory=RewardSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)

    def validate(self) -> "TrainConfig":
        d, m, r, t = self.data, self.model, self.reward, self.trainer
        if d.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind must be one of {DATA_KINDS}, got {d.kind!r}")
        if d.kind == "rosbag" and not d.bag:
            raise ConfigError("data.bag is required for data.kind=rosbag")
        if d.kind in ("coco", "soda_a") and not (d.ann_file and d.image_dir):
            raise ConfigError(f"data.ann_file and data.image_dir are required for data.kind={d.kind}")
        if not m.policy:
            raise ConfigError("model.policy is required: a local model directory or a hub id "
                              "(e.g. Qwen/Qwen2.5-VL-7B-Instruct)")
        r.validate()
        if r.signal != "heuristic" and m.task_backend == "none":
            raise ConfigError(f"reward.signal={r.signal} needs a task module; set model.task_backend or "
                              "reward.signal=heuristic")
        if r.task_metric == "segmentation" and d.kind == "rosbag":
            raise ConfigError("reward.task_metric=segmentation needs ground-truth masks: use COCO-style data "
                              "(data.kind=coco) with 'segmentation' annotations; bag labels carry boxes only")
        if t.num_generations < 2:
            raise ConfigError("trainer.num_generations must be >= 2 (GRPO compares completions within a group)")
        if (t.per_device_train_batch_size * t.gradient_accumulation_steps) % t.num_generations:
            raise ConfigError("trainer.per_device_train_batch_size * gradient_accumulation_steps must be a multiple "
                              f"of num_generations ({t.num_generations})")
        if t.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"trainer.device must be auto, cpu or cuda, got {t.device!r}")
        if t.bf16 not in ("auto", "true", "false", True, False):
            raise ConfigError(f"trainer.bf16 must be auto, true or false, got {t.bf16!r}")
        if not t.learning_rate > 0 or t.beta < 0:
            raise ConfigError("trainer.learning_rate must be > 0 and trainer.beta >= 0")
        return self


_SECTIONS = {f.name: f for f in fields(TrainConfig)}


def _coerce(section: str, key: str, value: Any, target: Any, owner: Any = None) -> Any:
    cls = type(target)
    hints = get_type_hints(type(owner) if owner is not None else type(getattr(TrainConfig(), section)))
    hint = hints[key]
    if value is None:
        raise ConfigError(f"{section}.{key} cannot be null")
    try:
        if hint is bool or cls is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
        if hint is str:
            return str(value)
        origin = getattr(hint, "__origin__", None)
        if origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError(value)
            return list(value)
        if origin is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{section}.{key}: cannot use {value!r} as {getattr(hint, '__name__', hint)}") from exc
    return value


def apply(cfg: Any, values: dict[str, Any], where: str = "config") -> Any:
    """Apply a nested ``{section: {key: value}}`` mapping onto ``cfg`` (in place): a
    :class:`TrainConfig` or any dataclass of section dataclasses (the small policy's)."""
    sections = {f.name for f in fields(cfg)}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: top level must be a mapping of sections {sorted(sections)}")
    for section, items in values.items():
        if section not in sections:
            raise ConfigError(f"{where}: unknown section {section!r}; known: {sorted(sections)}")
        if not isinstance(items, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping")
        obj = getattr(cfg, section)
        known = {f.name for f in fields(obj)}
        for key, value in items.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown key {section}.{key}; known: {sorted(known)}")
            setattr(obj, key, _coerce(section, key, value, getattr(obj, key), obj))
    return cfg


def parse_override(item: str) -> dict[str, Any]:
    """``"trainer.learning_rate=1e-5"`` -> ``{"trainer": {"learning_rate": 1e-5}}`` (value read as YAML)."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ConfigError(f"override {item!r} must look like section.key=value")
    path, raw = item.split("=", 1)
    section, key = path.strip().split(".", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return {section: {key: value}}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, root: type = TrainConfig) -> Any:
    """Defaults <- YAML file <- ``section.key=value`` overrides; then validated.  ``root``:
    the config class (:class:`TrainConfig`, or the small policy's ``PolicyTrainConfig``)."""
    cfg = root()
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
        apply(cfg, data, str(p))
    for item in overrides or []:
        apply(cfg, parse_override(item), f"--set {item}")
    return cfg.validate()


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def describe(root: type = TrainConfig) -> str:
    """Every key with its default, for ``--help``."""
    lines = []
    for f in fields(root):
        name = f.name
        obj = f.default_factory()  # type: ignore[misc]
        for sub in fields(obj):
            lines.append(f"  {name}.{sub.name} = {getattr(obj, sub.name)!r}")
    return "\n".join(lines)


__all__ = ["ConfigError", "DataConfig", "ModelConfig", "RewardSection", "TrainConfig", "TrainerSection",
           "apply", "describe", "load_config", "parse_override", "to_dict"]
