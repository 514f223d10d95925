"""The ``text`` task module: real RapidOCR (in-wheel ONNX weights) behind the TaskModel interface."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("rapidocr")

from PIL import Image, ImageDraw  # noqa: E402

from active_o3_ros.backends import build_task  # noqa: E402
from active_o3_ros.backends.text import TextTaskModel, get_engine, quad_to_box  # noqa: E402
from active_o3_ros.core.types import Box, ParseStatus  # noqa: E402
from active_o3_training.data.synthetic import _font  # noqa: E402


def _word_image(word: str = "HELLO", size: int = 40) -> tuple[np.ndarray, Box]:
    img = Image.new("RGB", (320, 120), (255, 255, 255))
    font = _font("DejaVuSans-Bold.ttf", size)
    ImageDraw.Draw(img).text((40, 30), word, font=font, fill=(0, 0, 0))
    a = np.asarray(img)
    ys, xs = np.nonzero(a[:, :, 0] < 128)
    return a, Box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


@pytest.fixture(scope="module")
def model() -> TextTaskModel:
    return build_task("text", model="", device="cpu", dtype="auto", trust_remote_code=False, threads=1)


def test_finds_a_large_clear_word_with_a_tight_box_and_reads_it(model: TextTaskModel) -> None:
    img, gt = _word_image()
    out = model.detect([img], ["anything: the instruction is ignored"])
    assert len(out) == 1 and out[0].status is ParseStatus.OK
    best = max(out[0].detections, key=lambda d: d.box.iou(gt))
    assert best.box.iou(gt) > 0.5, (best.box, gt)
    assert best.label == "text" and 0.0 < best.score <= 1.0
    assert "HELLO" in best.text.upper()
    assert '"bbox_2d"' in out[0].text


def test_one_call_over_a_batch_keeps_order_and_odd_crops_do_not_crash(model: TextTaskModel) -> None:
    img, gt = _word_image("EXIT")
    odd = [
        np.zeros((1, 1, 3), np.uint8),                      # 1x1
        np.full((64, 64, 3), 128, np.uint8),                 # flat gray
        np.full((50, 70), 200, np.uint8),                    # 2-D gray
        np.zeros((30, 1, 3), np.uint8),                      # 1 px wide
        np.zeros((20, 20, 3), np.float32),                   # wrong dtype
        np.zeros((0, 5, 3), np.uint8),                       # empty
    ]
    outs = model.detect([img] + odd + [img], ["text"] * (len(odd) + 2))
    assert len(outs) == len(odd) + 2
    for o in (outs[0], outs[-1]):
        assert any(d.box.iou(gt) > 0.5 for d in o.detections)
    for o in outs[1:-1]:
        assert o.detections == []
    assert outs[5].status is ParseStatus.FAILED and "uint8" in outs[5].extra["error"]
    assert outs[6].status is ParseStatus.FAILED and "shape" in outs[6].extra["error"]


def test_detection_only_mode_scores_from_the_detector() -> None:
    m = TextTaskModel(recognize=False, threads=1)
    img, gt = _word_image("OPEN")
    dets = m.detect([img], ["text"])[0].detections
    assert any(d.box.iou(gt) > 0.5 and d.text == "" and 0 < d.score <= 1 for d in dets)


def test_engine_is_cached_per_config_and_options_are_validated(model: TextTaskModel) -> None:
    assert get_engine(model.config)[0] is get_engine(TextTaskModel(threads=1).config)[0]
    assert get_engine(model.config)[0] is not get_engine(TextTaskModel(threads=1, box_thresh=0.6).config)[0]
    with pytest.raises(ValueError, match="unknown text task option"):
        TextTaskModel(unclip=1.0)
    with pytest.raises(ValueError, match="box_thresh"):
        TextTaskModel(box_thresh=2.0)
    assert model.describe()["max_side_len"] >= 4096  # never the silent 2000-px downscale


def test_concurrent_calls_from_threads_give_the_same_answer(model: TextTaskModel) -> None:
    img, gt = _word_image("STOP")
    ref = [d.box for d in model.detect([img], ["text"])[0].detections]
    got: list[list[Box]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            got.append([d.box for d in model.detect([img], ["text"])[0].detections])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and got == [ref] * 3


def test_quad_to_box_bounds_rotated_quads_and_rejects_garbage() -> None:
    b = quad_to_box([[10, 5], [30, 8], [28, 20], [8, 17]], 100, 100)
    assert b == Box(8, 5, 30, 20)
    assert quad_to_box([[-10, -10], [-5, -10], [-5, -5], [-10, -5]], 100, 100) is None
    assert quad_to_box([[np.nan, 1], [2, 2]], 100, 100) is None


def test_int8_detector_is_shipped_with_its_card_and_finds_the_word() -> None:
    import hashlib
    import json

    from active_o3_ros.backends.text import INT8_DET_MODEL, int8_exact_here

    card = json.loads(INT8_DET_MODEL.with_suffix(".json").read_text())
    assert card["sha256"] == hashlib.sha256(INT8_DET_MODEL.read_bytes()).hexdigest()
    assert all(s >= 10_000_000 and s < 20_000_000 for s in card["calibration"]["training_scene_seeds"]), \
        "calibration must use training scenes only"
    int8 = build_task("text", threads=1, det_precision="int8")
    # the int8 model runs where its int8 convolutions are exact; elsewhere the fp32 one
    expected = str(INT8_DET_MODEL) if int8_exact_here() else None
    assert int8.config.params().get("Det.model_path") == expected
    img, gt = _word_image()
    out = int8.detect([img], ["text"])[0]
    assert max(d.box.iou(gt) for d in out.detections) > 0.5 and "HELLO" in " ".join(d.text for d in out.detections)


def test_det_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="det_precision"):
        build_task("text", det_precision="int4")
    from active_o3_ros.backends.text import TextEngineConfig

    assert TextEngineConfig(det_model_path="/some/model.onnx").params()["Det.model_path"] == "/some/model.onnx"
    assert "Det.model_path" not in TextEngineConfig(det_precision="fp32").params()  # rapidocr's own model


def test_int8_detector_only_where_its_dot_products_are_exact() -> None:
    """x86 without VNNI saturates onnxruntime's u8 x s8 products (VPMADDUBSW): fp32 there."""
    from active_o3_ros.backends.text import TextEngineConfig, int8_exact_here

    assert int8_exact_here("x86_64", {"sse4_2", "avx2", "avx512f", "avx512_vnni"})
    assert int8_exact_here("x86_64", {"avx2", "avx_vnni"})
    assert not int8_exact_here("x86_64", {"sse4_2", "avx2", "fma"})
    assert not int8_exact_here("AMD64", set())
    assert int8_exact_here("aarch64", set())
    params = TextEngineConfig(det_precision="int8").params()
    assert ("Det.model_path" in params) == int8_exact_here()


