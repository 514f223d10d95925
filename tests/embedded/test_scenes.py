"""Domain-family scenes, the held-out split of families, the frozen sets, and the
full-resolution cues the sensing policy reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from active_o3_training.data import scenes
from active_o3_training.data.scenes import HELD_OUT, SceneConfig, render_scene

SMALL_IN = SceneConfig("in", frame_sizes=((960, 540),))
SMALL_OUT = SceneConfig("held_out", frame_sizes=((960, 540),))


def test_fonts_of_every_family_are_installed() -> None:
    """The set-up installs the Debian font packages; a missing family would change what the
    frozen sets contain, so it fails here rather than silently."""
    found = scenes.available_font_families()
    assert all(n > 0 for n in found.values()), found


def test_same_seed_same_scene() -> None:
    a, b = render_scene(5, SMALL_IN), render_scene(5, SMALL_IN)
    assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.families == b.families
    assert not np.array_equal(a.image, render_scene(6, SMALL_IN).image)


def test_training_scenes_never_use_a_held_out_family_and_held_out_scenes_use_only_those() -> None:
    seen_in = {"background": set(), "fonts": set(), "layouts": set()}
    for seed in range(40):
        fam = render_scene(seed, SMALL_IN).families
        seen_in["background"].add(fam["background"])
        seen_in["fonts"] |= set(fam["fonts"])
        seen_in["layouts"] |= set(fam["layouts"])
    assert not seen_in["background"] & set(HELD_OUT["background"])
    assert not seen_in["fonts"] & set(HELD_OUT["font"])
    assert not seen_in["layouts"] & set(HELD_OUT["layout"])
    assert len(seen_in["background"]) >= 4 and len(seen_in["fonts"]) >= 6  # the families are really mixed
    layouts_out = set()
    for seed in range(20):
        fam = render_scene(seed, SMALL_OUT).families
        assert fam["background"] in HELD_OUT["background"]
        assert set(fam["fonts"]) <= set(HELD_OUT["font"])
        layouts_out |= set(fam["layouts"])
    assert set(HELD_OUT["layout"]) <= layouts_out


def test_word_boxes_hold_ink_and_text_free_frames_have_none() -> None:
    n_free = 0
    for seed in range(30):
        f = render_scene(seed, SMALL_IN)
        h, w = f.image.shape[:2]
        if f.families["text_free"]:
            n_free += 1
            assert not f.boxes
            continue
        for b in f.boxes:
            assert 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
            patch = f.image[int(b.y1):int(np.ceil(b.y2)), int(b.x1):int(np.ceil(b.x2))].astype(float)
            assert patch.std() > 5, b  # not an empty box
    assert 0 < n_free < 10


def test_frozen_sets_do_not_overlap_each_other_or_training() -> None:
    ranges = {n: set(scenes.frozen_seeds(n)) for n in scenes.FROZEN_SETS}
    names = list(ranges)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not ranges[a] & ranges[b], (a, b)
    train = {scenes.train_seed(i) for i in (0, 9_999_999)}
    assert all(not train & r for r in ranges.values())
    assert all(max(r) < scenes.TRAIN_SEED0 or min(r) > scenes.train_seed(9_999_999) for r in ranges.values())
    assert scenes.FROZEN_SETS["test_in"].frames >= 24 and scenes.FROZEN_SETS["test_held_out"].frames >= 24


def test_text_free_sets_hold_no_text_and_keep_their_domain() -> None:
    for name, domain in (("val_text_free", "in"), ("test_held_out_text_free", "held_out")):
        assert scenes.set_config(name).domain == domain and scenes.set_config(name).text_free == 1.0
        for f in scenes.iter_set(name, 2):
            assert f.boxes == [] and f.words == [] and f.families["text_free"] is True
            assert f.families["distractors"], name  # something that looks like text is there
    assert scenes.set_config("val").text_free == scenes.SceneConfig().text_free  # the mixed sets are unchanged


def test_training_refuses_the_frozen_test_sets() -> None:
    from active_o3_ros.backends.small_policy import SmallPolicyConfig
    from active_o3_ros.core.rewards import RewardConfig
    from active_o3_training.grpo_policy import scene_problems

    for name in ("test_in", "test_held_out", "test_text_free", "test_held_out_text_free"):
        with pytest.raises(ValueError, match="frozen test set"):
            scene_problems(name, 1, 0, SmallPolicyConfig(cue_features=True, use_cnn=False), RewardConfig())


def test_coco_writer_and_cli(tmp_path, capsys) -> None:
    assert scenes.main(["--fonts"]) == 0
    assert "hershey" in capsys.readouterr().out
    assert scenes.main(["train"]) == 2
    assert scenes.main(["train", "--frames", "2", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "train.json").read_text())
    assert len(data["images"]) == 2 and data["info"]["held_out"]["font"] == list(HELD_OUT["font"])
    assert all((tmp_path / im["file_name"]).is_file() for im in data["images"])


# -- cues -------------------------------------------------------------------------------------
def _scene_with_text(cfg=SMALL_IN):
    for seed in range(10):
        f = render_scene(seed, cfg)
        if len(f.boxes) >= 4:
            return f
    raise AssertionError("no scene with text")


def test_detector_cue_is_higher_on_text_than_elsewhere() -> None:
    from active_o3_ros.backends.cues import detector_map

    f = _scene_with_text()
    h, w = f.image.shape[:2]
    m = detector_map(f.image, 960, threads=1)
    mh, mw = m.shape
    mask = np.zeros_like(m, bool)
    for b in f.boxes:
        mask[int(b.y1 * mh / h):int(np.ceil(b.y2 * mh / h)), int(b.x1 * mw / w):int(np.ceil(b.x2 * mw / w))] = True
    assert m[mask].mean() > 3 * m[~mask].mean(), (m[mask].mean(), m[~mask].mean())


def test_anchor_cues_shape_and_a_clear_error_without_them() -> None:
    from active_o3_ros.backends.cues import CUE_FEATURES, anchor_cues
    from active_o3_ros.backends.small_policy import SmallPolicyConfig, build_net, make_anchors

    f = _scene_with_text()
    cfg = SmallPolicyConfig(cue_features=True, use_cnn=False, edge_features=False)
    anchors = make_anchors(cfg.grids)
    c = anchor_cues(f.image, anchors, threads=1)
    assert c.shape == (len(anchors), len(CUE_FEATURES)) and np.isfinite(c).all()
    net = build_net(cfg)
    with pytest.raises(ValueError, match="cue features"):
        net(None, ["text"])
    assert net(None, ["text"], net.cues([f.image], threads=1)).shape == (1, len(anchors))
    assert not list(net.backbone.parameters())  # a cues-only network carries no unused CNN
    with pytest.raises(ValueError, match="CNN, the cues, or both"):
        SmallPolicyConfig(cue_features=False, use_cnn=False)


def test_cue_policy_weights_round_trip_and_propose(tmp_path) -> None:
    from active_o3_ros.backends.small_policy import (SmallPolicyConfig, SmallSensingPolicy, build_net,
                                                     load_weights, save_weights)

    net = build_net(SmallPolicyConfig(cue_features=True, use_cnn=False, edge_features=False))
    path = save_weights(net, tmp_path / "cue.safetensors")
    back = load_weights(path)
    assert back.cfg == net.cfg
    pol = SmallSensingPolicy(model=str(path), num_threads=1)
    assert pol.preferred_thumbnail_short_side == net.cfg.cue_short_side
    f = _scene_with_text()
    out = pol.propose([f.image], ["text"], 3)[0]
    assert len(out.regions) == 3 and out.text.startswith("<think>")


def test_cascade_zooms_around_coarse_hits_and_proposes_nothing_on_a_blank_frame() -> None:
    from active_o3_ros.backends.region_sources import CascadePolicy

    pol = CascadePolicy(coarse_short_side=540, threads=1)
    assert pol.preferred_thumbnail_short_side == 540
    f = _scene_with_text(SceneConfig("in", frame_sizes=((960, 540),), text_free=0.0))
    out = pol.propose([f.image], ["text"], 3)[0]
    assert 1 <= len(out.regions) <= 3
    inside = sum(any(r.box.contains(b, 1.0) for r in out.regions) for b in f.boxes)
    assert inside >= 1
    blank = np.full((540, 960, 3), 128, np.uint8)
    assert pol.propose([blank], ["text"], 3)[0].regions == []
    with pytest.raises(ValueError, match="coarse_short_side"):
        CascadePolicy(coarse_short_side=8)


def test_setup_script_installs_every_font_package() -> None:
    from pathlib import Path

    script = (Path(__file__).resolve().parents[2] / "scripts" / "setup_env.sh").read_text()
    missing = [p for p in scenes.FONT_PACKAGES if p not in script]
    assert not missing, missing
