"""The pipeline with real region sources and a real (deterministic) task model.

The task model here is a genuine TaskModel implementation — a bright-blob detector with
OpenCV — not a mock: it gives the pipeline's mapping and merging something checkable.
"""
import cv2
import numpy as np
import pytest

from active_o3_ros.backends.base import TaskModel, TaskOutput, available_backends, build_sensing
from active_o3_ros.backends.region_sources import OraclePolicy, RandomPolicy, TilingPolicy, cluster_boxes
from active_o3_ros.core.config import PerceptionConfig, PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig
from active_o3_ros.core.pipeline import ActivePerception
from active_o3_ros.core.types import Box, Detection, ParseStatus


class BlobDetector(TaskModel):
    """Finds white blobs at least ``min_side`` px tall in each crop (so zoom matters)."""

    name = "blob"

    def __init__(self, min_side=12):
        self.min_side, self.calls, self.batch_sizes = min_side, 0, []

    def detect(self, images, instructions):
        self.calls += 1
        self.batch_sizes.append(len(images))
        outs = []
        for img in images:
            mask = (img[:, :, 0] > 200).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
            dets = [Detection(Box.from_xywh(x, y, w, h), "blob", 0.9) for x, y, w, h, _ in stats[1:]
                    if h >= self.min_side]
            outs.append(TaskOutput(dets))
        return outs


def frame_with_blobs():
    f = np.zeros((2160, 3840, 3), np.uint8)
    gts = [Box(500, 400, 520, 408), Box(560, 420, 580, 428), Box(3000, 1800, 3020, 1808)]
    for b in gts:
        f[int(b.y1):int(b.y2), int(b.x1):int(b.x2)] = 255
    return f, gts


def test_parallel_oracle_finds_small_blobs_and_maps_back():
    frame, gts = frame_with_blobs()
    task = BlobDetector()
    cfg = PipelineConfig(max_regions=2, thumbnail_short_side=540, crop=ResizeCropConfig(840, 3.0))
    p = ActivePerception(OraclePolicy(), task, cfg)
    r = p(frame, "blob", context={"gt_boxes": gts})
    assert task.calls == 1 and task.batch_sizes == [2]     # 2 clusters, ONE batched call
    assert r.model_calls == 1                              # oracle is not a model call
    assert len(r.detections) == 3
    for g in gts:
        assert max(d.box.iou(g) for d in r.detections) > 0.8
    assert all(d.region_index in (0, 1) for d in r.detections)
    t = r.timings
    assert t.total_s >= t.sensing_s + t.task_s > 0


def test_full_frame_misses_what_zoom_finds():
    frame, gts = frame_with_blobs()
    r = ActivePerception(None, BlobDetector(), PipelineConfig(mode="full_frame"))(frame, "blob")
    assert r.detections == [] and r.model_calls == 1 and r.regions == []


def test_serial_makes_one_call_per_region():
    frame, gts = frame_with_blobs()
    task = BlobDetector()
    p = ActivePerception(TilingPolicy(rows=2, cols=2), task, PipelineConfig(mode="serial", thumbnail_short_side=540))
    r = p(frame, "blob")
    assert task.calls == 4 and r.model_calls == 4 and len(r.regions) == 4


def test_full_frame_pass_in_same_batch_and_merge_dedups():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    gts = [Box(400, 400, 480, 480), Box(1000, 200, 1080, 280), Box(1500, 800, 1580, 880)]
    for b in gts:
        frame[int(b.y1):int(b.y2), int(b.x1):int(b.x2)] = 255
    task = BlobDetector(min_side=1)
    cfg = PipelineConfig(full_frame_pass=True, thumbnail_short_side=540)
    r = ActivePerception(OraclePolicy(), task, cfg)(frame, "blob", context={"gt_boxes": gts})
    assert task.batch_sizes == [4]  # 3 oracle regions + the full frame
    assert len(r.detections) == 3  # found in crops AND the full frame, merged to one each


def test_no_regions_falls_back_to_full_frame():
    frame, _ = frame_with_blobs()
    task = BlobDetector(min_side=1)
    r = ActivePerception(OraclePolicy(), task, PipelineConfig())(frame, "blob", context={"gt_boxes": []})
    assert r.regions == [] and task.batch_sizes == [1] and len(r.detections) >= 1
    task2 = BlobDetector(min_side=1)
    r = ActivePerception(OraclePolicy(), task2, PipelineConfig(fallback_full_frame=False))(frame, "blob", context={})
    assert task2.calls == 0 and r.detections == []


def test_random_and_tiling_regions_valid():
    frame = np.zeros((1080, 1920, 3), np.uint8)
    for policy in (RandomPolicy(seed=1), TilingPolicy()):
        r = ActivePerception(policy, BlobDetector(), PipelineConfig(thumbnail_short_side=270))(frame, "x")
        for reg in r.regions:
            assert 0 <= reg.box.x1 < reg.box.x2 <= 1920 and 0 <= reg.box.y1 < reg.box.y2 <= 1080


def test_bad_inputs_clear_errors():
    p = ActivePerception(TilingPolicy(), BlobDetector())
    with pytest.raises(ValueError, match="empty"):
        p(np.zeros((0, 5, 3), np.uint8), "x")
    with pytest.raises(ValueError, match="instruction"):
        p(np.zeros((5, 5, 3), np.uint8), "   ")
    task_only = ActivePerception(None, BlobDetector(), PipelineConfig(mode="parallel"))  # a task stage only
    with pytest.raises(ValueError, match="sensing"):
        task_only(np.zeros((5, 5, 3), np.uint8), "x")
    with pytest.raises(ValueError, match="sensing"):
        task_only.propose(np.zeros((5, 5, 3), np.uint8), "x")


