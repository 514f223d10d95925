"""One frame processor for every door: image message -> pipeline -> output messages + counters.

The live node (rclpy messages) and the offline bag mode (rosbags messages) both use
:class:`FrameProcessor`, so a frame is decoded, bounded, run, converted and counted the same
way whether it came over DDS or out of a bag.  The message classes differ only through
:class:`~active_o3_ros.ros.convert.MsgTypes`.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from active_o3_ros.ros import convert
from active_o3_ros.ros.images import DEFAULT_MAX_PIXELS, ImageConversionError, msg_to_rgb

#: Longest error text kept (``last_error``, ``errors``, logs), characters.
MAX_ERROR_CHARS = 300
#: How many recent error texts a FrameStats keeps.
MAX_ERRORS_KEPT = 100


def short(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (bounded logs/diagnostics)."""
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


@dataclass
class FrameStats:
    """Counters of one frame stream (the node's /diagnostics, the offline bag report).

    ``received`` = processed + dropped + rejected + failed (+ the one in progress):
    ``dropped`` are frames a newer one replaced before processing (the node's latest-frame
    slot), ``rejected`` frames that could not be decoded, ``failed`` frames the pipeline
    raised on.
    """

    received: int = 0
    processed: int = 0
    #: Of ``processed``: frames bit-identical to the previous one, answered with its result.
    reused: int = 0
    dropped: int = 0
    rejected: int = 0
    failed: int = 0
    detections: int = 0
    last_error: str = ""
    last_latency: float = 0.0
    consecutive_failures: int = 0
    stage_sums: dict[str, float] = field(default_factory=dict)
    done_times: deque = field(default_factory=lambda: deque(maxlen=200))
    errors: deque = field(default_factory=lambda: deque(maxlen=MAX_ERRORS_KEPT))

    def error(self, kind: str, text: str) -> str:
        text = short(text)
        if kind == "rejected":
            self.rejected += 1
        else:
            self.failed += 1
            self.consecutive_failures += 1
        self.last_error = text
        self.errors.append(text)
        return text


@dataclass
class FrameOutputs:
    """The messages for one frame (``masks`` only for task modules with masks)."""

    detections: Any
    regions: Any
    masks: Any | None
    frame: Any
    result: Any
    #: Seconds spent at the door around the pipeline: ``decode_s`` (message -> RGB) and
    #: ``messages_s`` (result -> output messages).
    door_s: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    """What happened to one message: ``outputs`` when processed, else ``kind`` + ``error``."""

    outputs: FrameOutputs | None = None
    kind: str = "processed"  # processed | rejected | failed
    error: str = ""


class FrameProcessor:
    """Turns image messages into output messages with ``pipeline``; thread-safe counters."""

    def __init__(self, pipeline: Any, types: convert.MsgTypes, max_pixels: int = DEFAULT_MAX_PIXELS,
                 stats: FrameStats | None = None, reuse_identical: bool = False) -> None:
        self.pipeline = pipeline
        self.types = types
        self.max_pixels = int(max_pixels)
        self.stats = stats if stats is not None else FrameStats()
        self.lock = threading.Lock()
        #: A frame bit-identical to the previous one (same pipeline, same instruction) gets the
        #: previous result without running the models: a robot standing still with a
        #: compressed or re-sent stream, a stalled driver repeating its buffer.
        self.reuse_identical = bool(reuse_identical)
        self._last: tuple[Any, str, Any, Any] | None = None  # (pipeline, instruction, frame, result)

    def received(self, replaced_pending: bool = False) -> None:
        """Count an arriving frame (and the pending one it replaced, if any)."""
        with self.lock:
            self.stats.received += 1
            if replaced_pending:
                self.stats.dropped += 1

    def dropped(self, n: int = 1) -> None:
        with self.lock:
            self.stats.dropped += n

    def process(self, msg: Any, instruction: str, t_arrival: float | None = None) -> Outcome:
        """Decode ``msg`` (Image or CompressedImage), run the pipeline, build the messages.

        Never raises for bad input or a failing model: the outcome says which, and the
        counters know.  ``t_arrival`` (monotonic) sets the published latency; default now.
        """
        t0 = time.monotonic() if t_arrival is None else t_arrival
        t_decode = time.perf_counter()
        try:
            frame = msg_to_rgb(msg, self.max_pixels)
        except ImageConversionError as exc:
            return self._error("rejected", f"image rejected: {exc}")
        decode_s = time.perf_counter() - t_decode
        last = self._last
        reused = (self.reuse_identical and last is not None and last[0] is self.pipeline and last[1] == instruction
                  and last[2].shape == frame.shape
                  and np.array_equal(last[2][::16, ::16], frame[::16, ::16])  # a changed scene exits here
                  and np.array_equal(last[2], frame))
        if reused:
            result = last[3]
        else:
            try:
                result = self.pipeline(frame, instruction)
            except Exception as exc:  # model OOM, backend bug: count it, keep going with the next frame
                self._last = None
                return self._error("failed", f"pipeline failed: {type(exc).__name__}: {exc}")
            self._last = (self.pipeline, instruction, frame, result) if self.reuse_identical else None
        latency = time.monotonic() - t0
        t = self.types
        t_msgs = time.perf_counter()
        outputs = FrameOutputs(convert.to_detection_array(t, result, msg.header, latency),
                               convert.to_region_array(t, result, msg.header),
                               convert.to_mask_array(t, result, msg.header), frame, result,
                               {"decode_s": decode_s})
        outputs.door_s["messages_s"] = time.perf_counter() - t_msgs
        with self.lock:
            s = self.stats
            s.processed += 1
            s.reused += int(reused)
            s.consecutive_failures = 0
            s.detections += len(result.detections)
            s.last_latency = latency
            for k, v in [*result.timings.as_dict().items(), *outputs.door_s.items()]:
                s.stage_sums[k] = s.stage_sums.get(k, 0.0) + v
            s.done_times.append(time.monotonic())
        return Outcome(outputs)

    def error(self, kind: str, text: str) -> Outcome:
        """Count a frame lost around :meth:`process` (``rejected``: undecodable message;
        ``failed``: e.g. publishing raised)."""
        return self._error(kind, text)

    def _error(self, kind: str, text: str) -> Outcome:
        with self.lock:
            return Outcome(None, kind, self.stats.error(kind, text))


__all__ = ["FrameOutputs", "FrameProcessor", "FrameStats", "Outcome", "short"]