def test_recogniser_floor_default_is_the_validation_choice_and_drops_low_confidence_reads() -> None:
    """The module's ``text_score`` default is what ``benchmarks/choose_settings.py`` chose on
    validation frames (its committed result), and a read below the floor is not returned."""
    import json
    from pathlib import Path

    from active_o3_ros.backends.text import TextOptions

    result = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "choose_settings_v3.json"
    chosen = json.loads(result.read_text())
    assert TextOptions().text_score == chosen["chosen_text_score"] == chosen["chosen_config"]["task_options"]["text_score"]
    img, _ = _word_image("HELLO", 40)
    low = TextTaskModel(threads=1, text_score=0.5).detect([img], ["text"])[0].detections
    assert low and all(d.score >= 0.5 for d in low)
    with pytest.raises(ValueError, match="text_score"):
        TextTaskModel(threads=1, text_score=1.5)
    # a clear word reads at ~0.9999: a floor of 1.0 is above it and must drop it
    assert TextTaskModel(threads=1, text_score=1.0).detect([img], ["text"])[0].detections == []


def test_session_settings_follow_the_options_and_change_no_answer(model: TextTaskModel) -> None:
    from active_o3_ros.backends.ort_sessions import spin_entry

    img, gt = _word_image("STOP")
    settings = {}
    for arena, spin in ((False, True), (True, False)):
        m = TextTaskModel(threads=1, mem_arena=arena, spin_wait=spin)
        out = m.detect([img], ["text"])[0]
        engine = m._engine
        sessions = [engine.text_det.session.session, engine.text_rec.session.session]
        for s in sessions:
            so = s.get_session_options()
            assert so.enable_cpu_mem_arena is arena and so.intra_op_num_threads == 1
            assert spin_entry(so) in ((None, "1") if spin else ("0",))
        settings[(arena, spin)] = [(d.box.as_list(), d.text, round(d.score, 5)) for d in out.detections]
    assert settings[(False, True)] == settings[(True, False)] and settings[(False, True)]
    for bad in ({"mem_arena": "yes"}, {"spin_wait": 1}):
        with pytest.raises(ValueError, match="true or false"):
            TextTaskModel(**bad)


