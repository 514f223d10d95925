"""Qwen2.5-VL through transformers: one model instance shared by the sensing and task roles.

Why one instance: ACTIVE-o3 uses the same MLLM as sensing policy (M_O) and task model
(M_A); loading it twice doubles GPU memory for nothing.  :meth:`QwenVLModel.shared`
keeps a process-wide, reference-counted cache keyed by ``(path, device, dtype)``.

Coordinates: Qwen2.5-VL answers in absolute pixels of its *own* resized input (the
processor's ``smart_resize`` to 28-px multiples inside a pixel budget).  The backend reads
that size from ``image_grid_thw`` and maps every answer back to the pixels of the image it
was given, as the :mod:`~active_o3_ros.backends.base` contract requires.

Scores (``score_mode``):

* ``"logprob"`` (default): ``exp(mean log-probability)`` of the generated tokens that spell
  the object's JSON ``{...}``; a real confidence that makes AP meaningful.
* ``"constant"``: every detection scores 1.0, as in the paper's evaluation.
"""
from __future__ import annotations

import importlib.util
import logging
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.hf import check_dtype, is_hub_id
from active_o3_ros.backends.base import SensingOutput, SensingPolicy, TaskModel, TaskOutput, options_from_kwargs
from active_o3_ros.core.parsing import ParseResult, parse_answer
from active_o3_ros.core.prompts import PromptSet
from active_o3_ros.core.types import Box, Detection, ParseStatus, Region

log = logging.getLogger(__name__)

SCORE_MODES = ("logprob", "constant")
_OBJECT_SPAN_RE = re.compile(r"\{[^{}]*\}")


# -- processor ------------------------------------------------------------------------
def _image_only_processor_class():
    """``Qwen2_5_VLProcessor`` without its video processor.

    Why: the upstream processor insists on a video processor, which needs torchvision; the
    CPU environment has none.  Images go through the very same upstream code
    (chat template, image-pad expansion, ``mm_token_type_ids`` for M-RoPE).
    """
    from transformers import Qwen2_5_VLProcessor

    class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
        def check_argument_for_proper_class(self, argument_name, argument):  # noqa: D401
            if argument_name == "video_processor" and argument is None:
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    return ImageOnlyQwen2_5_VLProcessor


