"""Adapting the small policy to a robot's bags: the teacher (`active-o3-train label`), the
policy trainer (`active-o3-train policy`), the data sources and their clear errors.

Real rosbag2 files (rosbags), the real rapidocr task module, the real GRPO trainer; frames
are small so the whole file runs in well under a minute or two on 2 cores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _bagutil import header, image_msg, write_bag
from active_o3_ros.core.metrics import recall_precision
from active_o3_training import cli
from active_o3_training.data.rosbag import (BagDatasetConfig, IMAGE, iter_camera_frames,
                                            iter_labeled_frames, segment_bounds, typestore)
from active_o3_training.policy_train import PolicyFrame, load_policy_config, split_by_time, spread
from active_o3_training.teacher import TeacherConfig, teacher_tiles, tile_scores

W, H = 960, 540
GT_TOPIC = "/ground_truth/detections"


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, list]:
    """6 scene frames of 960x540 half a second apart, ground truth on its own topic; frame 3
    repeats frame 2 (the robot stood still)."""
    from active_o3_training.data.scenes import SceneConfig, render_scene

    scenes = [render_scene(20_000_010 + i, SceneConfig(frame_sizes=((W, H),), text_free=0.0)) for i in range(5)]
    order = [0, 1, 2, 2, 3, 4]
    images = [(10**9 * 100 + i * 500_000_000, scenes[j].image) for i, j in enumerate(order)]
    labels = [(s, [b.as_list() for b in scenes[j].boxes], ["text"] * len(scenes[j].boxes), "text")
              for (s, _), j in zip(images, order)]
    path = tmp_path_factory.mktemp("rec") / "rec"
    write_bag(path, images, labels, labels_topic=GT_TOPIC)
    return path, [scenes[j] for j in order]


@pytest.fixture(scope="module")
def labelled(recording, tmp_path_factory) -> tuple[Path, Path, Path]:
    rec, _ = recording
    d = tmp_path_factory.mktemp("lab")
    out, cache = d / "labels", d / "cache"
    rc = cli.main(["label", str(rec), "-o", str(out), "--max-tiles", "6", "--workers", "1", "--threads", "2",
                   "--cache-dir", str(cache)])
    assert rc == 0
    return rec, out, cache


def test_teacher_tiles_are_the_node_zoom_and_cover_the_frame():
    cfg = TeacherConfig()
    tiles = teacher_tiles(1920, 1080, cfg)
    assert len(tiles) == 45  # the "about 45 crops per 1080p frame" of brute force
    assert all(abs(t.width - 840 / 3) < 10 and abs(t.height - 840 / 3) < 15 for t in tiles)
    mask = np.zeros((1080, 1920), bool)
    for t in tiles:
        mask[int(t.y1):int(np.ceil(t.y2)), int(t.x1):int(np.ceil(t.x2))] = True
    assert mask.all()
    prob = np.zeros((34, 60), np.float32)
    prob[0, 0] = 0.9
    s = tile_scores(prob, tiles, 1920, 1080)
    assert s[0] == pytest.approx(0.9) and s[1:].max() == 0.0


def test_teacher_labels_a_bag_finds_the_words_and_resumes(recording, labelled, tmp_path):
    rec, out, cache = labelled
    _, scenes = recording
    card = json.loads((out / "teacher.json").read_text())
    # the repeated frame is a near-duplicate: skipped and said so
    assert card["frames"]["labelled"] == 5 and card["frames"]["skipped"] == {"near-duplicate frame": 1}
    assert card["tiles_per_frame"]["grid"] == 15 and card["tiles_per_frame"]["zoomed_mean"] <= 6
    frames = list(iter_labeled_frames([rec, out], BagDatasetConfig(labels_topic="/active_o3/teacher")))
    assert len(frames) == 5
    assert all(set(f.labels) <= {"text"} for f in frames)          # the class, not the words
    assert sum(bool(t) for f in frames for t in f.texts) > 0         # what was read, in its own field
    gt = [s for i, s in enumerate(scenes) if i != 3]
    tp = n = 0
    for f, s in zip(frames, gt):
        r, _ = recall_precision(f.boxes, f.scores, s.boxes)
        tp += r * len(s.boxes)
        n += len(s.boxes)
    assert tp / n > 0.5, f"teacher recall {tp / n:.2f} against the ground truth"
    # a rerun reads every frame back from the cache (same labels, no detector run)
    out2 = tmp_path / "labels2"
    assert cli.main(["label", str(rec), "-o", str(out2), "--max-tiles", "6", "--workers", "1",
                     "--cache-dir", str(cache)]) == 0
    again = list(iter_labeled_frames([rec, out2], BagDatasetConfig(labels_topic="/active_o3/teacher")))
    assert [f.boxes for f in again] == [f.boxes for f in frames]
    assert card["cache"]["computed"] == 5 and card["cache"]["read_back"] == 0
    assert json.loads((out2 / "teacher.json").read_text())["cache"] == {"read_back": 5, "computed": 0}
    # an existing output is refused (exit 2), nothing overwritten
    assert cli.main(["label", str(rec), "-o", str(out2), "--cache-dir", str(cache)]) == 2


def test_segments_split_by_time():
    assert segment_bounds([0, 10, 100], (0.0, 0.7)) == (0, 70)
    assert segment_bounds([0, 10, 100], (0.7, 1.0)) == (70, 101)
    with pytest.raises(ValueError, match="segment"):
        segment_bounds([0, 1], (0.5, 0.2))
    thumb = np.zeros((4, 4, 3), np.uint8)
    fs = [PolicyFrame(str(i), "bag:x", 4, 4, thumb, [], "text", i * 10**9) for i in range(10)]
    train, val = split_by_time(fs, 0.2)
    assert [f.stamp_ns for f in val] == [8 * 10**9, 9 * 10**9] and len(train) == 8
    assert spread(10, 3) == [1, 5, 8] and spread(2, 5) == [0, 1] and spread(5, 0) == []


def test_policy_fine_tunes_from_bag_and_teacher_labels(labelled, tmp_path):
    from active_o3_ros.backends.base import build_sensing
    from active_o3_ros.backends.small_policy import BUNDLED_WEIGHTS, load_weights

    rec, labels, _ = labelled
    out = tmp_path / "policy"
    rc = cli.main(["policy", "--set", f"data.bag={rec}", "--set", f"data.labels_bag={labels}",
                   "--set", "data.val_fraction=0.3", "--set", "cache.task_frames=1",
                   "--set", f"cache.cache_dir={tmp_path / 'anchors'}", "--set", "trainer.max_steps=3",
                   "--set", "trainer.num_generations=4", "--set", "trainer.per_device_train_batch_size=8",
                   "--set", "trainer.eval_steps=0", "--set", f"trainer.output_dir={out}"])
    assert rc == 0
    card = json.loads((out / "small_policy.json").read_text())
    src = card["data"]["sources"]["bag:rec+labels"]
    # the teacher labelled 5 of the 6 frames (it skipped the near-duplicate): all 5 are used
    assert src["used"] == 5 and src["labels_messages"] == 5
    assert card["data"]["train_frames"] + card["data"]["val_frames"] == 5 and card["data"]["val_frames"] >= 1
    assert card["rewards_used"]["task-term frames (detector cache)"]["frames"] == 1
    assert card["teacher"]["teacher"]["max_tiles"] == 6 and card["started_from"] == "shipped weights"
    assert set(card["comparison_with_start_on_val"]) >= {"start", "adapted", "frames"}
    assert "active-o3-train policy" in card["command"]
    # started from the shipped weights (same architecture), moved a little, loads in the node's backend
    new, old = load_weights(out / "small_policy.safetensors"), load_weights(BUNDLED_WEIGHTS)
    assert new.cfg == old.cfg
    diff = sum(float((a - b).abs().sum()) for a, b in zip(new.parameters(), old.parameters()))
    assert diff > 0
    # a blank frame: the network's own top 3 (the default proposes none where its look sees no line)
    pol = build_sensing("small_policy", model=str(out / "small_policy.safetensors"), verify_unseen="keep")
    res = pol.propose([np.zeros((288, 512, 3), np.uint8)], ["text"], 3)
    assert len(res[0].regions) == 3


def _bag_with(path: Path, images, topic: str = "/camera/image_raw", extra=None) -> Path:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    T = store.types
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        c = w.add_connection(topic, IMAGE, typestore=store)
        for s, img in images:
            serialized = not isinstance(img, np.ndarray) or img.ndim == 1
            raw = img if serialized else store.serialize_cdr(image_msg(T, s, img), IMAGE)
            w.write(c, s, raw)
        if extra:
            extra(w, store)
    return path


def test_bad_inputs_give_a_clear_error_and_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    ok = _bag_with(tmp_path / "ok", [(10**9 * i, img) for i in range(1, 3)])
    cases = {
        "missing": (["label", str(tmp_path / "nope"), "-o", str(tmp_path / "o1")], "not found"),
        "topic": (["label", str(ok), "-o", str(tmp_path / "o2"), "--camera-topic", "/other"], "not in bag"),
        "empty": (["label", str(_bag_with(tmp_path / "empty", [])), "-o", str(tmp_path / "o3")], "no readable frame"),
        "mixed": (["label", str(_bag_with(tmp_path / "mixed", [(10**9, img), (2 * 10**9, img[:80])])), "-o",
                   str(tmp_path / "o4")], "mixed sizes"),
        "labels type": (["policy", "--set", f"data.bag={ok}", "--set", "data.labels_topic=/camera/image_raw"],
                        "expected active_o3_ros/msg/DetectionArray"),
        "config key": (["policy", "--set", f"data.bag={ok}", "--set", "trainer.steps=3"], "unknown key trainer.steps"),
        "batch": (["policy", "--set", f"data.bag={ok}", "--set", "trainer.per_device_train_batch_size=7"],
                  "multiple of num_generations"),
    }
    for name, (argv, needle) in cases.items():
        assert cli.main(argv) == 2, name
        err = capsys.readouterr().err
        assert needle in err, (name, err)


def test_a_corrupt_image_message_is_counted_and_skipped(tmp_path):
    from active_o3_training.data.rosbag import BagReport

    store = typestore()
    T = store.types
    img = np.full((90, 160, 3), 128, np.uint8)
    good = store.serialize_cdr(image_msg(T, 10**9, img), IMAGE)
    bad_msg = T[IMAGE](header=header(T, 2 * 10**9), height=90, width=160, encoding="rgb8", is_bigendian=0,
                       step=480, data=np.zeros(100, np.uint8))  # too few bytes for its size
    bag = _bag_with(tmp_path / "b", [(10**9, good), (2 * 10**9, store.serialize_cdr(bad_msg, IMAGE)),
                                     (3 * 10**9, b"\x00\x01\x00\x00garbage")])
    rep = BagReport()
    frames = list(iter_camera_frames(bag, report=rep))
    assert [f.stamp_ns for f in frames] == [10**9]
    assert rep.images == 3 and sum(rep.skipped.values()) == 2, rep.skipped


def test_policy_config_uses_the_mllm_trainers_names():
    from active_o3_training.config import TrainerSection

    cfg = load_policy_config(None, ["data.synthetic_frames=2"])
    shared = {"max_steps", "num_generations", "learning_rate", "beta", "per_device_train_batch_size",
              "weight_decay", "seed", "output_dir"}
    assert shared <= set(vars(cfg.trainer)) and shared <= set(vars(TrainerSection()))
    assert cfg.reward.max_regions == 3 and cfg.reward.crop_context == 1.3  # K, and the node's crops


def _scene_jpegs(folder: Path, first_seed: int, names: list[str], size: tuple[int, int] = (640, 360)) -> list[dict]:
    """Text scenes (640x360 unless ``size``) written as JPEGs ``names`` into ``folder`` (image
    ids 1..n); returns their COCO annotations of category 1 ("text")."""
    import cv2

    from active_o3_training.data.scenes import SceneConfig, render_scene

    folder.mkdir(parents=True, exist_ok=True)
    anns: list[dict] = []
    for i, name in enumerate(names):
        s = render_scene(first_seed + i, SceneConfig(frame_sizes=(size,), text_free=0.0))
        cv2.imwrite(str(folder / name), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        anns += [{"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": b.as_xywh(), "area": b.area,
                  "iscrowd": 0} for b in s.boxes]
    return anns


def _coco_scenes(tmp_path: Path, first_seed: int, size: tuple[int, int] = (640, 360)) -> Path:
    """Four text scenes (640x360 unless ``size``) as a COCO JSON (``tmp_path/ann.json``) + JPEGs
    in ``tmp_path/img``."""
    names = [f"{i}.jpg" for i in range(4)]
    anns = _scene_jpegs(tmp_path / "img", first_seed, names, size)
    images = [{"id": i + 1, "file_name": name, "width": size[0], "height": size[1]} for i, name in enumerate(names)]
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "text"}]}))
    return ann


def test_policy_trains_on_lvis_style_json(tmp_path):
    """LVIS v1 entries (``coco_url``, no ``file_name``): the path comes from the URL; a class in
    ``not_exhaustive_category_ids`` is not used; ``neg_category_ids`` give empty samples."""
    names = [f"{i + 1:012d}.jpg" for i in range(4)]
    anns = _scene_jpegs(tmp_path / "val2017", 20_000_020, names)
    images = [{"id": i + 1, "coco_url": f"http://images.cocodataset.org/val2017/{name}", "width": 640,
               "height": 360, "not_exhaustive_category_ids": [1] if i == 3 else [], "neg_category_ids": [2]}
              for i, name in enumerate(names)]
    ann = tmp_path / "lvis_v1_val.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": 1, "name": "text"}, {"id": 2, "name": "giraffe"}]}))
    out = tmp_path / "policy"
    assert cli.main(["policy", "--set", f"data.ann_file={ann}", "--set", f"data.image_dir={tmp_path}",
                     "--set", "reward.signal=heuristic", "--set", "trainer.max_steps=2",
                     "--set", "trainer.per_device_train_batch_size=8", "--set", "trainer.num_generations=4",
                     "--set", "data.val_fraction=0.25", "--set", f"trainer.output_dir={out}"]) == 0
    src = json.loads((out / "small_policy.json").read_text())["data"]["sources"]["coco:lvis_v1_val.json"]
    # 3 exhaustive "text" pairs + 4 verified-absent "giraffe" pairs; image 4's "text" is not exhaustive
    assert src["used"] == 7 and src["negative_pairs (LVIS neg_category_ids, nothing to find)"] == 4
    assert src["not_exhaustive_pairs_in_file (never used)"] == 1 and src["skipped"] == {}


def test_a_cue_reading_policy_fine_tunes_on_coco_style_data(tmp_path):
    """A policy that reads the cue maps and per-anchor cue features (grown from the v1
    CNN, as the shipped weights were) fine-tunes on logged/benchmark frames: each frame's cues are computed as the node
    computes them, and the result loads in the node's backend with the same inputs."""
    from active_o3_ros.backends.base import build_sensing
    from active_o3_ros.backends.small_policy import load_weights, save_weights
    from active_o3_training.data.scenes import SceneConfig, render_scene
    from active_o3_training.policy_math import grow_net

    v1 = Path(__file__).resolve().parents[2] / "training" / "results" / "small_policy_v1" / "small_policy.safetensors"
    init = save_weights(grow_net(load_weights(v1), map_inputs=("det", "stroke"), cue_features=True),
                        tmp_path / "init.safetensors")
    ann = _coco_scenes(tmp_path, 20_000_040)
    out = tmp_path / "policy"
    assert cli.main(["policy", "--set", f"data.ann_file={ann}", "--set", f"data.image_dir={tmp_path / 'img'}",
                     "--set", f"model.init={init}", "--set", "reward.signal=heuristic",
                     "--set", "trainer.max_steps=3", "--set", "trainer.per_device_train_batch_size=8",
                     "--set", "trainer.num_generations=4", "--set", "data.val_fraction=0.25",
                     "--set", f"trainer.output_dir={out}"]) == 0
    new = load_weights(out / "small_policy.safetensors")
    assert new.cfg.map_inputs == ("det", "stroke") and new.cfg.cue_features
    # the grown inputs started at zero weight; training on these frames moved them
    assert float(load_weights(init).head[0].weight[:, -new.n_cues:].abs().sum()) == 0
    assert float(new.head[0].weight[:, -new.n_cues:].abs().sum()) > 0
    assert float(new.backbone[0].weight[:, 3:].abs().sum()) > 0
    pol = build_sensing("small_policy", model=str(out / "small_policy.safetensors"))
    frame = render_scene(20_000_050, SceneConfig(frame_sizes=((640, 360),))).image
    assert len(pol.propose([frame], ["text"], 3)[0].regions) == 3



