"""The small sensing policy: interface contract, sampling, weights I/O and error messages."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from active_o3_ros.backends.base import build_sensing
from active_o3_ros.backends.small_policy import (
    BUNDLED_WEIGHTS, SmallPolicyConfig, SmallSensingPolicy, anchor_iou_matrix, build_net, greedy_sets, load_weights,
    make_anchors, sample_sets, save_weights,
)
from active_o3_training.policy_math import anchor_flip_permutation, grow_net, set_log_probs
from active_o3_ros.core.parsing import is_well_formatted, parse_answer


def _image(seed: int, w: int = 512, h: int = 288) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_propose_inside_image_at_most_k_and_deterministic(k):
    # the network's own choice; on noise the default proposes none (test_verify_unseen_...)
    pol = build_sensing("small_policy", model="init", verify_unseen="keep")
    imgs = [_image(0), _image(1, 640, 480)]
    a = pol.propose(imgs, ["text", "text"], k)
    b = pol.propose(imgs, ["text", "text"], k)
    for img, out, again in zip(imgs, a, b):
        h, w = img.shape[:2]
        assert 1 <= len(out.regions) <= k
        assert [r.box for r in out.regions] == [r.box for r in again.regions]
        for r in out.regions:
            assert 0 <= r.box.x1 < r.box.x2 <= w and 0 <= r.box.y1 < r.box.y2 <= h
        for i, r in enumerate(out.regions):  # the mode respects the non-overlap threshold
            assert all(r.box.iou(o.box) < 0.3 for o in out.regions[i + 1:])
        assert is_well_formatted(out.text, k)
        assert len(parse_answer(out.text, w, h).boxes) == len(out.regions)


def test_sampled_sets_distinct_and_log_probs_finite():
    torch.manual_seed(0)
    logits = torch.randn(4, 48) * 3
    sets = sample_sets(logits, 3, 8, torch.Generator().manual_seed(1))
    assert sets.shape == (4, 8, 3)
    for row in sets.reshape(-1, 3).tolist():
        assert len(set(row)) == 3
    logp, kl, ent = set_log_probs(logits.requires_grad_(), sets, logits.detach() + 0.5 * torch.randn(4, 48))
    assert torch.isfinite(logp).all() and torch.isfinite(kl).all() and torch.isfinite(ent).all()
    assert (logp < 0).all() and (kl >= -1e-6).all()
    # log-prob of an ordered draw is the product of the sequential masked softmaxes
    p = torch.softmax(logits.detach()[0], -1)
    a, b, c = sets[0, 0].tolist()
    manual = p[a] * p[b] / (1 - p[a]) * p[c] / (1 - p[a] - p[b])
    assert float(logp[0, 0].detach().exp()) == pytest.approx(float(manual), rel=1e-4)
    logp.sum().backward()
    assert torch.isfinite(logits.grad).all()
    # a draw restricted to allowed anchors: the sequential softmaxes renormalise over them
    allowed = torch.zeros(4, 48, dtype=torch.bool)
    allowed[:, :10] = True
    draw = logits.detach().masked_fill(~allowed, float("-inf"))
    rsets = sample_sets(draw, 3, 8, torch.Generator().manual_seed(2))
    assert int(rsets.max()) < 10
    rlogp, rkl, rent = set_log_probs(logits.detach(), rsets, logits.detach() + 0.3, allowed)
    pa = torch.softmax(logits.detach()[0, :10], -1)
    a, b, c = rsets[0, 0].tolist()
    manual = pa[a] * pa[b] / (1 - pa[a]) * pa[c] / (1 - pa[a] - pa[b])
    assert float(rlogp[0, 0].exp()) == pytest.approx(float(manual), rel=1e-4)
    assert torch.isfinite(rkl).all() and torch.isfinite(rent).all() and float(rkl.abs().max()) < 1e-5
    # the KL to itself is zero
    _, kl0, _ = set_log_probs(logits.detach(), sets, logits.detach())
    assert float(kl0.abs().max()) < 1e-5


def test_greedy_skips_overlapping_anchors():
    anchors = make_anchors(SmallPolicyConfig().grids)
    iou = anchor_iou_matrix(anchors)
    logits = torch.zeros(1, len(anchors))
    logits[0, 0] = 3.0
    best_overlap = int(np.argmax(np.where(np.arange(len(anchors)) == 0, -1, iou[0])))
    assert iou[0, best_overlap] >= 0.3 - 1e-6  # a small anchor nested in a big one
    logits[0, best_overlap] = 2.0
    chosen = greedy_sets(logits, 3, iou, 0.3)[0]
    assert chosen[0] == 0 and best_overlap not in chosen and len(chosen) == 3


@pytest.mark.parametrize("vertical", [False, True])
def test_anchor_flip_permutation_is_an_involution(vertical):
    anchors = make_anchors(SmallPolicyConfig().grids)
    perm = anchor_flip_permutation(anchors, vertical=vertical)
    assert sorted(perm.tolist()) == list(range(len(anchors)))
    assert (perm[perm] == np.arange(len(anchors))).all()
    lo, hi = (1, 3) if vertical else (0, 2)
    np.testing.assert_allclose(anchors[perm][:, lo], 1 - anchors[:, hi], atol=1e-9)


def test_init_is_seeded_and_save_load_roundtrip(tmp_path):
    a, b = build_net(SmallPolicyConfig()), build_net(SmallPolicyConfig())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    with torch.no_grad():
        a.anchor_prior.copy_(torch.linspace(-1, 1, a.num_anchors))
    path = save_weights(a, tmp_path / "w.safetensors", provenance={"note": "test"})
    c = load_weights(path)
    x = a.preprocess([_image(3)])
    with torch.no_grad():
        assert torch.allclose(a(x, ["text"]), c(x, ["text"]))
    pol = SmallSensingPolicy(model=str(path), verify_unseen="keep")
    assert pol.propose([_image(3)], ["text"], 3)[0].regions


def test_anchor_max_equals_masked_max():
    """The per-rectangle max-pool must give exactly the masked max over each anchor's cells."""
    net = build_net(SmallPolicyConfig())
    fmap = torch.randn(2, 5, 18, 32)
    masks = net.anchor_masks.bool()                                              # N, h*w
    flat = fmap.flatten(2)
    expected = torch.stack([flat[:, :, m].amax(-1) for m in masks], 1)           # B, N, C
    assert torch.equal(net._anchor_max(fmap), expected)
    # the bundled weights' anchors too, and the window maxima are max-pool's exactly
    from active_o3_ros.backends.small_policy import _window_max

    bundled = load_weights(BUNDLED_WEIGHTS)
    fmap = torch.randn(3, 4, 18, 32, requires_grad=True)
    flat = fmap.flatten(2)
    expected = torch.stack([flat[:, :, m].amax(-1) for m in bundled.anchor_masks.bool()], 1)
    got = bundled._anchor_max(fmap)
    assert torch.equal(got, expected)
    got.sum().backward()  # the gradient reaches one cell per (anchor, channel) maximum
    assert fmap.grad.sum().item() == pytest.approx(got.numel())
    for kh, kw in [(1, 1), (2, 3), (4, 5), (18, 32)]:
        assert torch.equal(_window_max(fmap.detach(), kh, kw), torch.nn.functional.max_pool2d(fmap.detach(), (kh, kw), stride=1))