def load_processor(path: str, trust_remote_code: bool = False, min_pixels: int | None = None,
                   max_pixels: int | None = None):
    """Load the Qwen2.5-VL processor (full one when torchvision exists, image-only otherwise)."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    pixel_kw: dict[str, int] = {}
    if min_pixels is not None:
        pixel_kw["min_pixels"] = int(min_pixels)
    if max_pixels is not None:
        pixel_kw["max_pixels"] = int(max_pixels)
    processor = None
    if importlib.util.find_spec("torchvision") is not None:
        try:
            processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code, **pixel_kw)
        except (ImportError, ValueError, OSError, TypeError, AttributeError) as exc:
            log.warning("AutoProcessor failed for %s (%s); using the image-only processor", path, exc)
        if processor is not None and not hasattr(processor, "image_processor"):
            processor = None
    if processor is None:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        image_processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                             backend="pil", **pixel_kw)
        processor = _image_only_processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                                  chat_template=tokenizer.chat_template)
    processor.tokenizer.padding_side = "left"  # batched generation must be left-padded
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


# -- log-prob scores --------------------------------------------------------------------
def token_char_ends(tokenizer: Any, token_ids: Sequence[int]) -> list[int]:
    """Character position in the decoded text where each generated token ends.

    Decodes growing prefixes, so it is exact for byte-level BPE even when one character
    spans several tokens (a token that ends mid-character gets the previous end)."""
    ends, best = [], 0
    for i in range(len(token_ids)):
        n = len(tokenizer.decode(list(token_ids[: i + 1]), skip_special_tokens=True))
        best = max(best, n)
        ends.append(best)
    return ends


def span_scores(text: str, char_ends: Sequence[int], token_logprobs: Sequence[float],
                width: float, height: float) -> tuple[dict[tuple, float], float]:
    """Score every ``{...}`` object in ``text`` by ``exp(mean logprob)`` of its tokens.

    Returns ``(box key -> score, whole-answer score)``; the key is the rounded box the
    parser reads from that object, so detections find their own score by value.
    """
    lps = np.asarray(token_logprobs, dtype=float)
    ends = np.asarray(char_ends, dtype=float)
    whole = float(math.exp(lps.mean())) if lps.size else 1.0
    starts = np.concatenate([[0.0], ends[:-1]]) if ends.size else ends
    table: dict[tuple, float] = {}
    for m in _OBJECT_SPAN_RE.finditer(text):
        sel = (ends > m.start()) & (starts < m.end())
        if not sel.any():
            continue
        res = parse_answer(m.group(0), width, height)
        for item in res.items:
            if item.box is not None:
                table.setdefault(_box_key(item.box), float(math.exp(lps[sel].mean())))
    return table, whole


def _box_key(box: Box) -> tuple:
    return tuple(round(v, 2) for v in box.as_list())


@dataclass
class Generation:
    """One generated answer with what is needed to score and map it."""

    text: str
    token_ids: list[int]
    token_logprobs: list[float]
    input_size: tuple[int, int]  # (width, height) of the model's resized input
    seconds: float = 0.0


@dataclass
class _Stats:
    generate_calls: int = 0
    generate_seconds: float = 0.0
    images: int = 0
    parse_status: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in ParseStatus})


# -- the shared model ---------------------------------------------------------------------
class QwenVLModel:
    """A loaded Qwen2.5-VL (model + processor) with batched, left-padded generation.

    ``stats.generate_calls`` counts ``model.generate`` invocations: the pipeline's claim of
    one task call per frame is checked against it.
    """

    _cache: dict[tuple, "QwenVLModel"] = {}
    _lock = threading.Lock()

    def __init__(self, model: Any, processor: Any, key: tuple | None = None) -> None:
        self.model = model
        self.processor = processor
        self.key = key
        self.refs = 1  # the creator holds one reference; release() drops it
        self.stats = _Stats()
        self._gen_lock = threading.Lock()

    # -- loading ----------------------------------------------------------------------
    @staticmethod
    def resolve_path(model: str) -> str:
        """Local directory or hub id; a clear error for anything else."""
        if not model:
            raise ValueError("the qwen_vl backend needs 'model': a local model directory or a hub id "
                             "(e.g. build a tiny one with `python -m active_o3_ros.testing.tiny_qwen DIR`)")
        p = Path(model).expanduser()
        if p.is_dir():
            if not (p / "config.json").is_file():
                raise ValueError(f"model directory {p} has no config.json; is it a transformers checkpoint?")
            return str(p.resolve())
        if p.exists():
            raise ValueError(f"model path {p} is a file; give the checkpoint directory")
        if is_hub_id(model):
            return model
        raise ValueError(f"model directory not found: {model}")

    @classmethod
    def load(cls, model: str, device: str = "cpu", dtype: str = "auto", attn_implementation: str | None = None,
             trust_remote_code: bool = False, min_pixels: int | None = None, max_pixels: int | None = None,
             model_class: Any = None) -> "QwenVLModel":
        """Load with ``from_pretrained`` (the path the 7B checkpoint takes too)."""
        import torch
        from transformers import Qwen2_5_VLForConditionalGeneration

        check_dtype(dtype)
        path = cls.resolve_path(model)
        torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype)
        kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": bool(trust_remote_code)}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        klass = model_class or Qwen2_5_VLForConditionalGeneration
        try:
            net = klass.from_pretrained(path, **kwargs)
        except OSError as exc:
            raise RuntimeError(f"could not load model {model!r}: {exc}") from exc
        try:
            net = net.to(device).eval()
        except (RuntimeError, AssertionError) as exc:
            raise RuntimeError(f"could not move the model to device {device!r}: {exc}") from exc
        processor = load_processor(path, trust_remote_code, min_pixels, max_pixels)
        return cls(net, processor, key=(path, device, dtype))

    @classmethod
    def shared(cls, model: str, device: str = "cpu", dtype: str = "auto", **kwargs: Any) -> "QwenVLModel":
        """The process-wide instance for ``(path, device, dtype)``; loads it on first use."""
        key = (cls.resolve_path(model), device, dtype)
        with cls._lock:
            inst = cls._cache.get(key)
            if inst is None:
                inst = cls.load(model, device, dtype, **kwargs)
                cls._cache[key] = inst
            else:
                inst.refs += 1
            return inst

    def release(self) -> None:
        """Drop one reference; the last one frees the weights (and GPU memory)."""
        with self._lock:
            self.refs = max(0, self.refs - 1)
            if self.refs == 0:
                if self.key is not None and self._cache.get(self.key) is self:
                    del self._cache[self.key]
                self.model = None
                try:
                    import torch

                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                except ImportError:  # pragma: no cover - torch is a hard dependency here
                    pass

    # -- generation -------------------------------------------------------------------
    def build_inputs(self, images: Sequence[np.ndarray], prompts: Sequence[str], system: str,
                     min_pixels: int | None = None, max_pixels: int | None = None):
        """Chat-formatted, left-padded batch; one image per prompt."""
        from PIL import Image

        texts = []
        for prompt in prompts:
            msgs = [{"role": "system", "content": system},
                    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
            texts.append(self.processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        pil = [Image.fromarray(np.ascontiguousarray(img)) for img in images]
        call_kw: dict[str, Any] = {}
        if min_pixels is not None or max_pixels is not None:
            size = dict(self.processor.image_processor.size)
            if min_pixels is not None:
                size["shortest_edge"] = int(min_pixels)
            if max_pixels is not None:
                size["longest_edge"] = int(max_pixels)
            call_kw["images_kwargs"] = {"size": size}
        return self.processor(text=texts, images=pil, return_tensors="pt", padding=True, **call_kw)

    def _generate(self, inputs: Any, max_new_tokens: int, do_sample: bool, temperature: float,
                  min_new_tokens: int | None = None) -> Any:
        """One ``model.generate`` call (subclasses may replace it; counted by ``generate``)."""
        # synced_gpus=False: this model is whole on every process.  transformers turns syncing on
        # by itself inside a DeepSpeed ZeRO-3 run (an all_reduce per generated token), and the
        # frozen task model of a GRPO reward runs a different number of times on each rank,
        # which deadlocks the ranks (found by tests/training/test_distributed.py).
        gen_kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      return_dict_in_generate=True, output_logits=True, synced_gpus=False)
        if min_new_tokens:
            gen_kw["min_new_tokens"] = min_new_tokens
        if do_sample:
            gen_kw["temperature"] = temperature
        else:
            gen_kw.update(temperature=None, top_p=None, top_k=None)
        return self.model.generate(**inputs, **gen_kw)

    def generate(self, images: Sequence[np.ndarray], prompts: Sequence[str], system: str,
                 max_new_tokens: int = 256, do_sample: bool = False, temperature: float = 1.0,
                 min_pixels: int | None = None, max_pixels: int | None = None,
                 min_new_tokens: int | None = None) -> list[Generation]:
        """Answer every ``(image, prompt)`` pair in ONE ``generate`` call.

        ``min_new_tokens`` forces answer length (benchmarks use it so a random model's
        early end-of-text does not make timings meaningless)."""
        import torch

        if self.model is None:
            raise RuntimeError("the Qwen2.5-VL model was released (close() was called)")
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        if not images:
            return []
        with self._gen_lock, torch.inference_mode():
            inputs = self.build_inputs(images, prompts, system, min_pixels, max_pixels).to(self.model.device)
            t0 = time.perf_counter()
            out = self._generate(inputs, max_new_tokens, do_sample, temperature, min_new_tokens)
            seconds = time.perf_counter() - t0
            self.stats.generate_calls += 1
            self.stats.generate_seconds += seconds
            self.stats.images += len(images)
            prompt_len = inputs["input_ids"].shape[1]
            new_tokens = out.sequences[:, prompt_len:].cpu()
            logits = getattr(out, "logits", None) or getattr(out, "scores", None)
            steps = len(logits) if logits is not None else 0
            lp = None
            if steps:
                stacked = torch.stack([s.float() for s in logits], dim=1).cpu()  # B x T x V
                lp = torch.log_softmax(stacked, dim=-1)
            patch = int(getattr(self.processor.image_processor, "patch_size", 14))
            grids = inputs["image_grid_thw"].cpu().tolist()
        tok = self.processor.tokenizer
        stop = set(_as_list(getattr(self.model.generation_config, "eos_token_id", None)))
        if tok.pad_token_id is not None:
            stop.add(tok.pad_token_id)
        results = []
        for b in range(len(images)):
            ids = until_stop(new_tokens[b].tolist(), stop)
            lps = [float(lp[b, i, t]) for i, t in enumerate(ids) if lp is not None and i < steps]
            _, gh, gw = grids[b]
            results.append(Generation(tok.decode(ids, skip_special_tokens=True), ids, lps,
                                      (gw * patch, gh * patch), seconds))
        return results

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    def count(self, status: ParseStatus) -> None:
        self.stats.parse_status[status.value] = self.stats.parse_status.get(status.value, 0) + 1


def until_stop(ids: Sequence[int], stop: set[int]) -> list[int]:
    """The answer's token ids: everything before the first stop token (both backends end there,
    so their texts, ids and per-token scores line up)."""
    ids = list(ids)
    return ids[:next((i for i, t in enumerate(ids) if t in stop), len(ids))]


def _as_list(v: Any) -> list[int]:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [int(v)]


# -- roles ------------------------------------------------------------------------------------
@dataclass
class QwenVLOptions:
    """Per-role options (``sensing_options`` / ``task_options`` JSON map onto these)."""

    max_new_tokens: int = 256
    min_new_tokens: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    score_mode: str = "logprob"
    do_sample: bool = False
    temperature: float = 1.0
    attn_implementation: str | None = None
    sensing_template: str | None = None
    task_template: str | None = None
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {self.score_mode!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 32768:
            raise ValueError(f"max_new_tokens must be an integer in [1, 32768], got {self.max_new_tokens!r}")
        for name in ("min_pixels", "max_pixels"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 28 * 28):
                raise ValueError(f"{name} must be an integer >= 784 (one 28x28 patch), got {v!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")

    @classmethod
    def from_kwargs(cls, role: str, options: dict[str, Any]) -> "QwenVLOptions":
        return options_from_kwargs(cls, options, f"qwen_vl {role}")

    def prompts(self) -> PromptSet:
        base = PromptSet()
        return PromptSet(sensing=self.sensing_template or base.sensing, task=self.task_template or base.task,
                         system=self.system_prompt or base.system)


class _QwenRole:
    """Shared plumbing of the two roles: options, the shared model, scoring."""

    role = "role"
    options_class: type[QwenVLOptions] = QwenVLOptions

    def __init__(self, model: str = "", device: str = "cpu", dtype: str = "auto", trust_remote_code: bool = False,
                 shared_model: Any = None, **options: Any) -> None:
        self.options = self.options_class.from_kwargs(self.role, options)
        self.prompts = self.options.prompts()
        if shared_model is not None:
            self.qwen = shared_model
            shared_model.refs += 1
        else:
            self.qwen = self._load_shared(model, device, dtype, trust_remote_code)
        self._closed = False

    def _load_shared(self, model: str, device: str, dtype: str, trust_remote_code: bool) -> Any:
        """The engine both roles share (transformers here; vLLM in ``vllm_qwen``)."""
        return QwenVLModel.shared(model, device, dtype, trust_remote_code=trust_remote_code,
                                  attn_implementation=self.options.attn_implementation,
                                  min_pixels=self.options.min_pixels, max_pixels=self.options.max_pixels)

    def _run(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[Generation]:
        o = self.options
        return self.qwen.generate(images, prompts, self.prompts.system, o.max_new_tokens, o.do_sample,
                                  o.temperature, o.min_pixels, o.max_pixels, o.min_new_tokens)

    def _parse(self, gen: Generation, image: np.ndarray, max_items: int | None) -> tuple[ParseResult, list[float], float, float]:
        """Parse in model-input pixels; return the result, per-item scores and the x/y
        factors that map model-input pixels to the given image's pixels."""
        iw, ih = gen.input_size
        res = parse_answer(gen.text, iw, ih, max_items=max_items, tagged=self.role == "sensing")
        self.qwen.count(res.status)
        if self.options.score_mode == "constant" or not gen.token_ids:
            scores = [1.0] * len(res.items)
        else:
            ends = token_char_ends(self.qwen.tokenizer, gen.token_ids)
            table, whole = span_scores(gen.text, ends, gen.token_logprobs, iw, ih)
            scores = [table.get(_box_key(it.box), whole) if it.box is not None else whole for it in res.items]
        h, w = image.shape[:2]
        return res, scores, w / iw, h / ih

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.qwen.release()


