"""Bag -> dataset: stamp pairing with tolerance, subsampling, duplicates, bad frames; bag -> COCO -> bag."""
from __future__ import annotations

import json

import numpy as np
import pytest

from active_o3_training.data.rosbag import (
    BagDatasetConfig, BagReport, bag_dataset, bag_to_coco, coco_to_bag, iter_labeled_frames,
)

from _bagutil import write_bag

MS = 1_000_000
S0 = 1_700_000_000 * 10**9


def frame(k: int, w: int = 64, h: int = 48) -> np.ndarray:
    rng = np.random.default_rng(k)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.fixture(params=["mcap", "sqlite3"])
def bag(tmp_path, request):
    # 10 frames at 10 Hz; labels for frames 0..7 stamped +3 ms (inside 20 ms tolerance),
    # one label 50 ms away from every frame, frame 9 a copy of frame 7 (a robot standing still)
    imgs = [(S0 + k * 100 * MS, frame(k)) for k in range(9)]
    imgs.append((S0 + 900 * MS, frame(7)))
    labels = [(S0 + k * 100 * MS + 3 * MS, [[k, 2, k + 10, 12]], ["cup"], "cup") for k in range(8)]
    labels.append((S0 + 850 * MS, [[1, 1, 5, 5]], ["cup"], "cup"))            # 50 ms from frames 8 and 9
    labels.append((S0 + 900 * MS - 2 * MS, [[0, 0, 10, 10]], ["cup"], "cup"))  # pairs with frame 9
    return write_bag(tmp_path / f"b_{request.param}", imgs, labels, storage=request.param), imgs


def test_pairing_by_stamp_with_tolerance(bag):
    path, imgs = bag
    rep = BagReport()
    frames = list(iter_labeled_frames(path, BagDatasetConfig(tolerance_s=0.02), rep))
    assert rep.labels_messages == 10 and rep.images == 10
    assert rep.skipped == {"no image within tolerance": 1}
    assert len(frames) == 9
    for k, fr in enumerate(frames[:8]):
        assert fr.stamp_ns == S0 + k * 100 * MS + 3 * MS           # the labels' stamp
        np.testing.assert_array_equal(fr.image, imgs[k][1])          # the nearest frame's pixels
        assert [b.as_list() for b in fr.boxes] == [[k, 2, k + 10, 12]]
    # tolerance 1 ms: nothing pairs
    rep = BagReport()
    assert list(iter_labeled_frames(path, BagDatasetConfig(tolerance_s=0.001), rep)) == []
    assert rep.skipped == {"no image within tolerance": 10}


def test_time_subsampling_and_duplicate_skipping(bag):
    path, _ = bag
    rep = BagReport()
    kept = list(iter_labeled_frames(path, BagDatasetConfig(min_interval_s=0.25), rep))
    assert [(f.stamp_ns - S0) // MS for f in kept] == [3, 303, 603, 898]
    assert rep.skipped["time subsampling"] == 5
    rep = BagReport()
    kept = list(iter_labeled_frames(path, BagDatasetConfig(dedup_threshold=1.0), rep))
    assert len(kept) == 8 and rep.skipped == {"no image within tolerance": 1, "near-duplicate frame": 1}
    assert kept[-1].stamp_ns == S0 + 703 * MS

def test_dataset_columns_and_lazy_images(bag, tmp_path):
    path, imgs = bag
    ds = bag_dataset(path, tmp_path / "cache")
    assert len(ds) == 9
    row = ds[2]
    assert row["instruction"] == "cup" and row["gt_boxes"] == [[2.0, 2.0, 12.0, 12.0]]
    assert (row["width"], row["height"]) == (64, 48)
    np.testing.assert_array_equal(np.asarray(row["image"]), imgs[2][1])   # PNG cache is lossless
    assert row["prompt"][-1]["role"] == "user" and "cup" in row["prompt"][-1]["content"]


def test_bad_frames_are_counted_not_fatal(tmp_path):
    imgs = [(S0, frame(0)), (S0 + 100 * MS, frame(1))]
    labels = [(S0, [[0, 0, 5, 5]], ["a"], "a"), (S0 + 100 * MS, [[1e6, 1e6, 2e6, 2e6]], ["a"], "a")]
    path = write_bag(tmp_path / "bad", imgs, labels)
    rep = BagReport()
    frames = list(iter_labeled_frames(path, BagDatasetConfig(), rep))
    assert len(frames) == 2 and frames[1].boxes == []
    assert rep.skipped == {"box outside the frame": 1}
    with pytest.raises(ValueError, match="camera topic '/nope'"):
        list(iter_labeled_frames(path, BagDatasetConfig(camera_topic="/nope")))
    with pytest.raises(FileNotFoundError):
        list(iter_labeled_frames(tmp_path / "missing", BagDatasetConfig()))


def test_bag_to_coco_to_bag_round_trip(bag, tmp_path):
    path, _ = bag
    ann, rep = bag_to_coco(path, tmp_path / "coco")
    data = json.loads(ann.read_text())
    assert len(data["images"]) == 9 and len(data["annotations"]) == 9
    assert data["images"][0]["stamp_ns"] == S0 + 3 * MS
    n = coco_to_bag(ann, tmp_path / "coco", tmp_path / "back", storage="sqlite3")
    assert n == 9
    a = list(iter_labeled_frames(path, BagDatasetConfig()))
    b = list(iter_labeled_frames(tmp_path / "back", BagDatasetConfig(tolerance_s=0.0)))
    assert [f.stamp_ns for f in a] == [f.stamp_ns for f in b]
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa.image, fb.image)
        assert [x.as_list() for x in fa.boxes] == [x.as_list() for x in fb.boxes]
        assert fa.labels == fb.labels and fa.instruction == fb.instruction
    with pytest.raises(FileExistsError):
        coco_to_bag(ann, tmp_path / "coco", tmp_path / "back")
