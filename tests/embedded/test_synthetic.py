"""The synthetic small-text generator: determinism, exact ground truth, COCO and rosbag2 writers."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from active_o3_training.data import synthetic as syn
from active_o3_training.data.synthetic import PanConfig, SyntheticTextConfig

SMALL = SyntheticTextConfig(frame_sizes=((640, 480), (800, 600)), clusters=(2, 3))
FLAT = SyntheticTextConfig(frame_sizes=((640, 480),), backgrounds=("flat",), cluster_kinds=("bare",),
                           noise_sigma=0.0, clusters=(3, 4))


def test_same_seed_same_frame_and_different_seed_differs() -> None:
    a, b, c = syn.render_frame(7, SMALL), syn.render_frame(7, SMALL), syn.render_frame(8, SMALL)
    assert np.array_equal(a.image, b.image)
    assert a.boxes == b.boxes and a.words == b.words
    assert a.image.shape != c.image.shape or not np.array_equal(a.image, c.image)


def test_default_frames_are_large_with_small_words_inside_the_frame() -> None:
    for seed in (syn.split_seed("test", 0), syn.split_seed("train", 3)):
        img, boxes, words = syn.generate_frame(seed)
        h, w = img.shape[:2]
        assert img.dtype == np.uint8 and img.shape[2] == 3
        assert (w, h) in SyntheticTextConfig().frame_sizes
        assert len(boxes) == len(words) >= 3
        for b in boxes:
            assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
            assert 5 <= b.height <= 40, b  # 8-24 px cap height (+ descenders, stroke)


def test_boxes_are_the_tight_ink_bounds() -> None:
    """On a flat background every changed pixel is inside a word box, and every box edge
    row/column holds ink (so no box is loose)."""
    for seed in range(4):
        f = syn.render_frame(seed, FLAT)
        img = f.image.astype(int)
        colours, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
        bg = colours[counts.argmax()]
        ink = np.abs(img - bg).sum(axis=2) > 0
        covered = np.zeros_like(ink)
        assert f.boxes
        for b in f.boxes:
            x1, y1, x2, y2 = (int(v) for v in b.as_list())
            assert (x1, y1, x2, y2) == tuple(b.as_list())  # integer pixel bounds
            covered[y1:y2, x1:x2] = True
            patch = ink[y1:y2, x1:x2]
            assert patch[0].any() and patch[-1].any() and patch[:, 0].any() and patch[:, -1].any(), b
        assert not (ink & ~covered).any(), "ink outside every ground-truth box"


def test_splits_are_disjoint_and_validated() -> None:
    seeds = {s: {syn.split_seed(s, i) for i in (0, 1, 999_999)} for s in syn.SPLIT_OFFSETS}
    assert not seeds["train"] & seeds["val"] and not seeds["val"] & seeds["test"] and not seeds["train"] & seeds["test"]
    with pytest.raises(ValueError, match="split"):
        syn.split_seed("dev", 0)
    with pytest.raises(ValueError, match="word_height"):
        SyntheticTextConfig(word_height=(30, 10))
    with pytest.raises(ValueError, match="backgrounds"):
        SyntheticTextConfig(backgrounds=("not-a-photo",))


def test_coco_json_loads_with_pycocotools_and_matches_the_generator(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    path = syn.write_coco(tmp_path, "val", 2, config=SMALL, progress=False)
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == [1, 2]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["text"]
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        f = syn.render_frame(info["seed"], SMALL)
        disk = cv2.cvtColor(cv2.imread(str(tmp_path / info["file_name"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(disk, f.image)  # PNG is lossless
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert [a["bbox"] for a in anns] == [b.as_xywh() for b in f.boxes]
        assert [a["text"] for a in anns] == f.words
    meta = json.loads(path.read_text())["info"]["config"]
    assert meta["word_height"] == [8, 24]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_panning_bag_opens_with_rosbags_and_holds_frames_and_ground_truth(tmp_path: Path, storage: str) -> None:
    from rosbags.rosbag2 import Reader

    pan = PanConfig(frame_size=(320, 240), canvas_size=(800, 600), fps=5.0)
    cfg = SyntheticTextConfig(clusters=(4, 5))
    n = 6
    bag = syn.write_bag(tmp_path / "cam", seed=3, n=n, pan=pan, config=cfg, storage=storage, progress=False)
    expected = list(syn.pan_frames(3, n, pan, cfg))
    assert len({o for o in syn.pan_offsets(n, pan)}) > 1, "the camera must move"
    store = syn.make_typestore()
    images, gts = [], []
    with Reader(bag) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {"/camera/image_raw": n, "/ground_truth": n}
        for conn, t, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            (images if conn.topic == "/camera/image_raw" else gts).append((t, msg))
    assert [t for t, _ in images] == [t for t, _ in gts]
    assert images[1][0] - images[0][0] == 200_000_000  # 5 fps
    assert sum(len(g.detections) for _, g in gts) > 0
    for (_, im), (_, gt), (frame, boxes, words) in zip(images, gts, expected):
        assert (im.width, im.height, im.encoding) == (320, 240, "rgb8")
        assert np.array_equal(np.asarray(im.data).reshape(240, 320, 3), frame)
        assert gt.header.stamp == im.header.stamp
        assert {d.label for d in gt.detections} <= {"text"}  # the class; the word is in `text`
        got = [(d.text, round(d.x_min, 3), round(d.y_min, 3), round(d.x_max, 3), round(d.y_max, 3)) for d in gt.detections]
        want = [(w, round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3)) for b, w in zip(boxes, words)]
        assert got == want
        for b in boxes:
            assert 0 <= b.x1 < b.x2 <= 320 and 0 <= b.y1 < b.y2 <= 240


def test_cli_help_and_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        syn.main(["--help"])
    assert exc.value.code == 0
    assert "coco" in capsys.readouterr().out
    (tmp_path / "exists").mkdir()
    assert syn.main(["bag", "--out", str(tmp_path / "exists"), "--n", "1"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert syn.main(["bag", "--out", str(tmp_path / "b"), "--frame-size", "4000x3000", "--n", "1"]) == 2
    assert "must fit" in capsys.readouterr().err
