"""Merging across crops and configuration validation."""
import pytest

from active_o3_ros.core.config import PARAMETERS, ConfigError, PerceptionConfig
from active_o3_ros.core.merge import MergeConfig, merge_detections, nms, weighted_box_fusion
from active_o3_ros.core.prompts import PromptSet, normalize_instruction
from active_o3_ros.core.types import Box, Detection


def d(x1, y1, x2, y2, s, label="a"):
    return Detection(Box(x1, y1, x2, y2), label, s)


def test_nms_class_aware():
    dets = [d(0, 0, 10, 10, 0.9), d(1, 1, 11, 11, 0.8), d(1, 1, 11, 11, 0.7, "b"), d(50, 50, 60, 60, 0.5)]
    out = nms(dets, 0.5)
    assert [(o.label, o.score) for o in out] == [("a", 0.9), ("b", 0.7), ("a", 0.5)]
    assert len(nms(dets, 0.5, class_aware=False)) == 2


def test_wbf_averages_by_score():
    out = weighted_box_fusion([d(0, 0, 10, 10, 0.75), d(2, 0, 12, 10, 0.25)], 0.5)
    assert len(out) == 1 and out[0].box.x1 == pytest.approx(0.5) and out[0].score == 0.75


def test_merge_caps_and_validates():
    dets = [d(i * 20, 0, i * 20 + 10, 10, 1 - i / 100) for i in range(10)]
    assert len(merge_detections(dets, MergeConfig(max_detections=4))) == 4
    with pytest.raises(ValueError, match="merge method"):
        MergeConfig(method="magic")


def test_flat_round_trip_and_defaults():
    cfg = PerceptionConfig()
    assert PerceptionConfig.from_flat(cfg.to_flat()) == cfg
    assert set(cfg.to_flat()) == {p.name for p in PARAMETERS}
    for p in PARAMETERS:  # every default passes its own validation
        assert p.coerce(p.default) == p.default


@pytest.mark.parametrize("params,msg", [
    ({"max_regions": 0}, "max_regions"),
    ({"max_regions": "three"}, "max_regions"),
    ({"mode": "turbo"}, "mode"),
    ({"crop_size": 4}, "crop_size"),
    ({"merge_iou": float("nan")}, "merge_iou"),
    ({"sensing_options": "[1, 2]"}, "sensing_options"),
    ({"nonsense": 1}, "unknown parameter"),
    ({"trust_remote_code": "maybe"}, "trust_remote_code"),
])
def test_bad_config_clear_errors(params, msg):
    with pytest.raises(ConfigError, match=msg):
        PerceptionConfig.from_flat(params)


def test_yaml_accepts_ros_nesting(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("active_o3:\n  ros__parameters:\n    max_regions: 2\n    compressed: true\n")
    assert PerceptionConfig.from_yaml(f).pipeline.max_regions == 2
    with pytest.raises(ConfigError, match="not found"):
        PerceptionConfig.from_yaml(tmp_path / "missing.yaml")


def test_prompts():
    assert normalize_instruction(["traffic light ", " person"]) == "traffic light, person"
    with pytest.raises(ValueError, match="empty"):
        normalize_instruction("  ")
    p = PromptSet().sensing_prompt("traffic light", 3)
    assert "three" in p and "traffic light" in p and "<answer>" in p and "bbox_2d" in p


def test_parse_overrides_names_the_bad_item():
    from active_o3_ros.core.config import ConfigError, PerceptionConfig, parse_overrides

    flat = parse_overrides(["crop_size=640", " max_regions=2"])
    assert flat == {"crop_size": "640", "max_regions": "2"}
    cfg = PerceptionConfig.from_flat(flat)
    assert cfg.pipeline.crop.output_size == 640 and cfg.pipeline.max_regions == 2
    with pytest.raises(ConfigError, match="NAME=VALUE, got 'crop_size'"):
        parse_overrides(["crop_size"])
    with pytest.raises(ConfigError, match="unknown parameter 'crop'"):
        parse_overrides(["crop=1"])


def test_cut_piece_is_dropped_only_where_another_crop_saw_it_whole():
    from active_o3_ros.core.merge import cut_by_window, drop_cut_detections

    fw, fh = 2000, 1000
    win_a, win_b = Box(0, 0, 1000, 1000), Box(900, 0, 1900, 1000)
    piece = Detection(Box(990, 100, 1000, 120), "text", 0.99)     # cut by A's right edge
    whole = Detection(Box(990, 100, 1040, 120), "text", 0.90)     # B saw the word whole
    lonely = Detection(Box(995, 500, 1000, 520), "text", 0.95)    # cut, and nothing else saw it
    at_frame_edge = Detection(Box(0, 300, 30, 320), "text", 0.9)  # A's left edge is the frame's
    assert cut_by_window(piece.box, win_a, fw, fh, 3.0) and not cut_by_window(whole.box, win_b, fw, fh, 3.0)
    assert not cut_by_window(at_frame_edge.box, win_a, fw, fh, 3.0)
    per = [[piece, lonely, at_frame_edge], [whole]]
    kept = drop_cut_detections(per, [win_a, win_b], fw, fh, 3.0)
    assert kept == [[lonely, at_frame_edge], [whole]]
    assert drop_cut_detections(per, [win_a, win_b], fw, fh, 0.0) == per  # off
    # NMS alone keeps both copies of the word (IoU 0.2): the piece is a false detection
    assert len(merge_detections([piece, whole], MergeConfig())) == 2
    # a piece inside another *cut* detection only is kept (no crop saw that word whole)
    other_piece = Detection(Box(985, 100, 1000, 120), "text", 0.5)
    assert drop_cut_detections([[piece, other_piece]], [win_a], fw, fh, 3.0) == [[piece, other_piece]]


def test_cut_margin_is_validated():
    with pytest.raises(ValueError, match="cut_margin"):
        MergeConfig(cut_margin=-1.0)
    with pytest.raises(ConfigError, match="merge_cut_margin"):
        PerceptionConfig.from_flat({"merge_cut_margin": "wide"})
    assert PerceptionConfig.from_flat({"merge_cut_margin": 0}).pipeline.merge.cut_margin == 0.0
