"""GRPO math for the small sensing policy (training only; the backend keeps inference).

* :func:`set_log_probs`: the policy's "completion" is an ordered set of K distinct anchors
  (drawn by the backend's ``sample_sets``); this gives each set's exact log-probability, KL to
  the reference policy and entropy (the GRPO objective's terms).
* :func:`grow_net`: a trained network with more residual blocks or a larger input scale
  that gives the same answers, so training continues with the KL reference unchanged.
* :func:`add_anchors`: a trained network with more anchor grids (fine-tuning on a scene whose
  objects need other region sizes than the shipped anchors offer).
* :func:`anchor_flip_permutation` / :func:`mirrored_cues` (defined with the backend, which
  uses them for its mirror views): the anchor each anchor becomes under a mirror, so flip
  augmentation keeps rewards exact.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from active_o3_ros.backends.small_policy import (  # noqa: F401  (mirror helpers re-exported for training)
    SmallPolicyNet, anchor_flip_permutation, build_net, mirrored_cues)


def grow_net(net: SmallPolicyNet, res_blocks: Sequence[int] | None = None,
             input_scale: int | None = None, map_inputs: Sequence[str] | None = None,
             cue_features: bool | None = None) -> SmallPolicyNet:
    """A copy of ``net`` with more residual blocks (``res_blocks`` per stage) and/or a larger
    ``input_scale``.  New blocks start as the identity and a larger input scale starts with
    the first conv reading the mean of each folded pixel block, so the grown network gives
    the same logits (exactly for blocks; for the scale, up to how the thumbnail was
    downscaled) and GRPO can continue from it with the KL reference unchanged.  New
    ``map_inputs`` (cue maps as extra input channels, appended after the old ones) start
    with zero weights, so they too leave the logits unchanged; so do ``cue_features`` added
    to a CNN network (the head's new input columns start at zero).  Counts, scale, maps and
    cues may grow, never shrink: that would throw trained weights away."""
    old = net.cfg
    blocks = tuple(int(n) for n in res_blocks) if res_blocks is not None else old.res_blocks
    scale = int(input_scale) if input_scale is not None else old.input_scale
    maps = tuple(map_inputs) if map_inputs is not None else old.map_inputs
    if maps[:len(old.map_inputs)] != old.map_inputs:
        raise ValueError(f"map_inputs can only be appended to: {old.map_inputs} -> {maps}")
    if old.map_inputs and scale != old.input_scale:
        raise ValueError("grow the input scale before adding map inputs")
    cues = old.cue_features if cue_features is None else bool(cue_features)
    if old.cue_features and not cues:
        raise ValueError("cue_features can only be added, not removed")
    if cues and not old.cue_features and not old.use_cnn:
        raise ValueError("cue_features are added to a CNN network only")
    padded = tuple(old.res_blocks) + (0,) * (len(blocks) - len(old.res_blocks))
    if len(blocks) < len(old.res_blocks) or any(n < o for n, o in zip(blocks, padded)):
        raise ValueError(f"res_blocks can only grow: {old.res_blocks} -> {blocks}")
    if scale % old.input_scale:
        raise ValueError(f"input_scale can only grow by a whole factor: {old.input_scale} -> {scale}")
    grown = build_net(replace(old, res_blocks=blocks, input_scale=scale, map_inputs=maps, cue_features=cues))
    state = dict(net.state_dict())
    f = scale // old.input_scale
    if f > 1:  # each old input channel becomes its f*f sub-pixels, each weighted 1/(f*f)
        w = state["backbone.0.weight"]                                 # C, 3*s0*s0, k, k
        c_out, _, kh, kw = w.shape
        s0 = old.input_scale
        w = w.view(c_out, 3, s0, s0, kh, kw)[:, :, :, None, :, None]     # C, 3, s0, 1, s0, 1, k, k
        w = w.expand(c_out, 3, s0, f, s0, f, kh, kw) / (f * f)
        state["backbone.0.weight"] = w.reshape(c_out, 3 * scale * scale, kh, kw)
    if len(maps) > len(old.map_inputs):  # new map channels (each s*s folded) read nothing yet
        w = state["backbone.0.weight"]
        extra = (len(maps) - len(old.map_inputs)) * scale * scale
        state["backbone.0.weight"] = torch.cat([w, w.new_zeros(w.shape[0], extra, *w.shape[2:])], 1)
    if cues and not old.cue_features:  # the cue features are the head's last inputs
        w = state["head.0.weight"]
        state["head.0.weight"] = torch.cat([w, w.new_zeros(w.shape[0], grown.n_cues)], 1)
    missing, unexpected = grown.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("blocks.") for k in missing):
        raise ValueError(f"cannot grow this network: missing {missing}, unexpected {unexpected}")
    return grown


def add_anchors(net: SmallPolicyNet, grids: Sequence, prior: float | None = None) -> SmallPolicyNet:
    """A copy of ``net`` with the anchor ``grids`` (``AnchorGrid`` or ``(w, h, cols, rows)``)
    appended to its own.  The scoring head is shared by all anchors (features pooled inside
    each anchor + the per-anchor cue numbers), so a new anchor is scored by what the network
    already learned; only its learned prior is new, and starts at the mean of the old
    priors (or at ``prior``: a very low one gives a network that never picks the new
    anchors, i.e. answers as ``net`` does).  The old anchors keep their index.

    WHY: the shipped anchors were sized for a few signs per frame (20-30 % of the frame
    wide); a robot whose frames are full of small objects (a shelf aisle) may need larger
    regions, and the task reward can only teach a choice among regions that exist."""
    from active_o3_ros.backends.small_policy import AnchorGrid

    new = tuple(AnchorGrid.parse(g) for g in grids)
    dup = set(new) & set(net.cfg.grids)
    if dup:
        raise ValueError(f"the network already has the anchor grids {sorted(dup)}")
    grown = build_net(replace(net.cfg, grids=tuple(net.cfg.grids) + new))
    state = dict(net.state_dict())
    old_prior = state["anchor_prior"]
    extra = grown.num_anchors - net.num_anchors
    start = float(old_prior.mean()) if prior is None else float(prior)
    state["anchor_prior"] = torch.cat([old_prior, old_prior.new_full((extra,), start)])
    grown.load_state_dict(state)
    return grown


def set_log_probs(logits: torch.Tensor, sets: torch.Tensor, ref_logits: torch.Tensor | None = None,
                  allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probability of each ordered draw in ``sets`` ``(B, G, k)`` under ``logits``
    ``(B, N)`` (differentiable), plus the exact KL to ``ref_logits`` and the entropy,
    both summed over the k draws given the same prefixes.  ``allowed`` (bool ``(B, N)``):
    the draw is restricted to these anchors (both policies renormalised over them).
    Returns ``(logp, kl, entropy)`` each ``(B, G)``."""
    b, g, k = sets.shape
    n = logits.shape[1]
    lg = logits[:, None, :].expand(b, g, n)
    rl = ref_logits[:, None, :].expand(b, g, n) if ref_logits is not None else None
    mask = torch.zeros(b, g, n, dtype=torch.bool) if allowed is None else (~allowed)[:, None, :].expand(b, g, n).clone()
    logp = torch.zeros(b, g)
    kl = torch.zeros(b, g)
    ent = torch.zeros(b, g)
    for step in range(k):
        lsm = torch.log_softmax(lg.masked_fill(mask, float("-inf")), -1)
        p = lsm.exp()
        safe = lsm.masked_fill(mask, 0.0)
        logp = logp + lsm.gather(-1, sets[:, :, step:step + 1]).squeeze(-1)
        ent = ent - (p * safe).sum(-1)
        if rl is not None:
            rlsm = torch.log_softmax(rl.masked_fill(mask, float("-inf")), -1).masked_fill(mask, 0.0)
            kl = kl + (p * (safe - rlsm)).sum(-1)
        mask = mask.scatter(-1, sets[:, :, step:step + 1], True)
    return logp, kl, ent


__all__ = ["add_anchors", "anchor_flip_permutation", "grow_net", "mirrored_cues", "set_log_probs"]
