"""Weight averaging of sensing-policy weights (``active_o3_training.soup``)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from active_o3_ros.backends.small_policy import SmallPolicyConfig, build_net, load_weights, read_provenance, save_weights
from active_o3_training import soup as soup_mod


def _weights(tmp_path, name: str, seed: int, cfg: SmallPolicyConfig | None = None):
    net = build_net(replace(cfg or SmallPolicyConfig(), init_seed=seed))
    return net, save_weights(net, tmp_path / f"{name}.safetensors")


def test_soup_is_the_weighted_mean_of_the_tensors_and_loads_as_a_policy(tmp_path):
    a, pa = _weights(tmp_path, "a", 1)
    b, pb = _weights(tmp_path, "b", 2)
    sa, sb = a.state_dict(), b.state_dict()
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)  # two different ingredients
    out = tmp_path / "soup.safetensors"
    assert soup_mod.main([str(pa), str(pb), "--out", str(out), "--mix", "3,1"]) == 0
    s = load_weights(out).state_dict()
    for k in sa:
        assert torch.allclose(s[k], 0.75 * sa[k] + 0.25 * sb[k], atol=1e-6), k
    card = json.loads(out.with_suffix(".json").read_text())
    assert [i["mix"] for i in card["soup_of"]] == [0.75, 0.25]
    assert [i["file"] for i in card["soup_of"]] == [str(pa), str(pb)]
    assert read_provenance(out)["soup"] == card["soup_of"]
    # a mix of one ingredient only gives that ingredient back
    only_a = soup_mod.soup([pa, pb], [1, 0]).state_dict()
    assert all(torch.equal(only_a[k], sa[k]) for k in sa)


def test_soup_refuses_other_architectures_and_bad_options(tmp_path, capsys):
    _, pa = _weights(tmp_path, "a", 1)
    _, pb = _weights(tmp_path, "b", 2)
    _, pc = _weights(tmp_path, "c", 1, SmallPolicyConfig(channels=(8, 16, 24, 32)))
    out = tmp_path / "s.safetensors"
    assert soup_mod.main([str(pa), str(pc), "--out", str(out)]) == 2
    assert "another network config" in capsys.readouterr().err and not out.exists()
    for argv, msg in (([str(pa)], "at least 2"), ([str(pa), str(pb), "--mix", "1"], "2 weights files"),
                      ([str(pa), str(pb), "--mix", "1,-1"], ">= 0"),
                      ([str(pa), str(tmp_path / "missing.safetensors")], "not found")):
        assert soup_mod.main(argv + ["--out", str(out)]) == 2
        assert msg in capsys.readouterr().err and not out.exists()
    assert soup_mod.main([str(pa), str(pb), "--out", str(out)]) == 0
    assert soup_mod.main([str(pa), str(pb), "--out", str(out)]) == 2  # never overwritten silently
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 2"):
        soup_mod.soup([pa])
