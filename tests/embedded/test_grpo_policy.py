"""GRPO for the small policy: it must learn where a rewarded target is (a check that can fail),
and the cached task reward must equal what the real pipeline produces for the same regions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from active_o3_ros.backends.small_policy import (
    SmallPolicyConfig, anchor_boxes_px, build_net, make_anchors,
)
from active_o3_ros.core.rewards import RewardConfig
from active_o3_ros.core.types import Box
from active_o3_training.grpo_policy import GRPOPolicyConfig, Problem, evaluate_greedy, region_reward_fn, train

W, H = 1920, 1080


def _stripe_patch_problem(seed: int, cfg: SmallPolicyConfig, rcfg: RewardConfig) -> Problem:
    """A noisy frame with one high-contrast striped patch (a stand-in for a text sign); the
    reward is the shared heuristic reward, whose coverage term needs the patch inside a region."""
    rng = np.random.default_rng(seed)
    tw, th = cfg.input_width, cfg.input_height
    img = rng.integers(90, 140, size=(th, tw, 3), dtype=np.uint8)
    # In the middle column, where no big anchor contains it: only 1-2 of the 24 anchors
    # cover it, so a random set of 3 covers it ~20 % of the time and the policy must learn
    # from the image which row it is in.
    pw, ph = int(round(tw * 0.1)), int(round(th * 0.12))
    x, y = int(round(tw * 0.45)), int(rng.integers(0, th - ph))
    patch = np.zeros((ph, pw, 3), np.uint8)
    patch[:, ::2] = 255
    img[y:y + ph, x:x + pw] = patch
    gt = [Box(x * W / tw, y * H / th, (x + pw) * W / tw, (y + ph) * H / th)]
    regions = anchor_boxes_px(make_anchors(cfg.grids), W, H)
    return Problem(img, "text", region_reward_fn(regions, W, H, gt, (tw, th), rcfg, None))


@pytest.mark.parametrize("shipped_recipe", [False, True], ids=["plain", "extra-augment"])
def test_grpo_learns_where_the_reward_is(shipped_recipe):
    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_stripe_patch_problem(s, cfg, rcfg) for s in range(24)]
    held_out = [_stripe_patch_problem(1000 + s, cfg, rcfg) for s in range(16)]
    gcfg = GRPOPolicyConfig(max_steps=40, batch_images=8, num_generations=8, learning_rate=3e-3, seed=0, eval_every=0, threads=1,
                            extra_augment=shipped_recipe)
    net = build_net(cfg)
    before = evaluate_greedy(net, held_out, 3)
    res = train(problems, gcfg, net=net, progress=False)
    first = np.mean([h["coverage"] for h in res.history[:3]])
    last = np.mean([h["coverage"] for h in res.history[-8:]])
    after = evaluate_greedy(res.net, held_out, 3)
    print(f"sampled coverage first 3 steps {first:.3f} -> last 8 {last:.3f}; "
          f"held-out greedy coverage {before['coverage']:.3f} -> {after['coverage']:.3f}")
    assert last > first + 0.3
    assert after["coverage"] > before["coverage"] + 0.2
    for h in res.history:
        assert np.isfinite(h["kl"]) and np.isfinite(h["loss"]) and h["kl"] >= -1e-6
    assert res.history[-1]["kl"] > 0  # the policy moved away from the frozen reference


def test_training_grows_residual_blocks_without_changing_the_start():
    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_stripe_patch_problem(s, cfg, rcfg) for s in range(8)]
    net = build_net(cfg)
    before = evaluate_greedy(net, problems, 3)
    gcfg = GRPOPolicyConfig(max_steps=3, batch_images=4, num_generations=4, seed=0, eval_every=0, threads=1,
                            res_blocks=(0, 0, 1, 1))
    res = train(problems, gcfg, net=net, progress=False)
    assert res.net.cfg.res_blocks == (0, 0, 1, 1)
    assert res.evals[0]["reward"] == pytest.approx(before["reward"])  # grown net answers as before
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in res.net.blocks.parameters())


def test_training_raises_the_input_scale():
    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3, res_blocks=(0, 0, 1, 1))
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_stripe_patch_problem(s, cfg, rcfg) for s in range(8)]
    gcfg = GRPOPolicyConfig(max_steps=3, batch_images=4, num_generations=4, seed=0, eval_every=0, threads=1,
                            input_scale=2, extra_augment=True)
    res = train(problems, gcfg, net=build_net(cfg), progress=False)
    assert res.net.cfg.input_scale == 2 and res.net.cfg.res_blocks == (0, 0, 1, 1)
    assert res.net.backbone[0].weight.grad.abs().sum() > 0
    assert all(np.isfinite(h["loss"]) for h in res.history)
    with pytest.raises(ValueError, match="only grow"):
        train(problems, replace(gcfg, res_blocks=(0, 0, 0, 1)), net=build_net(cfg), progress=False)


def test_coverage_on_crop_windows_counts_words_cut_by_the_anchor_edge():
    from active_o3_ros.core.geometry import ResizeCropConfig, crop_window

    region = Box(800, 400, 1100, 640)
    word = Box(1080, 500, 1140, 512)  # sticks out of the anchor by 40 px
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    plain = region_reward_fn([region], W, H, [word], (512, 288), rcfg, None)
    crop = ResizeCropConfig(840, 3.0, 1.3)
    on_crops = region_reward_fn([region], W, H, [word], (512, 288), rcfg, None, crop)
    assert crop_window(region, W, H, crop).contains(word)
    assert plain((0,))[1]["coverage"] == 0.0 and on_crops((0,))[1]["coverage"] == 1.0
    assert plain((0,))[1]["area"] == on_crops((0,))[1]["area"]


def test_reward_memo_is_order_free():
    cfg = SmallPolicyConfig(input_width=256, input_height=144)
    p = _stripe_patch_problem(0, cfg, RewardConfig(signal="heuristic"))
    assert p.reward([3, 1, 2]) == p.reward([1, 2, 3])
    assert len(p._memo) == 1


def test_config_validation():
    with pytest.raises(ValueError):
        GRPOPolicyConfig(num_generations=1)
    with pytest.raises(ValueError):
        GRPOPolicyConfig(reward_signal="nonsense")
    with pytest.raises(ValueError, match="warmup_steps"):
        GRPOPolicyConfig(warmup_steps=-1)


def test_cached_task_reward_equals_the_pipeline_on_the_same_regions(tmp_path):
    """The anchor cache's merged detections are what ActivePerception publishes for the same
    regions with the real rapidocr task model (the cache is exact, not an approximation)."""
    pytest.importorskip("rapidocr")
    from active_o3_ros.backends.base import SensingOutput, SensingPolicy, build_task
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.pipeline import ActivePerception
    from active_o3_training.anchor_cache import (
        AnchorCacheConfig, CachedFrame, anchor_regions, compute_frame, merged_detections,
    )
    from active_o3_training.data.synthetic import generate_frame, split_seed

    cache_cfg = AnchorCacheConfig(cache_dir=str(tmp_path))
    anchors = make_anchors(SmallPolicyConfig().grids)
    chosen = [4, 21]  # top-right small anchor and top-right quadrant: frame 0 has text there
    task = build_task("text", threads=1)
    seed = split_seed("train", 0)
    data = compute_frame(seed, cache_cfg, task, anchors[chosen])
    fw, fh = (int(v) for v in data["size"])
    frame = CachedFrame(seed, fw, fh, data["thumbnail"], [], data["det_boxes"], data["det_scores"],
                        data["det_labels"], data["det_anchor"], anchor_regions(anchors[chosen], fw, fh, 288))
    cached = merged_detections(frame, [0, 1], cache_cfg)

    class Fixed(SensingPolicy):
        preferred_thumbnail_short_side = 288

        def propose(self, images, instructions, max_regions, context=None):
            h, w = images[0].shape[:2]
            boxes = anchor_boxes_px(anchors[chosen], w, h)
            from active_o3_ros.core.types import Region
            return [SensingOutput([Region(b) for b in boxes])]

    img, _, _ = generate_frame(seed)
    res = ActivePerception(Fixed(), task, PipelineConfig(max_regions=2))(img, "text")
    assert len(cached) > 0, "frame 0 has text in these regions; the detector should find some"
    got = sorted((tuple(round(v, 3) for v in d.box.as_list()), round(d.score, 5)) for d in res.detections)
    want = sorted((tuple(round(v, 3) for v in d.box.as_list()), round(d.score, 5)) for d in cached)
    assert got == want


def test_parse_grids_and_heuristic_frames(tmp_path):
    from active_o3_training.grpo_policy import heuristic_problems, parse_grids
    from active_o3_ros.backends.small_policy import DEFAULT_ANCHOR_GRIDS, make_anchors

    grids = parse_grids("0.15,0.2,7,5;0.4,0.5,2,2")
    assert [(g.cols, g.rows) for g in grids] == [(7, 5), (2, 2)]
    assert parse_grids("") == DEFAULT_ANCHOR_GRIDS
    with pytest.raises(ValueError, match="w,h,cols,rows"):
        parse_grids("0.1,0.2,3")
    anchors = make_anchors(grids)
    rcfg = RewardConfig(signal="both", max_regions=3)  # forced to heuristic: no detector needed
    probs = heuristic_problems("val", 2, 0, anchors, 288, rcfg, workers=1, cache_dir=str(tmp_path), progress=False)
    assert len(probs) == 2 and all(min(p.thumbnail.shape[:2]) == 288 for p in probs)
    total, terms = probs[0].reward([0, 20, 38])
    assert set(terms) == {"format", "non_overlap", "area", "coverage"}
    assert 0 <= terms["coverage"] <= 1 and total == pytest.approx(sum(terms.values()))
    again = heuristic_problems("val", 2, 0, anchors, 288, rcfg, workers=1, cache_dir=str(tmp_path), progress=False)
    assert np.array_equal(again[0].thumbnail, probs[0].thumbnail)  # served from the frame cache


def test_plot_stages_writes_a_png(tmp_path):
    from active_o3_training.grpo_policy import plot_stages

    evals = {"stage1": [{"step": 0, "split": "val", "coverage": 0.1}, {"step": 50, "split": "val", "coverage": 0.3}],
             "stage2": [{"step": 0, "split": "val", "coverage": 0.3}, {"step": 40, "split": "train", "coverage": 0.4}]}
    out = tmp_path / "stages.png"
    plot_stages(evals, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_evaluates_weights_of_different_input_scales_on_one_frame_set(tmp_path, monkeypatch):
    import json

    from active_o3_ros.backends.small_policy import save_weights
    from active_o3_training.policy_math import grow_net
    from active_o3_training.grpo_policy import FRAME_CACHE_DIR, main, parse_grids

    monkeypatch.chdir(tmp_path)  # the frame cache is relative to the working directory
    grids = "0.15,0.2,7,5"
    s2 = save_weights(grow_net(build_net(SmallPolicyConfig(grids=parse_grids(grids))), input_scale=2),
                      tmp_path / "s2.safetensors")
    rc = main(["--train-frames", "0", "--heuristic-val-frames", "2", "--grids", grids, "--workers", "1",
               "--out", str(tmp_path / "ev"), "--evaluate", str(s2), "init"])
    assert rc == 0
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert set(report["results"]) == {str(s2), "init"}
    for res in report["results"].values():
        assert 0.0 <= res["val"]["coverage"] <= 1.0
    # rendered once, at the larger network's thumbnail size (the other one resizes it)
    assert [p.name.rsplit("_", 1)[1] for p in (tmp_path / FRAME_CACHE_DIR).iterdir()] == ["576"]


@pytest.mark.parametrize("bad", [["--crop-context", "0.5"], ["--input-scale", "-1"],
                                 ["--init", "no/such/weights.safetensors", "--heuristic-frames", "1"]])
def test_cli_rejects_bad_options_with_a_clear_error(bad, tmp_path, capsys):
    from active_o3_training.grpo_policy import main

    assert main(["--train-frames", "0", "--out", str(tmp_path / "o"), "--steps", "0"] + bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ("context" in err or "input_scale" in err or "not found" in err)


@pytest.mark.slow
def test_cli_trains_a_cue_policy_on_scenes_and_the_card_says_which_reward(tmp_path, monkeypatch):
    """Scenes -> cached cue maps -> GRPO on the cue features (mirrored views included): the
    mode's coverage on the training scenes must rise, and the weights card
    names the reward each frame group really got (heuristic here, never "both")."""
    import json

    from active_o3_training.grpo_policy import main

    monkeypatch.chdir(tmp_path)
    base = ["--train-frames", "0", "--scenes", "10", "--cues", "--no-cnn", "--no-edge-features",
            "--grids", "0.15,0.2,7,5", "--workers", "1", "--threads", "1", "--out", str(tmp_path / "o")]
    assert main(base + ["--steps", "150", "--lr", "3e-3", "--eval-every", "0",
                        "--eval-train-frames", "10"]) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    train_evals = [e for e in summary["greedy_eval"] if e["split"] == "train"]
    assert train_evals[-1]["coverage"] > train_evals[0]["coverage"] + 0.1, train_evals
    card = json.loads((tmp_path / "o" / "small_policy.json").read_text())
    assert card["recipe"]["reward_signal"] == "see rewards_used"
    used = card["recipe"]["rewards_used"]
    assert list(used) == ["domain-family scenes (training families)"]
    assert used["domain-family scenes (training families)"]["frames"] == 10
    assert "task" not in used["domain-family scenes (training families)"]["reward"]
    assert card["network"]["cue_features"] and not card["network"]["use_cnn"]
    assert card["scenes"]["held_out_families_never_used"]["background"] == ["structure"]


def _map_only_problem(seed: int, cfg: SmallPolicyConfig, rcfg: RewardConfig) -> Problem:
    """The striped patch's frame with the stripes painted over (the thumbnail shows only
    noise), and a detector-like map that lights up where the patch is: only a network that
    reads the map can find it."""
    p = _stripe_patch_problem(seed, cfg, rcfg)
    stripes = p.thumbnail.min(-1) == 0
    img = p.thumbnail.copy()
    img[stripes | (p.thumbnail.max(-1) == 255)] = 115
    det = np.zeros((1,) + img.shape[:2], np.uint8)
    ys, xs = np.nonzero(stripes)
    det[0, ys.min():ys.max() + 1, xs.min():xs.max() + 1] = 200
    return replace(p, thumbnail=img, maps=det, _memo={})


def test_grown_map_inputs_start_from_the_same_answers_and_learn_from_the_map():
    """``map_inputs`` widen a trained CNN with zero-weight channels (same logits), and GRPO
    then learns from the map what the thumbnail cannot show (a check that can fail: without
    the map the patch is invisible)."""
    import torch

    from active_o3_training.policy_math import grow_net

    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_map_only_problem(s, cfg, rcfg) for s in range(24)]
    held_out = [_map_only_problem(1000 + s, cfg, rcfg) for s in range(16)]
    net = build_net(cfg)
    grown = grow_net(net, map_inputs=("det",))
    x = net.preprocess([problems[0].thumbnail])
    maps = grown.normalise_maps(torch.from_numpy(problems[0].maps[None]))
    assert torch.equal(net(x, ["text"]), grown(x, ["text"], None, maps))
    with pytest.raises(ValueError, match="cue maps"):
        grown(x, ["text"])
    with pytest.raises(ValueError, match="appended"):
        grow_net(grown, map_inputs=("stroke",))
    gcfg = GRPOPolicyConfig(max_steps=40, batch_images=8, num_generations=8, learning_rate=3e-3, seed=0,
                            eval_every=0, threads=1, extra_augment=True, map_inputs=("det",))
    before = evaluate_greedy(grown, held_out, 3)
    res = train(problems, gcfg, net=net, progress=False)
    assert res.net.cfg.map_inputs == ("det",)
    after = evaluate_greedy(res.net, held_out, 3)
    print(f"held-out greedy coverage {before['coverage']:.3f} -> {after['coverage']:.3f}")
    assert after["coverage"] > before["coverage"] + 0.3
    # the maps are what it learned from: the same frames with blank maps lose most of it
    blank = [replace(p, maps=np.zeros_like(p.maps), _memo={}) for p in held_out]
    assert evaluate_greedy(res.net, blank, 3)["coverage"] < after["coverage"] - 0.3
    # problems without maps get a clear error, not a shape mismatch
    with pytest.raises(ValueError, match="cue maps"):
        evaluate_greedy(res.net, [replace(held_out[0], maps=None, _memo={})], 3)


def test_map_inputs_config_checks_and_older_weights_read_without_them():
    with pytest.raises(ValueError, match="map_inputs"):
        SmallPolicyConfig(map_inputs=("depth",))
    with pytest.raises(ValueError, match="map_inputs"):
        SmallPolicyConfig(map_inputs=("det", "det"))
    with pytest.raises(ValueError, match="use_cnn"):
        SmallPolicyConfig(map_inputs=("det",), use_cnn=False, cue_features=True)
    cfg = SmallPolicyConfig(map_inputs=("det", "stroke"))
    assert SmallPolicyConfig.from_json(cfg.to_json()) == cfg and cfg.reads_cues
    import json
    old = json.loads(SmallPolicyConfig().to_json())
    del old["map_inputs"]
    assert SmallPolicyConfig.from_json(json.dumps(old)).map_inputs == ()


def test_mirrored_cues_are_the_cues_of_the_mirrored_frame():
    """Flip augmentation of a cue policy: the features the trainer derives for a mirrored
    view must be what the cue module measures on the mirrored frame itself."""
    import torch

    from active_o3_ros.backends.cues import CUE_FEATURES, anchor_cues
    from active_o3_training.data.scenes import SceneConfig, render_scene
    from active_o3_training.policy_math import anchor_flip_permutation, mirrored_cues

    f = render_scene(20_000_030, SceneConfig("in", frame_sizes=((960, 544),), text_free=0.0))
    anchors = make_anchors(SmallPolicyConfig().grids)
    orig = torch.from_numpy(anchor_cues(f.image, anchors, 480, 544, threads=1))
    for lr, tb in ((True, False), (False, True), (True, True)):
        img = f.image[::-1 if tb else 1, ::-1 if lr else 1]
        seen = torch.from_numpy(anchor_cues(np.ascontiguousarray(img), anchors, 480, 544, threads=1))
        order = torch.arange(len(anchors))
        if lr:
            order = torch.as_tensor(anchor_flip_permutation(anchors))[order]
        if tb:
            order = order[torch.as_tensor(anchor_flip_permutation(anchors, vertical=True))]
        derived = mirrored_cues(orig, order, lr, tb)
        # the detector is not exactly mirror-equivariant (padding, rounding): close, per feature
        corr = [np.corrcoef(derived[:, j], seen[:, j])[0, 1] for j in range(seen.shape[1])
                if seen[:, j].std() > 1e-6]
        assert min(corr) > 0.8 and np.median(corr) > 0.95, (lr, tb, corr)
        # and the check can fail: the frame's own features, not mirrored, do not fit
        j = CUE_FEATURES.index("det_max")
        assert np.corrcoef(orig[:, j], seen[:, j])[0, 1] < np.corrcoef(derived[:, j], seen[:, j])[0, 1] - 0.3


def test_ema_serves_the_average_of_the_live_weights():
    """With ``ema_decay`` d, one step returns d * start + (1 - d) * (the live weights after
    that step), which the same seed without averaging returns as they are."""
    import torch

    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_stripe_patch_problem(s, cfg, rcfg) for s in range(8)]
    gcfg = GRPOPolicyConfig(max_steps=1, batch_images=4, num_generations=4, seed=0, eval_every=0, threads=1)
    start = build_net(cfg)
    live = train(problems, gcfg, net=build_net(cfg), progress=False).net
    avg = train(problems, replace(gcfg, ema_decay=0.25), net=build_net(cfg), progress=False).net
    for a, s, l in zip(avg.parameters(), start.parameters(), live.parameters()):
        assert torch.allclose(a, 0.25 * s + 0.75 * l, atol=1e-6)
    assert any(not torch.equal(a, l) for a, l in zip(avg.parameters(), live.parameters()))
    with pytest.raises(ValueError, match="ema_decay"):
        GRPOPolicyConfig(ema_decay=1.0)


def test_draws_stay_among_a_frames_allowed_anchors_in_every_mirrored_view():
    """Frames of the scene task cache know the detector's output on a few anchors only: every
    set GRPO draws there (mirrored views mapped back to the frame's anchors) must lie among
    them, greedy evaluation must choose among them, and the others frames draw freely."""
    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    n = len(make_anchors(cfg.grids))
    allowed = np.zeros(n, bool)
    allowed[[0, 5, 9, 14, 20]] = True  # asymmetric: a mirror maps most of them outside
    drawn: list[tuple[int, ...]] = []
    free: list[tuple[int, ...]] = []

    def restricted(p: Problem) -> Problem:
        def fn(a, inner=p.reward_fn):
            drawn.append(a)
            return inner(a)
        return replace(p, reward_fn=fn, allowed=allowed, _memo={})

    def unrestricted(p: Problem) -> Problem:
        def fn(a, inner=p.reward_fn):
            free.append(a)
            return inner(a)
        return replace(p, reward_fn=fn, _memo={})

    problems = [restricted(_stripe_patch_problem(s, cfg, rcfg)) for s in range(4)] + \
        [unrestricted(_stripe_patch_problem(10 + s, cfg, rcfg)) for s in range(4)]
    gcfg = GRPOPolicyConfig(max_steps=6, batch_images=8, num_generations=8, learning_rate=3e-3, seed=0, eval_every=0,
                            threads=1, extra_augment=True)
    res = train(problems, gcfg, net=build_net(cfg), progress=False)
    assert drawn and all(allowed[list(a)].all() for a in drawn), [a for a in drawn if not allowed[list(a)].all()][:3]
    assert any(not allowed[list(a)].all() for a in free)  # the unrestricted frames were not masked
    for h in res.history:
        assert np.isfinite(h["kl"]) and np.isfinite(h["loss"]) and h["kl"] >= -1e-6
    drawn.clear()
    for p in problems:
        p._memo.clear()  # rewards are memoised per set; score the greedy answer afresh
    evaluate_greedy(res.net, problems[:4], 3)
    assert drawn and all(allowed[list(a)].all() for a in drawn)


@pytest.mark.slow
def test_scene_task_cache_equals_the_pipeline_and_trains_with_the_task_term(tmp_path, monkeypatch):
    """The scene task cache holds the real detector's output on each scene's top-M anchors of
    the shipped weights; its merged detections are what ActivePerception publishes for the
    same regions, and GRPO on scenes uses it for the first --scenes-task frames (the card
    says which frames got the task term)."""
    pytest.importorskip("rapidocr")
    import json

    from active_o3_ros.backends.base import SensingOutput, SensingPolicy, build_task
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.geometry import ResizeCropConfig
    from active_o3_ros.core.pipeline import ActivePerception
    from active_o3_ros.core.types import Region
    from active_o3_training.data import scenes
    from active_o3_training.grpo_policy import main
    from active_o3_training.scene_task_cache import SceneTaskCacheConfig, build, entry_detections, headroom, load

    monkeypatch.chdir(tmp_path)
    stc = SceneTaskCacheConfig(n_frames=2, top_m=4, cache_dir=str(tmp_path / "c"), threads=1)
    build(stc, progress=False)
    entries = load(stc)
    seed = scenes.train_seed(0)
    e = entries[seed]
    assert len(e["allowed"]) == 4 and set(e["det_anchor"].tolist()) <= set(e["allowed"].tolist())
    pick = [int(a) for a in e["allowed"][:2]]
    cached = entry_detections(e, pick, stc.anchor_cache().merge())
    from active_o3_ros.backends.small_policy import load_weights

    anchors = load_weights(stc.weights_path()).anchors.numpy().astype(np.float64)

    class Fixed(SensingPolicy):
        preferred_thumbnail_short_side = stc.anchor_cache().thumbnail_short_side

        def propose(self, images, instructions, max_regions, context=None):
            h, w = images[0].shape[:2]
            return [SensingOutput([Region(b) for b in anchor_boxes_px(anchors[pick], w, h)])]

    f = scenes.render_scene(seed, scenes.set_config("train"))
    task = build_task("text", threads=1)
    pipe = ActivePerception(Fixed(), task, PipelineConfig(max_regions=2, crop=ResizeCropConfig(context=1.3),
                                                          fallback_full_frame=False))
    res = pipe(f.image, "text")
    got = sorted((tuple(round(v, 2) for v in d.box.as_list()), round(d.score, 4)) for d in res.detections)
    want = sorted((tuple(round(v, 2) for v in d.box.as_list()), round(d.score, 4)) for d in cached)
    assert got == want
    # a smaller M from the larger cache, without the detector, equals a fresh build of that M
    from dataclasses import replace

    narrow = replace(stc, top_m=3)
    build(narrow, progress=False, reuse_top_m=4)
    fresh = load(replace(narrow, cache_dir=str(tmp_path / "fresh")), available_only=True)
    assert fresh == {}
    build(replace(narrow, cache_dir=str(tmp_path / "fresh")), progress=False)
    fresh, narrowed = load(replace(narrow, cache_dir=str(tmp_path / "fresh"))), load(narrow)
    for s_ in fresh:
        assert set(fresh[s_]) == set(narrowed[s_])
        for k in fresh[s_]:
            if k != "task_seconds":
                np.testing.assert_allclose(fresh[s_][k], narrowed[s_][k]) if fresh[s_][k].dtype.kind == "f" \
                    else np.testing.assert_array_equal(fresh[s_][k], narrowed[s_][k])
    with pytest.raises(ValueError, match="must exceed"):
        build(replace(stc, n_frames=3), progress=False, reuse_top_m=4)
    room = headroom(stc)
    assert room["frames"] == 2 and 0.0 <= room["recall_served"] <= room["recall_best_set_among_top_m"] <= 1.0
    out = tmp_path / "o"
    assert main(["--train-frames", "0", "--scenes", "3", "--scenes-task", "2", "--scenes-task-top-m", "4",
                 "--cache-dir", str(tmp_path / "c"), "--crop-context", "1.3", "--coverage-on-crops",
                 "--init", str(stc.weights_path()), "--workers", "1", "--threads", "1", "--steps", "2",
                 "--batch-images", "3", "--eval-every", "0", "--out", str(out),
                 "--reward-weights", "coverage=0.5"]) == 0
    recipe = json.loads((out / "small_policy.json").read_text())["recipe"]
    assert recipe["reward_weights"]["coverage"] == 0.5 and recipe["reward_weights"]["task"] == 1.0
    used = recipe["rewards_used"]
    assert all("term weights format 1, non_overlap 1, area 1, coverage 0.5, task 1" in u["reward"] for u in used.values())
    task_group = used["domain-family scenes with the detector's task term (training families)"]
    assert task_group["frames"] == 2 and "task (detector AP50+AR50" in task_group["reward"]
    assert used["domain-family scenes (training families)"]["frames"] == 1
    assert "scene_task_cache --n-frames 2" in json.loads((out / "small_policy.json").read_text())["reproduce"]


def test_scene_task_options_fail_with_a_clear_error(tmp_path, monkeypatch, capsys):
    """A task-term range larger than the scenes, a cache that was never built, or a top-M
    below K: a clear message and exit status 2, nothing trained or cached."""
    from active_o3_training import scene_task_cache
    from active_o3_training.grpo_policy import main

    monkeypatch.chdir(tmp_path)
    base = ["--train-frames", "0", "--workers", "1", "--threads", "1", "--steps", "1", "--out", str(tmp_path / "o"),
            "--cache-dir", str(tmp_path / "empty")]
    assert main(base + ["--scenes", "1", "--reward-weights", "cover=1"]) == 2
    assert "expected TERM=W" in capsys.readouterr().err
    assert main(base + ["--scenes", "1", "--scenes-task", "2"]) == 2
    assert "--scenes-task must not exceed --scenes" in capsys.readouterr().err
    assert main(base + ["--scenes", "2", "--scenes-task", "2"]) == 2
    assert "is not in the task cache" in capsys.readouterr().err
    assert scene_task_cache.main(["--top-m", "2", "--cache-dir", str(tmp_path / "c")]) == 2
    assert "--top-m >= 3" in capsys.readouterr().err
    assert not (tmp_path / "o" / "summary.json").exists() and not (tmp_path / "c").exists()


def test_training_on_a_sharper_look_ships_the_look_with_the_weights(tmp_path, capsys):
    """``--cue-look``: the network's weights start the same, and the trained weights carry the
    look they were trained on (the node reads it from them); a bad look is a clear error."""
    from active_o3_ros.backends.small_policy import load_weights, read_config, save_weights
    from active_o3_training.grpo_policy import main, parse_cue_look, with_cue_look

    assert parse_cue_look("") == () and parse_cue_look(" 1280:0.667 ") == (1280, 0.667)
    for bad in ("1280", "32:0.5", "1280:0", "1280:1.5", "x:y"):
        with pytest.raises(ValueError, match="LONG_SIDE:FRACTION"):
            parse_cue_look(bad)
    with pytest.raises(ValueError, match="cue_look"):
        GRPOPolicyConfig(cue_look=(1280, 2.0))
    cfg = SmallPolicyConfig(input_width=128, input_height=72, init_seed=3)
    assert with_cue_look(cfg, (1280, 0.667)).detector_side((2160, 3840)) == 1280
    rcfg = RewardConfig(signal="heuristic", max_regions=3)
    problems = [_stripe_patch_problem(s, cfg, rcfg) for s in range(4)]
    net = build_net(cfg)
    before = evaluate_greedy(net, problems, 3)
    res = train(problems, GRPOPolicyConfig(max_steps=2, batch_images=2, num_generations=4, seed=0, eval_every=0,
                                           threads=1, cue_look=(1280, 0.667)), net=net, progress=False)
    assert res.evals[0]["reward"] == pytest.approx(before["reward"])
    assert (res.net.cfg.cue_detector_long_side, res.net.cfg.cue_detector_fraction) == (1280, 0.667)
    save_weights(res.net, tmp_path / "w.safetensors")
    assert read_config(tmp_path / "w.safetensors").detector_side((2160, 3840)) == 1280
    assert load_weights(tmp_path / "w.safetensors").cfg.detector_side((720, 1280)) == 854
    assert main(["--train-frames", "0", "--out", str(tmp_path / "o"), "--steps", "0", "--cue-look", "1280"]) == 2
    assert "--cue-look is LONG_SIDE:FRACTION" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_renders_the_scenes_cue_maps_at_the_trained_look(tmp_path, monkeypatch):
    """``--cue-look`` through the CLI: the training scenes' cue maps are rendered at that look
    (their own cache folder, a sharper detector map) and the card ships the look."""
    import json

    import numpy as np

    from active_o3_training.grpo_policy import FRAME_CACHE_DIR, main

    monkeypatch.chdir(tmp_path)
    base = ["--train-frames", "0", "--scenes", "2", "--cues", "--no-cnn", "--grids", "0.15,0.2,7,5",
            "--workers", "1", "--threads", "1", "--steps", "1", "--eval-every", "0", "--eval-train-frames", "2"]
    assert main(base + ["--out", str(tmp_path / "own")]) == 0
    assert main(base + ["--out", str(tmp_path / "sharp"), "--cue-look", "1280:1"]) == 0
    folders = sorted((tmp_path / FRAME_CACHE_DIR).glob("scenes_*"))
    assert len(folders) == 2  # one cache per look, never a stale map
    name = sorted(p.name for p in folders[0].glob("scene_*.npz"))[0]  # the same scene in both caches
    assert sorted(p.name for p in folders[1].glob("scene_*.npz"))[0] == name
    sizes = sorted(max(np.load(f / name, allow_pickle=False)["det"].shape) for f in folders)
    assert sizes[1] > sizes[0]
    card = json.loads((tmp_path / "sharp" / "small_policy.json").read_text())["network"]
    assert (card["cue_detector_long_side"], card["cue_detector_fraction"]) == (1280, 1.0)


def test_anchor_cache_key_follows_the_text_options_as_they_run(tmp_path):
    """A changed default of the text module, or a CPU where its detector runs at another
    precision, changes the cached detections, so it must change the key: the key holds every
    option as it acts (defaults included, the detector's precision as it runs here); speed
    settings do not change it; a misspelt option is refused."""
    from dataclasses import asdict

    from active_o3_ros.backends.text import TextOptions, int8_exact_here
    from active_o3_training.anchor_cache import AnchorCacheConfig

    default = AnchorCacheConfig(cache_dir=str(tmp_path))
    d = asdict(TextOptions())
    run = default.key_dict()["text_options_as_run"]
    assert run["det_precision"] == ("int8" if int8_exact_here() else "fp32")
    assert {k: v for k, v in run.items() if k != "det_precision"} == {
        k: v for k, v in d.items() if k not in ("threads", "mem_arena", "spin_wait", "det_precision")}
    off = AnchorCacheConfig(cache_dir=str(tmp_path), task_options={"single_char_max_aspect": 0.0})
    assert off.key_dict()["text_options_as_run"]["single_char_max_aspect"] == 0.0 and default.key() != off.key()
    same = AnchorCacheConfig(cache_dir=str(tmp_path), task_options={"single_char_max_aspect": d["single_char_max_aspect"]})
    assert same.key() == default.key()  # an explicit default acts as the default
    fast = AnchorCacheConfig(cache_dir=str(tmp_path), task_options={"threads": 2, "mem_arena": False})
    assert fast.key() == default.key()
    fp32 = AnchorCacheConfig(cache_dir=str(tmp_path), task_options={"det_precision": "fp32"})
    assert fp32.key_dict()["text_options_as_run"]["det_precision"] == "fp32"
    assert (fp32.key() == default.key()) == (not int8_exact_here())
    with pytest.raises(ValueError, match="unknown text task option"):
        AnchorCacheConfig(cache_dir=str(tmp_path), task_options={"min_char": 2}).key()