def test_added_anchor_grids_keep_the_old_scores_and_can_be_switched_off():
    """``add_anchors``: the old anchors keep their index and logits; a very low prior for the
    new ones gives the starting network's greedy answer; a bad grid is refused."""
    import torch

    from active_o3_ros.backends.small_policy import AnchorGrid, SmallPolicyConfig, build_net
    from active_o3_training.policy_math import add_anchors

    net = build_net(SmallPolicyConfig())
    with torch.no_grad():
        net.anchor_prior.copy_(torch.linspace(-1, 1, net.num_anchors))
    grown = add_anchors(net, [[0.3, 0.4, 4, 3]])
    n = net.num_anchors
    assert grown.num_anchors == n + 12 and grown.cfg.grids[-1] == AnchorGrid(0.3, 0.4, 4, 3)
    assert torch.allclose(grown.anchor_prior[n:], net.anchor_prior.mean().expand(12))
    x = net.preprocess([np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)])
    with torch.no_grad():
        old, new = net(x, ["text"]), grown(x, ["text"])
        off = add_anchors(net, [[0.3, 0.4, 4, 3]], prior=-1e4)(x, ["text"])
    assert torch.equal(new[:, :n], old)
    assert set(off.topk(3).indices.flatten().tolist()) <= set(range(n))
    with pytest.raises(ValueError, match="already has"):
        add_anchors(net, [net.cfg.grids[0]])
    with pytest.raises(ValueError, match="anchor grid"):
        add_anchors(net, [[1.5, 0.4, 4, 3]])


