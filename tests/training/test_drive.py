"""The warehouse-drive generator: a pure function of the seed, ground truth on text and inside
the frame, time order, stops, new ground late in the drive, and a COCO file pycocotools reads."""
from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from active_o3_training.data import drive
from active_o3_training.data.drive import DriveConfig, iter_drive, render_world, trajectory, write_sequence
from active_o3_training.data.scenes import HELD_OUT, font_files

SMALL = dict(width=640, height=360)


@pytest.fixture(scope="module")
def frames() -> list[drive.DriveFrame]:
    return list(iter_drive(DriveConfig(seed=7, frames=40, **SMALL)))


def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def test_same_seed_same_drive_other_seed_other_world():
    cfg = DriveConfig(seed=3, frames=8, **SMALL)
    a, b = list(iter_drive(cfg)), list(iter_drive(cfg))
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.image, fb.image)
        assert fa.boxes == fb.boxes and fa.words == fb.words and fa.stamp_ns == fb.stamp_ns
    # the world depends on the seed and the frame size only, not on the number of frames
    w1, w2 = render_world(cfg), render_world(DriveConfig(seed=3, frames=99, **SMALL))
    assert np.array_equal(w1.image, w2.image) and w1.words == w2.words
    other = render_world(DriveConfig(seed=4, frames=8, **SMALL))
    assert other.image.shape == w1.image.shape and not np.array_equal(other.image, w1.image)


def test_world_is_an_aisle_of_the_configured_size_with_text_of_every_kind():
    cfg = DriveConfig(seed=1, **SMALL)
    w = render_world(cfg)
    assert w.image.shape == (round(1.3 * 360), 6 * 640, 3) and w.image.dtype == np.uint8
    assert set(w.kinds) == {"label", "sign", "box"}
    assert len(w.boxes) == len(w.words) == len(w.kinds) and all(w.words)
    H, W = w.image.shape[:2]
    assert all(0 <= b.x1 < b.x2 <= W and 0 <= b.y1 < b.y2 <= H for b in w.boxes)
    # labels on every beam: every shelf level carries labels along the whole aisle
    labels = [b for b, k in zip(w.boxes, w.kinds) if k == "label"]
    xs = sorted(b.x1 for b in labels)
    assert max(np.diff(xs)) < 640 and xs[0] < 640 and xs[-1] > W - 640


def test_fonts_are_only_the_held_out_families(monkeypatch):
    fonts = drive.held_out_fonts()
    assert sorted(fonts) == sorted(HELD_OUT["font"])
    allowed = {f for fam in HELD_OUT["font"] for f in font_files(fam)}
    used: list[str] = []
    real = drive._pick_font

    def spy(rng, fonts):
        name = real(rng, fonts)
        used.append(name)
        return name

    monkeypatch.setattr(drive, "_pick_font", spy)
    render_world(DriveConfig(seed=2, **SMALL))
    assert used and set(used) <= allowed


def test_boxes_are_inside_the_frame_and_on_text(frames):
    W, H = SMALL["width"], SMALL["height"]
    rng = np.random.default_rng(0)
    box_std, bg_std = [], []
    for f in frames:
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert len(f.boxes) == len(f.words) == len(f.kinds)
        lum = _luma(f.image)
        for b in f.boxes:
            assert 0 <= b.x1 < b.x2 <= W and 0 <= b.y1 < b.y2 <= H, b
            patch = lum[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))]
            box_std.append(float(patch.std()))
            h, w = patch.shape
            x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
            bg_std.append(float(lum[y:y + h, x:x + w].std()))
    assert len(box_std) > 100
    # a word box holds ink on a plate: much more contrast than a same-sized patch anywhere
    assert np.median(box_std) > 2.0 * np.median(bg_std), (np.median(box_std), np.median(bg_std))
    assert np.mean(np.array(box_std) > 15) > 0.9


def test_a_word_counts_when_80_percent_is_in_view_and_is_clipped():
    from active_o3_ros.core.types import Box

    cfg = DriveConfig(seed=7, frames=40, **SMALL)
    world = render_world(cfg)
    clipped = 0
    for pose in trajectory(cfg)[::3]:
        z, tx, ty = pose.affine(cfg.width, cfg.height)
        expect = []
        for b, word in zip(world.boxes, world.words):
            fb = Box(z * b.x1 + tx, z * b.y1 + ty, z * b.x2 + tx, z * b.y2 + ty)
            c = fb.clip(cfg.width, cfg.height)
            if c.area >= 0.8 * fb.area:
                expect.append((c, word))
                clipped += c.area < fb.area
        boxes, words, _ = drive.frame_ground_truth(world, pose, cfg)
        assert words == [w for _, w in expect]
        np.testing.assert_allclose([b.as_list() for b in boxes], [c.as_list() for c, _ in expect], atol=1e-6)
    assert clipped > 0  # words at the frame edge are kept, clipped


def test_time_order_and_stamps(frames):
    stamps = [f.stamp_ns for f in frames]
    assert [f.index for f in frames] == list(range(40))
    assert stamps[0] == 1_700_000_000 * 10**9
    assert all(b - a == 500_000_000 for a, b in zip(stamps, stamps[1:]))  # 2 fps


