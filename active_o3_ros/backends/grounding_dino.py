"""Grounding DINO task module (the paper's "+GDINO" rows): open-vocabulary boxes per crop.

``GroundingDinoForObjectDetection`` + ``GroundingDinoProcessor`` from a local directory or
hub id (``IDEA-Research/grounding-dino-tiny``).  The instruction becomes the detector's
caption (``"cat, remote control"`` → ``"cat. remote control."``: lower case, one phrase
per class, each ended by a dot — the format the model was trained on), the K crops go
through the model as ONE padded batch, and the processor's
``post_process_grounded_object_detection`` applies ``box_threshold`` / ``text_threshold``
and scales boxes to each crop's pixels.

Labels: the processor's label is the text of every token above ``text_threshold``, which
can span several phrases; for the merge and the metrics we need one class name, so each
box gets the prompt phrase with the highest mean token probability (the processor's raw
text is kept in ``Detection.text``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.hf import is_hub_id, torch_dtype
from active_o3_ros.backends.base import TaskModel, TaskOutput, options_from_kwargs
from active_o3_ros.core.geometry import validate_image
from active_o3_ros.core.prompts import normalize_instruction
from active_o3_ros.core.types import Box, Detection, ParseStatus

_SPLIT_RE = re.compile(r"[.,;\n]+")


def caption_phrases(instruction: str | Sequence[str]) -> list[str]:
    """Class phrases of an instruction: split on ``. , ;`` and newlines, lower-cased."""
    text = normalize_instruction(instruction)
    phrases = [" ".join(p.split()).lower() for p in _SPLIT_RE.split(text)]
    out: list[str] = []
    for p in phrases:
        if p and p not in out:
            out.append(p)
    if not out:
        raise ValueError(f"instruction {text!r} has no class phrase for Grounding DINO")
    return out


def build_caption(phrases: Sequence[str]) -> str:
    """``["cat", "remote control"]`` → ``"cat. remote control."``."""
    return " ".join(f"{p}." for p in phrases)


def phrase_token_masks(offsets: Sequence[tuple[int, int]], caption: str, phrases: Sequence[str]) -> np.ndarray:
    """Boolean ``(n_phrases, n_tokens)``: which tokens spell which phrase (by char offsets)."""
    spans, pos = [], 0
    for p in phrases:
        start = caption.index(p, pos)
        spans.append((start, start + len(p)))
        pos = start + len(p)
    out = np.zeros((len(phrases), len(offsets)), bool)
    for t, (a, b) in enumerate(offsets):
        if b <= a:
            continue  # special tokens have empty offsets
        for k, (s, e) in enumerate(spans):
            if a >= s and b <= e:
                out[k, t] = True
    return out


@dataclass
class GroundingDinoOptions:
    """``task_options`` of the ``grounding_dino`` task module."""

    box_threshold: float = 0.35
    text_threshold: float = 0.25
    max_detections_per_crop: int = 100

    def __post_init__(self) -> None:
        for name in ("box_threshold", "text_threshold"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= float(v) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {v!r}")
        if not isinstance(self.max_detections_per_crop, int) or self.max_detections_per_crop < 1:
            raise ValueError(f"max_detections_per_crop must be a positive integer, got {self.max_detections_per_crop!r}")

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> "GroundingDinoOptions":
        return options_from_kwargs(cls, options, "grounding_dino")


class GroundingDinoTask(TaskModel):
    """``task_module:=grounding_dino``: K crops → ONE forward → boxes in crop pixels."""

    name = "grounding_dino"
    produces_masks = False

    def __init__(self, model: str = "", device: str = "cpu", dtype: str = "auto", trust_remote_code: bool = False,
                 **options: Any) -> None:
        import torch
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        self.options = GroundingDinoOptions.from_kwargs(options)
        if not model:
            raise ValueError("grounding_dino needs task_model: a local model directory or a hub id "
                             "(e.g. IDEA-Research/grounding-dino-tiny)")
        local = Path(model).expanduser()
        if local.is_file():
            raise ValueError(f"{local} is a file; grounding_dino needs a transformers model directory or hub id")
        if local.is_dir() and not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local} has no config.json: not a transformers Grounding DINO directory")
        if not local.exists() and not is_hub_id(model):
            raise FileNotFoundError(f"Grounding DINO model not found: {model} (neither a directory nor a hub id)")
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)  # auto: float32 on every device
        src = str(local) if local.exists() else model
        try:
            self.processor = GroundingDinoProcessor.from_pretrained(src, trust_remote_code=trust_remote_code)
            self.model = GroundingDinoForObjectDetection.from_pretrained(
                src, dtype=self.dtype, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot load Grounding DINO from {model!r}: {exc}") from exc
        self.model.to(self.device).eval()
        self.forward_batches = 0

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        import torch

        if len(images) != len(instructions):
            raise ValueError(f"grounding_dino.detect got {len(images)} images but {len(instructions)} instructions")
        if not images:
            return []
        imgs = [validate_image(im, f"crop {i}") for i, im in enumerate(images)]
        phrases = [caption_phrases(t) for t in instructions]
        captions = [build_caption(p) for p in phrases]
        enc = self.processor(images=imgs, text=captions, padding=True, return_tensors="pt")
        tok = self.processor.tokenizer(captions, padding=True, return_offsets_mapping=True)
        inputs = {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                  for k, v in enc.items() if hasattr(v, "to")}
        with torch.inference_mode():
            out = self.model(**inputs)  # ONE forward over all crops
        self.forward_batches += 1
        o = self.options
        sizes = [im.shape[:2] for im in imgs]
        out.logits, out.pred_boxes = out.logits.float().cpu(), out.pred_boxes.float().cpu()
        results = self.processor.post_process_grounded_object_detection(
            out, enc["input_ids"], threshold=o.box_threshold, text_threshold=o.text_threshold, target_sizes=sizes)
        probs = torch.sigmoid(out.logits)
        outs = []
        for i, res in enumerate(results):
            # the same keep rule as the processor, to recover each kept box's token probabilities
            keep = probs[i].max(-1).values > o.box_threshold
            kept_probs = probs[i][keep].numpy()
            n_tok = len(tok["offset_mapping"][i])
            pmask = phrase_token_masks(tok["offset_mapping"][i], captions[i], phrases[i])
            h, w = sizes[i]
            dets = []
            for j, (box, score) in enumerate(zip(res["boxes"].tolist(), res["scores"].tolist())):
                row = kept_probs[j, :n_tok]
                per_phrase = [float(row[m].mean()) if m.any() else 0.0 for m in pmask]
                label = phrases[i][int(np.argmax(per_phrase))]
                b = Box.from_any(*box).clip(w, h)
                if b.width <= 0 or b.height <= 0:
                    continue
                raw = res["text_labels"][j] if j < len(res["text_labels"]) else ""
                dets.append(Detection(b, label, float(score), text=str(raw)))
            dets.sort(key=lambda d: -d.score)
            dets = dets[: o.max_detections_per_crop]
            outs.append(TaskOutput(dets, captions[i], ParseStatus.OK if dets else ParseStatus.EMPTY,
                                   extra={"caption": captions[i], "kept": int(keep.sum())}))
        return outs

    def close(self) -> None:
        self.model = None


__all__ = ["GroundingDinoTask", "GroundingDinoOptions", "build_caption", "caption_phrases", "phrase_token_masks"]
