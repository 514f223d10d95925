"""Real (test-only) misbehaving task models, registered on import (node: ``plugins:=fault_backends``).

``garbage`` cycles through what a broken model returns -- the wrong number of outputs,
``None``, boxes with NaN / inf / negative / enormous coordinates, non-Detection objects --
and every ``good_every``-th call a correct answer from the ``blob`` detector, so tests see
the node survive the garbage *and* recover.  Faults that raise or sleep: ``faulty`` in
``tests/ros/ros_test_backends.py`` (reused, not duplicated).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.base import TaskOutput, register_task
from active_o3_ros.core.types import Box, Detection
from ros_test_backends import BlobTask

GARBAGE_KINDS = ("too_few_outputs", "none", "nonfinite_boxes", "not_detections", "too_many_outputs")


class GarbageTask(BlobTask):
    name = "garbage"

    def __init__(self, good_every: int = 2, **kw: Any) -> None:
        super().__init__(**kw)
        self.good_every, self.calls = int(good_every), 0

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> Any:
        self.calls += 1
        if self.good_every and self.calls % self.good_every == 0:
            return super().detect(images, instructions)
        kind = GARBAGE_KINDS[(self.calls // max(self.good_every, 1)) % len(GARBAGE_KINDS)]
        if kind == "too_few_outputs":
            return []
        if kind == "none":
            return None
        if kind == "too_many_outputs":
            return [TaskOutput([]) for _ in range(len(images) + 3)]
        if kind == "not_detections":
            return [TaskOutput(["a string", 42, None]) for _ in images]  # type: ignore[list-item]
        bad = [Box(math.nan, 0, 10, 10), Box(0, 0, math.inf, 5), Box(-1e30, -5, 1e30, 1e300), Box(5, 5, 1, 1)]
        return [TaskOutput([Detection(b, "garbage", s) for b, s in zip(bad, (math.nan, 2.0, -1.0, math.inf))])
                for _ in images]


register_task("garbage", GarbageTask)
