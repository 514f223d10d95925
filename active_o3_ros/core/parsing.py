"""Reading model answers: ``<think>…</think><answer>[{"bbox_2d": …}]</answer>`` → boxes.

Models emit everything: code fences, missing tags, a single object instead of a list,
swapped or out-of-range coordinates, NaN, truncated JSON.  :func:`parse_answer` never
raises on model text; it returns what it could recover plus a :class:`ParseStatus`, so the
caller can count failures (a rising failure rate is a model problem worth seeing).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from active_o3_ros.core.types import Box, ParseStatus

#: Longest model text we look at; anything beyond is noise from a runaway generation.
MAX_TEXT_CHARS = 200_000
#: Most items we read from one answer (a runaway list cannot allocate unbounded memory).
MAX_ITEMS = 1000

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.S)
_ANSWER_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.S)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)(?:```|$)", re.S)
_OBJECT_RE = re.compile(r"\{[^{}]*\}")
# Possessive quantifiers (Python >= 3.11): with ``\d+\.?\d*`` a long digit run (a runaway
# generation) was split every possible way -- quadratic time; ``\d++`` never backtracks.
_NUM = r"[-+]?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?"
_BBOX_KEY_RE = re.compile(r"bbox_2d\s*\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]")
_BBOX_ANY_RE = re.compile(r"\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]")
_STRICT_FORMAT_RE = re.compile(r"^\s*<think>.*?</think>\s*<answer>(.*?)</answer>\s*$", re.S)


@dataclass
class ParsedItem:
    """One box (or point) read from an answer, in the coordinates of the image the model saw."""

    box: Box | None
    label: str = ""
    point: tuple[float, float] | None = None
    score: float = 1.0


@dataclass
class ParseResult:
    items: list[ParsedItem]
    status: ParseStatus
    think: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def boxes(self) -> list[Box]:
        return [i.box for i in self.items if i.box is not None]


def _find_think(text: str) -> str | None:
    """Body of the first ``<think>…</think>`` (None if none), in linear time.

    WHY not ``_THINK_RE.search``: on text with thousands of unclosed ``<think>`` tags the
    regex retries from every tag to the end of the text -- quadratic (minutes for 200 kB).
    """
    start = text.find("<think>")
    if start == -1:
        return None
    end = text.find("</think>", start + 7)
    return None if end == -1 else text[start + 7:end]


def _strip_think(text: str) -> str:
    """``_THINK_RE.sub("", text)`` (remove every closed think block) in linear time."""
    out: list[str] = []
    pos = 0
    while True:
        start = text.find("<think>", pos)
        end = text.find("</think>", start + 7) if start != -1 else -1
        if end == -1:
            out.append(text[pos:])
            return "".join(out)
        out.append(text[pos:start])
        pos = end + 8


def extract_answer(text: str) -> tuple[str, str, list[str]]:
    """Return ``(think, answer_text, problems)``, tolerating missing or unclosed tags."""
    problems: list[str] = []
    think_m = _find_think(text)
    think = think_m.strip() if think_m is not None else ""
    if think_m is None:
        problems.append("no <think> block")
    ans_m = _ANSWER_RE.search(text)
    if ans_m:
        answer = ans_m.group(1)
        if "</answer>" not in text[ans_m.start():]:
            problems.append("unclosed <answer>")
    else:
        problems.append("no <answer> block")
        answer = _strip_think(text)
    fence = _FENCE_RE.search(answer)
    if fence:
        answer = fence.group(1)
    return think, answer.strip(), problems


def _finite(vals: list[Any]) -> list[float] | None:
    try:
        out = [float(v) for v in vals]
    except (TypeError, ValueError, OverflowError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def _item_from_obj(obj: Any, problems: list[str]) -> ParsedItem | None:
    if isinstance(obj, (list, tuple)) and len(obj) == 4 and not isinstance(obj[0], (dict, list)):
        vals = _finite(list(obj))
        return ParsedItem(Box.from_any(*vals)) if vals else None
    if not isinstance(obj, dict):
        return None
    label = obj.get("label", obj.get("name", ""))
    label = label if isinstance(label, str) else json.dumps(label)[:200]
    score = obj.get("score", 1.0)
    score = float(score) if isinstance(score, (int, float)) and math.isfinite(score) else 1.0
    for key in ("bbox_2d", "bbox", "box"):
        if key in obj:
            raw = obj[key]
            if isinstance(raw, (list, tuple)) and len(raw) == 4:
                vals = _finite(list(raw))
                if vals:
                    return ParsedItem(Box.from_any(*vals), label[:200], score=score)
            problems.append(f"bad {key}: {str(raw)[:60]}")
            return None
    for key in ("point_2d", "point"):
        if key in obj:
            raw = obj[key]
            if isinstance(raw, (list, tuple)) and len(raw) == 2:
                vals = _finite(list(raw))
                if vals:
                    return ParsedItem(None, label[:200], point=(vals[0], vals[1]), score=score)
            problems.append(f"bad {key}: {str(raw)[:60]}")
            return None
    # the malformed key style 'bbox_2d [x1, y1, x2, y2]': label as value
    for k, v in obj.items():
        m = _BBOX_KEY_RE.search(str(k))
        if m:
            vals = _finite(list(m.groups()))
            if vals:
                return ParsedItem(Box.from_any(*vals), v if isinstance(v, str) else "")
    return None


def _loads_lenient(answer: str, problems: list[str]) -> list[Any] | None:
    try:
        data = json.loads(answer)
    except (ValueError, RecursionError):
        data = None
    if data is None:
        # truncated list: cut after the last complete object and close the bracket
        cut = answer.rfind("}")
        start = answer.find("[")
        if start != -1 and cut > start:
            try:
                data = json.loads(answer[start:cut + 1] + "]")
                problems.append("truncated JSON list repaired")
            except (ValueError, RecursionError):
                data = None
    if data is None:
        return None
    if isinstance(data, dict):
        problems.append("single object instead of a list")
        return [data]
    if isinstance(data, list):
        if len(data) == 4 and all(isinstance(v, (int, float)) for v in data):
            problems.append("bare box instead of a list of objects")
            return [data]
        return data
    return None


def parse_answer(text: Any, image_width: float | None = None, image_height: float | None = None,
                 max_items: int | None = None, min_size: float = 1.0, tagged: bool = True) -> ParseResult:
    """Recover boxes/points from model text; never raises.

    Coordinates are clipped to ``[0, image_width] x [0, image_height]`` when the size is
    given; boxes smaller than ``min_size`` pixels on a side after clipping are dropped as
    degenerate.  ``max_items`` keeps the first items (the model's ranking).  ``tagged=False``
    is for task answers, whose prompt asks for plain JSON: missing think/answer tags are then
    not a problem.
    """
    if not isinstance(text, str):
        return ParseResult([], ParseStatus.FAILED, problems=[f"model output is {type(text).__name__}, not text"])
    problems: list[str] = []
    if len(text) > MAX_TEXT_CHARS:
        problems.append(f"output truncated from {len(text)} chars")
        text = text[:MAX_TEXT_CHARS]
    think, answer, tag_problems = extract_answer(text)
    if tagged:
        problems += tag_problems
    raw = _loads_lenient(answer, problems)
    if raw is None:
        # last resort: every {...} object, then bare 4-number lists
        raw = []
        for m in _OBJECT_RE.finditer(answer):
            try:
                raw.append(json.loads(m.group(0)))
            except ValueError:
                bm = _BBOX_KEY_RE.search(m.group(0)) or _BBOX_ANY_RE.search(m.group(0))
                if bm:
                    raw.append(list(bm.groups()))
            if len(raw) >= MAX_ITEMS:
                break
        if not raw:
            raw = [list(m.groups()) for m in _BBOX_ANY_RE.finditer(answer)][:MAX_ITEMS]
        if raw:
            problems.append("invalid JSON, objects recovered by pattern")
    items: list[ParsedItem] = []
    dropped = 0
    for obj in raw[:MAX_ITEMS]:
        item = _item_from_obj(obj, problems)
        if item is None:
            dropped += 1
            continue
        if item.box is not None and image_width is not None and image_height is not None:
            box = item.box.clip(float(image_width), float(image_height))
            if box != item.box:
                problems.append("box clipped to the image")
            if box.width < min_size or box.height < min_size:
                dropped += 1
                continue
            item.box = box
        if item.point is not None and image_width is not None and image_height is not None:
            px, py = item.point
            item.point = (min(max(px, 0.0), float(image_width)), min(max(py, 0.0), float(image_height)))
        items.append(item)
    if dropped:
        problems.append(f"{dropped} unusable item(s) dropped")
    if max_items is not None and len(items) > max_items:
        problems.append(f"{len(items)} items, kept the first {max_items}")
        items = items[:max_items]
    if items:
        status = ParseStatus.OK if not problems or problems == ["no <think> block"] else ParseStatus.RECOVERED
    elif answer.strip() == "[]" or (answer.strip() == "" and tagged and "no <answer> block" not in problems):
        status = ParseStatus.EMPTY
    else:
        status = ParseStatus.FAILED
    return ParseResult(items, status, think, problems)


def strict_answer_body(text: str) -> str | None:
    """What ``_STRICT_FORMAT_RE.match(text).group(1)`` gives (None for no match), in linear time.

    WHY: the regex's lazy ``.*?`` retries the rest of the text after every ``</think><answer>``
    candidate -- quadratic on a runaway generation repeating that pair (found by
    ``tests/reliability/fuzzing.py``).  Same semantics: the think block ends at the first ``</think>``
    followed (after whitespace) by ``<answer>``; the answer runs to the final ``</answer>``.
    """
    s = text.lstrip()
    if not s.startswith("<think>"):
        return None
    end = len(s.rstrip())
    if not s.endswith("</answer>", 0, end):
        return None
    final = end - len("</answer>")
    pos = len("<think>")
    while True:
        j = s.find("</think>", pos)
        if j == -1:
            return None
        k = j + len("</think>")
        while k < len(s) and s[k].isspace():
            k += 1
        if s.startswith("<answer>", k):
            return s[k + len("<answer>"):final] if k + len("<answer>") <= final else None
        pos = j + 1


def is_well_formatted(text: str, max_items: int) -> bool:
    """The paper's format reward: ``<think>…</think><answer>[…]</answer>`` with a valid JSON
    list of at most ``max_items`` objects, each with a 4-number ``bbox_2d``."""
    if not isinstance(text, str):
        return False
    body = strict_answer_body(text)
    if body is None:
        return False
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return False
    if not isinstance(data, list) or not (1 <= len(data) <= max_items):
        return False
    for obj in data:
        if not isinstance(obj, dict):
            return False
        box = obj.get("bbox_2d")
        if not (isinstance(box, list) and len(box) == 4 and _finite(box) is not None):
            return False
    return True


def format_regions_answer(boxes: list[Box], labels: list[str] | None = None, think: str = "") -> str:
    """Write boxes in the sensing answer format (used by non-LLM policies and tests)."""
    labels = labels or [""] * len(boxes)
    payload = [{"bbox_2d": [int(round(v)) for v in b.as_list()], "label": l} for b, l in zip(boxes, labels)]
    return f"<think>{think}</think><answer>{json.dumps(payload)}</answer>"
