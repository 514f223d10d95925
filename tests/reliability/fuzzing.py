"""Property-based fuzzing of every input boundary (the fuzz targets of the test suite, and the
runner of the long campaign whose report is ``benchmarks/results/fuzz.json``).

WHY: a perception node on a robot reads three kinds of untrusted input -- model text (a
runaway or confused model), image messages (a buggy driver or a hostile DDS peer) and
configuration (typos in YAML / ``ros2 param set``).  Each must either work or be rejected
with a clear message; nothing may crash the process or allocate memory out of proportion
to the bytes actually received.  Hypothesis generates the cases; this runner counts them
instead of stopping at the first failure, so one figure ("N cases, 0 crashes") is honest.

Targets and what counts as a *crash* (any of them fails the run):

* ``parser`` -- :func:`active_o3_ros.core.parsing.parse_answer` on random text, adversarial
  fragments of the answer format, structured JSON with NaN/inf/negative/enormous
  coordinates, deeply nested JSON, huge outputs (> ``MAX_TEXT_CHARS``) and non-text values.
  Crash = it raised, or returned a box that is not finite, is inverted, lies outside the
  given image, or more items than ``max_items``.
* ``image`` -- :func:`active_o3_ros.ros.images.msg_to_rgb` on real rosbags
  ``sensor_msgs/msg/Image`` / ``CompressedImage`` messages with every encoding string of
  ``sensor_msgs/image_encodings.hpp`` (plus random ones), wrong steps, truncated data,
  0x0, 1x100000, 16k x 16k headers with a few bytes, odd data types, garbage and lying
  PNG headers.  Crash = an exception other than ``ImageConversionError``, an empty
  message, a message that names no image field, a wrong output shape, or a rejected case
  whose peak Python/numpy allocation exceeded ``REJECT_ALLOC_LIMIT`` (tracemalloc).
* ``config`` -- every parameter of ``core.config.PARAMETERS`` (via
  ``PerceptionConfig.from_flat``) and of the node's ``ROS_PARAMETERS`` (via
  ``Parameter.coerce``) with wrong types, out-of-range and boundary values, bad choices;
  plus random YAML files through ``PerceptionConfig.from_yaml``.  Crash = an exception
  other than ``ConfigError``, a message not naming the parameter, or an accepted value
  outside the declared range/choices.

    python tests/reliability/fuzzing.py                 # >= 10 000 cases (a few minutes on 1 core)
    python tests/reliability/fuzzing.py --scale 0.05    # quick look

``tests/reliability/test_fuzz.py`` runs a few hundred cases per target in the default suite.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

#: Largest peak allocation (bytes, beyond the message's own data) a *rejected* image may cost.
REJECT_ALLOC_LIMIT = 1 << 20
#: Default number of generated cases per target (sum >= 10 000).
DEFAULT_CASES = {"parser": 3500, "image": 2000, "config": 4300, "config_yaml": 400}

# Every encoding string defined in sensor_msgs/image_encodings.hpp (ROS 2).
SENSOR_MSGS_ENCODINGS = (
    "rgb8", "rgba8", "rgb16", "rgba16", "bgr8", "bgra8", "bgr16", "bgra16", "mono8", "mono16",
    *(f"{b}{c}" for b in ("8UC", "8SC", "16UC", "16SC", "32SC", "32FC", "64FC") for c in ("1", "2", "3", "4")),
    "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8", "bayer_grbg8",
    "bayer_rggb16", "bayer_bggr16", "bayer_gbrg16", "bayer_grbg16",
    "yuv422", "yuv422_yuy2", "uyvy", "yuyv", "nv21", "nv24",
)
IMAGE_FIELD_WORDS = ("encoding", "width", "height", "step", "data", "size", "pixels", "format", "bytes", "compressed")


@dataclass
class Tally:
    """Outcome counts of one target; ``crash_examples`` keeps the first few for the report."""

    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    crashes: int = 0
    crash_examples: list[str] = field(default_factory=list)
    rejection_types: dict[str, int] = field(default_factory=dict)
    sample_messages: list[str] = field(default_factory=list)
    max_case_s: float = 0.0
    max_reject_alloc_bytes: int = 0

    def crash(self, case: Any, why: str) -> None:
        self.crashes += 1
        if len(self.crash_examples) < 10:
            self.crash_examples.append(f"{why} | case: {_short(case)}")

    def reject(self, exc: BaseException) -> None:
        self.rejected += 1
        name = type(exc).__name__
        self.rejection_types[name] = self.rejection_types.get(name, 0) + 1
        if len(self.sample_messages) < 8 and str(exc)[:160] not in self.sample_messages:
            self.sample_messages.append(str(exc)[:160])


def _short(obj: Any, n: int = 300) -> str:
    try:
        r = repr(obj)
    except Exception as exc:  # pragma: no cover - repr of odd objects
        r = f"<unrepresentable {type(obj).__name__}: {exc}>"
    return r if len(r) <= n else r[:n] + f"...(+{len(r) - n} chars)"


def _unexpected(tally: Tally, case: Any, exc: BaseException) -> None:
    """Count an exception of a type the boundary never documents as a crash (Ctrl-C passes)."""
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    tally.crash(case, f"raised {type(exc).__name__}: {exc}")


def _timed(tally: Tally, fn: Callable[[], None]) -> None:
    t = time.perf_counter()
    fn()
    tally.cases += 1
    tally.max_case_s = max(tally.max_case_s, time.perf_counter() - t)


def _settings(n: int, seed: int) -> Callable:
    """Generate-only (no shrinking: checks never raise, they count), reproducible by seed."""
    return settings(max_examples=n, deadline=None, database=None, derandomize=False,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _run(test: Callable, seed: int) -> None:
    from hypothesis import seed as hseed

    hseed(seed)(test)()


# -- parser -------------------------------------------------------------------------------
_NUM_TOKENS = ["0", "-1", "1e308", "-1e308", "1e309", "NaN", "Infinity", "-Infinity", "9" * 400, "9" * 5000,
               "-0.0", "1.5", "3.4e38", "123456789012345678901234567890", ".5", "1e-320", "null", "true", '"12"']
_FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "```json", "```", "[", "]", "{", "}", ",", ":",
              '"bbox_2d"', '"bbox"', '"box"', '"point_2d"', '"label"', '"score"', '"name"', "bbox_2d [", " ",
              "\n", '"', "\\", "\x00", "\ud7ff", "é", "日本", "[[[[", "]]]]", "{{", "}}", "<answer><answer>"]


def _finite_num() -> st.SearchStrategy:
    return st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, -1, 10**30, -10**30, 2**63, 1e308, -1e308]))


def _json_item() -> st.SearchStrategy:
    box = st.lists(_finite_num(), min_size=0, max_size=6)
    return st.one_of(
        st.fixed_dictionaries({"bbox_2d": box}, optional={"label": st.one_of(st.text(max_size=30), st.integers(),
                                                                               st.none(), st.lists(st.integers())),
                                                          "score": _finite_num()}),
        st.dictionaries(st.sampled_from(["bbox", "box", "point_2d", "point", "label", "x"]), box, max_size=3),
        box,
        st.recursive(st.none() | st.booleans() | _finite_num() | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=12),
    )


@st.composite
def model_text(draw: Callable) -> Any:
    kind = draw(st.sampled_from(["random", "fragments", "json", "nested", "huge", "truncated", "non_text",
                                 "keystyle"]))
    if kind == "random":
        return draw(st.text(max_size=400))
    if kind == "fragments":
        parts = draw(st.lists(st.sampled_from(_FRAGMENTS + _NUM_TOKENS) | st.text(max_size=5), max_size=60))
        return "".join(parts)
    if kind == "json":
        items = draw(st.lists(_json_item(), max_size=8))
        body = json.dumps(items, allow_nan=True)
        wrap = draw(st.sampled_from(["tags", "fence", "bare", "answer_only", "object"]))
        if wrap == "object" and items:
            body = json.dumps(items[0], allow_nan=True)
        return {"tags": f"<think>t</think><answer>{body}</answer>", "fence": f"<answer>```json\n{body}\n```</answer>",
                "bare": body, "answer_only": f"<answer>{body}", "object": f"<answer>{body}</answer>"}[wrap]
    if kind == "nested":
        depth = draw(st.sampled_from([10, 100, 1000, 10_000, 100_000]))
        opener = draw(st.sampled_from(["[", '{"a":', '[{"bbox_2d":']))
        closer = {"[": "]", '{"a":': "}", '[{"bbox_2d":': "}]"}[opener]
        return f"<answer>{opener * depth}1{closer * depth}</answer>"
    if kind == "huge":
        unit = draw(st.sampled_from(['{"bbox_2d": [1, 2, 30, 40], "label": "x"}, ', "A", "<think>", "[1,2,3,4]",
                                     '{"bbox_2d": [NaN, 1e999, -5, 9e20]}, ']))
        reps = draw(st.integers(1000, 60_000))
        text = "<answer>[" + unit * reps
        return text + ("]</answer>" if draw(st.booleans()) else "")
    if kind == "truncated":
        items = draw(st.lists(_json_item(), min_size=1, max_size=6))
        body = json.dumps(items, allow_nan=True)
        cut = draw(st.integers(0, len(body)))
        return f"<think>x</think><answer>{body[:cut]}"
    if kind == "keystyle":
        nums = draw(st.lists(st.sampled_from(_NUM_TOKENS), min_size=4, max_size=4))
        return '<answer>[{"bbox_2d [' + ", ".join(nums) + ']": "label"}]</answer>'
    return draw(st.sampled_from([None, b"<answer>[]</answer>", 42, 3.5, ["[1,2,3,4]"], {"bbox_2d": [1, 2, 3, 4]}]))


def _check_parse(tally: Tally, text: Any, size: tuple[float, float] | None, max_items: int | None,
                 tagged: bool) -> None:
    from active_o3_ros.core.parsing import MAX_ITEMS, ParseResult, parse_answer
    from active_o3_ros.core.types import ParseStatus

    case = (text, size, max_items, tagged)
    try:
        w, h = size if size else (None, None)
        res = parse_answer(text, w, h, max_items=max_items, tagged=tagged)
    except BaseException as exc:  # noqa: BLE001 - a crash is exactly what we count
        _unexpected(tally, case, exc)
        return
    if not isinstance(res, ParseResult) or not isinstance(res.status, ParseStatus):
        tally.crash(case, f"returned {type(res).__name__}")
        return
    limit = min(MAX_ITEMS, max_items) if max_items is not None else MAX_ITEMS
    if len(res.items) > limit:
        tally.crash(case, f"{len(res.items)} items > limit {limit}")
        return
    for it in res.items:
        pts = list(it.box.as_list()) if it.box is not None else []
        if it.point is not None:
            pts += list(it.point)
        if not all(isinstance(v, float) and math.isfinite(v) for v in pts):
            tally.crash(case, f"non-finite coordinates {pts}")
            return
        if not (isinstance(it.score, float) and math.isfinite(it.score)) or not isinstance(it.label, str):
            tally.crash(case, f"bad score/label {it.score!r} {it.label!r}")
            return
        if it.box is not None:
            b = it.box
            if b.x1 > b.x2 or b.y1 > b.y2:
                tally.crash(case, f"inverted box {b}")
                return
            if size and not (0 <= b.x1 and b.x2 <= size[0] and 0 <= b.y1 and b.y2 <= size[1]):
                tally.crash(case, f"box {b} outside image {size}")
                return
    if res.status in (ParseStatus.OK, ParseStatus.RECOVERED):
        tally.accepted += 1
    else:
        tally.rejected += 1
        key = f"status:{res.status.value}"
        tally.rejection_types[key] = tally.rejection_types.get(key, 0) + 1


def fuzz_parser(n: int, seed: int) -> Tally:
    tally = Tally()
    sizes = st.none() | st.tuples(st.floats(0, 1e7), st.floats(0, 1e7)) | st.sampled_from(
        [(1920.0, 1080.0), (1.0, 1.0), (0.0, 0.0), (1e12, 1e12)])

    @_settings(n, seed)
    @given(text=model_text(), size=sizes, max_items=st.none() | st.integers(0, 20), tagged=st.booleans())
    def run(text, size, max_items, tagged):
        _timed(tally, lambda: _check_parse(tally, text, size, max_items, tagged))

    _run(run, seed)
    return tally


# -- image conversion ----------------------------------------------------------------------
_SIZES = [0, 1, 2, 3, 7, 64, 100_000, 16_384, 2**31 - 1, 2**32 - 1]


def _rosbags_types() -> dict[str, Any]:
    from rosbags.typesys import Stores, get_typestore

    t = get_typestore(Stores.ROS2_KILTED).types
    return {"Image": t["sensor_msgs/msg/Image"], "CompressedImage": t["sensor_msgs/msg/CompressedImage"],
            "Header": t["std_msgs/msg/Header"], "Time": t["builtin_interfaces/msg/Time"]}


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature + IHDR chunk claiming ``width x height`` and no pixel data."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


# built once: constructing strategies inside a composite costs more than running the case
_ENC_ST = (st.sampled_from(SENSOR_MSGS_ENCODINGS) | st.sampled_from(["RGB8", "Mono8", "", " rgb8", "rgb8\x00"])
           | st.text(max_size=12))
_NEAR_DIM_ST = st.integers(0, 50) | st.sampled_from(_SIZES)
_RAND_DIM_ST = st.integers(-5, 70) | st.sampled_from(_SIZES) | st.sampled_from([1.5, None, "64", True])


@st.composite
def image_case(draw: Callable) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(["raw_random", "raw_valid", "raw_near_valid", "named", "compressed"]))
    enc = draw(_ENC_ST)
    if kind == "named":
        name = draw(st.sampled_from(["0x0", "1x100000", "100000x1", "16k_header", "wrong_step", "truncated",
                                     "extra_data", "odd_step_16"]))
        w, h, step, n = {
            "0x0": (0, 0, 0, 0), "1x100000": (1, 100_000, 3, draw(st.sampled_from([0, 3, 300_000, 299_999]))),
            "100000x1": (100_000, 1, 300_000, draw(st.sampled_from([0, 10, 300_000]))),
            "16k_header": (16_384, 16_384, 16_384 * 3, draw(st.integers(0, 4096))),
            "wrong_step": (64, 48, draw(st.sampled_from([0, 1, 191, 193, 100, 2**32 - 1])), 64 * 48 * 3),
            "truncated": (64, 48, 192, draw(st.integers(0, 64 * 48 * 3 - 1))),
            "extra_data": (64, 48, 192, 64 * 48 * 3 + draw(st.integers(1, 5000))),
            "odd_step_16": (8, 8, 17, 17 * 8),
        }[name]
        if name == "odd_step_16":
            enc = "mono16"
        elif name in ("1x100000", "100000x1", "16k_header", "wrong_step", "truncated", "extra_data"):
            enc = draw(st.sampled_from(["rgb8", "bgr8"]))
        return "raw", dict(encoding=enc, width=w, height=h, step=step, data=np.zeros(n, np.uint8),
                           is_bigendian=draw(st.integers(0, 1)))
    if kind == "raw_valid":
        enc = draw(st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "mono16"]))
        ch = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3, "mono16": 2}[enc]
        w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
        pad = draw(st.integers(0, 6)) * (2 if enc == "mono16" else 1)
        step = w * ch + pad
        n = step * h - (pad if draw(st.booleans()) else 0)  # last row's padding may be omitted
        data = np.frombuffer(draw(st.binary(min_size=n, max_size=n)), np.uint8) if n < 400 else \
            np.full(n, draw(st.integers(0, 255)), np.uint8)
        return "raw", dict(encoding=enc, width=w, height=h, step=step, data=data, is_bigendian=draw(st.integers(0, 1)))
    if kind == "raw_near_valid":
        w, h = draw(_NEAR_DIM_ST), draw(_NEAR_DIM_ST)
        step = draw(st.integers(0, 300) | st.sampled_from(_SIZES))
        n = draw(st.integers(0, 8000))
        return "raw", dict(encoding=enc, width=w, height=h, step=step, data=np.zeros(n, np.uint8),
                           is_bigendian=draw(st.integers(0, 1)))
    if kind == "raw_random":
        data = draw(st.sampled_from(["np_u8", "np_i16", "np_f32", "bytes", "list", "none", "str", "np_2d"]))
        n = draw(st.integers(0, 512))
        value = {"np_u8": np.zeros(n, np.uint8), "np_i16": np.zeros(n, np.int16), "np_f32": np.zeros(n, np.float32),
                 "bytes": bytes(n), "list": [draw(st.integers(-5, 300)) for _ in range(min(n, 20))], "none": None,
                 "str": "x" * n, "np_2d": np.zeros((max(n, 1), 3), np.uint8)}[data]
        dim = _RAND_DIM_ST
        return "raw", dict(encoding=enc, width=draw(dim), height=draw(dim), step=draw(dim), data=value,
                           is_bigendian=draw(st.integers(0, 1)))
    # compressed
    fmt = draw(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth", "", "bmp"])
               | st.text(max_size=10))
    payload = draw(st.sampled_from(["garbage", "png_huge_header", "png_zero", "png_valid", "jpeg_truncated", "empty"]))
    if payload == "garbage":
        data = draw(st.binary(max_size=600))
    elif payload == "png_huge_header":
        data = _png_header(draw(st.sampled_from([100_000, 65_535, 2**31 - 1])), draw(st.sampled_from([100_000, 1])))
    elif payload == "png_zero":
        data = _png_header(0, 0)
    elif payload == "empty":
        data = b""
    else:
        import cv2

        img = np.full((draw(st.integers(1, 24)), draw(st.integers(1, 24)), 3), draw(st.integers(0, 255)), np.uint8)
        ok, enc_buf = cv2.imencode(".png" if payload == "png_valid" else ".jpg", img)
        data = enc_buf.tobytes()
        if payload == "jpeg_truncated":
            data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return "compressed", dict(format=fmt, data=np.frombuffer(data, np.uint8).copy())


def _check_image(tally: Tally, types: dict[str, Any], kind: str, fields: dict[str, Any]) -> None:
    from active_o3_ros.ros.images import ImageConversionError, msg_to_rgb

    header = types["Header"](stamp=types["Time"](sec=0, nanosec=0), frame_id="fuzz")
    msg = types["Image" if kind == "raw" else "CompressedImage"](header=header, **fields)
    data = fields.get("data")
    data_bytes = getattr(data, "nbytes", None) or (len(data) if isinstance(data, (bytes, str, list)) else 0)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        out = msg_to_rgb(msg)
    except ImageConversionError as exc:
        peak = tracemalloc.get_traced_memory()[1] - base
        tally.max_reject_alloc_bytes = max(tally.max_reject_alloc_bytes, peak)
        text = str(exc)
        if not text.strip():
            tally.crash((kind, fields), "ImageConversionError with an empty message")
        elif not any(wd in text.lower() for wd in IMAGE_FIELD_WORDS):
            tally.crash((kind, fields), f"message names no image field: {text!r}")
        elif peak > REJECT_ALLOC_LIMIT + 2 * data_bytes:
            tally.crash((kind, fields), f"rejected but allocated {peak} bytes first")
        else:
            tally.reject(exc)
        return
    except BaseException as exc:  # noqa: BLE001 - a crash is exactly what we count
        _unexpected(tally, (kind, fields), exc)
        return
    if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3):
        tally.crash((kind, fields), f"bad output {getattr(out, 'shape', None)} {getattr(out, 'dtype', None)}")
        return
    if kind == "raw" and out.shape[:2] != (fields["height"], fields["width"]):
        tally.crash((kind, fields), f"output shape {out.shape} != header {fields['height']}x{fields['width']}")
        return
    tally.accepted += 1


def _warm_up_decoders(types: dict[str, Any]) -> None:
    """Decode one PNG, one JPEG and one garbage payload first, so the lazy imports of
    Pillow's plugins are not counted as allocations of the first fuzz case."""
    import cv2

    from active_o3_ros.ros.images import ImageConversionError, msg_to_rgb

    img = np.zeros((4, 4, 3), np.uint8)
    for ext in (".png", ".jpg"):
        buf = cv2.imencode(ext, img)[1]
        msg_to_rgb(types["CompressedImage"](header=None, format=ext[1:], data=buf.reshape(-1)))
    for payload in (b"garbage", _png_header(65_535, 1)):
        try:
            msg_to_rgb(types["CompressedImage"](header=None, format="png", data=np.frombuffer(payload, np.uint8)))
        except ImageConversionError:
            pass


