"""Any task module as a `sahi <https://github.com/obss/sahi>`_ ``DetectionModel``.

WHY: users who need small objects today slice with SAHI (slice -> predict -> shift ->
merge).  Comparing against SAHI means running SAHI itself — its slicer, its
``get_sliced_prediction`` and its GREEDYNMM merge — with the same detector our pipeline uses,
not a re-implementation of it.

Each image SAHI hands over (a slice, or the whole frame for its "standard prediction") is
resized so that its long side is ``input_size`` — what the pipeline's ResizeCrop does with a
region (``crop_size``) — and the task module's detections are mapped back to that image's
pixels.  Slices of ``input_size`` run at native resolution; slices of ``input_size / zoom``
are enlarged ``zoom`` times (exhaustive zoom); the full frame is downscaled, like the
pipeline's ``full_frame`` mode.

``sahi`` is an optional dependency (``pip install sahi --no-deps`` keeps the one OpenCV wheel
of this environment; see the benchmarks README).  The runtime node never imports this module.

    from sahi.predict import get_sliced_prediction
    model = TaskDetectionModel(build_task_model(cfg), input_size=840)
    result = get_sliced_prediction(frame, model, slice_height=840, slice_width=840)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from active_o3_ros.core.geometry import resize_image
from active_o3_ros.core.pipeline import task_cost
from active_o3_ros.core.ports import TaskModel
from active_o3_ros.core.types import Box, Detection

try:
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction
    from sahi.utils.compatibility import fix_full_shape_list, fix_shift_amount_list
except ImportError as exc:  # pragma: no cover - depends on install
    raise ImportError("active_o3_ros.sahi_model needs the sahi package: pip install sahi --no-deps "
                      "(plus its small dependencies; see benchmarks/README.md)") from exc


class TaskDetectionModel(DetectionModel):
    """A :class:`TaskModel` behind SAHI's ``DetectionModel`` interface (one class: the
    instruction's label).  ``calls``, ``megapixels`` and ``cost`` count what ran, for benchmarks."""

    def __init__(self, task: TaskModel, instruction: str = "text", input_size: int = 840,
                 confidence_threshold: float = 0.0, label: str | None = None) -> None:
        if int(input_size) < 16:
            raise ValueError(f"input_size must be >= 16, got {input_size!r}")
        self.task = task
        self.instruction = str(instruction)
        self.input_size = int(input_size)
        self.label = label or self.instruction
        self.calls = 0
        self.megapixels = 0.0
        self.cost: dict[str, float] = {}
        super().__init__(model=task, device="cpu", confidence_threshold=confidence_threshold,
                         category_mapping={"0": self.label}, load_at_init=True)

    # -- DetectionModel ------------------------------------------------------------------------
    def load_model(self) -> None:
        raise ValueError("TaskDetectionModel wraps a task module instance; pass it as `task`")

    def set_model(self, model: Any, **kwargs: Any) -> None:
        if not isinstance(model, TaskModel):
            raise TypeError(f"expected an active_o3_ros TaskModel, got {type(model).__name__}")
        self.model = model

    def set_device(self, device: str | None = None) -> None:
        self.device = device or "cpu"  # the task module owns its device

    def perform_inference(self, image: np.ndarray) -> None:
        """Resize ``image`` to ``input_size`` (long side), detect, keep detections in ``image`` pixels."""
        img = np.ascontiguousarray(np.asarray(image)[:, :, :3])
        h, w = img.shape[:2]
        scale = self.input_size / max(h, w)
        iw, ih = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        inp = resize_image(img, iw, ih) if (iw, ih) != (w, h) else img
        out = self.task.detect([inp], [self.instruction])[0]
        self.calls += 1
        self.megapixels += iw * ih / 1e6
        for k, v in task_cost([out]).items():
            self.cost[k] = self.cost.get(k, 0.0) + v
        sx, sy = w / iw, h / ih
        self._original_predictions = [
            Detection(box=Box(d.box.x1 * sx, d.box.y1 * sy, d.box.x2 * sx, d.box.y2 * sy).clip(w, h),
                      label=d.label, score=d.score, text=d.text) for d in out.detections]

    def _create_object_prediction_list_from_original_predictions(
            self, shift_amount_list: list[list[int | float]] | None = [[0, 0]],  # noqa: B006 - sahi's signature
            full_shape_list: list[list[int | float]] | None = None) -> None:
        shift = fix_shift_amount_list(shift_amount_list)[0]  # sahi passes [[x, y]] or [x, y]
        fulls = fix_full_shape_list(full_shape_list)
        full = list(fulls[0]) if fulls else None
        preds = []
        for d in self._original_predictions or []:
            if d.score < self.confidence_threshold or d.box.width <= 0 or d.box.height <= 0:
                continue
            preds.append(ObjectPrediction(bbox=d.box.as_list(), category_id=0, category_name=self.label,
                                          score=float(d.score), shift_amount=list(shift), full_shape=full))
        self._object_prediction_list_per_image = [preds]

    def reset_counters(self) -> None:
        self.calls, self.megapixels, self.cost = 0, 0.0, {}


def to_detections(result: Any) -> list[Detection]:
    """A sahi ``PredictionResult`` (or its ``object_prediction_list``) as our detections."""
    preds = getattr(result, "object_prediction_list", result)
    out = []
    for p in preds:
        x1, y1, x2, y2 = (float(v) for v in p.bbox.to_xyxy())
        out.append(Detection(box=Box(x1, y1, x2, y2), label=str(p.category.name), score=float(p.score.value)))
    return out


__all__ = ["TaskDetectionModel", "to_detections"]