def test_grow_net_keeps_answers_and_roundtrips(tmp_path):
    base = build_net(SmallPolicyConfig(res_blocks=()))
    with torch.no_grad():
        base.anchor_prior.copy_(torch.linspace(-1, 1, base.num_anchors))
    grown = grow_net(base, (0, 1, 1, 1))
    assert grown.cfg.res_blocks == (0, 1, 1, 1)
    assert sum(p.numel() for p in grown.parameters()) > sum(p.numel() for p in base.parameters())
    x = base.preprocess([_image(4), _image(6)])
    with torch.no_grad():
        assert torch.equal(grown(x, ["text"] * 2), base(x, ["text"] * 2))  # new blocks start as identity
        for p in grown.blocks.parameters():
            p.add_(0.01)
        changed = grown(x, ["text"] * 2)
    assert not torch.allclose(changed, base(x, ["text"] * 2))
    c = load_weights(save_weights(grown, tmp_path / "g.safetensors"))
    assert c.cfg.res_blocks == (0, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(c(x, ["text"] * 2), changed)
    with pytest.raises(ValueError, match="res_blocks"):
        SmallPolicyConfig(res_blocks=(1, 1, 1, 1, 1))


def test_grow_net_input_scale_reads_a_bigger_thumbnail_with_the_same_answers(tmp_path):
    base = grow_net(build_net(SmallPolicyConfig()), (0, 1, 1, 1))
    with torch.no_grad():
        for p in base.blocks.parameters():  # trained-looking blocks, not the identity
            p.add_(0.02)
    grown = grow_net(base, input_scale=2)
    assert grown.cfg.thumbnail_size == (1024, 576)
    assert grown.backbone[0].weight.shape[1] == 12
    lo = [_image(4), _image(6)]
    hi = [np.repeat(np.repeat(im, 2, 0), 2, 1) for im in lo]  # every pixel a 2x2 block
    x_hi = grown.preprocess(hi)
    assert x_hi.shape == (2, 12, 288, 512)
    with torch.no_grad():
        want = base(base.preprocess(lo), ["text"] * 2)
        assert torch.allclose(grown(x_hi, ["text"] * 2), want, atol=1e-4)
        grown.backbone[0].weight.add_(torch.randn_like(grown.backbone[0].weight) * 0.05)
        changed = grown(x_hi, ["text"] * 2)
    assert not torch.allclose(changed, want, atol=1e-2)  # the sub-pixels are separate inputs
    c = load_weights(save_weights(grown, tmp_path / "s2.safetensors"))
    assert c.cfg.input_scale == 2 and c.cfg.res_blocks == (0, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(c(c.preprocess(hi), ["text"] * 2), changed)
    assert SmallSensingPolicy(model=str(tmp_path / "s2.safetensors")).preferred_thumbnail_short_side == 576
    deeper = grow_net(grown, (0, 2, 2, 2))  # blocks may grow on a network that has some
    with torch.no_grad():
        assert torch.equal(deeper(x_hi, ["text"] * 2), changed)
    with pytest.raises(ValueError, match="only grow"):
        grow_net(grown, (0, 0, 1, 1))
    with pytest.raises(ValueError, match="only grow"):
        grow_net(grown, input_scale=3)
    with pytest.raises(ValueError, match="input_scale"):
        SmallPolicyConfig(input_scale=0)


def test_read_config_names_a_corrupt_or_foreign_file(tmp_path):
    from safetensors.torch import save_file

    from active_o3_ros.backends.small_policy import read_config

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        read_config(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))  # valid file, no network config
    with pytest.raises(ValueError, match="foreign.safetensors.*no readable network config"):
        read_config(foreign)
    with pytest.raises(ValueError, match="not found"):
        read_config(tmp_path / "missing.safetensors")
    assert read_config(BUNDLED_WEIGHTS) == load_weights(BUNDLED_WEIGHTS).cfg


def test_bundled_weights_load_and_differ_from_init():
    assert BUNDLED_WEIGHTS.is_file(), "the trained weights must ship in the package"
    assert BUNDLED_WEIGHTS.stat().st_size < 2_000_000
    pol = SmallSensingPolicy()  # model="" -> bundled
    init = SmallSensingPolicy(model="init")
    img = _image(5)
    assert not torch.allclose(pol.logits([img], ["text"]), init.logits([img], ["text"]))
    cfg = pol.net.cfg  # a policy that reads cues is given the larger image the cues are measured on
    assert pol.preferred_thumbnail_short_side == (cfg.cue_short_side if cfg.reads_cues
                                                  else cfg.input_height * cfg.input_scale)


def test_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="weights not found"):
        SmallSensingPolicy(model=str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        SmallSensingPolicy(model=str(bad))
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="lack the"):
        load_weights(plain)


def test_rejects_bad_images():
    pol = SmallSensingPolicy(model="init")
    with pytest.raises(ValueError):
        pol.propose([np.zeros((0, 10, 3), np.uint8)], ["text"], 3)
    with pytest.raises(ValueError):
        pol.propose([np.zeros((10, 10, 3), np.float32)], ["text"], 3)


