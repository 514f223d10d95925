"""The name registry of backends, and helpers they share.

The interfaces (:class:`SensingPolicy`, :class:`TaskModel` and their outputs) belong to the
core (:mod:`active_o3_ros.core.ports`); they are re-exported here because every backend and
plugin implements them next to ``register_sensing`` / ``register_task``.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from active_o3_ros.core import config
from active_o3_ros.core.ports import SensingOutput, SensingPolicy, TaskModel, TaskOutput  # noqa: F401 (re-export)


def options_from_kwargs(cls: type, options: dict[str, Any], what: str) -> Any:
    """Build a backend's options dataclass, refusing unknown names with the known ones listed
    (a typo in ``task_options`` must not be silently ignored)."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown {what} option(s) {unknown}; known: {sorted(known)}")
    return cls(**options)


# -- registry --------------------------------------------------------------------------
# Values are "module:attr" strings so a backend's heavy imports (torch, onnxruntime)
# happen only when it is chosen.
_SENSING: dict[str, str | Callable[..., SensingPolicy]] = {
    "tiling": "active_o3_ros.backends.region_sources:TilingPolicy",
    "random": "active_o3_ros.backends.region_sources:RandomPolicy",
    "oracle": "active_o3_ros.backends.region_sources:OraclePolicy",
    "oracle_anchors": "active_o3_ros.backends.region_sources:OracleAnchorsPolicy",
    "cascade": "active_o3_ros.backends.region_sources:CascadePolicy",
    "qwen_vl": "active_o3_ros.backends.qwen_vl:QwenVLSensing",
    "qwen_vllm": "active_o3_ros.backends.vllm_qwen:VLLMQwenSensing",
    "small_policy": "active_o3_ros.backends.small_policy:SmallSensingPolicy",
}
_TASK: dict[str, str | Callable[..., TaskModel]] = {
    "qwen_vl": "active_o3_ros.backends.qwen_vl:QwenVLTask",
    "qwen_vllm": "active_o3_ros.backends.vllm_qwen:VLLMQwenTask",
    "text": "active_o3_ros.backends.text:TextTaskModel",
    "sam": "active_o3_ros.backends.sam:SamTaskModel",
    "grounding_dino": "active_o3_ros.backends.grounding_dino:GroundingDinoTask",
}


def register_sensing(name: str, factory: str | Callable[..., SensingPolicy]) -> None:
    _SENSING[name] = factory


def register_task(name: str, factory: str | Callable[..., TaskModel]) -> None:
    _TASK[name] = factory


def _resolve(table: dict[str, Any], kind: str, name: str) -> Callable[..., Any]:
    if name not in table:
        raise ValueError(f"unknown {kind} backend {name!r}; available: {sorted(table)}")
    factory = table[name]
    if isinstance(factory, str):
        mod, attr = factory.split(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except ImportError as exc:
            raise RuntimeError(f"{kind} backend {name!r} is not usable here: {exc}") from exc
    return factory


def build_sensing(name: str, **kwargs: Any) -> SensingPolicy:
    return _resolve(_SENSING, "sensing", name)(**kwargs)


def build_task(name: str, **kwargs: Any) -> TaskModel:
    return _resolve(_TASK, "task", name)(**kwargs)


def available_backends() -> dict[str, list[str]]:
    return {"sensing": sorted(_SENSING), "task": sorted(_TASK)}


def build_pipeline(cfg: Any) -> Any:
    """An :class:`~active_o3_ros.core.pipeline.ActivePerception` with the backends ``cfg``
    (a :class:`~active_o3_ros.core.config.PerceptionConfig`) names, built from the registry;
    the node, CLI, bag tools and evaluation all use this."""
    from active_o3_ros.core.pipeline import ActivePerception

    b = cfg.backend
    common = dict(device=b.device, dtype=b.dtype, trust_remote_code=b.trust_remote_code)
    task = build_task(b.task, model=b.task_model or b.model, **common, **b.task_options)
    sensing = None
    if cfg.pipeline.mode != "full_frame":
        sensing = build_sensing(b.sensing, model=b.sensing_model or b.model, **common, **b.sensing_options)
    return ActivePerception(sensing, task, cfg.pipeline)


# The core validates backend names against this registry without importing it.
config.set_backend_names(lambda role: available_backends()[role])
