"""Qwen2.5-VL backend on a tiny random model: loading, batching, mapping, scores, sharing.

Everything is real: the model is a ``Qwen2_5_VLForConditionalGeneration`` loaded with
``from_pretrained``, the processor is the upstream one.  To exercise the parse path with
*known* answers, ``ScriptedQwen`` is a real subclass of the model class whose ``generate``
returns fixed token ids (and chosen logits) for a given answer string.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_models import tiny_qwen_dir  # noqa: F401  (session fixture)
from skimage import data
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.generation.utils import GenerateDecoderOnlyOutput

from active_o3_ros.backends.base import build_sensing, build_task
from active_o3_ros.backends.qwen_vl import (
    QwenVLModel, QwenVLOptions, QwenVLSensing, QwenVLTask, span_scores, token_char_ends,
)
from active_o3_ros.backends.region_sources import TilingPolicy
from active_o3_ros.core.config import PerceptionConfig, PipelineConfig
from active_o3_ros.core.geometry import ResizeCropConfig, smart_resize
from active_o3_ros.core.pipeline import ActivePerception
from active_o3_ros.backends.base import build_pipeline
from active_o3_ros.core.types import ParseStatus

torch.set_num_threads(1)
FAST = {"max_new_tokens": 8}


class ScriptedQwen(Qwen2_5_VLForConditionalGeneration):
    """Real model subclass: ``generate`` answers from ``script`` instead of sampling.

    ``script`` maps a substring of the prompt to the answer text; each generated token
    gets logit ``high`` (others 0) so its log-probability is known exactly.
    """

    script: dict[str, str] = {}
    high: float = 5.0
    load_kwargs: dict = {}
    generate_calls = 0

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        cls.load_kwargs = dict(kwargs)
        return super().from_pretrained(*args, **kwargs)

    def generate(self, input_ids=None, **kwargs):
        type(self).generate_calls += 1
        tok = self.tokenizer_for_script
        prompts = tok.batch_decode(input_ids)
        answers = [next((a for k, a in self.script.items() if k in p), "") for p in prompts]
        eos = self.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, list) else eos
        ids = [tok.encode(a, add_special_tokens=False) + [eos] for a in answers]
        n = max(len(i) for i in ids)
        pad = tok.pad_token_id
        new = torch.tensor([i + [pad] * (n - len(i)) for i in ids])
        vocab = self.config.text_config.vocab_size
        logits = []
        for t in range(n):
            step = torch.zeros(len(ids), vocab)
            step[torch.arange(len(ids)), new[:, t]] = self.high
            logits.append(step)
        return GenerateDecoderOnlyOutput(sequences=torch.cat([input_ids, new], 1), logits=tuple(logits))


def expected_logprob(high: float, vocab: int) -> float:
    return high - math.log(vocab - 1 + math.exp(high))


@pytest.fixture(scope="module")
def scripted(tiny_qwen_dir):  # noqa: F811
    qm = QwenVLModel.load(str(tiny_qwen_dir), model_class=ScriptedQwen)
    qm.model.tokenizer_for_script = qm.processor.tokenizer
    yield qm
    qm.release()


@pytest.fixture(scope="module")
def task(tiny_qwen_dir):  # noqa: F811
    t = QwenVLTask(model=str(tiny_qwen_dir), **FAST)
    yield t
    t.close()


def test_tiny_model_files_and_special_tokens(tiny_qwen_dir):  # noqa: F811
    files = {p.name for p in Path(tiny_qwen_dir).iterdir()}
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    cfg = json.loads((Path(tiny_qwen_dir) / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_vl"
    assert cfg["text_config"]["rope_parameters"]["mrope_section"] == [8, 12, 12]
    qm = QwenVLModel.load(str(tiny_qwen_dir))
    try:
        tok = qm.processor.tokenizer
        for t in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|video_pad|>"):
            assert tok.convert_tokens_to_ids(t) != tok.unk_token_id
            assert tok.encode(t, add_special_tokens=False) == [tok.convert_tokens_to_ids(t)]
        answer = '<think>x</think><answer>[{"bbox_2d": [10, 20, 300, 400], "label": "person"}]</answer>'
        assert tok.decode(tok.encode(answer, add_special_tokens=False)) == answer
        assert qm.model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    finally:
        qm.release()


def test_trust_remote_code_off_by_default(tiny_qwen_dir, scripted):  # noqa: F811
    assert ScriptedQwen.load_kwargs["trust_remote_code"] is False


def test_left_padding_and_image_tokens(task):
    img_a, img_b = data.astronaut()[:200, :300], data.coffee()[:100, :100]
    inputs = task.qwen.build_inputs([img_a, img_b], ["find every person in this picture please", "cup"],
                                    "You are a helpful assistant.")
    mask = inputs["attention_mask"]
    assert mask[:, -1].all(), "left padding: every row ends with a real token"
    assert not mask[1, 0], "the shorter row is padded on the left"
    image_id = task.qwen.model.config.image_token_id
    grids = inputs["image_grid_thw"]
    for b in range(2):
        assert int((inputs["input_ids"][b] == image_id).sum()) == int(grids[b].prod()) // 4
    assert (inputs["mm_token_type_ids"] == 1).sum() == (inputs["input_ids"] == image_id).sum()


def test_k_crops_in_one_generate_call(task):
    crops = [data.astronaut()[:200, :200], data.coffee()[:150, :300], data.chelsea()[:120, :120]]
    before = task.qwen.stats.generate_calls
    outs = task.detect(crops, ["person"] * 3)
    assert task.qwen.stats.generate_calls == before + 1
    assert len(outs) == 3
    for o in outs:
        assert isinstance(o.text, str) and o.status in tuple(ParseStatus)
        w, h = o.extra["input_size"]
        assert w % 28 == 0 and h % 28 == 0


def test_garbage_text_is_counted_not_fatal(tiny_qwen_dir, task):  # noqa: F811
    held = task.qwen.refs  # the module's task fixture holds the same shared instance
    cfg = PerceptionConfig.from_flat({
        "sensing_backend": "qwen_vl", "task_module": "qwen_vl", "model": str(tiny_qwen_dir), "crop_size": 224,
        "sensing_options": json.dumps(FAST), "task_options": json.dumps(FAST), "thumbnail_short_side": 224,
    })
    pipe = build_pipeline(cfg)
    try:
        assert pipe.sensing.qwen is pipe.task.qwen, "one model instance for both roles"
        assert pipe.sensing.qwen is task.qwen and task.qwen.refs == held + 2
        stats = pipe.task.qwen.stats
        failed_before = stats.parse_status["failed"]
        res = pipe(data.astronaut(), "person")
        assert res.model_calls == 2
        assert res.timings.sensing_s > 0 and res.timings.task_s > 0 and res.timings.total_s > 0
        assert len(res.task_texts) == len(res.task_statuses) >= 1
        n_bad = sum(s == ParseStatus.FAILED for s in [res.sensing_status, *res.task_statuses])
        assert stats.parse_status["failed"] - failed_before == n_bad
        json.dumps(res.to_json())
    finally:
        pipe.close()
    assert task.qwen.refs == held and task.qwen.model is not None


def test_last_release_frees_the_model(tiny_qwen_dir):  # noqa: F811
    a = QwenVLModel.shared(str(tiny_qwen_dir), "cpu", "float32")
    b = QwenVLModel.shared(str(tiny_qwen_dir), "cpu", "float32")
    assert a is b and a.refs == 2
    a.release()
    assert b.model is not None
    b.release()
    assert b.model is None and b.key not in QwenVLModel._cache
    with pytest.raises(RuntimeError, match="released"):
        b.generate([data.coffee()], ["cup"], "sys")


SENSING_ANSWER = ('<think>small people</think><answer>[{"bbox_2d": [0, 0, 56, 56], "label": "a"}, '
                  '{"bbox_2d": [100, 20, 200, 120], "label": "b"}, {"bbox_2d": [10, 150, 90, 220], "label": "c"}]'
                  '</answer>')


def test_model_calls_parallel_2_serial_1_plus_k(scripted, task):
    ScriptedQwen.script = {"regions": SENSING_ANSWER}
    sensing = QwenVLSensing(shared_model=scripted)
    try:
        cfg = PipelineConfig(max_regions=3, thumbnail_short_side=224, crop=ResizeCropConfig(224))
        pipe = ActivePerception(sensing, task, cfg)
        frame = data.astronaut()
        calls = task.qwen.stats.generate_calls
        par = pipe(frame, "person", mode="parallel")
        assert len(par.regions) == 3 and par.sensing_status == ParseStatus.OK
        assert par.model_calls == 2 and task.qwen.stats.generate_calls == calls + 1
        ser = pipe(frame, "person", mode="serial")
        assert ser.model_calls == 4 and task.qwen.stats.generate_calls == calls + 4
        # regions come back in frame pixels: thumbnail 224 of a 512 frame, answer in model input pixels
        th, tw = smart_resize(224, 224, min_pixels=56 * 56, max_pixels=448 * 448)
        s = 512 / 224 * 224 / tw
        assert par.regions[1].box.as_list() == pytest.approx([100 * s, 20 * s, 200 * s, 120 * s], abs=1e-6)
    finally:
        sensing.close()


def test_answer_maps_to_frame_pixels_with_logprob_scores(scripted):
    # Qwen2.5-VL's usual grounding answer: a fenced JSON list without think/answer tags
    task_answer = ('```json\n[{"bbox_2d": [28, 56, 140, 112], "label": "cup"}, '
                   '{"bbox_2d": [0, 0, 10, 10], "label": "spoon"}]\n```')
    ScriptedQwen.script = {"bounding box": task_answer}
    task = QwenVLTask(shared_model=scripted)
    try:
        frame = data.coffee()  # 400 x 600
        pipe = ActivePerception(None, task, PipelineConfig(mode="full_frame", crop=ResizeCropConfig(300)))
        res = pipe(frame, "cup")
        assert res.task_statuses in ([ParseStatus.OK], [ParseStatus.RECOVERED])  # no tags asked for
        assert len(res.detections) == 2
        # the crop is the frame at 300 px long side (300x200); the model sees smart_resize of it
        mh, mw = smart_resize(200, 300, min_pixels=56 * 56, max_pixels=448 * 448)
        fx, fy = 600 / mw, 400 / mh
        got = {d.label: d for d in res.detections}
        assert got["cup"].box.as_list() == pytest.approx([28 * fx, 56 * fy, 140 * fx, 112 * fy], rel=1e-6)
        lp = expected_logprob(ScriptedQwen.high, scripted.model.config.text_config.vocab_size)
        for d in res.detections:
            assert d.score == pytest.approx(math.exp(lp), rel=1e-5)
    finally:
        task.close()


def test_constant_score_mode_and_span_scores(scripted):
    ScriptedQwen.script = {"bounding box": '[{"bbox_2d": [28, 28, 84, 84], "label": "cat"}]'}
    task = QwenVLTask(shared_model=scripted, score_mode="constant")
    try:
        out = task.detect([data.chelsea()], ["cat"])[0]
        assert [d.score for d in out.detections] == [1.0]
    finally:
        task.close()
    # span scoring: the tokens of each object decide its score
    tok = scripted.processor.tokenizer
    text = '[{"bbox_2d": [1, 2, 30, 40]}, {"bbox_2d": [5, 6, 70, 80]}]'
    ids = tok.encode(text, add_special_tokens=False)
    ends = token_char_ends(tok, ids)
    assert ends[-1] == len(text)
    cut = text.index("}") + 1
    lps = [-0.1 if e <= cut else -3.0 for e in ends]
    table, whole = span_scores(text, ends, lps, 100, 100)
    assert table[(1.0, 2.0, 30.0, 40.0)] > 0.8 > table[(5.0, 6.0, 70.0, 80.0)]
    assert 0 < whole < 1


def test_registry_and_option_errors(tiny_qwen_dir):  # noqa: F811
    with pytest.raises(ValueError, match="unknown qwen_vl task option"):
        build_task("qwen_vl", model=str(tiny_qwen_dir), nonsense=1)
    with pytest.raises(ValueError, match="score_mode"):
        QwenVLOptions(score_mode="magic")
    with pytest.raises(ValueError, match="not found"):
        build_sensing("qwen_vl", model="./no/such/model_dir")
    with pytest.raises(ValueError, match="needs 'model'"):
        build_task("qwen_vl", model="")


def test_tiling_region_source_with_qwen_task(task):
    pipe = ActivePerception(TilingPolicy(rows=1, cols=3), task,
                            PipelineConfig(max_regions=3, thumbnail_short_side=224, crop=ResizeCropConfig(224)))
    calls = task.qwen.stats.generate_calls
    res = pipe(np.ascontiguousarray(data.astronaut()), "person")
    assert len(res.regions) == 3 and res.model_calls == 1  # tiling is not a model call
    assert task.qwen.stats.generate_calls == calls + 1 and len(res.task_texts) == 3


def _vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.skipif(_vllm_importable(), reason="vllm is installed: the real engine test runs instead")
def test_vllm_backend_without_vllm_gives_clear_error(tiny_qwen_dir):  # noqa: F811
    with pytest.raises(RuntimeError, match=r"needs vLLM \(pip install"):
        build_task("qwen_vllm", model=str(tiny_qwen_dir))
    with pytest.raises(ValueError, match="gpu_memory_utilization|unknown"):
        from active_o3_ros.backends.vllm_qwen import VLLMOptions
        VLLMOptions.from_kwargs("task", {"bogus": 1})


# The real vLLM engine tests (greedy answers equal to this backend, K crops in one generate,
# log-prob scores, colocated TRL GRPO) live in tests/vllm_env/ and run in the second environment:
# scripts/test_vllm.sh.
