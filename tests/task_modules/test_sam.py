"""SAM task module on both implementations: real model classes, tiny random weights."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from active_o3_ros.backends.base import TaskModel, TaskOutput, build_task
from active_o3_ros.backends.region_sources import OraclePolicy
from active_o3_ros.backends.sam import (
    SamTaskModel, grid_points, mask_to_detection, preprocess_shape, prompts_from_detections,
    resolve_implementation,
)
from active_o3_ros.core.config import PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig, map_mask_to_frame, resize_crop
from active_o3_ros.core.metrics import rle_decode, rle_encode
from active_o3_ros.core.pipeline import ActivePerception
from active_o3_ros.core.types import Box, Detection

RNG = np.random.default_rng(0)


def _crops(n: int = 3) -> list[np.ndarray]:
    shapes = [(120, 200), (200, 200), (90, 160), (150, 100)]
    return [RNG.integers(0, 255, (*shapes[i % 4], 3), dtype=np.uint8) for i in range(n)]


def _encoder(model: SamTaskModel):
    m = model.engine.model
    return m.image_encoder if model.implementation == "segment_anything" else m.vision_encoder


def test_both_implementations_give_masks_in_crop_pixels(sam_weights):
    impl, path = sam_weights
    model = build_task("sam", model=path, points_per_crop=2)
    assert model.implementation == impl and model.produces_masks
    crops = _crops(3)
    outs = model.detect(crops, ["cat"] * 3)
    assert len(outs) == 3
    for crop, out in zip(crops, outs):
        h, w = crop.shape[:2]
        assert out.extra["prompts"] == 2 and out.extra["implementation"] == impl
        assert len(out.detections) + out.extra["empty_masks"] == 2
        for d in out.detections:
            assert d.mask.dtype == bool and d.mask.any()
            x0, y0 = d.mask_offset
            mh, mw = d.mask.shape
            # tight box: every border row/col of the cropped mask has a pixel, box == window
            assert (d.box.x1, d.box.y1, d.box.x2, d.box.y2) == (x0, y0, x0 + mw, y0 + mh)
            assert d.mask[0].any() and d.mask[-1].any() and d.mask[:, 0].any() and d.mask[:, -1].any()
            assert 0 <= x0 and 0 <= y0 and x0 + mw <= w and y0 + mh <= h
            assert 0.0 <= d.score <= 1.0 and d.label == "cat" and len(d.points) == 1


def test_k_crops_one_encoder_forward(sam_weights):
    impl, path = sam_weights
    model = SamTaskModel(model=path, points_per_crop=3)
    calls: list[int] = []
    handle = _encoder(model).register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    try:
        model.detect(_crops(3), ["cat"] * 3)
    finally:
        handle.remove()
    assert calls == [3], f"expected one encoder forward over 3 crops, got batches {calls}"
    assert model.encoder_batches == 1


def test_same_result_batched_or_alone(sam_weights):
    """Batching must not change a crop's mask (padding to the encoder size is per crop)."""
    _, path = sam_weights
    model = SamTaskModel(model=path)
    crops = _crops(3)
    batched = model.detect(crops, ["x"] * 3)
    alone = model.detect([crops[1]], ["x"])
    a, b = batched[1].detections, alone[0].detections
    assert len(a) == len(b)
    for da, db in zip(a, b):
        assert da.mask_offset == db.mask_offset and da.mask.shape == db.mask.shape
        assert np.mean(da.mask != db.mask) < 1e-3