def fuzz_images(n: int, seed: int) -> Tally:
    tally = Tally()
    types = _rosbags_types()
    _warm_up_decoders(types)
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()

    @_settings(n, seed)
    @given(case=image_case())
    def run(case):
        kind, fields = case
        _timed(tally, lambda: _check_image(tally, types, kind, fields))

    try:
        _run(run, seed)
    finally:
        if started:
            tracemalloc.stop()
    return tally


# -- configuration -------------------------------------------------------------------------
def _all_parameters() -> list[tuple[Any, bool]]:
    """(Parameter, is_core) for the pipeline table and the node's ROS-only table."""
    from active_o3_ros.core.config import PARAMETERS

    out = [(p, True) for p in PARAMETERS]
    try:
        from active_o3_ros.ros.node import ROS_PARAMETERS

        out += [(p, False) for p in ROS_PARAMETERS]
    except ImportError:  # rclpy not installed: fuzz the core table only
        pass
    return out


@st.composite
def config_case(draw: Callable) -> tuple[Any, bool, Any]:
    params = _all_parameters()
    p, core = draw(st.sampled_from(params))
    lo, hi = p.min_value, p.max_value
    special: list[Any] = [None, [], {}, [1, 2], {"a": 1}, "", " ", "nan", "inf", "-1", "1e999", "true", "yes", "maybe",
                          float("nan"), float("inf"), -float("inf"), True, False, 0, -1, 2**63, -(2**63), 10**400,
                          1e308, -1e308, 0.5, b"bytes", "ü" * 3, "x" * 10_000, "0x10", "[1]", '{"a": 1}', "{",
                          "null", 1.0, 3.0]
    if lo is not None:
        special += [lo, lo - 1, lo - 1e-9, lo - 0.5, float(lo)]
    if hi is not None:
        special += [hi, hi + 1, hi + 1e-9, hi + 0.5, float(hi)]
    choices = p.allowed()
    if choices:
        special += list(choices) + [str(c).upper() for c in choices] + [f" {c}" for c in choices]
    value = draw(st.sampled_from(special) | st.integers() | st.floats() | st.text(max_size=20) | st.booleans()
                 | st.lists(st.integers(), max_size=3))
    return p, core, value