def test_oracle_anchors_pick_the_policys_anchors_covering_most_ground_truth():
    from active_o3_ros.backends.region_sources import OracleAnchorsPolicy
    from active_o3_ros.core.rewards import coverage_reward
    from active_o3_ros.core.types import Box

    oracle = build_sensing("oracle_anchors")
    assert isinstance(oracle, OracleAnchorsPolicy)
    img = _image(7, 1024, 576)
    anchors = [Box(*a) for a in (oracle.anchors * [1024, 576, 1024, 576])]
    gts = [Box(100, 100, 110, 106), Box(120, 104, 130, 110), Box(900, 500, 910, 505)]
    out = oracle.propose([img], ["text"], 3, context=[{"gt_boxes": gts}])[0]
    regions = [r.box for r in out.regions]
    assert len(regions) == 3 and is_well_formatted(out.text, 3)
    assert all(any(np.allclose(r.as_list(), a.as_list()) for a in anchors) for r in regions)
    assert coverage_reward(regions, gts) == 1.0
    assert coverage_reward(regions[:1], gts) == pytest.approx(2 / 3)   # the pair first: it covers the most
    idx = [int(np.argmin([np.abs(np.subtract(r.as_list(), a.as_list())).sum() for a in anchors])) for r in regions]
    assert all(oracle.iou[a, b] < oracle.tau for a in idx for b in idx if a != b)


def test_oracle_anchors_names_a_missing_weights_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        build_sensing("oracle_anchors", weights=str(tmp_path / "missing.safetensors"))


def test_adaptive_budget_keeps_the_confident_prefix():
    from active_o3_ros.backends.small_policy import adaptive_budget

    probs = np.array([0.5, 0.02, 0.2, 0.001])
    assert adaptive_budget([0, 2, 1, 3], probs, 0.1) == [0, 2]          # stops at the first below 0.1
    assert adaptive_budget([0, 1, 2], probs, 0.1) == [0]                 # a prefix: 2 is not reached
    assert adaptive_budget([3, 0], probs, 0.1, min_regions=1) == [3, 0]  # the best is kept whatever its p
    assert adaptive_budget([3, 0], probs, 0.1, min_regions=0) == []
    assert adaptive_budget([0, 1, 2], probs, 0.0) == [0, 1, 2]


def test_adaptive_policy_proposes_fewer_regions_and_checks_its_options():
    imgs = [_image(s, 960, 540) for s in range(4)]
    fixed = SmallSensingPolicy(model="", verify_unseen="keep").propose(imgs, ["text"] * 4, 3)
    probs = [r.score for out in fixed for r in out.regions]
    cut = float(np.median(probs))
    adaptive = SmallSensingPolicy(model="", min_prob=cut).propose(imgs, ["text"] * 4, 3)
    for a, f in zip(adaptive, fixed):
        assert 1 <= len(a.regions) <= len(f.regions)
        assert [r.box for r in a.regions] == [r.box for r in f.regions[:len(a.regions)]]  # a prefix of the mode
        assert all(r.score >= cut for r in a.regions[1:])
    assert sum(len(a.regions) for a in adaptive) < sum(len(f.regions) for f in fixed)
    with pytest.raises(ValueError, match="min_prob"):
        SmallSensingPolicy(model="init", min_prob=1.5)
    with pytest.raises(ValueError, match="min_regions"):
        SmallSensingPolicy(model="init", min_regions=-1)


def test_mirror_views_average_the_mirrored_answers_and_check_their_option():
    """``mirror_views`` averages the logits of mirrored views mapped back to the frame's
    anchors: 1 view is the plain forward pass, and with 2/4 views a mirrored frame gets the
    mirrored answer (the set of views is the same)."""
    from active_o3_ros.backends.small_policy import anchor_flip_permutation as flip

    net = build_net(SmallPolicyConfig())
    with torch.no_grad():
        net.anchor_prior.copy_(torch.linspace(-1, 1, net.num_anchors))  # break the init's symmetry
    img = _image(5, 1024, 576)  # 2x the thumbnail: resizing commutes with mirroring
    with torch.no_grad():
        plain = net(net.preprocess([img]), ["text"])
    torch.testing.assert_close(net.view_logits([img], ["text"], 1), plain)
    anchors = net.anchors.numpy().astype(np.float64)
    lr, tb = torch.as_tensor(flip(anchors)), torch.as_tensor(flip(anchors, vertical=True))
    two = net.view_logits([img], ["text"], 2)
    assert not torch.allclose(two, plain)
    torch.testing.assert_close(net.view_logits([img[:, ::-1].copy()], ["text"], 2), two[:, lr], atol=1e-5, rtol=1e-5)
    four = net.view_logits([img], ["text"], 4)
    torch.testing.assert_close(net.view_logits([img[::-1].copy()], ["text"], 4), four[:, tb], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="mirror_views"):
        SmallSensingPolicy(model="init", mirror_views=3)
    pol = SmallSensingPolicy(model="init", mirror_views=4, verify_unseen="keep")
    assert len(pol.propose([img], ["text"], 3)[0].regions) == 3


def test_fit_to_hits_fits_the_hull_of_the_hits_in_the_anchor_and_hedges():
    from active_o3_ros.backends.cues import fit_to_hits, hit_boxes

    det = np.zeros((100, 200), np.float32)
    det[20:26, 30:50] = 0.9   # a word inside the anchor
    det[30:34, 55:60] = 0.8   # another, same anchor
    det[80:90, 150:190] = 0.9  # far away: belongs to another anchor
    hits = hit_boxes(det, 0.3)
    assert hits.shape == (3, 4)
    anchor = np.array([0.1, 0.1, 0.4, 0.5])
    fitted = fit_to_hits(anchor, hits, margin=0.0)
    np.testing.assert_allclose(fitted, [30 / 200, 20 / 100, 60 / 200, 34 / 100])
    # a hedge: never smaller than half the anchor per side, grown around the hull, inside the anchor
    hedged = fit_to_hits(anchor, hits, min_scale=0.5, margin=0.0)
    assert hedged[2] - hedged[0] == pytest.approx(0.15) and hedged[3] - hedged[1] == pytest.approx(0.2)
    assert anchor[0] <= hedged[0] and hedged[2] <= anchor[2] and anchor[1] <= hedged[1] and hedged[3] <= anchor[3]
    assert hedged[0] <= fitted[0] and fitted[2] <= hedged[2]
    # no hit in the anchor (or none at all): the anchor itself
    np.testing.assert_allclose(fit_to_hits(np.array([0.5, 0.0, 0.7, 0.3]), hits), [0.5, 0.0, 0.7, 0.3])
    np.testing.assert_allclose(fit_to_hits(anchor, hit_boxes(np.zeros_like(det))), anchor)
    # min_hits: fitted only where the anchor holds that many hits (two here), else the anchor
    np.testing.assert_allclose(fit_to_hits(anchor, hits, margin=0.0, min_hits=2), fitted)
    np.testing.assert_allclose(fit_to_hits(anchor, hits, margin=0.0, min_hits=3), anchor)
    # grown anchor: a hit whose centre is just outside the anchor now counts, clipped to the grown box
    edge = fit_to_hits(np.array([0.0, 0.0, 0.26, 0.5]), hits, grow=1.3, margin=0.0)
    assert edge[2] == pytest.approx(0.13 + 0.26 * 1.3 / 2)  # past the anchor, up to the grown box's edge
    # union: the anchor grows to take in whole the hits its edge cuts, and never shrinks
    cut = fit_to_hits(np.array([0.1, 0.1, 0.2, 0.5]), hits, grow=2.0, margin=0.0, mode="union")
    np.testing.assert_allclose(cut, [0.1, 0.1, 0.25, 0.5])
    np.testing.assert_allclose(fit_to_hits(np.array([0.5, 0.0, 0.7, 0.3]), hits, mode="union"), [0.5, 0.0, 0.7, 0.3])
    with pytest.raises(ValueError, match="fit mode"):
        fit_to_hits(anchor, hits, mode="tight")


