"""The two interfaces of ACTIVE-o3 and a name registry for their implementations.

* :class:`SensingPolicy` (M_O) looks at a thumbnail and proposes up to K zoom regions.
* :class:`TaskModel` (M_A) looks at a *batch* of crops and returns detections in each
  crop's pixel coordinates.  One ``detect`` call is one model call, whatever the batch
  size: that is the paper's parallelism.

Both return coordinates in the pixels of the images they were *given*; a backend that
resizes internally (Qwen2.5-VL does) maps its answers back itself.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from active_o3_ros.core.types import Detection, ParseStatus, Region


@dataclass
class SensingOutput:
    """Regions in the pixel coordinates of the thumbnail the policy saw."""

    regions: list[Region]
    text: str = ""
    status: ParseStatus = ParseStatus.OK


@dataclass
class TaskOutput:
    """Detections in the pixel coordinates of the crop the task model saw."""

    detections: list[Detection]
    text: str = ""
    status: ParseStatus = ParseStatus.OK
    extra: dict[str, Any] = field(default_factory=dict)


class SensingPolicy(ABC):
    """Proposes zoom regions.  ``is_model_call`` is False for geometric baselines (tiling,
    random, oracle) so model-call counts stay honest."""

    name: str = "sensing"
    is_model_call: bool = True
    #: Thumbnail short side this policy wants (the pipeline's default is used when None).
    preferred_thumbnail_short_side: int | None = None

    @abstractmethod
    def propose(self, images: Sequence[np.ndarray], instructions: Sequence[str], max_regions: int,
                context: Sequence[dict[str, Any]] | None = None) -> list[SensingOutput]:
        """One call over a batch of thumbnails; ``context`` carries per-image extras
        (e.g. ground truth for the oracle baseline, a seed for the random one)."""

    def close(self) -> None:
        """Free model memory (lifecycle cleanup)."""


class TaskModel(ABC):
    """Detects (or segments) the instruction's targets in a batch of crops."""

    name: str = "task"
    #: True when detections carry masks (the node then publishes /active_o3/masks).
    produces_masks: bool = False

    @abstractmethod
    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        """One model call over the whole batch; returns one output per image."""

    def close(self) -> None:
        """Free model memory (lifecycle cleanup)."""


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
