"""Grounding DINO task module: tiny random model through from_pretrained, one batched forward."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from active_o3_ros.backends.base import build_task
from active_o3_ros.backends.grounding_dino import (
    GroundingDinoTask, build_caption, caption_phrases, phrase_token_masks,
)
from active_o3_ros.core.config import PerceptionConfig
from active_o3_ros.backends.base import build_pipeline

RNG = np.random.default_rng(1)


def _crops() -> list[np.ndarray]:
    return [RNG.integers(0, 255, s, dtype=np.uint8) for s in [(120, 200, 3), (200, 180, 3), (90, 160, 3)]]


def test_caption_and_phrase_tokens():
    assert caption_phrases("Cat, remote  control") == ["cat", "remote control"]
    assert caption_phrases(["a cat.", "a cat", "dog"]) == ["a cat", "dog"]
    assert build_caption(["cat", "remote control"]) == "cat. remote control."
    with pytest.raises(ValueError, match="no class phrase"):
        caption_phrases(" . , ")
    # [CLS] cat . remote control . [SEP]
    offsets = [(0, 0), (0, 3), (3, 4), (5, 11), (12, 19), (19, 20), (0, 0)]
    m = phrase_token_masks(offsets, "cat. remote control.", ["cat", "remote control"])
    assert m.astype(int).tolist() == [[0, 1, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0, 0]]


def test_k_crops_one_forward_boxes_in_crop_pixels(tiny_gdino_dir):
    model = build_task("grounding_dino", model=str(tiny_gdino_dir), box_threshold=0.0, text_threshold=0.0)
    calls: list[int] = []
    handle = model.model.register_forward_hook(lambda mod, args, kwargs, out: calls.append(kwargs["pixel_values"].shape[0]),
                                               with_kwargs=True)
    crops = _crops()
    try:
        outs = model.detect(crops, ["cat, remote control"] * 3)
    finally:
        handle.remove()
    assert calls == [3] and model.forward_batches == 1
    n_queries = model.model.config.num_queries
    for crop, out in zip(crops, outs):
        h, w = crop.shape[:2]
        assert out.text == "cat. remote control." and 0 < len(out.detections) <= n_queries
        for d in out.detections:
            assert 0 <= d.box.x1 < d.box.x2 <= w and 0 <= d.box.y1 < d.box.y2 <= h
            assert d.label in ("cat", "remote control") and 0.0 <= d.score <= 1.0
        scores = [d.score for d in out.detections]
        assert scores == sorted(scores, reverse=True)


def test_thresholds_are_the_processors(tiny_gdino_dir):
    """Number kept == queries whose max token probability exceeds box_threshold."""
    crops = _crops()[:1]
    loose = GroundingDinoTask(model=str(tiny_gdino_dir), box_threshold=0.0, text_threshold=0.0)
    proc = loose.processor
    enc = proc(images=crops, text=["cat."], return_tensors="pt")
    with torch.no_grad():
        probs = torch.sigmoid(loose.model(**enc).logits)[0].max(-1).values
    thr = float(probs.median())
    strict = GroundingDinoTask(model=str(tiny_gdino_dir), box_threshold=thr, text_threshold=0.0)
    (out,) = strict.detect(crops, ["cat"])
    assert out.extra["kept"] == int((probs > thr).sum())
    assert len(out.detections) <= out.extra["kept"] < loose.model.config.num_queries
    assert all(d.score > thr for d in out.detections)


def test_through_config_and_pipeline(tiny_gdino_dir):
    cfg = PerceptionConfig.from_flat({
        "sensing_backend": "tiling", "task_module": "grounding_dino", "task_model": str(tiny_gdino_dir),
        "task_options": '{"box_threshold": 0.0, "max_detections_per_crop": 5}', "crop_size": 128,
        "sensing_options": '{"rows": 1, "cols": 2}', "instruction": "cat",
    })
    pipe = build_pipeline(cfg)
    frame = RNG.integers(0, 255, (180, 320, 3), dtype=np.uint8)
    res = pipe(frame, "cat")
    assert res.model_calls == 1 and len(res.task_statuses) == 2
    assert res.detections and all(0 <= d.box.x1 < d.box.x2 <= 320 and 0 <= d.box.y2 <= 180 for d in res.detections)
    assert {d.region_index for d in res.detections} <= {0, 1}


def test_bad_model_paths_clear_errors(tmp_path, tiny_gdino_dir):
    with pytest.raises(ValueError, match="needs task_model"):
        GroundingDinoTask(model="")
    with pytest.raises(FileNotFoundError, match="not found"):
        GroundingDinoTask(model=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        GroundingDinoTask(model=str(tmp_path))
    f = tmp_path / "w.bin"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file"):
        GroundingDinoTask(model=str(f))
    with pytest.raises(ValueError, match="box_threshold"):
        GroundingDinoTask(model=str(tiny_gdino_dir), box_threshold=1.5)
    with pytest.raises(ValueError, match="unknown grounding_dino option"):
        GroundingDinoTask(model=str(tiny_gdino_dir), nms=0.5)