def test_fine_tuning_with_added_anchor_grids(tmp_path):
    """``model.extra_grids`` grows the shipped weights' anchors before fine-tuning: the card
    says so, the weights carry the new grid and load in the node's backend; a malformed
    grid is a clear config error (exit 2)."""
    from active_o3_ros.backends.base import build_sensing
    from active_o3_ros.backends.small_policy import AnchorGrid, load_weights

    ann = _coco_scenes(tmp_path, 20_000_060)
    out = tmp_path / "policy"
    common = ["--set", f"data.ann_file={ann}", "--set", f"data.image_dir={tmp_path / 'img'}",
              "--set", "reward.signal=heuristic", "--set", "trainer.max_steps=2",
              "--set", "trainer.per_device_train_batch_size=8", "--set", "trainer.num_generations=4",
              "--set", "data.val_fraction=0.25", "--set", f"trainer.output_dir={out}"]
    assert cli.main(["policy", *common, "--set", "model.extra_grids=[[0.3, 0.4, 4, 3]]"]) == 0
    card = json.loads((out / "small_policy.json").read_text())
    assert card["anchors"]["added_grids"] == [[0.3, 0.4, 4, 3]]
    assert card["anchors"]["total"] == card["anchors"]["started_with"] + 12
    new = load_weights(out / "small_policy.safetensors")
    assert new.cfg.grids[-1] == AnchorGrid(0.3, 0.4, 4, 3) and new.num_anchors == card["anchors"]["total"]
    pol = build_sensing("small_policy", model=str(out / "small_policy.safetensors"), verify_unseen="keep")
    assert len(pol.propose([np.zeros((360, 640, 3), np.uint8)], ["text"], 3)[0].regions) == 3
    assert cli.main(["policy", *common, "--set", "model.extra_grids=[[0.3, 0.4, 4]]"]) == 2