def _check_config(tally: Tally, p: Any, core: bool, value: Any) -> None:
    from active_o3_ros.core.config import ConfigError, PerceptionConfig

    case = (p.name, value)
    try:
        if core:
            accepted = PerceptionConfig.from_flat({p.name: value}).to_flat()[p.name]
        else:
            accepted = p.coerce(value)
    except ConfigError as exc:
        text = str(exc)
        if p.name not in text:
            tally.crash(case, f"ConfigError does not name the parameter: {text[:200]!r}")
        else:
            tally.reject(exc)
        return
    except BaseException as exc:  # noqa: BLE001 - a crash is exactly what we count
        _unexpected(tally, case, exc)
        return
    # accepted: must respect the declared type, range and choices
    if p.type is str and p.name in ("sensing_options", "task_options"):
        try:
            ok = isinstance(json.loads(accepted), dict)
        except ValueError:
            ok = False
    else:
        ok = isinstance(accepted, p.type) and not (p.type is int and isinstance(accepted, bool))
        if ok and p.type in (int, float):
            ok = math.isfinite(accepted) and (p.min_value is None or accepted >= p.min_value) and (
                p.max_value is None or accepted <= p.max_value)
        choices = p.allowed()
        if ok and choices and accepted not in choices:
            ok = False
    if not ok:
        tally.crash(case, f"accepted out-of-contract value {accepted!r}")
        return
    tally.accepted += 1


