"""The ports of the core: the two interfaces ACTIVE-o3's pipeline runs, owned by the core.

* :class:`SensingPolicy` (M_O) looks at a thumbnail and proposes up to K zoom regions.
* :class:`TaskModel` (M_A) looks at a *batch* of crops and returns detections in each
  crop's pixel coordinates.  One ``detect`` call is one model call, whatever the batch
  size: that is the paper's parallelism.

Both return coordinates in the pixels of the images they were *given*; a backend that
resizes internally (Qwen2.5-VL does) maps its answers back itself.  Implementations live in
``active_o3_ros.backends`` (and plugins), chosen by name through its registry.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

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

    def thumbnail_short_side_for(self, width: int, height: int) -> int | None:
        """Thumbnail short side this policy wants for a ``width x height`` frame (None: the
        pipeline's default).  By default :attr:`preferred_thumbnail_short_side` for any
        frame; a policy that reads some frames as several windows asks for more pixels."""
        return self.preferred_thumbnail_short_side

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
    #: True when one :meth:`detect` call runs the model once over the whole batch.  False
    #: when the module loops over the crops inside (the pipeline then counts one model call
    #: per crop, so "parallel" is not credited with a batching that did not happen).
    batched: bool = True

    @abstractmethod
    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        """One call over the whole batch; returns one output per image.  ``extra["cost"]``
        may carry per-image engine costs (seconds, input megapixels) that the pipeline sums."""

    def close(self) -> None:
        """Free model memory (lifecycle cleanup)."""


__all__ = ["SensingOutput", "TaskOutput", "SensingPolicy", "TaskModel"]