def test_a_frame_read_as_windows_trains_as_it_is_served():
    """With ``windows_above`` a 4:3 frame is one training frame per window (its pixels, the
    labels lying mostly in it, clipped and shifted), and the served policy's region for
    anchor ``a`` of window ``k`` is that window frame's anchor region ``a`` moved by the
    window's offset: what is trained is what is served."""
    import re

    import torch

    from active_o3_ros.backends.small_policy import SmallSensingPolicy, sensing_windows
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig
    from active_o3_ros.core.types import Box
    from active_o3_training.anchor_cache import anchor_regions
    from active_o3_training.policy_train import frame_views

    w, h = 1920, 1440  # windows (0, 0) and (0, 360), 1920x1080
    img = np.random.default_rng(0).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    gt = [Box(10, 10, 50, 30), Box(10, 500, 50, 520), Box(10, 1070, 50, 1130), Box(10, 350, 50, 370)]
    pol = SmallSensingPolicy(model="init", mirror_views=1, windows_above=1, verify_unseen="keep")
    views = frame_views(img, gt, "k", pol.net.cfg, 1)
    assert [v[0] for v in views] == ["k_w0", "k_w1"]
    np.testing.assert_array_equal(views[1][1], img[360:1440])
    assert [b.as_list() for b in views[0][2]] == [[10, 10, 50, 30], [10, 500, 50, 520], [10, 350, 50, 370]]
    assert [b.as_list() for b in views[1][2]] == [[10, 140, 50, 160], [10, 710, 50, 770], [10, 0, 50, 10]]
    assert views[0][3]["thumbnail"].shape[:2] == (288, 512)  # a 16:9 window: no letterbox bars
    assert [v[0] for v in frame_views(img, gt, "k", pol.net.cfg, 0)] == ["k"]  # 0: read whole
    # windows shorter than the weights' whole-frame short side (1280x960 -> 1280x720): read whole
    assert [v[0] for v in frame_views(img[:960, :1280], gt, "k", pol.net.cfg, 1)] == ["k"]
    with torch.no_grad():  # one anchor wanted in every window
        pol.net.anchor_prior.copy_(torch.from_numpy((np.arange(len(pol.anchors)) == 5).astype(np.float32) * 30.0))
    prop = ActivePerception(pol, None, PipelineConfig(max_regions=3)).propose(img, "text")
    picks = [(int(k), int(a)) for k, a in re.findall(r"w(\d+)#(\d+) p=", prop.text)]
    assert (0, 5) in picks and (1, 5) in picks
    wins = sensing_windows(w, h, 16 / 9, 1)
    for r, (k, a) in zip(prop.regions, picks):
        x0, y0, ww, wh = wins[k]
        want = anchor_regions(pol.anchors, ww, wh, pol.preferred_thumbnail_short_side)[a]
        assert r.box.as_list() == pytest.approx([want.x1 + x0, want.y1 + y0, want.x2 + x0, want.y2 + y0], abs=1.01)


