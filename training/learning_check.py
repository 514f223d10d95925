"""The GRPO learning-check task, shared by ``benchmarks/grpo_learning_check.py`` and the tests
that need a tiny Qwen2.5-VL which already answers in the paper's format.

Task: 112x112 frames with one bright 20x20 square inside the top-left quadrant.  A random tiny
model never produces a parseable answer (every reward in a GRPO group is equal: no signal), so
:func:`warm_start` fine-tunes it for a few seconds on well-formatted answers naming one of the
four quadrants uniformly at random: parseable, with no preference for the right one.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

QUADRANTS = [(0, 0, 56, 56), (56, 0, 112, 56), (0, 56, 56, 112), (56, 56, 112, 112)]


def _answer(q: tuple[int, int, int, int]) -> str:
    return '<think>zoom</think><answer>[{"bbox_2d": [%d, %d, %d, %d], "label": "r"}]</answer>' % q


def make_dataset(n: int, seed: int, out_dir: Path):
    """Frames with a 20x20 bright square somewhere inside the top-left quadrant."""
    import cv2

    from active_o3_training.data.coco import records_to_dataset, sensing_messages

    rng = np.random.default_rng(seed)
    recs = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 50, (112, 112, 3), dtype=np.uint8)
        x, y = (int(v) for v in rng.integers(4, 32, 2))
        img[y:y + 20, x:x + 20] = 255
        path = out_dir / f"{i}.png"
        cv2.imwrite(str(path), img)
        recs.append({"image": str(path), "image_id": str(i), "width": 112, "height": 112, "instruction": "square",
                     "gt_boxes": [[x, y, x + 20, y + 20]], "gt_labels": ["square"],
                     "prompt": sensing_messages("square", max_regions=1), "source": "synthetic"})
    return records_to_dataset(recs)


def warm_start(model_dir: Path, out_dir: Path, dataset, steps: int, seed: int) -> Path:
    """Supervised warm start on formatted answers with a uniformly random quadrant."""
    import torch
    from transformers import AutoModelForImageTextToText

    from active_o3_ros.backends.qwen_vl import load_processor
    from active_o3_training.grpo_mllm import save_processor_files

    torch.manual_seed(seed)
    rnd = random.Random(seed)
    proc = load_processor(str(model_dir))
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for step in range(steps):
        row = dataset[step % len(dataset)]
        msgs = [dict(row["prompt"][0]), {"role": "user", "content": [{"type": "image"},
                                                                     {"type": "text", "text": row["prompt"][1]["content"]}]}]
        prompt = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        full = prompt + _answer(rnd.choice(QUADRANTS)) + "<|im_end|>"
        enc = proc(text=[full], images=[row["image"]], return_tensors="pt")
        n_prompt = proc(text=[prompt], images=[row["image"]], return_tensors="pt")["input_ids"].shape[1]
        labels = enc["input_ids"].clone()
        labels[:, :n_prompt] = -100
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out_dir, safe_serialization=True)
    save_processor_files(proc, out_dir)
    return out_dir


__all__ = ["QUADRANTS", "make_dataset", "warm_start"]