def test_shift_to_hits_slides_boxes_onto_unclaimed_hit_mass_keeping_their_size():
    from active_o3_ros.backends.cues import shift_to_hits

    det = np.zeros((100, 200), np.float32)
    det[40:50, 150:175] = 0.9  # a sign right of the first box, partly outside it
    boxes = np.array([[0.6, 0.3, 0.8, 0.5], [0.0, 0.0, 0.1, 0.1], [0.65, 0.3, 0.85, 0.5]])
    out = shift_to_hits(boxes, det, max_shift=0.5, steps=4, gain=0.1)
    np.testing.assert_allclose(out[0], [0.675, 0.3, 0.875, 0.5])  # the smallest slide taking the whole sign
    np.testing.assert_allclose(out[1], boxes[1])  # nothing to gain there: stays
    # the third box's mass was taken by the first: nothing left to gain, so it does not move
    np.testing.assert_allclose(out[2], boxes[2])
    np.testing.assert_allclose(out[:, 2] - out[:, 0], boxes[:, 2] - boxes[:, 0])
    # a box at the frame's edge stays inside the frame
    edge = shift_to_hits(np.array([[0.85, 0.3, 1.0, 0.5]]), det)
    assert 0.0 <= edge[0, 0] and edge[0, 2] <= 1.0
    # a small gain is not worth a move (the look's noise)
    det2 = np.zeros((100, 200), np.float32)
    det2[40:50, 100:140] = 0.9
    det2[40:50, 160:162] = 0.9
    np.testing.assert_allclose(shift_to_hits(np.array([[0.45, 0.3, 0.75, 0.5]]), det2)[0], [0.45, 0.3, 0.75, 0.5])
    pol = SmallSensingPolicy(mirror_views=1, fit_regions=True, fit_mode="shift", fit_shift=0.25)
    assert pol.fit_mode == "shift" and pol.fit_shift == 0.25
    with pytest.raises(ValueError, match="fit_shift"):
        SmallSensingPolicy(fit_regions=True, fit_mode="shift", fit_shift=3)


def test_fitted_regions_lie_in_the_chosen_anchors_and_check_their_options():
    img = np.full((1080, 1920, 3), 235, np.uint8)
    import cv2

    for i, (x, y) in enumerate([(200, 200), (1300, 700), (900, 400)]):
        cv2.putText(img, f"EXIT {i} DOOR", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (20, 20, 20), 3)
    plain = SmallSensingPolicy(mirror_views=1, verify_top=0)  # the anchors fit_regions starts from
    fitted = SmallSensingPolicy(mirror_views=1, fit_regions=True)
    a, b = plain.propose([img], ["text"], 3)[0], fitted.propose([img], ["text"], 3)[0]
    assert len(a.regions) == len(b.regions) == 3
    moved = 0
    for ra, rb in zip(a.regions, b.regions):  # same anchors chosen; each fitted region inside its anchor
        assert ra.score == rb.score
        assert ra.box.x1 - 1e-6 <= rb.box.x1 < rb.box.x2 <= ra.box.x2 + 1e-6
        assert ra.box.y1 - 1e-6 <= rb.box.y1 < rb.box.y2 <= ra.box.y2 + 1e-6
        moved += rb.box.area < 0.9 * ra.box.area
    assert moved >= 1  # the look saw the lettering, so some anchor was fitted to it
    with pytest.raises(ValueError, match="fit_min_scale"):
        SmallSensingPolicy(fit_regions=True, fit_min_scale=1.5)
    with pytest.raises(ValueError, match="fit_grow"):
        SmallSensingPolicy(fit_regions=True, fit_grow=0.5)


def test_cue_long_side_caps_the_detector_look_and_checks_its_option():
    own = SmallSensingPolicy(mirror_views=1)
    cheap = SmallSensingPolicy(mirror_views=1, cue_long_side=640, verify_unseen="keep")
    assert own.net.cfg.detector_side((1080, 1920)) == 960 and cheap.net.cfg.detector_side((1080, 1920)) == 640
    assert cheap.net.cfg.detector_side((720, 1280)) == 640
    assert load_weights(BUNDLED_WEIGHTS).cfg.cue_detector_long_side == 960  # the weights file is untouched
    img = np.full((1080, 1920, 3), 200, np.uint8)
    assert len(cheap.propose([img], ["text"], 3)[0].regions) == 3
    with pytest.raises(ValueError, match="cue_long_side"):
        SmallSensingPolicy(cue_long_side=10)


def test_cue_fraction_makes_the_look_sharper_and_checks_its_option():
    sharp = SmallSensingPolicy(mirror_views=1, cue_long_side=1920, cue_fraction=1.0, verify_unseen="keep")
    assert sharp.net.cfg.detector_side((1080, 1920)) == 1920 and sharp.net.cfg.detector_side((720, 1280)) == 1280
    assert load_weights(BUNDLED_WEIGHTS).cfg.cue_detector_fraction == 0.5  # the weights file is untouched
    img = np.full((1080, 1920, 3), 200, np.uint8)
    assert len(sharp.propose([img], ["text"], 3)[0].regions) == 3
    for bad in (1.5, -0.2):
        with pytest.raises(ValueError, match="cue_fraction"):
            SmallSensingPolicy(cue_fraction=bad)


