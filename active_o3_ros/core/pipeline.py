"""ActivePerception: the ACTIVE-o3 frame pipeline.

parallel (the paper): thumbnail → ONE sensing call → up to K regions → K ResizeCrops →
ONE batched task call → detections mapped to frame pixels → merged.  2 model calls.
serial (o3/ZoomEye-style, for comparison): one task call per region → 1 + K calls.
full_frame (baseline): the frame downscaled to the task input, one task call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.base import SensingPolicy, TaskModel, TaskOutput, build_sensing, build_task
from active_o3_ros.core.config import PerceptionConfig, PipelineConfig
from active_o3_ros.core.geometry import (
    ScaleOffset, full_frame_input, make_thumbnail, map_mask_to_frame, resize_crop, validate_image,
)
from active_o3_ros.core.merge import merge_detections
from active_o3_ros.core.prompts import normalize_instruction
from active_o3_ros.core.types import Box, Detection, ParseStatus, PerceptionResult, Region, StageTimings


@dataclass
class _Crop:
    image: np.ndarray
    transform: ScaleOffset  # crop pixels -> frame pixels
    region_index: int       # -1: full frame


class ActivePerception:
    """Runs sensing and task backends over frames; stateless between frames."""

    def __init__(self, sensing: SensingPolicy | None, task: TaskModel, config: PipelineConfig | None = None) -> None:
        self.sensing = sensing
        self.task = task
        self.config = config or PipelineConfig()
        if self.sensing is None and self.config.mode != "full_frame":
            raise ValueError("a sensing policy is required unless mode='full_frame'")

    @classmethod
    def from_config(cls, cfg: PerceptionConfig) -> "ActivePerception":
        """Build backends by name from the registry (the node, CLI and eval all use this)."""
        b = cfg.backend
        common = dict(device=b.device, dtype=b.dtype, trust_remote_code=b.trust_remote_code)
        task = build_task(b.task, model=b.task_model or b.model, **common, **b.task_options)
        sensing = None
        if cfg.pipeline.mode != "full_frame":
            sensing = build_sensing(b.sensing, model=b.sensing_model or b.model, **common, **b.sensing_options)
        return cls(sensing, task, cfg.pipeline)

    def close(self) -> None:
        for m in (self.sensing, self.task):
            if m is not None:
                m.close()

    # -- one frame -----------------------------------------------------------------------
    def __call__(self, frame: np.ndarray, instruction: str | Sequence[str],
                 context: dict[str, Any] | None = None, mode: str | None = None) -> PerceptionResult:
        """Process one RGB ``HxWx3 uint8`` frame.  ``context`` is passed to the sensing
        policy (ground truth for the oracle baseline).  Raises ValueError on a bad frame or
        empty instruction; never on bad model output (that is counted in the result)."""
        cfg = self.config
        mode = mode or cfg.mode
        t_start = time.perf_counter()
        timings = StageTimings()
        frame = validate_image(frame, "frame")
        text = normalize_instruction(instruction)
        fh, fw = frame.shape[:2]
        model_calls = 0
        regions: list[Region] = []
        sensing_text, sensing_status = "", ParseStatus.OK

        if mode != "full_frame":
            if self.sensing is None:
                raise ValueError(f"mode {mode!r} needs a sensing policy")
            t = time.perf_counter()
            short = self.sensing.preferred_thumbnail_short_side or cfg.thumbnail_short_side
            thumb, thumb_tf = make_thumbnail(frame, short, cfg.thumbnail_max_long_side or None)
            ctx = dict(context or {})
            ctx["thumbnail_transform"] = thumb_tf
            timings.preprocess_s = time.perf_counter() - t
            t = time.perf_counter()
            out = self.sensing.propose([thumb], [text], cfg.max_regions, [ctx])[0]
            timings.sensing_s = time.perf_counter() - t
            model_calls += int(self.sensing.is_model_call)
            sensing_text, sensing_status = out.text, out.status
            for r in out.regions:
                box = thumb_tf.to_frame(r.box).clip(fw, fh)
                if box.width >= 1 and box.height >= 1:
                    regions.append(replace(r, box=box, rank=len(regions)))
            if self.sensing.is_model_call:
                regions = regions[: cfg.max_regions]

        t = time.perf_counter()
        crops = [_Crop(*resize_crop(frame, r.box, cfg.crop)[:2], i) for i, r in enumerate(regions)]
        if mode == "full_frame" or cfg.full_frame_pass or (not crops and cfg.fallback_full_frame):
            img, tf = full_frame_input(frame, cfg.crop)
            crops.append(_Crop(img, tf, -1))
        timings.crop_s = time.perf_counter() - t

        t = time.perf_counter()
        outputs: list[TaskOutput] = []
        if crops:
            # A task module that chains two models (SAM prompted by a detector) reports its
            # true count per call in ``extra["model_calls"]``; the default is one.
            if mode == "serial":
                for c in crops:
                    out = self.task.detect([c.image], [text])
                    outputs += out
                    model_calls += _calls(out)
            else:
                outputs = self.task.detect([c.image for c in crops], [text] * len(crops))
                model_calls += _calls(outputs)
        timings.task_s = time.perf_counter() - t
        if len(outputs) != len(crops):
            # A backend broke its contract (one output per image): say so in the result
            # instead of silently zipping the shorter list.
            problem = f"task model {getattr(self.task, 'name', '?')} returned {len(outputs)} outputs for {len(crops)} crops"
            outputs = list(outputs[: len(crops)]) + [
                TaskOutput([], problem, ParseStatus.FAILED) for _ in range(len(crops) - len(outputs))]
            extra_problems = [problem]
        else:
            extra_problems = []

        t = time.perf_counter()
        dets: list[Detection] = []
        for crop, out in zip(crops, outputs):
            dets += self._to_frame(out.detections, crop, fw, fh)
        dets = [d for d in dets if d.score >= cfg.score_threshold]
        dets = merge_detections(dets, cfg.merge)
        timings.merge_s = time.perf_counter() - t
        timings.total_s = time.perf_counter() - t_start
        return PerceptionResult(
            detections=dets, regions=regions, image_width=fw, image_height=fh, instruction=text,
            timings=timings, model_calls=model_calls, sensing_text=sensing_text,
            task_texts=[o.text for o in outputs], sensing_status=sensing_status,
            task_statuses=[o.status for o in outputs], mode=mode,
            extra={"problems": extra_problems} if extra_problems else {},
        )

    @staticmethod
    def _to_frame(dets: list[Detection], crop: _Crop, fw: int, fh: int) -> list[Detection]:
        out = []
        for d in dets:
            box = crop.transform.to_frame(d.box).clip(fw, fh)
            if box.width <= 0 or box.height <= 0:
                continue
            mask, offset = d.mask, d.mask_offset
            if mask is not None:
                mask, offset = map_mask_to_frame(mask, d.mask_offset, crop.transform, fw, fh)
            points = [crop.transform.point_to_frame(x, y) for x, y in d.points]
            out.append(replace(d, box=box, region_index=crop.region_index, mask=mask, mask_offset=offset,
                               points=points))
        return out


def _calls(outputs: list[TaskOutput]) -> int:
    return max((int(o.extra.get("model_calls", 1)) for o in outputs), default=1)


__all__ = ["ActivePerception", "Box"]