def fuzz_config(n: int, seed: int) -> Tally:
    tally = Tally()

    @_settings(n, seed)
    @given(case=config_case())
    def run(case):
        p, core, value = case
        _timed(tally, lambda: _check_config(tally, p, core, value))

    _run(run, seed)
    return tally


@st.composite
def yaml_text(draw: Callable) -> str:
    from active_o3_ros.core.config import PARAMETERS

    kind = draw(st.sampled_from(["random", "mapping", "ros_nested", "broken"]))
    if kind == "random":
        return draw(st.text(max_size=200))
    if kind == "broken":
        return draw(st.sampled_from(["a: [", "{", "- - -\n  x", "a: b: c", "\t- x", "!!python/object:os.system x",
                                     "? [a]\n: b", "&a [*a]", "a: *missing"]))
    names = [p.name for p in PARAMETERS] + ["unknown_param"]
    scalar = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.text(max_size=8), st.none())
    entries = draw(st.dictionaries(st.sampled_from(names), scalar | st.lists(scalar, max_size=2), max_size=5))
    import yaml

    body = yaml.safe_dump(entries)
    if kind == "ros_nested":
        body = yaml.safe_dump({"active_o3": {"ros__parameters": entries}})
    return body


def fuzz_config_yaml(n: int, seed: int) -> Tally:
    """Whole YAML files: ConfigError (naming the file or a parameter) or a valid config."""
    from active_o3_ros.core.config import PARAMETER_INDEX, ConfigError, PerceptionConfig

    tally = Tally()
    tmp = Path(tempfile.mkdtemp(prefix="fuzz_yaml_"))
    path = tmp / "params.yaml"

    @_settings(n, seed)
    @given(text=yaml_text())
    def run(text):
        def one() -> None:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            try:
                PerceptionConfig.from_yaml(path)
            except ConfigError as exc:
                msg = str(exc)
                if str(path) in msg or any(name in msg for name in PARAMETER_INDEX):
                    tally.reject(exc)
                else:
                    tally.crash(text, f"ConfigError names neither file nor parameter: {msg[:200]!r}")
                return
            except BaseException as exc:  # noqa: BLE001 - a crash is exactly what we count
                _unexpected(tally, text, exc)
                return
            tally.accepted += 1

        _timed(tally, one)

    try:
        _run(run, seed)
    finally:
        path.unlink(missing_ok=True)
        tmp.rmdir()
    return tally