def test_letterbox_pads_off_aspect_frames_centred_and_maps_boxes_back():
    from active_o3_ros.backends.small_policy import LETTERBOX_FILL, inside_fraction, letterbox, unletterbox

    same = _image(7, 1280, 720)
    out, win = letterbox(same, 16 / 9)
    assert out is same and win is None  # 16:9 frames are untouched
    img = _image(8, 400, 300)  # 4:3: grey bars left and right
    out, win = letterbox(img, 16 / 9)
    assert out.shape == (300, 533, 3) and win == pytest.approx((66 / 533, 0.0, 400 / 533, 1.0))
    np.testing.assert_array_equal(out[:, 66:466], img)
    assert (out[:, :66] == LETTERBOX_FILL).all() and (out[:, 466:] == LETTERBOX_FILL).all()
    tall, twin = letterbox(_image(9, 800, 100), 16 / 9)  # wider than 16:9: bars above and below
    assert tall.shape == (450, 800, 3) and twin == pytest.approx((0.0, 175 / 450, 1.0, 100 / 450))
    anchors = np.array([[0.0, 0.0, 0.1, 0.5], [0.4, 0.2, 0.6, 0.4], [0.1, 0.0, 0.3, 0.2]])
    np.testing.assert_allclose(inside_fraction(anchors, win), [0.0, 1.0, (0.3 - 66 / 533) / 0.2])
    back = unletterbox(anchors, win)
    assert back.min() >= 0 and back.max() <= 1  # clipped to the image
    np.testing.assert_allclose(back[1], [(0.4 - 66 / 533) * 533 / 400, 0.2, (0.6 - 66 / 533) * 533 / 400, 0.4])


def test_letterboxed_policy_keeps_16_9_answers_and_never_picks_the_bars():
    """16:9 frames get the same regions with and without the letterbox; on a 4:3 or portrait
    frame no region comes from an anchor lying mostly on a bar, and all lie in the frame."""
    import re

    from active_o3_ros.backends.small_policy import inside_fraction, letterbox

    on = SmallSensingPolicy(model="init", letterbox=True, verify_unseen="keep")
    off = SmallSensingPolicy(model="init", letterbox=False, verify_unseen="keep")
    tw, th = on.net.cfg.thumbnail_size
    bars = inside_fraction(on.anchors, letterbox(_image(0, 960, 720), tw / th)[1]) < 0.5
    for pol in (on, off):  # a prior that wants the anchors on a 4:3 frame's bars: only the mask stops it
        with torch.no_grad():
            pol.net.anchor_prior.copy_(torch.from_numpy(bars.astype(np.float32) * 20.0))
    wide = _image(10, 1024, 576)
    assert [r.box for r in on.propose([wide], ["text"], 3)[0].regions] == \
        [r.box for r in off.propose([wide], ["text"], 3)[0].regions]
    for w, h in ((960, 720), (540, 960)):
        img = _image(11, w, h)
        regions = on.propose([img], ["text"], 3)[0].regions
        assert len(regions) == 3
        for r in regions:
            assert 0 <= r.box.x1 < r.box.x2 <= w and 0 <= r.box.y1 < r.box.y2 <= h
        # each comes from an anchor at least half inside the frame (the answer's think names them)
        out = on.propose([img], ["text"], 3)[0]
        idx = [int(a) for a in re.findall(r"#(\d+) p=", out.text)]
        assert len(idx) == 3 and (inside_fraction(on.anchors[idx], letterbox(img, tw / th)[1]) >= 0.5).all()
    assert any(bars[int(a)] for a in re.findall(r"#(\d+) p=", off.propose([_image(11, 960, 720)], ["text"], 3)[0].text))
    with pytest.raises(ValueError, match="letterbox"):
        SmallSensingPolicy(model="init", letterbox="yes")


@pytest.mark.parametrize("size", [(1280, 720), (1280, 960), (720, 1280)])
def test_training_maps_anchors_to_frames_as_the_served_policy_does(size):
    """What is trained is what is served: on a 16:9, 4:3 or portrait frame the pipeline's
    regions are the training mapping's (``anchor_regions``) for the anchors the policy chose,
    those anchors are among ``usable_anchors``, and the anchor oracle keeps to them too."""
    import re

    from active_o3_ros.backends.region_sources import OracleAnchorsPolicy
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig
    from active_o3_training.anchor_cache import anchor_regions, usable_anchors

    w, h = size
    pol = SmallSensingPolicy(model="init", windows_above=0)  # letterboxed whole (windows: the test below)
    pipe = ActivePerception(pol, None, PipelineConfig(max_regions=3))
    prop = pipe.propose(_image(12, w, h), "text")
    idx = [int(a) for a in re.findall(r"#(\d+) p=", prop.text)]
    short = pol.preferred_thumbnail_short_side
    regions = anchor_regions(pol.anchors, w, h, short)
    for r, a in zip(prop.regions, idx):
        assert r.box.as_list() == pytest.approx(regions[a].as_list(), abs=0.51)  # thumbnail rounding
    usable = usable_anchors(pol.anchors, w, h)
    assert (usable is None) == (w * 9 == h * 16)
    if usable is not None:
        assert usable[idx].all() and not usable.all()
        # the anchor oracle, given words only where the bars' anchors reach, still picks usable anchors
        from active_o3_ros.backends.small_policy import anchor_boxes_px, anchors_in_frame

        norm, ok = anchors_in_frame(pol.anchors, w, h, 16 / 9)
        boxes = anchor_boxes_px(norm, w, h)
        gt = [boxes[a] for a in np.flatnonzero(~ok)]
        picked = OracleAnchorsPolicy().propose([_image(13, w, h)], ["text"], 3, [{"gt_boxes": gt}])[0].regions
        assert picked and all(any(p.box.as_list() == pytest.approx(boxes[a].as_list()) for a in np.flatnonzero(ok))
                              for p in picked)


