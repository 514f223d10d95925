"""Prompt templates of ACTIVE-o3 (sensing and task), editable and shared by every backend.

The sensing template follows the paper's released demo: up to K distinct regions, JSON
``bbox_2d`` boxes, reasoning in ``<think>`` and the list in ``<answer>``.  The task template
is the plain Qwen2.5-VL grounding prompt used by the paper on each zoomed crop.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

SENSING_TEMPLATE = (
    "Find up to {k} different regions in the image that are most likely to contain {target}. "
    "Small or distant instances matter most: choose regions that, once zoomed in, would let "
    "a detector find every {target}. "
    "The selected regions should be as distinct as possible, with minimal or no overlap. "
    "Return the coordinates in JSON format as: "
    "{{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"region that may contain {target}\"}}. "
    "Explain your reasoning in <think>...</think> and output the final result in "
    "<answer>...</answer>. i.e., <think> reasoning process here </think> "
    "<answer> [JSON list of regions] </answer>"
)

TASK_DETECTION_TEMPLATE = (
    "Please find all {target} in the image and return the bounding box coordinates in JSON "
    "format as a list of {{\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"name\"}}."
)

TASK_POINT_TEMPLATE = (
    "Please point at each {target} in the image and return the point coordinates in JSON "
    "format as a list of {{\"point_2d\": [x, y], \"label\": \"name\"}}."
)

SYSTEM_PROMPT = "You are a helpful assistant."


#: Longest accepted instruction, characters (after whitespace is collapsed).
MAX_INSTRUCTION_CHARS = 1000


def normalize_instruction(target: str | Sequence[str]) -> str:
    """Turn class names or free text into the ``{target}`` phrase of the templates.

    ``["traffic light", "person"]`` -> ``"traffic light, person"``; free text is stripped.
    Raises ``ValueError`` on an empty instruction: a prompt about nothing wastes a model call.
    """
    if isinstance(target, str):
        text = " ".join(target.split())
    else:
        parts = [" ".join(str(t).split()) for t in target]
        text = ", ".join(p for p in parts if p)
    if not text:
        raise ValueError("instruction is empty: give target class names or a free-text description")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise ValueError(f"instruction of {len(text)} characters exceeds {MAX_INSTRUCTION_CHARS} "
                         "(it is copied into every prompt and every published DetectionArray)")
    return text


@dataclass(frozen=True)
class PromptSet:
    """The templates a backend fills; override any of them from config."""

    sensing: str = SENSING_TEMPLATE
    task: str = TASK_DETECTION_TEMPLATE
    system: str = SYSTEM_PROMPT

    def sensing_prompt(self, target: str | Sequence[str], k: int) -> str:
        return self.sensing.format(target=normalize_instruction(target), k=_k_words(k))

    def task_prompt(self, target: str | Sequence[str]) -> str:
        return self.task.format(target=normalize_instruction(target))


def _k_words(k: int) -> str:
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    return words.get(k, str(k))
