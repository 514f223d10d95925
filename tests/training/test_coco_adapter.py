"""COCO/LVIS/SODA adapters on a hand-made annotation file whose subsets are known by hand."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from active_o3_training.data.coco import (
    CocoSubsetConfig, coco_dataset, coco_records, load_coco_json, oriented_to_aligned, soda_a_to_coco,
)


def _ann(aid, iid, cid, x, y, w, h, **extra):
    return {"id": aid, "image_id": iid, "category_id": cid, "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0, **extra}


@pytest.fixture()
def coco_dir(tmp_path):
    """Image 1: 16 persons of 10x10 (small, dense) + 1 car 50x50 (not small) + 1 crowd person.
    Image 2: 2 cars: one 20x20 (small), one 40x40 (area 1600 >= 1024, not small)."""
    anns = [_ann(i + 1, 1, 1, 10 * i, 5, 10, 10) for i in range(16)]
    anns.append(_ann(17, 1, 2, 100, 100, 50, 50))
    anns.append(_ann(18, 1, 1, 0, 150, 30, 30, iscrowd=1))
    anns.append(_ann(19, 2, 2, 10, 10, 20, 20))
    anns.append(_ann(20, 2, 2, 60, 60, 40, 40))
    data = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 200},
                       {"id": 2, "file_name": "b.png", "width": 120, "height": 100}],
            "annotations": anns, "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((200, 200, 3), 80, np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.full((100, 120, 3), 160, np.uint8))
    return tmp_path


def _pairs(records):
    return {(r["image_id"], r["instruction"]): r for r in records}


def test_all_subset_is_per_class_without_crowd(coco_dir):
    recs = _pairs(coco_records(load_coco_json(coco_dir / "ann.json"), coco_dir))
    assert set(recs) == {("1", "person"), ("1", "car"), ("2", "car")}
    assert len(recs[("1", "person")]["gt_boxes"]) == 16           # crowd excluded
    assert recs[("1", "car")]["gt_boxes"] == [[100.0, 100.0, 150.0, 150.0]]
    assert len(recs[("2", "car")]["gt_boxes"]) == 2
    assert "person" in recs[("1", "person")]["prompt"][-1]["content"]


def test_small_subset_keeps_only_instances_below_threshold(coco_dir):
    recs = _pairs(coco_records(load_coco_json(coco_dir / "ann.json"), coco_dir, CocoSubsetConfig(subset="small")))
    assert set(recs) == {("1", "person"), ("2", "car")}           # the 50x50 car pair has no small instance
    assert recs[("2", "car")]["gt_boxes"] == [[10.0, 10.0, 30.0, 30.0]]
    assert len(recs[("1", "person")]["gt_boxes"]) == 16


def test_dense_subset_needs_more_than_15_instances(coco_dir):
    recs = _pairs(coco_records(load_coco_json(coco_dir / "ann.json"), coco_dir, CocoSubsetConfig(subset="dense")))
    assert set(recs) == {("1", "person")}
    recs = _pairs(coco_records(load_coco_json(coco_dir / "ann.json"), coco_dir,
                               CocoSubsetConfig(subset="dense", dense_min_instances=16)))
    assert recs == {}                                               # 16 is not MORE than 16


def test_dataset_is_lazy_with_image_column(coco_dir):
    ds = coco_dataset(coco_dir / "ann.json", coco_dir, CocoSubsetConfig(classes=("car",)))
    assert len(ds) == 2 and ds.features["image"].__class__.__name__ == "Image"
    assert ds.features["image"].decode is True
    row = ds[1]
    assert row["image"].size == (row["width"], row["height"])


def test_bad_inputs_give_clear_errors(coco_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation file"):
        load_coco_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{\"images\": []}")
    with pytest.raises(ValueError, match="annotations"):
        load_coco_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="not in the annotation file"):
        coco_records(load_coco_json(coco_dir / "ann.json"), coco_dir, CocoSubsetConfig(classes=("zebra",)))
    with pytest.raises(ValueError, match="subset"):
        CocoSubsetConfig(subset="tiny")


def test_oriented_boxes_become_enclosing_aligned_boxes():
    # a 20x10 box rotated by 90 degrees around (50, 50) -> 10 wide, 20 tall
    b = oriented_to_aligned([50, 50, 20, 10, math.pi / 2])
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((45, 40, 55, 60))
    # 45 degrees: half-extent = (20+10)/2 * cos45
    b = oriented_to_aligned([0, 0, 20, 10, 45.0 * 8])  # 360 degrees (given in degrees) = unrotated
    assert (b.x1, b.y1, b.x2, b.y2) == pytest.approx((-10, -5, 10, 5))
    # a diamond polygon
    b = oriented_to_aligned([10, 0, 20, 10, 10, 20, 0, 10])
    assert (b.x1, b.y1, b.x2, b.y2) == (0, 0, 20, 20)
    with pytest.raises(ValueError):
        oriented_to_aligned([1, 2, 3])


def test_soda_a_per_image_files_merge_to_aligned_coco(tmp_path):
    ann_dir = tmp_path / "ann"
    ann_dir.mkdir()
    for k in range(2):
        d = {"images": [{"id": 0, "file_name": f"{k}.png", "width": 100, "height": 100}],
             "annotations": [{"id": 0, "image_id": 0, "category_id": 3, "poly": [10, 0, 20, 10, 10, 20, 0, 10],
                              "iscrowd": 0}],
             "categories": [{"id": 3, "name": "ship"}]}
        (ann_dir / f"{k}.json").write_text(json.dumps(d))
    coco = soda_a_to_coco(ann_dir, tmp_path)
    assert [im["id"] for im in coco["images"]] == [1, 2]
    assert [a["bbox"] for a in coco["annotations"]] == [[0.0, 0.0, 20.0, 20.0]] * 2
    assert coco["annotations"][0]["area"] == pytest.approx(200.0)   # the diamond's own area, not the box's
    recs = coco_records(coco, tmp_path, CocoSubsetConfig(subset="small", small_area=300))
    assert len(recs) == 2 and recs[0]["gt_boxes"] == [[0.0, 0.0, 20.0, 20.0]]


def _lvis_file(tmp_path, flat: bool = False):
    """A tiny LVIS v1 file: images carry coco_url (no file_name) and the federated lists."""
    data = {"images": [{"id": 7, "coco_url": "http://images.cocodataset.org/val2017/000000000007.jpg",
                        "width": 120, "height": 100, "neg_category_ids": [3], "not_exhaustive_category_ids": [2]},
                       {"id": 8, "coco_url": "http://images.cocodataset.org/val2017/000000000008.jpg",
                        "width": 120, "height": 100, "neg_category_ids": [], "not_exhaustive_category_ids": []}],
            "annotations": [_ann(1, 7, 1, 10, 10, 12, 12), _ann(2, 7, 2, 50, 50, 10, 10), _ann(3, 8, 2, 5, 5, 8, 8)],
            "categories": [{"id": 1, "name": "mug"}, {"id": 2, "name": "sign"}, {"id": 3, "name": "cat"}]}
    (tmp_path / "lvis_v1_val.json").write_text(json.dumps(data))
    folder = tmp_path if flat else tmp_path / "val2017"
    folder.mkdir(exist_ok=True)
    for iid in (7, 8):
        cv2.imwrite(str(folder / f"{iid:012d}.jpg"), np.full((100, 120, 3), 90, np.uint8))
    return tmp_path / "lvis_v1_val.json"


@pytest.mark.parametrize("flat", [False, True])
def test_lvis_images_resolve_from_coco_url_and_not_exhaustive_pairs_are_skipped(tmp_path, flat):
    from pathlib import Path

    ann = _lvis_file(tmp_path, flat)
    recs = coco_records(load_coco_json(ann), tmp_path, CocoSubsetConfig(subset="all"))
    pairs = {(r["image_id"], r["instruction"]) for r in recs}
    # (7, sign) is not exhaustively labelled in image 7: unlabelled signs there are not negatives
    assert pairs == {("7", "mug"), ("8", "sign")}
    for r in recs:
        assert Path(r["image"]).is_file(), r["image"]
        assert Path(r["image"]).parent == (tmp_path if flat else tmp_path / "val2017")


def test_lvis_eval_loader_reads_coco_url(tmp_path):
    from active_o3_training.eval_data import load_coco

    ann = _lvis_file(tmp_path)
    samples = load_coco(ann, tmp_path).samples
    assert [s.file_name for s in samples] == ["val2017/000000000007.jpg", "val2017/000000000008.jpg"]
    assert samples[0].load().shape == (100, 120, 3)


def test_image_entry_without_file_name_or_url_is_named(tmp_path):
    data = {"images": [{"id": 1, "width": 4, "height": 4}], "annotations": [], "categories": []}
    (tmp_path / "x.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"images\[0\].*file_name.*coco_url"):
        load_coco_json(tmp_path / "x.json")