def test_sensing_windows_tile_off_aspect_frames_and_leave_16_9_whole():
    from active_o3_ros.backends.small_policy import sensing_windows, window_boxes

    assert sensing_windows(3840, 2160, 16 / 9, 1) is None  # 16:9: read whole
    assert sensing_windows(1920, 1440, 16 / 9, 0) is None  # 0: never
    assert sensing_windows(1920, 1440, 16 / 9, 2560) is None  # canvas 2560 px, not wider than 2560
    assert sensing_windows(1920, 1440, 16 / 9, 2559) == [(0, 0, 1920, 1080), (0, 360, 1920, 1080)]
    tall = sensing_windows(1080, 1920, 16 / 9, 1)  # portrait: 4 full-width windows, top to bottom
    assert len(tall) == 4 and tall[0] == (0, 0, 1080, 608) and tall[-1] == (0, 1312, 1080, 608)
    assert sensing_windows(3840, 1080, 16 / 9, 1) == [(0, 0, 1920, 1080), (1920, 0, 1920, 1080)]
    # windows shorter than min_side (the policy's whole-frame short side): read whole
    assert sensing_windows(1280, 960, 16 / 9, 1, 1080) is None and sensing_windows(1080, 1920, 16 / 9, 1, 1080) is None
    assert len(sensing_windows(1920, 1440, 16 / 9, 1, 1080)) == 2
    for w, h in ((4032, 3024), (1080, 1920), (5000, 1000)):  # every pixel row/column is in a window
        wins = sensing_windows(w, h, 16 / 9, 1)
        assert all(abs(ww / wh - 16 / 9) < 0.01 for _, _, ww, wh in wins)
        assert wins[0][:2] == (0, 0) and wins[-1][0] + wins[-1][2] == w and wins[-1][1] + wins[-1][3] == h
        assert all(b[0] + b[1] <= a[0] + a[2] + a[1] + a[3] for a, b in zip(wins, wins[1:]))  # they overlap or touch
    np.testing.assert_allclose(window_boxes(np.array([[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]]), (0, 360, 1920, 1080),
                                            1920, 1440), [[0, 0.25, 1, 1], [0.5, 0.625, 1, 1]])


def test_windowed_policy_reads_each_window_at_the_trained_scale_and_maps_anchors_back():
    """With ``windows_above`` a 4:3 frame is read as two 16:9 windows: the pipeline is asked
    for a thumbnail whose windows have the weights' short side, every region is an anchor of
    one window in frame pixels, regions do not overlap, and 16:9 frames are read whole."""
    import re

    from active_o3_ros.backends.small_policy import anchor_boxes_px, sensing_windows
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig

    # one view: a prior on one anchor stays on it (mirror views average it with its mirror images)
    plain = SmallSensingPolicy(model="init", mirror_views=1, windows_above=0, verify_top=0)
    win = SmallSensingPolicy(model="init", mirror_views=1, windows_above=1, verify_top=0)
    assert SmallSensingPolicy(model="init").windows_above == 2000  # the default (chosen on validation)
    short = plain.preferred_thumbnail_short_side
    assert win.thumbnail_short_side_for(1920, 1080) == plain.thumbnail_short_side_for(2560, 1920) == short
    assert win.thumbnail_short_side_for(2560, 1920) == int(np.ceil(short * 1920 / 1440))  # windows 2560x1440
    for pol in (plain, win):  # one anchor wanted far above all others: each window picks its copy of it
        with torch.no_grad():
            pol.net.anchor_prior.copy_(torch.from_numpy((np.arange(len(pol.anchors)) == 0).astype(np.float32) * 30.0))
    wide = _image(14, 1920, 1080)
    assert [r.box for r in ActivePerception(win, None, PipelineConfig(max_regions=3)).propose(wide, "text").regions] == \
        [r.box for r in ActivePerception(plain, None, PipelineConfig(max_regions=3)).propose(wide, "text").regions]
    w, h = 2560, 1920
    prop = ActivePerception(win, None, PipelineConfig(max_regions=3)).propose(_image(15, w, h), "text")
    picks = [(int(a), int(b)) for a, b in re.findall(r"w(\d+)#(\d+) p=", prop.text)]
    assert len(prop.regions) == 3 and {a for a, _ in picks} == {0, 1} and (0, 0) in picks and (1, 0) in picks
    wins = sensing_windows(w, h, 16 / 9, 1)
    for r, (k, a) in zip(prop.regions, picks):
        x0, y0, ww, wh = wins[k]
        expect = anchor_boxes_px(win.anchors[[a]], ww, wh)[0]
        assert r.box.as_list() == pytest.approx([expect.x1 + x0, expect.y1 + y0, expect.x2 + x0, expect.y2 + y0], abs=2.0)
    assert all(a.box.iou(b.box) < 0.3 for i, a in enumerate(prop.regions) for b in prop.regions[i + 1:])
    for bad in (-1, 1.5, True, "auto"):
        with pytest.raises(ValueError, match="windows_above"):
            SmallSensingPolicy(model="init", windows_above=bad)
    # the default minimum side keeps windows no smaller than a whole frame's read (1080 px short)
    assert plain.windows_of(1080, 1920) is None and SmallSensingPolicy(model="init").windows_of(1080, 1920) is None
    assert SmallSensingPolicy(model="init").windows_of(1280, 960) is None
    assert len(SmallSensingPolicy(model="init").windows_of(1920, 1440)) == 2
    assert len(SmallSensingPolicy(model="init", windows_min_side=0).windows_of(1080, 1920)) == 4
    for bad in (-2, 2.0, False):
        with pytest.raises(ValueError, match="windows_min_side"):
            SmallSensingPolicy(model="init", windows_min_side=bad)