def test_registry_errors_are_clear():
    assert "tiling" in available_backends()["sensing"]
    with pytest.raises(ValueError, match="unknown sensing backend"):
        build_sensing("nope")
    cfg = PerceptionConfig.from_flat({"sensing_backend": "tiling", "task_module": "text"})
    assert cfg.backend.sensing == "tiling"


def test_cluster_boxes_merges_nearest():
    boxes = [Box(0, 0, 1, 1), Box(2, 0, 3, 1), Box(100, 100, 101, 101)]
    hulls = cluster_boxes(boxes, 2)
    assert hulls[0] == Box(0, 0, 3, 1) and hulls[1] == Box(100, 100, 101, 101)


class ShortDetector(BlobDetector):
    """A task model that breaks the one-output-per-image contract."""

    def detect(self, images, instructions):
        return super().detect(images, instructions)[:1]


def test_task_model_returning_too_few_outputs_is_flagged():
    frame, gts = frame_with_blobs()
    r = ActivePerception(TilingPolicy(rows=1, cols=3), ShortDetector(), PipelineConfig(thumbnail_short_side=540))(frame, "x")
    assert len(r.task_statuses) == 3 and r.task_statuses[1:] == [ParseStatus.FAILED] * 2
    assert "returned 1 outputs for 3 crops" in r.extra["problems"][0]


def test_stages_compose_to_the_whole_pipeline():
    """propose -> detect_regions gives what __call__ gives; detect_each keeps regions apart."""
    frame, gts = frame_with_blobs()
    cfg = PipelineConfig(max_regions=2, thumbnail_short_side=540, crop=ResizeCropConfig(840, 3.0, 1.3))
    p = ActivePerception(OraclePolicy(), BlobDetector(), cfg)
    whole = p(frame, "blob", context={"gt_boxes": gts})
    proposal = p.propose(frame, "blob", context={"gt_boxes": gts})
    assert [r.box for r in proposal.regions] == [r.box for r in whole.regions]
    staged = p.detect_regions(frame, proposal.regions, "blob")
    assert [(d.box, d.region_index) for d in staged.detections] == [(d.box, d.region_index) for d in whole.detections]
    # a task-only pipeline (no sensing) takes frame-pixel boxes directly: what training and teachers use
    task_only = ActivePerception(None, BlobDetector(), cfg)
    each = task_only.detect_each(frame, [r.box for r in proposal.regions], "blob")
    assert each.crop_region_index == [0, 1] and each.model_calls == 1
    assert sum(len(x) for x in each.per_crop) == 3
    for i, dets in enumerate(each.per_crop):
        assert all(d.region_index == i for d in dets)
    assert [d.box for d in task_only.detect_regions(frame, [r.box for r in proposal.regions], "blob").detections] \
        == [d.box for d in whole.detections]
    with pytest.raises(ValueError, match="needs a sensing policy"):
        task_only(frame, "blob")


def test_crop_images_are_the_task_stage_inputs():
    """``crop_images`` gives exactly what the task model is handed: each region's ResizeCrop,
    then the full frame where the mode, ``full_frame_pass`` or the empty fallback asks."""
    from dataclasses import replace

    from active_o3_ros.core.geometry import full_frame_input, resize_crop

    frame, gts = frame_with_blobs()
    cfg = PipelineConfig(max_regions=2, thumbnail_short_side=540, crop=ResizeCropConfig(840, 3.0, 1.3))
    boxes = [Box(440, 360, 640, 480), Box(2900, 1700, 3100, 1900)]
    task = BlobDetector()
    p = ActivePerception(None, task, cfg)
    crops = p.crop_images(frame, boxes)
    assert len(crops) == 2
    for c, b in zip(crops, boxes):
        assert np.array_equal(c, resize_crop(frame, b, cfg.crop)[0])
    task.batch_sizes.clear()
    p.detect_each(frame, boxes, "blob")
    assert task.batch_sizes == [len(crops)]
    full = full_frame_input(frame, cfg.crop)[0]
    with_full = ActivePerception(None, task, replace(cfg, full_frame_pass=True)).crop_images(frame, boxes)
    assert len(with_full) == 3 and np.array_equal(with_full[-1], full)
    assert [c.shape for c in p.crop_images(frame, boxes, mode="full_frame")] == [full.shape]
    fallback = p.crop_images(frame, [])
    assert len(fallback) == (1 if cfg.fallback_full_frame else 0)
    with pytest.raises(ValueError, match="frame"):
        p.crop_images(np.zeros((10, 10), np.float32), boxes)


def test_merge_drops_the_piece_a_crop_edge_cut_where_another_crop_saw_it_whole():
    frame = np.zeros((1000, 2000, 3), np.uint8)
    frame[100:120, 990:1040] = 255  # one blob across region A's right edge, whole in region B
    regions = [Box(0, 0, 1000, 1000), Box(900, 0, 1900, 1000)]
    found = {}
    for margin in (0.0, 3.0):
        cfg = PerceptionConfig.from_flat({"crop_context": 1.0, "merge_cut_margin": margin}).pipeline
        p = ActivePerception(None, BlobDetector(min_side=1), cfg)
        each = p.detect_each(frame, regions, "blob")
        assert [w.as_list() for w in each.crop_windows] == [r.as_list() for r in regions]
        assert [len(d) for d in each.per_crop] == [1, 1]  # A saw a piece, B the whole blob
        found[margin] = p.merge(each)
    assert len(found[0.0]) == 2  # NMS alone: the piece overlaps the whole blob too little
    assert len(found[3.0]) == 1 and found[3.0][0].box.iou(Box(990, 100, 1040, 120)) > 0.9
    assert found[3.0][0].region_index == 1
