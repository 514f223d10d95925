"""ActivePerception: the ACTIVE-o3 frame pipeline.

parallel (the paper): thumbnail → ONE sensing call → up to K regions → K ResizeCrops →
ONE batched task call → detections mapped to frame pixels → merged.  2 model calls (1 + K
when the task module loops over the crops inside its call, as the ``text`` module does).
serial (o3/ZoomEye-style, for comparison): one task call per region → 1 + K calls.
full_frame (baseline): the frame downscaled to the task input, one task call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from active_o3_ros.core.ports import SensingPolicy, TaskModel, TaskOutput
from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import (
    ScaleOffset, full_frame_input, make_thumbnail, map_mask_to_frame, resize_crop, validate_image,
)
from active_o3_ros.core.merge import drop_cut_detections, merge_detections
from active_o3_ros.core.prompts import normalize_instruction
from active_o3_ros.core.types import Box, Detection, ParseStatus, PerceptionResult, Region, StageTimings


@dataclass
class Proposal:
    """What the sensing stage returns: regions in frame pixels (ranked), the policy's raw
    answer and parse status, its model-call count and stage times."""

    regions: list[Region]
    text: str = ""
    status: ParseStatus = ParseStatus.OK
    model_calls: int = 0
    preprocess_s: float = 0.0
    sensing_s: float = 0.0


@dataclass
class RegionDetections:
    """What the task stage returns before merging: per crop (regions first, then the full
    frame if it ran) the detections in frame pixels and the raw task output."""

    regions: list[Region]
    per_crop: list[list[Detection]]
    crop_region_index: list[int]  # -1: the full frame
    crop_windows: list[Box]       # what each crop shows, frame pixels
    outputs: list[TaskOutput]
    model_calls: int
    crop_s: float
    task_s: float
    map_s: float
    problems: list[str]
    instruction: str
    width: int
    height: int
    mode: str


@dataclass
class _Crop:
    image: np.ndarray
    transform: ScaleOffset  # crop pixels -> frame pixels
    region_index: int       # -1: full frame
    window: Box             # what the crop shows, frame pixels


class ActivePerception:
    """Runs sensing and task backends over frames; stateless between frames.

    Stages a caller can use on their own (training rewards, teachers, caches, evaluation):
    :meth:`propose` (sensing), :meth:`detect_each` (crop, task, map back; per region) and
    :meth:`detect_regions` (the same, merged).  ``__call__`` is propose + detect_regions.
    ``sensing`` may be None for a task-only pipeline (``detect_regions``, ``full_frame``).
    """

    def __init__(self, sensing: SensingPolicy | None, task: TaskModel, config: PipelineConfig | None = None) -> None:
        self.sensing = sensing
        self.task = task
        self.config = config or PipelineConfig()  # sensing None: task stage only (detect_regions, full_frame)

    def close(self) -> None:
        for m in (self.sensing, self.task):
            if m is not None:
                m.close()

    # -- the stages (all in frame pixels) ----------------------------------------------------
    def propose(self, frame: np.ndarray, instruction: str | Sequence[str],
                context: dict[str, Any] | None = None) -> Proposal:
        """Sensing stage: thumbnail -> ONE sensing call -> up to K regions in frame pixels.

        ``context`` is passed to the sensing policy (ground truth for the oracle baseline);
        the pipeline adds ``thumbnail_transform`` (frame -> thumbnail) to it.
        """
        if self.sensing is None:
            raise ValueError("propose() needs a sensing policy (this pipeline was built for mode='full_frame')")
        return self._propose(validate_image(frame, "frame"), normalize_instruction(instruction), context)

    def _propose(self, frame: np.ndarray, text: str, context: dict[str, Any] | None) -> Proposal:
        """:meth:`propose` on a validated frame and normalised instruction."""
        cfg = self.config
        fh, fw = frame.shape[:2]
        t = time.perf_counter()
        short = self.sensing.thumbnail_short_side_for(fw, fh) or cfg.thumbnail_short_side
        thumb, thumb_tf = make_thumbnail(frame, short, cfg.thumbnail_max_long_side or None)
        ctx = dict(context or {})
        ctx["thumbnail_transform"] = thumb_tf
        preprocess_s = time.perf_counter() - t
        t = time.perf_counter()
        out = self.sensing.propose([thumb], [text], cfg.max_regions, [ctx])[0]
        sensing_s = time.perf_counter() - t
        regions: list[Region] = []
        for r in out.regions:
            box = thumb_tf.to_frame(r.box).clip(fw, fh)
            if box.width >= 1 and box.height >= 1:
                regions.append(replace(r, box=box, rank=len(regions)))
        if self.sensing.is_model_call:
            regions = regions[: cfg.max_regions]
        return Proposal(regions, out.text, out.status, int(self.sensing.is_model_call), preprocess_s, sensing_s)

    def detect_each(self, frame: np.ndarray, regions: Sequence[Region | Box], instruction: str | Sequence[str],
                    mode: str | None = None) -> RegionDetections:
        """Task stage without the merge: ResizeCrop every region (plus the full frame where the
        config asks), run the task model (one batched call; one per crop in ``serial``), and map
        each crop's detections to frame pixels, ``region_index`` set.  Regions are frame pixels."""
        return self._detect_each(validate_image(frame, "frame"), regions, normalize_instruction(instruction), mode)

    def _detect_each(self, frame: np.ndarray, regions: Sequence[Region | Box], text: str,
                     mode: str | None) -> RegionDetections:
        """:meth:`detect_each` on a validated frame and normalised instruction."""
        cfg = self.config
        mode = mode or cfg.mode
        fh, fw = frame.shape[:2]
        regions = [r if isinstance(r, Region) else Region(r, "", i) for i, r in enumerate(regions)]
        if mode == "full_frame":
            regions = []
        t = time.perf_counter()
        crops = self._cut(frame, regions, mode)
        crop_s = time.perf_counter() - t

        t = time.perf_counter()
        outputs: list[TaskOutput] = []
        model_calls = 0
        if crops:
            # A task module that chains two models (SAM prompted by a detector) reports its
            # true count per call in ``extra["model_calls"]``; the default is one.
            # A module that loops over the crops inside one call (``batched = False``) ran
            # its model once per crop, and that is what is counted.
            if mode == "serial":
                for c in crops:
                    out = self.task.detect([c.image], [text])
                    outputs += out
                    model_calls += _calls(out)
            else:
                outputs = self.task.detect([c.image for c in crops], [text] * len(crops))
                model_calls += (_calls(outputs) if getattr(self.task, "batched", True)
                                else sum(_calls([o]) for o in outputs))
        task_s = time.perf_counter() - t
        problems = []
        if len(outputs) != len(crops):
            # A backend broke its contract (one output per image): say so in the result
            # instead of silently zipping the shorter list.
            problem = f"task model {getattr(self.task, 'name', '?')} returned {len(outputs)} outputs for {len(crops)} crops"
            outputs = list(outputs[: len(crops)]) + [
                TaskOutput([], problem, ParseStatus.FAILED) for _ in range(len(crops) - len(outputs))]
            problems = [problem]
        t = time.perf_counter()
        per_crop = [self._to_frame(out.detections, crop, fw, fh) for crop, out in zip(crops, outputs)]
        map_s = time.perf_counter() - t
        return RegionDetections(regions, per_crop, [c.region_index for c in crops], [c.window for c in crops],
                                outputs, model_calls,
                                crop_s, task_s, map_s, problems, text, fw, fh, mode)

    def crop_images(self, frame: np.ndarray, regions: Sequence[Region | Box], mode: str | None = None
                    ) -> list[np.ndarray]:
        """The images the task stage would be given for ``regions`` (frame pixels): each
        region ResizeCropped, plus the full frame where the config asks, in the task's order."""
        regions = [r if isinstance(r, Region) else Region(r, "", i) for i, r in enumerate(regions)]
        return [c.image for c in self._cut(validate_image(frame, "frame"), regions, mode or self.config.mode)]

    def _cut(self, frame: np.ndarray, regions: Sequence[Region], mode: str) -> list[_Crop]:
        """The crop stage: every region ResizeCropped (none in ``full_frame`` mode), then the
        full frame where the mode, ``full_frame_pass`` or the empty-proposal fallback asks."""
        cfg = self.config
        crops = [] if mode == "full_frame" else [_Crop(img, tf, i, win) for i, r in enumerate(regions)
                                                 for img, tf, win in [resize_crop(frame, r.box, cfg.crop)]]
        if mode == "full_frame" or cfg.full_frame_pass or (not crops and cfg.fallback_full_frame):
            img, tf = full_frame_input(frame, cfg.crop)
            fh, fw = frame.shape[:2]
            crops.append(_Crop(img, tf, -1, Box(0.0, 0.0, float(fw), float(fh))))
        return crops

    def merge(self, each: RegionDetections, regions: Sequence[int] | None = None) -> list[Detection]:
        """Score threshold, cut pieces (:func:`.merge.drop_cut_detections`) and merge of
        :meth:`detect_each`'s per-crop detections; ``regions`` keeps only the crops of those
        region indices (and the full-frame crop), so a caller can score any subset of the
        regions without running the task model again."""
        keep = None if regions is None else set(regions) | {-1}
        cfg = self.config
        idx = [i for i, ri in enumerate(each.crop_region_index) if keep is None or ri in keep]
        per = drop_cut_detections([[d for d in each.per_crop[i] if d.score >= cfg.score_threshold] for i in idx],
                                  [each.crop_windows[i] for i in idx], each.width, each.height, cfg.merge.cut_margin)
        return merge_detections([d for dets in per for d in dets], cfg.merge)

    def detect_regions(self, frame: np.ndarray, regions: Sequence[Region | Box], instruction: str | Sequence[str],
                       mode: str | None = None) -> PerceptionResult:
        """Task stage: :meth:`detect_each`, then score threshold and merge -> the frame's result."""
        t_start = time.perf_counter()
        each = self.detect_each(frame, regions, instruction, mode)
        return self._result(each, None, StageTimings(), t_start)

    def __call__(self, frame: np.ndarray, instruction: str | Sequence[str],
                 context: dict[str, Any] | None = None, mode: str | None = None) -> PerceptionResult:
        """Process one RGB ``HxWx3 uint8`` frame: :meth:`propose` then :meth:`detect_regions`.
        Raises ValueError on a bad frame or empty instruction; never on bad model output (that
        is counted in the result)."""
        mode = mode or self.config.mode
        t_start = time.perf_counter()
        frame = validate_image(frame, "frame")
        text = normalize_instruction(instruction)  # a bad instruction fails before any model runs
        timings = StageTimings()
        proposal = None
        if mode != "full_frame":
            if self.sensing is None:
                raise ValueError(f"mode {mode!r} needs a sensing policy")
            proposal = self._propose(frame, text, context)
            timings.preprocess_s, timings.sensing_s = proposal.preprocess_s, proposal.sensing_s
        each = self._detect_each(frame, proposal.regions if proposal else [], text, mode)
        return self._result(each, proposal, timings, t_start)

    def _result(self, each: "RegionDetections", proposal: "Proposal | None", timings: StageTimings,
                t_start: float) -> PerceptionResult:
        t = time.perf_counter()
        dets = self.merge(each)
        timings.crop_s, timings.task_s = each.crop_s, each.task_s
        timings.merge_s = each.map_s + time.perf_counter() - t
        timings.total_s = time.perf_counter() - t_start
        extra: dict[str, Any] = {"problems": each.problems} if each.problems else {}
        cost = task_cost(each.outputs)
        if cost:
            extra["task_cost"] = cost
        return PerceptionResult(
            detections=dets, regions=list(each.regions), image_width=each.width, image_height=each.height,
            instruction=each.instruction, timings=timings,
            model_calls=each.model_calls + (proposal.model_calls if proposal else 0),
            sensing_text=proposal.text if proposal else "", task_texts=[o.text for o in each.outputs],
            sensing_status=proposal.status if proposal else ParseStatus.OK,
            task_statuses=[o.status for o in each.outputs], mode=each.mode, extra=extra,
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


def task_cost(outputs: Sequence[TaskOutput]) -> dict[str, float]:
    """The sum over crops of the numeric engine costs a task module reports in
    ``extra["cost"]`` (e.g. the text module's ``det_s``/``rec_s``/``det_megapixels``)."""
    total: dict[str, float] = {}
    for o in outputs:
        for k, v in (o.extra.get("cost") or {}).items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0.0) + float(v)
    return {k: round(v, 6) for k, v in total.items()}


__all__ = ["ActivePerception", "Box", "Proposal", "RegionDetections", "task_cost"]