def test_fine_tuning_on_4x3_images_read_as_windows(tmp_path):
    """``model.windows_above``: 4:3 images become one training frame per window (the card
    counts both), and the windows of one image stay on one side of the split."""
    ann = _coco_scenes(tmp_path, 20_000_060, size=(1920, 1440))
    out = tmp_path / "policy"
    assert cli.main(["policy", "--set", f"data.ann_file={ann}", "--set", f"data.image_dir={tmp_path / 'img'}",
                     "--set", "model.windows_above=1", "--set", "reward.signal=heuristic",
                     "--set", "trainer.max_steps=2", "--set", "trainer.per_device_train_batch_size=8",
                     "--set", "trainer.num_generations=4", "--set", "data.val_fraction=0.25",
                     "--set", f"trainer.output_dir={out}"]) == 0
    card = json.loads((out / "small_policy.json").read_text())
    src = card["data"]["sources"]["coco:ann.json"]
    assert src["used"] == 4 and src["training_frames (windows)"] == 8
    assert card["data"]["train_frames"] == 6 and card["data"]["val_frames"] == 2
    for bad in ("model.windows_above=-2", "model.windows_min_side=-5"):  # a clear error, exit 2
        assert cli.main(["policy", "--set", f"data.ann_file={ann}", "--set", f"data.image_dir={tmp_path / 'img'}",
                         "--set", bad, "--set", f"trainer.output_dir={tmp_path / 'bad'}"]) == 2
    frames = [PolicyFrame(key=f"i{i}_w{j}", source="coco", width=4, height=3, thumbnail=np.zeros((1, 1, 3)), gt=[],
                          instruction="text", image_key=f"i{i}") for i in range(4) for j in range(2)]
    train, val = split_by_time(frames, 0.25)
    assert {f.image_key for f in val} == {"i0"} and len(val) == 2 and len(train) == 6


