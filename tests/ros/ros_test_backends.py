"""Real (test-only) task models for the ROS tests, registered by importing this module.

The node and ``active-o3-bag offline`` import it through their ``plugins`` option.

* ``blob``: a real detector -- connected components of bright pixels (cv2) -- fast and
  deterministic, so DDS tests check geometry, not a model's mood.  ``mask=true`` makes it
  return instance masks (exercises /active_o3/masks).
* ``faulty``: the same detector, but it raises (a simulated CUDA out-of-memory) on every
  ``fail_every``-th call and sleeps ``sleep_s`` per call: fault injection with a real
  TaskModel subclass, not a mock.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import cv2
import numpy as np

from active_o3_ros.backends.base import TaskModel, TaskOutput, register_task
from active_o3_ros.core.types import Box, Detection


class BlobTask(TaskModel):
    name = "blob"

    def __init__(self, threshold: int = 250, min_area: int = 4, mask: bool = False, **_: Any) -> None:
        self.threshold, self.min_area, self.produces_masks = int(threshold), int(min_area), bool(mask)

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        out = []
        for img in images:
            gray = img.max(axis=2) if img.ndim == 3 else img
            n, labels, stats, _ = cv2.connectedComponentsWithStats((gray >= self.threshold).astype(np.uint8))
            dets = []
            for i in range(1, n):
                x, y, w, h, area = (int(v) for v in stats[i])
                if area < self.min_area:
                    continue
                mask = (labels[y:y + h, x:x + w] == i) if self.produces_masks else None
                dets.append(Detection(Box(x, y, x + w, y + h), "blob", 0.9, mask=mask, mask_offset=(x, y)))
            out.append(TaskOutput(dets, text=f"{len(dets)} blobs"))
        return out


class FaultyTask(BlobTask):
    name = "faulty"

    def __init__(self, fail_every: int = 0, sleep_s: float = 0.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_every, self.sleep_s, self.calls = int(fail_every), float(sleep_s), 0

    def detect(self, images, instructions):
        self.calls += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("CUDA out of memory (simulated by FaultyTask)")
        return super().detect(images, instructions)


register_task("blob", BlobTask)
register_task("faulty", FaultyTask)