def test_pipeline_maps_sam_masks_to_frame_and_rle_round_trips(sam_weights):
    _, path = sam_weights
    model = SamTaskModel(model=path)
    frame = RNG.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    cfg = PipelineConfig(max_regions=2, crop=ResizeCropConfig(output_size=160, max_zoom=4.0), fallback_full_frame=False)
    pipe = ActivePerception(OraclePolicy(margin=0), model, cfg)
    gts = [Box(20, 30, 100, 90), Box(200, 150, 300, 230)]
    res = pipe(frame, "cat", context={"gt_boxes": gts})
    assert res.model_calls == 1 and len(res.regions) == 2
    # the same crops, straight through SAM, then the core's paste-back: must equal the pipeline
    for r_i, region in enumerate(res.regions):
        crop, tf, _ = resize_crop(frame, region.box, cfg.crop)
        direct = model.detect([crop], ["cat"])[0].detections
        got = [d for d in res.detections if d.region_index == r_i]
        assert len(direct) == len(got) >= 1
        for d_crop, d_frame in zip(direct, got):
            m, off = map_mask_to_frame(d_crop.mask, d_crop.mask_offset, tf, 320, 240)
            assert off == d_frame.mask_offset and np.array_equal(m, d_frame.mask)
            full = np.zeros((240, 320), bool)
            full[off[1]:off[1] + m.shape[0], off[0]:off[0] + m.shape[1]] = m
            assert np.array_equal(rle_decode(rle_encode(full)), full)
            assert np.array_equal(rle_decode(rle_encode(d_frame.mask)), d_frame.mask)


class _HandMadeMaskTask(TaskModel):
    """A task model whose answer is known exactly: an L-shaped mask at a fixed crop position."""

    produces_masks = True

    def detect(self, images, instructions):
        mask = np.zeros((20, 30), bool)
        mask[:, :10] = True
        mask[-5:, :] = True
        return [TaskOutput([Detection(Box(40, 20, 70, 40), "l", 1.0, mask=mask, mask_offset=(40, 20))])
                for _ in images]


def test_paste_back_geometry_exact_hand_made():
    """Region (100,50)-(200,150) of a 400x300 frame → a 200x200 crop (zoom 2, no growth).
    Crop pixel (u, v) covers frame pixel (100 + u/2, 50 + v/2): the 30x20 L at crop (40,20)
    becomes a 15x10 L at frame (120, 60)."""
    frame = np.zeros((300, 400, 3), np.uint8)
    cfg = PipelineConfig(max_regions=1, crop=ResizeCropConfig(output_size=200, max_zoom=2.0), fallback_full_frame=False)
    pipe = ActivePerception(OraclePolicy(margin=0), _HandMadeMaskTask(), cfg)
    res = pipe(frame, "l", context={"gt_boxes": [Box(100, 50, 200, 150)]})
    assert [r.box.as_list() for r in res.regions] == [[100.0, 50.0, 200.0, 150.0]]
    (d,) = res.detections
    expected = np.zeros((10, 15), bool)
    expected[:, :5] = True
    expected[-3:, :] = True  # 5 crop rows → rows 17.5..20 → frame rows 7..9 with nearest-exact
    assert d.mask_offset == (120, 60)
    assert d.box.as_list() == [120.0, 60.0, 135.0, 70.0]
    assert d.mask.shape == expected.shape
    assert np.array_equal(d.mask, expected), d.mask.astype(int)


def test_grounding_dino_as_prompter_gives_box_prompts(tiny_gdino_dir, tiny_sa_checkpoint):
    model = SamTaskModel(model=str(tiny_sa_checkpoint), prompter="grounding_dino", prompter_model=str(tiny_gdino_dir),
                         prompter_options={"box_threshold": 0.0, "text_threshold": 0.0, "max_detections_per_crop": 2})
    outs = model.detect(_crops(2), ["cat. remote control"] * 2)
    for o in outs:
        assert o.extra["model_calls"] == 2 and o.extra["prompts"] == 2
        assert o.text == "cat. remote control."
        assert {d.label for d in o.detections} <= {"cat", "remote control"}
        assert all(d.points == [] for d in o.detections)  # box prompts carry no points