def _lettering(img: np.ndarray, box, seed: int = 0) -> None:
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box.as_list())
    for i, y in enumerate(range(y1 + 30, y2 - 10, 40)):
        cv2.putText(img, f"GATE {seed}{i} EXIT", (x1 + 10, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (20, 20, 20), 2)


def test_look_at_boxes_sees_lettering_not_stripes_and_choose_by_hits_counts_each_line_once():
    from active_o3_ros.backends.cues import choose_by_hits, look_at_boxes

    img = np.full((1080, 1920, 3), 225, np.uint8)
    img[600:900, 1200:1700:12] = 30  # vertical stripes (a fence): not text
    from active_o3_ros.core.types import Box

    _lettering(img, Box(100, 100, 600, 400))
    norm = np.array([[100, 100, 600, 400], [1200, 600, 1700, 900], [700, 100, 1100, 400]]) / [1920, 1080, 1920, 1080]
    text, fence, plain = look_at_boxes(img, norm, 640, 1.0, threads=1)
    assert len(text) >= 3 and len(fence) == 0 and len(plain) == 0
    assert np.all(text[:, 0] >= norm[0, 0] - 1e-6) and np.all(text[:, 2] <= norm[0, 2] + 1e-6)
    assert np.all(text[:, 2] - text[:, 0] > 2 * (text[:, 3] - text[:, 1]) * 1080 / 1920)  # wide lines
    a = np.array([[0.1, 0.1, 0.2, 0.12]])
    b = np.array([[0.1, 0.1, 0.2, 0.12], [0.5, 0.5, 0.6, 0.52], [0.7, 0.7, 0.8, 0.72]])
    c = np.array([[0.3, 0.3, 0.4, 0.32]])
    # the line a shares with b counts once: after b, a adds nothing and c adds one
    assert choose_by_hits([a, np.zeros((0, 4)), b, c], 3) == ([2, 3, 0], [1, 0, 3, 1])
    assert choose_by_hits([np.zeros((0, 4))] * 5, 3) == ([0, 1, 2], [0] * 5)  # nothing seen: given order
    assert choose_by_hits([a, c], 3) == ([0, 1], [1, 1])


def test_look_precision_picks_the_detector_and_int8_looks_see_the_same_lines():
    """``cue_precision`` / ``verify_precision``: fp32 is rapidocr's detector; int8 the text
    module's shipped int8 one where this CPU computes it exactly (else fp32); the int8 look
    sees the same lettering lines and the same stripes as the fp32 one."""
    from active_o3_ros.backends.cues import detector_model_path, look_at_boxes, look_detector
    from active_o3_ros.backends.text import INT8_DET_MODEL, int8_exact_here
    from active_o3_ros.core.types import Box

    assert look_detector("fp32") == detector_model_path()
    if int8_exact_here():
        assert look_detector("int8") == INT8_DET_MODEL
    else:
        with pytest.warns(UserWarning, match="VNNI"):
            assert look_detector("int8") == detector_model_path()
    with pytest.raises(ValueError, match="look precision"):
        look_detector("fp16")
    for name in ("cue_precision", "verify_precision"):
        with pytest.raises(ValueError, match=name):
            SmallSensingPolicy(model="init", **{name: "fp16"})
    img = np.full((1080, 1920, 3), 225, np.uint8)
    img[600:900, 1200:1700:12] = 30
    _lettering(img, Box(100, 100, 600, 400))
    norm = np.array([[100, 100, 600, 400], [1200, 600, 1700, 900]]) / [1920, 1080, 1920, 1080]
    fp = look_at_boxes(img, norm, 480, 1.0, threads=1)
    q = look_at_boxes(img, norm, 480, 1.0, threads=1, model=look_detector("int8"))
    assert len(fp[0]) >= 3 and len(q[0]) == len(fp[0]) and len(q[1]) == len(fp[1])  # (both see one fence line at 480 px)
    pol = SmallSensingPolicy(model="init", mirror_views=1, cue_precision="int8", verify_precision="int8")
    out = pol.propose([img], ["text"], 3)[0]
    assert len(out.regions) == 3


def test_verify_unseen_drops_regions_whose_sharp_look_saw_no_line():
    """``verify_unseen``: ``keep`` keeps the picks; ``frame`` keeps none when no candidate saw
    a line (and all when one did); ``region`` drops each pick that saw none.  On a blank frame
    ``frame`` proposes nothing and the pipeline runs its fallback, the full frame; with
    lettering the region on it is kept."""
    from active_o3_ros.backends.base import build_task
    from active_o3_ros.backends.small_policy import unseen_kept
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig
    from active_o3_ros.core.types import Box

    assert unseen_kept([2, 0, 1], [1, 0, 0, 4], "keep") == [2, 0, 1]
    assert unseen_kept([2, 0, 1], [1, 0, 0, 4], "frame") == [2, 0, 1]
    assert unseen_kept([2, 0, 1], [0, 0, 0, 0], "frame") == []
    assert unseen_kept([2, 0, 1], [1, 0, 0, 4], "region") == [0]
    with pytest.raises(ValueError, match="verify_unseen"):
        SmallSensingPolicy(model="init", verify_unseen="drop")
    blank = np.full((1080, 1920, 3), 200, np.uint8)
    keep = SmallSensingPolicy(model="init", mirror_views=1, verify_unseen="keep")
    assert len(keep.propose([blank], ["text"], 3)[0].regions) == 3
    assert SmallSensingPolicy(model="init").verify_unseen == "frame"  # the default (chosen on validation)
    assert SmallSensingPolicy(model="init", verify_top=0).verify_unseen == "keep"  # no sharp look
    with pytest.raises(ValueError, match="needs verify_top"):
        SmallSensingPolicy(model="init", verify_top=0, verify_unseen="frame")
    for mode in ("frame", "region"):
        pol = SmallSensingPolicy(model="init", mirror_views=1, verify_unseen=mode)
        out = pol.propose([blank], ["text"], 3)[0]
        assert out.regions == [] and "anchors none;" in out.text and out.text.endswith("<answer>[]</answer>")
    ap = ActivePerception(SmallSensingPolicy(model="init", mirror_views=1, verify_unseen="frame"),
                          build_task("text", threads=1), PipelineConfig(max_regions=3))
    res = ap(blank, "text")
    assert res.regions == [] and len(res.task_statuses) == 1 and res.detections == []  # the full frame ran
    img = blank.copy()
    for x in range(0, 1920, 320):  # lines everywhere: every candidate sees some
        _lettering(img, Box(x, 0, x + 320, 1080), seed=x)
    for mode in ("frame", "region"):
        pol = SmallSensingPolicy(model="init", mirror_views=1, verify_unseen=mode)
        assert len(pol.propose([img], ["text"], 3)[0].regions) == 3


def test_verified_policy_keeps_the_candidates_whose_sharp_look_sees_text():
    """``verify_top``: the pipeline hands the policy the whole frame; its network reads the
    usual thumbnail and ranks its candidates as before; the kept regions are the candidates
    whose look saw the most lines, in frame pixels; a frame with no text keeps the top 3."""
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig

    plain = SmallSensingPolicy(model="init", mirror_views=1, verify_top=0)
    # the choice alone (fit: below; regions that see nothing: test_verify_unseen_...)
    ver = SmallSensingPolicy(model="init", mirror_views=1, verify_fit=False, verify_unseen="keep")
    assert ver.verify_top == 6 and SmallSensingPolicy(model="init", min_prob=0.1).verify_top == 0
    rank = np.random.default_rng(3).permutation(len(plain.anchors))
    for pol in (plain, ver):  # a fixed order of the anchors, far above what the pixels add
        with torch.no_grad():
            pol.net.anchor_prior.copy_(torch.from_numpy(100.0 - 3.0 * np.argsort(rank).astype(np.float32)))
    assert ver.thumbnail_short_side_for(3840, 2160) == 2160 and plain.thumbnail_short_side_for(3840, 2160) == 1080
    frame = np.full((2160, 3840, 3), 225, np.uint8)
    run = lambda pol, k: ActivePerception(pol, None, PipelineConfig(max_regions=k)).propose(frame, "text")  # noqa: E731
    top6 = [r.box for r in run(plain, 6).regions]
    assert len(top6) == 6
    assert [r.box for r in run(ver, 3).regions] == top6[:3]  # nothing to see: the policy's top 3
    _lettering(frame, top6[4], 1)
    _lettering(frame, top6[5], 2)
    prop = run(ver, 3)
    got = [r.box for r in prop.regions]
    assert len(got) == 3 and got[:2] in ([top6[4], top6[5]], [top6[5], top6[4]]) and got[2] == top6[0]
    assert [r.rank for r in prop.regions] == [0, 1, 2] and "kept" in prop.text
    assert [r.box for r in run(plain, 3).regions] == top6[:3]  # off by default: unchanged
    assert len(run(ver, 6).regions) == 6  # no more candidates than regions: nothing to choose
    tall = _image(16, 2560, 1920)  # a 4:3 frame read as two windows: candidates from both, in frame pixels
    prop = ActivePerception(ver, None, PipelineConfig(max_regions=3)).propose(tall, "text")
    assert len(prop.regions) == 3 and all(0 <= r.box.x1 < r.box.x2 <= 2560 and 0 <= r.box.y1 < r.box.y2 <= 1920
                                          for r in prop.regions)
    assert len(__import__("re").findall(r"w\d+#\d+ p=", prop.text)) == 3
    for kw, msg in (({"verify_top": -1}, "verify_top"), ({"verify_top": 2.5}, "verify_top"),
                    ({"verify_top": 6, "verify_side": 8}, "verify_side"), ({"verify_top": 6, "verify_context": 0.5},
                                                                            "verify_context"),
                    ({"verify_top": 6, "min_prob": 0.1}, "does not combine"), ({"verify_top": 6, "sample": True},
                                                                               "does not combine")):
        with pytest.raises(ValueError, match=msg):
            SmallSensingPolicy(model="init", **kw)


def test_verify_fit_shrinks_kept_regions_to_the_lines_their_look_saw():
    """``verify_fit``: each kept region becomes the hull of the text lines its sharp look saw
    (no smaller than ``verify_fit_min_scale`` of the anchor per side), so its crop zooms more;
    a region whose look saw nothing keeps its anchor."""
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig
    from active_o3_ros.core.types import Box

    kw = dict(model="init", mirror_views=1)
    rank = np.random.default_rng(3).permutation(len(SmallSensingPolicy(**kw, verify_top=0).anchors))
    pols = {}
    for fit in (False, True):
        pol = SmallSensingPolicy(**kw) if fit else SmallSensingPolicy(**kw, verify_fit=False)
        with torch.no_grad():
            pol.net.anchor_prior.copy_(torch.from_numpy(100.0 - 3.0 * np.argsort(rank).astype(np.float32)))
        pols[fit] = pol
    assert pols[True].verify_fit and pols[True].verify_fit_min_scale == 0.5  # the default
    assert pols[True].verify_fit_min_lines == 2  # fitted where the look saw two lines or more
    assert not SmallSensingPolicy(model="init", min_prob=0.1).verify_fit  # off with the policy's own answer
    frame = np.full((2160, 3840, 3), 225, np.uint8)
    run = lambda pol: ActivePerception(pol, None, PipelineConfig(max_regions=3)).propose(frame, "text").regions  # noqa: E731
    anchor = run(pols[False])[0].box
    assert [r.box for r in run(pols[True])] == [r.box for r in run(pols[False])]  # nothing seen: anchors
    text = Box(anchor.x1 + 0.3 * anchor.width, anchor.y1 + 0.3 * anchor.height, anchor.x2, anchor.y2)
    _lettering(frame, text, 7)
    plain, fitted = run(pols[False]), run(pols[True])
    assert plain[0].box == anchor and fitted[0].rank == 0
    got = fitted[0].box
    assert got.width < 0.9 * anchor.width or got.height < 0.9 * anchor.height  # fitted to the lines
    assert got.width >= 0.5 * anchor.width - 2 and got.height >= 0.5 * anchor.height - 2  # the hedge
    ys, xs = np.nonzero(frame[..., 0] < 100)  # the lettering's ink, all inside the fitted region
    assert got.x1 <= xs.min() + 2 and got.y1 <= ys.min() + 2 and got.x2 >= xs.max() - 2 and got.y2 >= ys.max() - 2
    assert [r.box for r in fitted[1:]] == [r.box for r in plain[1:]]  # nothing seen there: anchors
    strict = SmallSensingPolicy(**kw, verify_fit_min_lines=50)  # fewer lines seen than asked: the anchors
    with torch.no_grad():
        strict.net.anchor_prior.copy_(pols[True].net.anchor_prior)
    assert [r.box for r in run(strict)] == [r.box for r in plain]
    for bad, msg in (({"verify_fit": 1}, "verify_fit"), ({"verify_fit_grow": 0.5}, "verify_fit_grow"),
                     ({"verify_fit_min_scale": 1.5}, "verify_fit_min_scale"),
                     ({"verify_fit_min_lines": 0}, "verify_fit_min_lines"),
                     ({"verify_fit_min_lines": 1.5}, "verify_fit_min_lines"),
                     ({"verify_fit": True, "verify_top": 0}, "needs verify_top")):
        with pytest.raises(ValueError, match=msg):
            SmallSensingPolicy(model="init", **bad)
