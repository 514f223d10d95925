"""Configuration dataclasses, validated in one place.

The ROS node's parameters, the CLI flags and YAML files all map onto
:class:`PerceptionConfig` through :data:`PARAMETERS` — one flat table of name, default,
type, description and range — so the three stay in agreement by construction.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from active_o3_ros.core.geometry import ResizeCropConfig
from active_o3_ros.core.merge import MERGE_METHODS, MergeConfig

PIPELINE_MODES = ("parallel", "serial", "full_frame")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the parameter and the fix."""


@dataclass(frozen=True)
class PipelineConfig:
    """How one frame is processed (backend-independent)."""

    max_regions: int = 3
    mode: str = "parallel"
    thumbnail_short_side: int = 1024
    thumbnail_max_long_side: int = 0
    crop: ResizeCropConfig = field(default_factory=ResizeCropConfig)
    merge: MergeConfig = field(default_factory=MergeConfig)
    full_frame_pass: bool = False
    score_threshold: float = 0.0
    fallback_full_frame: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.max_regions, int) or not 1 <= self.max_regions <= 16:
            raise ConfigError(f"max_regions (K) must be an integer in [1, 16], got {self.max_regions!r}")
        if self.mode not in PIPELINE_MODES:
            raise ConfigError(f"mode must be one of {PIPELINE_MODES}, got {self.mode!r}")
        if not 16 <= self.thumbnail_short_side <= 8192:
            raise ConfigError(f"thumbnail_short_side must be in [16, 8192], got {self.thumbnail_short_side}")
        if self.thumbnail_max_long_side and self.thumbnail_max_long_side < 16:
            raise ConfigError("thumbnail_max_long_side must be 0 (no cap) or >= 16")
        if not (0.0 <= self.score_threshold <= 1.0):
            raise ConfigError(f"score_threshold must be in [0, 1], got {self.score_threshold}")