def test_prompt_helpers():
    assert grid_points(200, 100, 1).tolist() == [[100.0, 50.0]]
    pts = grid_points(90, 90, 4)
    assert len(pts) == 4 and set(map(tuple, pts.tolist())) <= {(22.5, 22.5), (67.5, 22.5), (22.5, 67.5), (67.5, 67.5)}
    ps = prompts_from_detections([
        Detection(Box(9.5, 9.5, 10.5, 10.5), "a", 0.7, points=[(10.0, 10.0)]),
        Detection(Box(1, 2, 30, 40), "b", 0.5),
    ])
    assert ps[0].points.tolist() == [[10.0, 10.0]] and ps[0].box is None and ps[0].score == 0.7
    assert ps[1].box.tolist() == [1, 2, 30, 40] and ps[1].points is None
    m = np.zeros((10, 10), bool)
    m[2:5, 3:9] = True
    d = mask_to_detection(m, "x", 0.5)
    assert d.mask_offset == (3, 2) and d.mask.shape == (3, 6) and d.mask.all()
    assert mask_to_detection(np.zeros((4, 4), bool), "x", 1.0) is None
    assert preprocess_shape(480, 640, 1024) == (768, 1024)


def test_bad_weights_clear_errors(tmp_path, tiny_sa_checkpoint, tiny_hf_sam_dir):
    with pytest.raises(FileNotFoundError, match="not found"):
        SamTaskModel(model=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="needs weights"):
        SamTaskModel(model="")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="cannot read SAM checkpoint"):
        SamTaskModel(model=str(junk))
    with pytest.raises(RuntimeError, match="does not fit model_type 'vit_b'"):
        SamTaskModel(model=str(tiny_sa_checkpoint), model_type="vit_b")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SamTaskModel(model=str(tmp_path))
    with pytest.raises(ValueError, match="unknown sam option"):
        SamTaskModel(model=str(tiny_sa_checkpoint), points=3)
    with pytest.raises(ValueError, match="points_per_crop"):
        SamTaskModel(model=str(tiny_sa_checkpoint), points_per_crop=0)
    with pytest.raises(ValueError, match="cannot be 'sam'"):
        SamTaskModel(model=str(tiny_sa_checkpoint), prompter="sam")
    model = SamTaskModel(model=str(tiny_hf_sam_dir))
    with pytest.raises(ValueError, match="2 images but 1 instructions"):
        model.detect(_crops(2), ["x"])
    with pytest.raises(ValueError, match="uint8"):
        model.detect([np.zeros((10, 10, 3), np.float32)], ["x"])
    assert resolve_implementation("auto", str(tiny_sa_checkpoint)) == "segment_anything"
    assert resolve_implementation("auto", str(tiny_hf_sam_dir)) == "transformers"
    assert resolve_implementation("auto", "facebook/sam-vit-base") == "transformers"


def test_real_name_segment_anything_untouched(tiny_sa_checkpoint):
    SamTaskModel(model=str(tiny_sa_checkpoint))
    mod = sys.modules.get("segment_anything")
    assert mod is None or hasattr(mod, "sam_model_registry")


def test_package_registry_vit_b_builds_without_checkpoint():
    """The package's own registry builds the real vit_b (random weights, no checkpoint)."""
    model = SamTaskModel(random_init=True, model_type="vit_b")
    sam = model.engine.model
    assert type(sam).__name__ == "Sam" and model.engine.image_size == 1024
    assert sam.image_encoder.patch_embed.proj.weight.shape[0] == 768
    assert model.engine.model_type == "vit_b"


@pytest.mark.gpu
def test_registry_vit_b_segments_on_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (vit_b's 1024-px encoder takes ~100 s per crop on one CPU core)")
    model = SamTaskModel(random_init=True, model_type="vit_b", device="cuda")
    outs = model.detect(_crops(3), ["cat"] * 3)
    assert model.encoder_batches == 1 and len(outs) == 3


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                    reason="torchvision is not importable with this torch build, so segment_anything's own "
                           "ResizeLongestSide (segment_anything/utils/transforms.py) cannot be compared")
def test_pil_resize_matches_segment_anything_transform():
    from segment_anything.utils.transforms import ResizeLongestSide
    from PIL import Image

    img = _crops(1)[0]
    nh, nw = preprocess_shape(*img.shape[:2], 1024)
    ours = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    assert np.array_equal(ours, ResizeLongestSide(1024).apply_image(img))