def test_stops_are_near_duplicates_and_moving_frames_are_not(frames):
    stops = [f.index for f in frames if f.pose.stopped]
    assert 3 <= len(stops) <= 2 * 6  # 40 frames: one or two stops of 3..6 frames
    still, moving = [], []
    for a, b in zip(frames, frames[1:]):
        d = float(np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)).mean())
        if a.pose.stopped and b.pose.stopped:
            assert (a.pose.cx, a.pose.cy, a.pose.zoom) == (b.pose.cx, b.pose.cy, b.pose.zoom)
            assert a.boxes == b.boxes
            still.append(d)
        elif not b.pose.stopped:
            moving.append(d)
    assert still and max(still) < 5.0, still
    assert min(moving) > 3 * max(still), (min(moving), max(still))
    assert not np.array_equal(frames[stops[0]].image, frames[stops[0] + 1].image)  # fresh sensor noise


def test_default_drive_has_a_few_stops_of_3_to_6_frames():
    poses = trajectory(DriveConfig(seed=0))
    runs, n = [], 0
    for p in poses + [drive.Pose(0, 0, 1)]:
        if p.stopped:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    assert 3 <= len(runs) <= 5 and all(3 <= r <= 6 for r in runs), runs
    assert all(0.85 - 1e-9 <= p.zoom <= 1.15 + 1e-9 for p in poses)
    assert max(p.zoom for p in poses) - min(p.zoom for p in poses) > 0.2
    cys = [p.cy for p in poses]
    assert 0 < max(cys) - min(cys) < 0.1 * 1080  # a slight bob
    assert all(b.cx >= a.cx for a, b in zip(poses, poses[1:]))  # left to right


def test_last_30_percent_sees_world_the_first_70_percent_never_saw():
    for seed in (0, 1, 2):
        cfg = DriveConfig(seed=seed, frames=300)
        views = [p.view(cfg.width, cfg.height) for p in trajectory(cfg)]
        cut = int(0.7 * len(views))
        seen_until = max(v.x2 for v in views[:cut])
        new = max(v.x2 for v in views[cut:]) - seen_until
        assert new > cfg.width, (seed, new)
        assert min(v.x1 for v in views) >= 0 and max(v.x2 for v in views) <= cfg.world_size[0]


def test_words_are_about_8_to_18_px_tall_in_1080p():
    cfg = DriveConfig(seed=0, frames=60)
    world = render_world(cfg)
    heights = [b.height for p in trajectory(cfg)[::4] for b in drive.frame_ground_truth(world, p, cfg)[0]]
    h = np.array(heights)
    assert len(h) > 500
    assert np.mean((h >= 7.5) & (h <= 18.5)) > 0.9, np.percentile(h, [1, 5, 50, 95, 99])
    assert 9 <= np.median(h) <= 14


def test_write_sequence_loads_with_pycocotools(tmp_path):
    from pycocotools.coco import COCO

    cfg = DriveConfig(seed=5, frames=6, **SMALL)
    path = write_sequence(tmp_path / "seq", cfg, progress=False)
    assert path == tmp_path / "seq" / "annotations.json"
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == list(range(1, 7))
    assert coco.loadCats(coco.getCatIds()) == [{"id": 1, "name": "text", "supercategory": "text"}]
    for f in iter_drive(cfg):
        im = coco.loadImgs(f.index + 1)[0]
        assert im["file_name"] == f"images/frame_{f.index:06d}.png" and im["stamp_ns"] == f.stamp_ns
        assert (im["width"], im["height"]) == (640, 360)
        png = cv2.cvtColor(cv2.imread(str(tmp_path / "seq" / im["file_name"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(png, f.image)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]]))
        assert [a["text"] for a in anns] == f.words
        for a, b in zip(anns, f.boxes):
            assert a["category_id"] == 1 and a["iscrowd"] == 0
            np.testing.assert_allclose(a["bbox"], b.as_xywh(), atol=1e-3)
            assert a["area"] == pytest.approx(b.area, rel=1e-3)
    # a second write into the same folder is refused (stale frames), unless asked to overwrite
    with pytest.raises(FileExistsError):
        write_sequence(tmp_path / "seq", cfg, progress=False)
    write_sequence(tmp_path / "seq", DriveConfig(seed=5, frames=2, **SMALL), progress=False, overwrite=True)
    assert len(list((tmp_path / "seq" / "images").iterdir())) == 2
    assert len(json.loads(path.read_text())["images"]) == 2


@pytest.mark.parametrize("bad", [dict(frames=0), dict(fps=0.0), dict(width=10), dict(zoom=(1.2, 1.0)),
                                 dict(world_height=1.0), dict(min_visible=0.0), dict(jpeg_quality=5)])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(ValueError):
        DriveConfig(**bad)


def test_cli_help_errors_and_a_small_run(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "active_o3_training.data.drive", *args], capture_output=True,
                              text=True, timeout=120)

    out = run("--help")
    assert out.returncode == 0 and "--frames" in out.stdout and "--size" in out.stdout
    out = run(str(tmp_path / "x"), "--size", "wide")
    assert out.returncode == 2 and "1920x1080" in out.stderr
    out = run(str(tmp_path / "x"), "--frames", "0")
    assert out.returncode == 2 and "frames" in out.stderr
    out = run(str(tmp_path / "ok"), "--frames", "3", "--seed", "2", "--fps", "4", "--size", "320x180", "--quiet")
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "ok" / "annotations.json").read_text())
    assert [im["stamp_ns"] for im in data["images"]] == [1_700_000_000 * 10**9 + i * 250_000_000 for i in range(3)]
    out = run(str(tmp_path / "ok"), "--frames", "3", "--size", "320x180", "--quiet")
    assert out.returncode == 2 and "already holds" in out.stderr