TARGETS: dict[str, Callable[[int, int], Tally]] = {
    "parser": fuzz_parser, "image": fuzz_images, "config": fuzz_config, "config_yaml": fuzz_config_yaml,
}


def run_all(cases: dict[str, int], seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Run each target for ``cases[target]`` generated examples; return the report dict."""
    from tqdm import tqdm

    report: dict[str, Any] = {"targets": {}}
    t0 = time.perf_counter()
    for name in tqdm(list(cases), desc="fuzz targets", disable=not progress):
        t = time.perf_counter()
        tally = TARGETS[name](cases[name], seed)
        report["targets"][name] = {**asdict(tally), "seconds": round(time.perf_counter() - t, 2),
                                   "max_case_s": round(tally.max_case_s, 4)}
    tg = report["targets"].values()
    report.update(
        cases_total=sum(t["cases"] for t in tg), crashes_total=sum(t["crashes"] for t in tg),
        rejected_total=sum(t["rejected"] for t in tg), accepted_total=sum(t["accepted"] for t in tg),
        seconds=round(time.perf_counter() - t0, 2), seed=seed,
        machine=f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpus".strip(),
        python=platform.python_version(), hypothesis=__import__("hypothesis").__version__,
        command=("python tests/reliability/fuzzing.py " + " ".join(sys.argv[1:])).strip(),
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Exit status 1 when any crash was found.")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the default case counts "
                    f"{DEFAULT_CASES} (sum {sum(DEFAULT_CASES.values())})")
    ap.add_argument("--targets", nargs="*", choices=sorted(TARGETS), default=list(DEFAULT_CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "fuzz.json")
    args = ap.parse_args(argv)
    cases = {t: max(1, int(DEFAULT_CASES[t] * args.scale)) for t in args.targets}
    report = run_all(cases, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, t in report["targets"].items():
        print(f"{name:12s} cases={t['cases']:6d} accepted={t['accepted']:6d} rejected={t['rejected']:6d} "
              f"crashes={t['crashes']} ({t['seconds']} s)")
        for ex in t["crash_examples"]:
            print(f"   CRASH {ex}")
    print(f"total: {report['cases_total']} cases, {report['crashes_total']} crashes -> {args.out}")
    return 1 if report["crashes_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
