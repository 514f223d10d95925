"""Fuzzing (tests/reliability/fuzzing.py): a short run in the default suite, >= 10 000 cases in the slow one.

A *crash* is an unexpected exception, a rejection without a clear message naming the field,
an out-of-contract result, or (images) a rejected message that allocated memory first --
see the runner's docstring.  Each target must see 0 crashes.
"""
from __future__ import annotations

import pytest

import fuzzing as fuzz


def _assert_clean(report: dict) -> None:
    bad = {name: t["crash_examples"] for name, t in report["targets"].items() if t["crashes"]}
    assert not bad, bad
    for name, t in report["targets"].items():
        assert t["cases"] > 0 and t["accepted"] + t["rejected"] == t["cases"], name


@pytest.mark.parametrize("target,cases", [("parser", 150), ("image", 100), ("config", 250), ("config_yaml", 30)])
def test_fuzz_short(target, cases):
    report = fuzz.run_all({target: cases}, seed=1, progress=False)
    _assert_clean(report)
    t = report["targets"][target]
    assert t["rejected"] > 0  # the generators do reach the rejection paths
    if target in ("image", "config"):
        assert t["accepted"] > 0  # ... and the valid ones


def test_named_image_cases_rejected_cheaply():
    """The cases of the issue, spelled out: each rejected with a message, no allocation."""
    import numpy as np

    from active_o3_ros.ros.images import ImageConversionError, msg_to_rgb

    T = fuzz._rosbags_types()

    def img(w, h, step, n, enc="rgb8"):
        return T["Image"](header=None, encoding=enc, width=w, height=h, step=step, is_bigendian=0,
                          data=np.zeros(n, np.uint8))

    cases = {"0x0": img(0, 0, 0, 0), "1x100000": img(1, 100_000, 3, 10), "16k header": img(16_384, 16_384, 49_152, 64),
             "wrong step": img(64, 48, 100, 64 * 48 * 3), "truncated": img(64, 48, 192, 500),
             "unknown encoding": img(4, 4, 12, 48, "yuv420")}
    for name, msg in cases.items():
        with pytest.raises(ImageConversionError) as ei:
            msg_to_rgb(msg)
        assert any(w in str(ei.value) for w in fuzz.IMAGE_FIELD_WORDS), name
    assert msg_to_rgb(img(1, 100_000, 3, 300_000)).shape == (100_000, 1, 3)  # tall but valid: converted


@pytest.mark.slow
def test_fuzz_10k_cases_no_crash():
    report = fuzz.run_all(fuzz.DEFAULT_CASES, seed=2, progress=False)
    _assert_clean(report)
    assert report["cases_total"] >= 10_000


@pytest.mark.parametrize("name", ["merge_iou", "score_threshold", "max_zoom", "crop_context"])
def test_enormous_int_for_float_parameter_is_a_config_error(name):
    """Found by the fuzzer: float(10**400) raised OverflowError out of Parameter.coerce."""
    from active_o3_ros.core.config import ConfigError, PerceptionConfig

    with pytest.raises(ConfigError, match=name):
        PerceptionConfig.from_flat({name: 10**400})