class QwenVLSensing(_QwenRole, SensingPolicy):
    """M_O: proposes up to K zoom regions on the thumbnail (one batched generate call)."""

    name = "qwen_vl"
    role = "sensing"

    def propose(self, images, instructions, max_regions, context=None):
        prompts = [self.prompts.sensing_prompt(t, max_regions) for t in instructions]
        outs = []
        for img, gen in zip(images, self._run(images, prompts)):
            res, scores, fx, fy = self._parse(gen, img, max_regions)
            regions = [Region(Box(it.box.x1 * fx, it.box.y1 * fy, it.box.x2 * fx, it.box.y2 * fy), it.label, r, s)
                       for r, (it, s) in enumerate((i, s) for i, s in zip(res.items, scores) if i.box is not None)]
            outs.append(SensingOutput(regions, gen.text, res.status))
        return outs


class QwenVLTask(_QwenRole, TaskModel):
    """M_A: detects the instruction's targets in a batch of crops — ONE generate call."""

    name = "qwen_vl"
    role = "task"

    def detect(self, images, instructions):
        prompts = [self.prompts.task_prompt(t) for t in instructions]
        outs = []
        for img, text, gen in zip(images, instructions, self._run(images, prompts)):
            res, scores, fx, fy = self._parse(gen, img, None)
            dets = []
            for it, s in zip(res.items, scores):
                label = it.label or str(text)
                if it.box is not None:
                    box = Box(it.box.x1 * fx, it.box.y1 * fy, it.box.x2 * fx, it.box.y2 * fy)
                    dets.append(Detection(box, label, s))
                elif it.point is not None:
                    px, py = it.point[0] * fx, it.point[1] * fy
                    dets.append(Detection(Box(px - 0.5, py - 0.5, px + 0.5, py + 0.5), label, s, points=[(px, py)]))
            outs.append(TaskOutput(dets, gen.text, res.status,
                                   extra={"input_size": gen.input_size, "generated_tokens": len(gen.token_ids)}))
        return outs


__all__ = ["QwenVLModel", "QwenVLSensing", "QwenVLTask", "QwenVLOptions", "Generation", "load_processor",
           "span_scores", "token_char_ends", "until_stop", "SCORE_MODES"]