def test_bag_frames_of_a_large_4x3_camera_are_read_as_windows(tmp_path):
    """A 1920x1440 recording: each recorded frame gives one training frame per window (the
    card counts both), keyed by the recorded frame, with the recording's stamp (so the time
    split keeps a frame's windows together) and the windows' own pixels and labels."""
    from active_o3_ros.backends.small_policy import bundled_config
    from active_o3_training.data.scenes import SceneConfig, render_scene
    from active_o3_training.policy_train import DataReport, _bag_frames

    scenes = [render_scene(20_000_070 + i, SceneConfig(frame_sizes=((1920, 1440),), text_free=0.0)) for i in range(2)]
    images = [(10**9 * (i + 1), s.image) for i, s in enumerate(scenes)]
    labels = [(t, [b.as_list() for b in s.boxes], ["text"] * len(s.boxes), "text") for (t, _), s in zip(images, scenes)]
    path = tmp_path / "rec43"
    write_bag(path, images, labels, labels_topic=GT_TOPIC)
    cfg = load_policy_config(None, [f"data.bag={path}", f"data.labels_topic={GT_TOPIC}"])
    report = DataReport()
    seen = []
    frames = _bag_frames(cfg, bundled_config(), report, on_image=lambda f, img: seen.append((f.key, img.shape)))
    src = report.sources["bag:rec43"]
    assert src["used"] == 2 and src["training_frames (windows)"] == 4
    assert [f.key.rsplit("_", 1)[1] for f in frames] == ["w0", "w1", "w0", "w1"]
    assert len({f.image_key for f in frames}) == 2 and all(f.key.startswith(f.image_key) for f in frames)
    assert [f.stamp_ns for f in frames] == [10**9, 10**9, 2 * 10**9, 2 * 10**9]
    assert all((f.width, f.height) == (1920, 1080) for f in frames) and all(s == (1080, 1920, 3) for _, s in seen)
    for f, y0 in zip(frames[:2], (0, 360)):  # each window's labels: the scene's words lying mostly in it
        want = [b for b in scenes[0].boxes if b.y1 >= y0 and b.y2 <= y0 + 1080]
        assert len(f.gt) >= len(want) and all(0 <= b.y1 < b.y2 <= 1080 for b in f.gt)
    off = _bag_frames(load_policy_config(None, [f"data.bag={path}", f"data.labels_topic={GT_TOPIC}",
                                                "model.windows_above=0"]), bundled_config(), DataReport())
    assert [(f.width, f.height) for f in off] == [(1920, 1440)] * 2  # 0: read whole (letterboxed)
