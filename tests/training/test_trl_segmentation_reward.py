"""The segmentation task term, wired end to end: COCO polygons/RLE become a ``gt_masks``
column, the SAM task module runs on the proposed regions inside the TRL reward, and the mIoU
term rises with regions on the object and falls with regions beside it; one GRPO step of the
tiny Qwen2.5-VL trains against it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from active_o3_training.data.coco import CocoSubsetConfig, annotation_rle, coco_records, decode_masks, load_coco_json

W = H = 256
OBJ = (96, 100, 150, 140)  # x1, y1, x2, y2 of the object (a rectangle, as a polygon)


def _polygon(x1, y1, x2, y2):
    return [[x1, y1, x2, y1, x2, y2, x1, y2]]


@pytest.fixture()
def seg_coco(tmp_path):
    """One image with one bright rectangle (polygon) and one object given by RLE, one without mask."""
    img = np.full((H, W, 3), 40, np.uint8)
    x1, y1, x2, y2 = OBJ
    img[y1:y2, x1:x2] = 230
    cv2.imwrite(str(tmp_path / "a.png"), img)
    from pycocotools import mask as mask_utils

    m = np.zeros((H, W), np.uint8)
    m[10:30, 200:240] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    data = {"images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
            "categories": [{"id": 1, "name": "box"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0,
                 "area": (x2 - x1) * (y2 - y1), "segmentation": _polygon(*OBJ)},
                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [200, 10, 40, 20], "iscrowd": 0, "area": 800,
                 "segmentation": rle},
                {"id": 3, "image_id": 1, "category_id": 1, "bbox": [20, 200, 10, 10], "iscrowd": 0, "area": 100},
            ]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    return tmp_path


def test_masks_column_decodes_to_the_annotated_pixels(seg_coco):
    data = load_coco_json(seg_coco / "ann.json")
    assert "gt_masks" not in coco_records(data, seg_coco)[0]        # only when asked for
    rec = coco_records(data, seg_coco, CocoSubsetConfig(with_masks=True))[0]
    masks = decode_masks(rec["gt_masks"])
    assert len(masks) == len(rec["gt_boxes"]) == 3
    from pycocotools.coco import COCO

    coco = COCO(str(seg_coco / "ann.json"))
    for ann, mask in zip(coco.loadAnns([1, 2]), masks[:2]):
        assert mask.shape == (H, W) and np.array_equal(mask, coco.annToMask(ann).astype(bool))
    # no segmentation: the box is the mask
    assert masks[2].sum() == 100 and masks[2][200:210, 20:30].all()
    json.dumps(rec)  # a plain JSON-able record (datasets column of strings)


def test_unusable_segmentation_falls_back_to_the_box(caplog):
    from active_o3_ros.core.types import Box

    rle = annotation_rle({"id": 9, "segmentation": {"counts": 12, "size": "x"}}, Box(2, 3, 6, 5), 10, 8)
    m = decode_masks([rle])[0]
    assert m.sum() == 8 and m[3:5, 2:6].all()
    assert "box is used as mask" in caplog.text


@pytest.fixture(scope="module")
def tiny_sam_file(tmp_path_factory):
    from active_o3_ros.testing.tiny_models import save_tiny_segment_anything

    return save_tiny_segment_anything(tmp_path_factory.mktemp("sam") / "tiny_sam.safetensors")


def _answer(boxes, space):
    iw, ih = space.input_size(W, H)
    items = [{"bbox_2d": [round(b[0] * iw / W), round(b[1] * ih / H), round(b[2] * iw / W), round(b[3] * ih / H)],
              "label": "box"} for b in boxes]
    return f"<think>look</think><answer>{json.dumps(items)}</answer>"


def test_miou_term_follows_the_regions(seg_coco, tiny_sam_file):
    """Same SAM, same prompter: regions on the object score higher than a loose region, which
    scores higher than regions beside it (0: no mask can overlap the object)."""
    from active_o3_ros.backends.base import build_task
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.geometry import ResizeCropConfig
    from active_o3_ros.core.rewards import RewardConfig
    from active_o3_training.data.coco import records_to_dataset
    from active_o3_training.rewards_trl import InputSpace, TrlRewards

    rec = coco_records(load_coco_json(seg_coco / "ann.json"), seg_coco, CocoSubsetConfig(with_masks=True))[0]
    row = records_to_dataset([rec])[0]
    task = build_task("sam", model=str(tiny_sam_file), prompter="box")
    space = InputSpace()
    rewards = TrlRewards(RewardConfig(signal="task", task_metric="segmentation"), space, task,
                         PipelineConfig(fallback_full_frame=False, crop=ResizeCropConfig(128, 4.0, 1.0)))
    try:
        x1, y1, x2, y2 = OBJ
        tight = [(x1, y1, x2, y2), (200, 10, 240, 30)]
        loose = [(x1 - 60, y1 - 60, x2 + 60, y2 + 60)]
        beside = [(0, 0, 60, 60), (170, 170, 250, 250)]
        answers = [_answer(b, space) for b in (tight, loose, beside)] + ["no answer at all"]
        cols = {k: [row[k]] * len(answers) for k in ("width", "height", "gt_boxes", "image", "instruction", "gt_masks")}
        tight_r, loose_r, beside_r, none_r = rewards.task([None] * len(answers), answers, **cols)
    finally:
        task.close()
    assert tight_r > loose_r > beside_r, (tight_r, loose_r, beside_r)
    assert beside_r == 0.0 and none_r == 0.0
    funcs, weights = rewards.functions()
    assert [f.__name__ for f in funcs] == ["task", "parse_failure"]


def test_segmentation_needs_masks_and_a_mask_model(seg_coco, tmp_path):
    from active_o3_training.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="needs ground-truth masks"):
        load_config(None, ["data.kind=rosbag", "data.bag=x", "model.policy=p", "reward.task_metric=segmentation"]).validate()
    with pytest.raises(ConfigError, match="task_metric must be one of"):
        load_config(None, ["data.kind=rosbag", "data.bag=x", "model.policy=p", "reward.task_metric=miou"]).validate()


@pytest.mark.slow
def test_grpo_step_with_sam_segmentation_reward(seg_coco, tiny_sam_file, tmp_path):
    """The recipe shape of the paper's interactive segmentation: COCO masks + SAM task module +
    mIoU term, one TRL GRPO step of the tiny Qwen2.5-VL; the task term is logged."""
    import csv

    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen
    from active_o3_training.config import ConfigError, load_config
    from active_o3_training.grpo_mllm import build_task_model, build_trainer

    qwen = build_tiny_qwen(tmp_path / "tiny_qwen")
    sets = [f"data.ann_file={seg_coco / 'ann.json'}", f"data.image_dir={seg_coco}", f"model.policy={qwen}",
            "model.task_backend=sam", f"model.task_model={tiny_sam_file}", "model.task_options={prompter: box}",
            "reward.task_metric=segmentation", "reward.crop_size=128", f"trainer.output_dir={tmp_path / 'run'}",
            "trainer.num_generations=2", "trainer.per_device_train_batch_size=2", "trainer.max_steps=1",
            "trainer.max_completion_length=16", "trainer.report_to=none", "trainer.device=cpu"]
    cfg = load_config(None, sets)
    trainer, processor, rewards = build_trainer(cfg)
    try:
        assert rewards.cfg.task_metric == "segmentation" and rewards.task_model.name == "sam"
        trainer.train()
    finally:
        rewards.task_model.close()
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert rows and "rewards/task/mean" in rows[0]
    assert 0.0 <= float(rows[0]["rewards/task/mean"]) <= 1.0
    # a box-only task module is refused for the mIoU term
    bad = load_config(None, [s for s in sets if not s.startswith(("model.task_backend", "model.task_model",
                                                                   "model.task_options"))]
                      + ["model.task_backend=qwen_vl", "model.task_options={max_new_tokens: 4}"])
    with pytest.raises(ConfigError, match="returns boxes only"):
        build_task_model(bad, "cpu")
