"""A quality floor for the weights that ship in the package (a regression test, not a benchmark).

On scenes of the *held-out* families (backgrounds, fonts and layouts no training frame
used; the ``val_held_out`` seeds, never the frozen test sets), the shipped policy's
deterministic answer must cover clearly more of the ground-truth text than random anchor
sets and than its own untrained initialisation.  Coverage is the heuristic reward's term
and needs no detector on crops, so this runs in seconds; detection quality end to end is
``benchmarks/sensing_domains.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from active_o3_ros.backends.small_policy import (
    BUNDLED_WEIGHTS, SmallSensingPolicy, anchor_iou_matrix, greedy_sets,
)
from active_o3_ros.core.geometry import make_thumbnail
from active_o3_ros.core.rewards import coverage_reward
from active_o3_training.anchor_cache import anchor_regions
from active_o3_training.data import scenes

N_FRAMES = 12


@pytest.fixture(scope="module")
def frames():
    return [f for f in scenes.iter_set("val_held_out", N_FRAMES) if f.boxes]


def _random_sets(n_anchors: int, iou: np.ndarray, rng: np.random.Generator, k: int = 3) -> list[int]:
    chosen: list[int] = []
    for a in rng.permutation(n_anchors):
        if len(chosen) < k and all(iou[a, c] < 0.3 for c in chosen):
            chosen.append(int(a))
    return chosen


def test_shipped_policy_covers_more_held_out_text_than_random_and_untrained(frames):
    assert BUNDLED_WEIGHTS.is_file()
    torch.set_num_threads(1)
    shipped, init = SmallSensingPolicy(num_threads=1), SmallSensingPolicy(model="init", num_threads=1)
    anchors = shipped.anchors
    iou = anchor_iou_matrix(anchors)
    rng = np.random.default_rng(0)
    cov = {"shipped": [], "init": [], "random": []}
    short = shipped.preferred_thumbnail_short_side
    for f in frames:
        h, w = f.image.shape[:2]
        seen = make_thumbnail(f.image, short)[0]
        regions = anchor_regions(anchors, w, h, short)
        for name, pol in (("shipped", shipped), ("init", init)):  # the mode, as propose() answers
            idx = greedy_sets(pol.logits([seen], ["text"]), 3, iou, pol.net.cfg.overlap_tau)[0]
            cov[name].append(coverage_reward([regions[a] for a in idx], f.boxes))
        cov["random"].append(np.mean([coverage_reward([regions[a] for a in _random_sets(len(anchors), iou, rng)],
                                                      f.boxes) for _ in range(20)]))
    mean = {k: float(np.mean(v)) for k, v in cov.items()}
    print(f"held-out-family greedy coverage on {len(frames)} frames: {mean}")
    assert len(frames) >= 8
    # measured with the shipped v3 weights: 0.63 (v1, the previous ones: 0.57), untrained 0.03, random 0.04
    assert mean["shipped"] >= 0.55, mean
    assert mean["shipped"] > 3 * mean["random"], mean
    assert mean["shipped"] > mean["init"] + 0.1, mean


@pytest.mark.slow
def test_served_answer_with_the_sharp_look_covers_as_much_held_out_text_as_the_policys_own(frames):
    """The node's default (``verify_top`` 6) keeps 3 of the policy's best 6 by what a sharp
    look sees; on held-out frames that must not cover less than the policy's own top 3 (a
    broken choice, e.g. the candidates ranked 4-6, covers far less)."""
    from active_o3_ros.core.pipeline import ActivePerception, PipelineConfig

    torch.set_num_threads(1)
    own = ActivePerception(SmallSensingPolicy(num_threads=1, verify_top=0), None, PipelineConfig(max_regions=3))
    served = ActivePerception(SmallSensingPolicy(num_threads=1), None, PipelineConfig(max_regions=3))
    assert served.sensing.verify_top == 6
    cov = {"own": [], "served": []}
    for f in frames:
        for name, pipe in (("own", own), ("served", served)):
            cov[name].append(coverage_reward([r.box for r in pipe.propose(f.image, "text").regions], f.boxes))
    mean = {k: float(np.mean(v)) for k, v in cov.items()}
    print(f"held-out-family coverage of the served regions on {len(frames)} frames: {mean}")
    # measured: own 0.698, served 0.708, 0.750 with the regions fitted to the look's lines (verify_fit;
    # on all 32 val_held_out frames, words in the crop
    # windows: 0.769 -> 0.822)
    assert mean["served"] >= 0.6, mean
    assert mean["served"] >= mean["own"] - 0.03, mean