@dataclass(frozen=True)
class BackendConfig:
    """Which models run.  ``model`` is a local directory or hub id (MLLM backends);
    ``sensing_model``/``task_model`` override it per role (empty = use ``model``)."""

    sensing: str = "small_policy"
    task: str = "text"
    model: str = ""
    sensing_model: str = ""
    task_model: str = ""
    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = False
    sensing_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PerceptionConfig:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    instruction: str = "text"

    # -- flat views (ROS parameters, CLI flags, YAML) -----------------------------------
    @classmethod
    def from_flat(cls, values: dict[str, Any]) -> "PerceptionConfig":
        """Build from flat ``{parameter: value}``; unknown names and bad values raise ConfigError."""
        unknown = sorted(set(values) - set(PARAMETER_INDEX))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(PARAMETER_INDEX)}")
        flat = {p.name: p.default for p in PARAMETERS}
        for name, value in values.items():
            flat[name] = PARAMETER_INDEX[name].coerce(value)
        try:
            crop = ResizeCropConfig(flat["crop_size"], flat["max_zoom"], flat["crop_context"])
            merge = MergeConfig(flat["merge_method"], flat["merge_iou"], flat["merge_class_aware"], flat["max_detections"],
                                flat["merge_cut_margin"])
            pipeline = PipelineConfig(
                max_regions=flat["max_regions"], mode=flat["mode"],
                thumbnail_short_side=flat["thumbnail_short_side"],
                thumbnail_max_long_side=flat["thumbnail_max_long_side"], crop=crop, merge=merge,
                full_frame_pass=flat["full_frame_pass"], score_threshold=flat["score_threshold"],
                fallback_full_frame=flat["fallback_full_frame"],
            )
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        backend = BackendConfig(
            sensing=flat["sensing_backend"], task=flat["task_module"], model=flat["model"],
            sensing_model=flat["sensing_model"], task_model=flat["task_model"], device=flat["device"],
            dtype=flat["dtype"], trust_remote_code=flat["trust_remote_code"],
            sensing_options=_json_dict("sensing_options", flat["sensing_options"]),
            task_options=_json_dict("task_options", flat["task_options"]),
        )
        return cls(pipeline=pipeline, backend=backend, instruction=flat["instruction"])

    def to_flat(self) -> dict[str, Any]:
        p, b = self.pipeline, self.backend
        return {
            "instruction": self.instruction, "sensing_backend": b.sensing, "task_module": b.task,
            "model": b.model, "sensing_model": b.sensing_model, "task_model": b.task_model,
            "device": b.device, "dtype": b.dtype, "trust_remote_code": b.trust_remote_code,
            "sensing_options": json.dumps(b.sensing_options), "task_options": json.dumps(b.task_options),
            "max_regions": p.max_regions, "mode": p.mode, "thumbnail_short_side": p.thumbnail_short_side,
            "thumbnail_max_long_side": p.thumbnail_max_long_side, "crop_size": p.crop.output_size,
            "max_zoom": p.crop.max_zoom, "crop_context": p.crop.context, "merge_method": p.merge.method,
            "merge_iou": p.merge.iou_threshold, "merge_class_aware": p.merge.class_aware,
            "max_detections": p.merge.max_detections, "merge_cut_margin": p.merge.cut_margin,
            "full_frame_pass": p.full_frame_pass,
            "score_threshold": p.score_threshold, "fallback_full_frame": p.fallback_full_frame,
        }

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "PerceptionConfig":
        """Read a flat YAML (also accepts the ROS ``node: ros__parameters:`` nesting)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        data = _unwrap_ros_yaml(data)
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of parameters")
        flat = {k: v for k, v in data.items() if k in PARAMETER_INDEX}
        flat.update(overrides or {})
        return cls.from_flat(flat)


def _unwrap_ros_yaml(data: Any) -> Any:
    if isinstance(data, dict) and len(data) == 1:
        inner = next(iter(data.values()))
        if isinstance(inner, dict) and "ros__parameters" in inner:
            return inner["ros__parameters"]
        if isinstance(inner, dict) and len(inner) == 1:
            return _unwrap_ros_yaml(inner)
    return data


def _json_dict(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if value in ("", None):
        return {}
    try:
        out = json.loads(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a JSON object string, got {value!r}: {exc}") from exc
    if not isinstance(out, dict):
        raise ConfigError(f"{name} must be a JSON object, got {value!r}")
    return out


@dataclass(frozen=True)
class Parameter:
    """One flat parameter: the single source for node declarations, CLI flags and YAML."""

    name: str
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    #: The choices when they live elsewhere: backend names come from the registry (the one
    #: list, plugins included), read when asked; None from it means "not known here".
    dynamic_choices: Callable[[], Sequence[Any] | None] | None = None

    def allowed(self) -> tuple[Any, ...] | None:
        """The accepted values, or None when any value of the right type is accepted."""
        if self.choices is not None:
            return tuple(self.choices)
        names = self.dynamic_choices() if self.dynamic_choices is not None else None
        return tuple(names) if names is not None else None

    def help(self) -> str:
        """The description plus its choices: the one text for the node's descriptor, the CLI
        flags, the YAML comments and the launch arguments."""
        allowed = self.allowed()
        return self.description + (f" One of: {', '.join(map(str, allowed))}." if allowed else "")

    @property
    def type(self) -> type:
        return type(self.default)

    def coerce(self, value: Any) -> Any:
        t = self.type
        try:
            if t is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "1", "yes")
                elif not isinstance(value, (bool, int)):
                    raise ValueError(value)
                value = bool(value)
            elif t is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(value)
                value = int(value)
            elif t is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
                if not math.isfinite(value):
                    raise ValueError(value)
            else:
                if isinstance(value, dict):
                    value = json.dumps(value)
                if not isinstance(value, str):
                    raise ValueError(value)
        except (TypeError, ValueError, OverflowError) as exc:  # float(10**400) overflows
            raise ConfigError(f"parameter {self.name!r} must be a {t.__name__}, got {value!r}") from exc
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            raise ConfigError(f"parameter {self.name!r} must be one of {list(allowed)}, got {value!r}")
        if self.min_value is not None and value < self.min_value:
            raise ConfigError(f"parameter {self.name!r} must be >= {self.min_value}, got {value!r}")
        if self.max_value is not None and value > self.max_value:
            raise ConfigError(f"parameter {self.name!r} must be <= {self.max_value}, got {value!r}")
        return value


#: Where backend names come from: the door's registry (``active_o3_ros.backends`` sets it on
#: import); the core does not import backends.  Unset: names are checked when a backend is built.
_backend_names: Callable[[str], Sequence[str]] | None = None


def set_backend_names(source: Callable[[str], Sequence[str]]) -> None:
    global _backend_names
    _backend_names = source


def _registered(role: str) -> Callable[[], Sequence[str] | None]:
    def names() -> Sequence[str] | None:
        return _backend_names(role) if _backend_names is not None else None
    return names


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("instruction", "text", "What to find: class names (comma separated) or free text."),
    Parameter("sensing_backend", "small_policy", "Sensing policy M_O that proposes zoom regions.",
              dynamic_choices=_registered("sensing")),
    Parameter("task_module", "text", "Task model M_A run on the zoomed crops.",
              dynamic_choices=_registered("task")),
    Parameter("model", "", "Local directory or hub id of the multimodal model (qwen_vl backends)."),
    Parameter("sensing_model", "", "Overrides 'model' for the sensing role (e.g. small-policy weights)."),
    Parameter("task_model", "", "Overrides 'model' for the task role (e.g. a SAM checkpoint)."),
    Parameter("device", "cpu", "Torch device for the models: cpu, cuda, cuda:1, ..."),
    Parameter("dtype", "auto", "Model dtype.", choices=("auto", "float32", "bfloat16", "float16")),
    Parameter("trust_remote_code", False, "Allow model repos to run their own Python code (off: safer)."),
    Parameter("sensing_options", "{}", "Extra sensing-backend options as a JSON object."),
    Parameter("task_options", "{}", "Extra task-module options as a JSON object."),
    Parameter("max_regions", 3, "K: most zoom regions per frame.", min_value=1, max_value=16),
    Parameter("mode", "parallel", "parallel: 1 sensing + 1 batched task call; serial: one task call per "
              "region; full_frame: no zoom (baseline).", choices=PIPELINE_MODES),
    Parameter("thumbnail_short_side", 1024, "Short side of the sensing thumbnail, pixels (never upscaled).",
              min_value=16, max_value=8192),
    Parameter("thumbnail_max_long_side", 0, "Cap on the thumbnail's long side, pixels (0 = none).",
              min_value=0, max_value=16384),
    Parameter("crop_size", 840, "Long side of each zoomed crop given to the task model, pixels.",
              min_value=16, max_value=8192),
    Parameter("max_zoom", 3.0, "Largest enlargement of a region; smaller regions are grown around "
              "their centre.", min_value=0.05, max_value=64.0),
    # WHY 1.3: words cut by a zoom region's edge are whole in a crop with a margin; chosen on
    # validation frames (docs/embedded_default.md has the sweep).
    Parameter("crop_context", 1.3, "Grow each region by this factor around its centre before cropping "
              "(1 = crop exactly the region).", min_value=1.0, max_value=8.0),
    Parameter("merge_method", "nms", "How detections from overlapping crops are merged.", choices=MERGE_METHODS),
    Parameter("merge_iou", 0.5, "IoU above which two detections are the same object.", min_value=0.01, max_value=1.0),
    Parameter("merge_class_aware", True, "Merge only detections with the same label."),
    # WHY 3: a piece of an object cut by a crop's edge overlaps the whole object's box too
    # little for NMS; chosen on validation frames (docs/embedded_default.md).
    Parameter("merge_cut_margin", 3.0, "Drop a detection within this many pixels of its crop's edge (inside "
              "the frame) where another crop saw it whole (0 = off).", min_value=0.0, max_value=1000.0),
    Parameter("max_detections", 300, "Most detections published per frame.", min_value=1, max_value=100000),
    Parameter("full_frame_pass", False, "Also run the task model on the downscaled full frame (same batch)."),
    Parameter("score_threshold", 0.0, "Drop detections scoring below this.", min_value=0.0, max_value=1.0),
    Parameter("fallback_full_frame", True, "When sensing proposes no region, run the task on the full frame."),
)
PARAMETER_INDEX: dict[str, Parameter] = {p.name: p for p in PARAMETERS}


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``["name=value", ...]`` (the CLIs' repeatable ``--set``) -> ``{name: raw value}``.

    Raises :class:`ConfigError` naming the bad item or unknown parameter; values stay
    strings here and are coerced by :meth:`PerceptionConfig.from_flat`."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if k not in PARAMETER_INDEX:
            raise ConfigError(f"unknown parameter {k!r}; known: {sorted(PARAMETER_INDEX)}")
        out[k] = v
    return out


__all__ = ["PipelineConfig", "BackendConfig", "PerceptionConfig", "ConfigError", "PARAMETERS", "Parameter",
           "PIPELINE_MODES", "MERGE_METHODS", "parse_overrides"]