def test_read_filters_keep_a_single_glyph_and_drop_reads_of_the_wrong_shape_or_length() -> None:
    """``single_char_max_aspect``: a single-character read whose box is wider than a glyph's
    is dropped (zoomed textures read as '1'); a real digit, taller than wide, is kept.
    ``min_chars`` drops short reads and needs the recogniser."""
    for glyph in ("7", "N"):  # N: its box is about as wide as tall (72x71 px here)
        img, gt = _word_image(glyph, 60)
        for opts in ({"single_char_max_aspect": 0.0}, {}):  # off, and the default (1.2)
            dets = TextTaskModel(threads=1, **opts).detect([img], ["text"])[0].detections
            assert any(d.text.strip() == glyph and d.box.iou(gt) > 0.3 for d in dets), (glyph, opts)
    img, _ = _word_image("7", 60)
    assert TextTaskModel(threads=1, min_chars=2).detect([img], ["text"])[0].detections == []
    word, _ = _word_image("HELLO", 40)
    assert TextTaskModel(threads=1, min_chars=2).detect([word], ["text"])[0].detections  # long reads stay
    # the shape rule on one read: wider than tall drops a single character, never a word
    m = TextTaskModel(threads=1)
    assert m.single_char_max_aspect == 1.2 and m.min_chars == 1  # the defaults
    assert m._plausible_read("1", Box(0, 0, 24, 20)) and not m._plausible_read("1", Box(0, 0, 30, 20))
    assert m._plausible_read("m", Box(0, 0, 30, 20)) and not m._plausible_read("m", Box(0, 0, 40, 20))  # wide glyph
    assert m._plausible_read("11", Box(0, 0, 90, 20)) and m._plausible_read(" 7 ", Box(0, 0, 20, 20))
    word_dets = TextTaskModel(threads=1).detect([word], ["text"])[0].detections
    tallest = max(d.box.height for d in word_dets)
    assert TextTaskModel(threads=1, min_box_height=tallest + 1).detect([word], ["text"])[0].detections == []
    assert TextTaskModel(threads=1, min_box_height=tallest - 1).detect([word], ["text"])[0].detections  # min_box_height
    for bad, msg in (({"min_chars": 0}, "min_chars"), ({"min_chars": 1.5}, "min_chars"),
                     ({"min_box_height": -1}, "min_box_height"),
                     ({"single_char_max_aspect": -1}, "single_char_max_aspect"),
                     ({"recognize": False, "min_chars": 2}, "needs recognize")):
        with pytest.raises(ValueError, match=msg):
            TextTaskModel(threads=1, **bad)
