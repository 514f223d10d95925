"""``text`` task module: RapidOCR (PP-OCR ONNX, shipped inside the ``rapidocr`` wheel) on crops.

WHY this backend: it is the embedded default's task model M_A — a real pretrained detector
that runs offline on CPU, so the README's first command shows real detections with no
model download.  Small text is exactly where ACTIVE-o3's zoom pays: the detector cannot see
8-px words on a downscaled 4K frame, but finds them once a region is enlarged 2-3x.

Configuration (measured, see the README section "Embedded CPU default"):

* ``max_side_len`` high: RapidOCR otherwise *silently* shrinks every input to 2000 px,
  which undoes the zoom.
* ``unclip_ratio`` ~1.0 and ``box_thresh`` ~0.3: the default polygon dilation (1.6) makes
  boxes so loose that IoU-0.5 matching against tight word boxes fails.
* ``det_precision: int8`` and ``det_limit_side_len: 480``: the detector is where the frame's
  time goes; both were chosen on validation frames (``benchmarks/choose_settings.py``).
* ``text_score: 0.92``: misreads of texture come with low recogniser confidence; the floor
  was chosen on validation frames too (precision 0.86 -> 0.92 at the same recall).

Semantics: the detector is class-agnostic, so the instruction is ignored; every detection
carries the ``label`` option (default "text") and the string read in ``Detection.text``;
its score is the recogniser's confidence (``recognize=True``) or the detector's box score.
One :meth:`TextTaskModel.detect` call runs the engine over each crop in turn (RapidOCR has
no batched detection API, and on a CPU a batch of crops costs what the crops cost one by one:
time goes into convolutions), so the module says ``batched = False`` and the pipeline counts
one model call per crop.  Each output's ``extra["cost"]`` carries what the engine spent on
that crop: ``det_s``, ``cls_s``, ``rec_s``, ``engine_s`` and ``det_megapixels`` (the size of
the detector's own input after its resize rule).
"""
from __future__ import annotations

import functools
import json
import logging
import platform
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from active_o3_ros.backends.base import TaskModel, TaskOutput, options_from_kwargs
from active_o3_ros.backends.ort_sessions import DEFAULT_ARENA, DEFAULT_SPIN
from active_o3_ros.core.types import Box, Detection, ParseStatus

log = logging.getLogger(__name__)

#: rapidocr's PP-OCR detector quantised to int8 (card: the ``.json`` next to it).
INT8_DET_MODEL = Path(__file__).resolve().parents[1] / "data" / "ppocr_det_int8.onnx"


#: ``single_char_max_aspect`` is multiplied by this for the glyphs wider than tall.
WIDE_GLYPH_FACTOR = 1.4
WIDE_GLYPHS = frozenset("MWmw")


@dataclass(frozen=True)
class _EngineSettings:
    """The RapidOCR settings that matter (shared by the engine key and the user options)."""

    recognize: bool = True
    box_thresh: float = 0.3
    unclip_ratio: float = 1.0
    det_thresh: float = 0.3
    #: Recogniser-confidence floor (RapidOCR's ``text_score``; its own default is 0.5).  0.92:
    #: chosen on the in-domain validation sets as the highest floor that keeps recall within
    #: 0.005 (val 0.754 -> 0.751, precision 0.860 -> 0.915, false detections per text-free
    #: frame 1.2 -> 0.2; ``benchmarks/results/choose_settings_v3.md``).
    text_score: float = 0.92
    max_side_len: int = 16384
    #: Detector input: its short side is scaled up to this when smaller (RapidOCR's
    #: ``limit_type: min``), so tiny crops are still seen at a usable size.  480 rather than
    #: RapidOCR's 736: an 840x630 crop is then not enlarged again (chosen on validation frames,
    #: ``benchmarks/results/choose_settings.md``).
    det_limit_side_len: int = 480
    use_cls: bool = False
    threads: int = 0
    det_model_path: str = ""
    rec_model_path: str = ""
    #: ``int8`` (default): the statically quantised detector shipped in the package
    #: (:data:`INT8_DET_MODEL`, built by ``python -m active_o3_training.quantize``), about 2x
    #: faster on CPUs with int8 dot products at the same recall on validation frames, used where
    #: :func:`int8_exact_here` (else rapidocr's fp32 model, with a warning); ``fp32``:
    #: rapidocr's own model.  A ``det_model_path`` replaces either.
    det_precision: str = "int8"
    #: onnxruntime's CPU memory arena for the detector and recogniser sessions (RapidOCR
    #: turns it off) and the spin-wait of their intra-op thread pools (onnxruntime's default:
    #: on).  Arena on, spin-wait off: same detections, 0.75-0.9x the node frame's time on 2
    #: cores (:mod:`.ort_sessions`, ``benchmarks/ort_session.py``, docs/performance.md).
    mem_arena: bool = DEFAULT_ARENA
    spin_wait: bool = DEFAULT_SPIN

    def __post_init__(self) -> None:
        for name in ("mem_arena", "spin_wait"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"text task option {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("box_thresh", "det_thresh", "text_score"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"text task option {name} must be in [0, 1], got {v!r}")
        if not 0.1 <= float(self.unclip_ratio) <= 5.0:
            raise ValueError(f"text task option unclip_ratio must be in [0.1, 5], got {self.unclip_ratio!r}")
        if int(self.max_side_len) < 32:
            raise ValueError(f"text task option max_side_len must be >= 32, got {self.max_side_len!r}")
        if int(self.det_limit_side_len) < 32:
            raise ValueError(f"text task option det_limit_side_len must be >= 32, got {self.det_limit_side_len!r}")
        if self.det_precision not in ("fp32", "int8"):
            raise ValueError(f"text task option det_precision must be 'fp32' or 'int8', got {self.det_precision!r}")
        if int(self.threads) < 0:
            raise ValueError(f"text task option threads must be >= 0 (0: onnxruntime default), got {self.threads!r}")


@dataclass(frozen=True)
class TextEngineConfig(_EngineSettings):
    """One engine per distinct config per process (the cache key)."""

    #: From the task's ``device`` (cuda*: onnxruntime's CUDA provider), not an option.
    use_cuda: bool = False

    def effective_det_precision(self) -> str:
        """What the shipped detector really runs as: ``int8`` only where :func:`int8_exact_here`."""
        return "int8" if self.det_precision == "int8" and int8_exact_here() else "fp32"

    def params(self) -> dict[str, Any]:
        """RapidOCR's dotted ``params`` overrides."""
        threads = int(self.threads) or -1
        p: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.max_side_len": int(self.max_side_len),
            "Global.text_score": float(self.text_score),
            "Global.use_cls": bool(self.use_cls),
            "Global.use_rec": bool(self.recognize),
            "Det.box_thresh": float(self.box_thresh),
            "Det.unclip_ratio": float(self.unclip_ratio),
            "Det.thresh": float(self.det_thresh),
            "Det.limit_side_len": int(self.det_limit_side_len),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1 if threads > 0 else -1,
            "EngineConfig.onnxruntime.use_cuda": bool(self.use_cuda),
            "EngineConfig.onnxruntime.enable_cpu_mem_arena": bool(self.mem_arena),
        }
        if self.det_model_path:  # a given model file wins over det_precision
            p["Det.model_path"] = self.det_model_path
        elif self.effective_det_precision() == "int8":
            p["Det.model_path"] = str(int8_detector())
        if self.rec_model_path:
            p["Rec.model_path"] = self.rec_model_path
        return p


@dataclass(frozen=True)
class TextOptions(_EngineSettings):
    """What ``task_options`` may set for the ``text`` module (checked by name and range)."""

    #: The class every detection gets (what the detector read goes in ``Detection.text``).
    label: str = "text"
    min_score: float = 0.0
    #: Reads shorter than this many characters are dropped (1: keep all; needs ``recognize``).
    min_chars: int = 1
    #: A single-character read whose box is wider than this times its height is dropped (0: off;
    #: :data:`WIDE_GLYPH_FACTOR` times this for the wide glyphs M, W, m, w).  The detector's box
    #: of a real single glyph (A-Z, 0-9 and symbols in 4 fonts at 16-60 px) is at most 1.12x as
    #: wide as tall, 1.55x for "m" (``benchmarks/results/glyph_boxes.md``); on text-free
    #: validation frames zoomed textures were read as '1' in boxes up to 2x wider than tall.
    #: Acts on reads only (nothing with ``recognize`` off).  1.2, the measured 1.12 plus a
    #: margin, was adopted by a rule written before the validation run
    #: (``benchmarks/results/read_filters_val.md``, ``text_free_read_filters_val.md``).
    single_char_max_aspect: float = 1.2
    #: A detection whose box is shorter than this, in the pixels of the crop the module was
    #: given, is dropped (0: off).  No read was correct below 5 px
    #: (``benchmarks/results/read_heights.md``); on text-free frames textures were read in boxes
    #: of 2-5 frame px.  4 px changed nothing on validation
    #: (``benchmarks/results/min_box_height_val.md``), so it stays off.
    min_box_height: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not str(self.label).strip():
            raise ValueError("text task option label must be a non-empty string")
        if isinstance(self.min_chars, bool) or int(self.min_chars) != self.min_chars or int(self.min_chars) < 1:
            raise ValueError(f"text task option min_chars must be an integer >= 1, got {self.min_chars!r}")
        if not 0.0 <= float(self.min_box_height) <= 1000.0:
            raise ValueError(f"text task option min_box_height must be in [0, 1000] px (0: off), got {self.min_box_height!r}")
        if not 0.0 <= float(self.single_char_max_aspect) <= 100.0:
            raise ValueError("text task option single_char_max_aspect must be in [0, 100] (0: off), "
                             f"got {self.single_char_max_aspect!r}")
        if not self.recognize and int(self.min_chars) > 1:
            raise ValueError("text task option min_chars filters what was read: it needs recognize: true")

    def engine(self, use_cuda: bool) -> TextEngineConfig:
        """The engine settings; ``label``, ``min_score`` and the read filters are ours, not RapidOCR's."""
        return TextEngineConfig(**{f: getattr(self, f) for f in _EngineSettings.__dataclass_fields__},
                                use_cuda=use_cuda)


def int8_detector() -> Path:
    """:data:`INT8_DET_MODEL`, or a FileNotFoundError that says how to build it."""
    if not INT8_DET_MODEL.is_file():
        raise FileNotFoundError(f"the int8 text detector {INT8_DET_MODEL} is missing; build it with "
                                "`python -m active_o3_training.quantize`")
    return INT8_DET_MODEL


_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (Linux; empty elsewhere), read once per process."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(f for line in text.splitlines() if line.startswith("flags") for f in line.split(":", 1)[1].split())


def int8_exact_here(machine: str | None = None, flags: frozenset[str] | set[str] | None = None) -> bool:
    """Whether onnxruntime's int8 convolutions compute the shipped int8 detector exactly here.

    WHY: the model is quantised u8 activations x s8 weights.  On x86 CPUs without VNNI,
    onnxruntime multiplies those with ``VPMADDUBSW``, which saturates a pair of products at
    int16, so large activations come out wrong (phantom text on a blank frame); VNNI
    (``VPDPBUSD``) accumulates in int32 and ARM's kernels widen before adding.  Where this is
    False the text module runs rapidocr's fp32 detector instead and says so."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in _X86:
        return True
    flags = _cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})


_ENGINES: dict[TextEngineConfig, tuple[Any, threading.Lock]] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(cfg: TextEngineConfig) -> tuple[Any, threading.Lock]:
    """The process-wide RapidOCR engine for ``cfg`` and the lock that serialises its use.

    WHY cached: building the engine loads three ONNX sessions (~1 s); the node, the
    benchmark and GRPO training's reward all ask for the same one.  WHY a lock: RapidOCR
    keeps per-call state on the engine (``update_params``), so concurrent calls from the
    node's worker thread and e.g. a service would race."""
    with _ENGINES_LOCK:
        if cfg not in _ENGINES:
            try:
                from rapidocr import RapidOCR
            except ImportError as exc:  # pragma: no cover - depends on install
                raise RuntimeError("the 'text' task module needs rapidocr and onnxruntime: "
                                   "pip install 'active-o3-ros-py[text]'") from exc
            logging.getLogger("RapidOCR").setLevel(logging.WARNING)
            if not cfg.det_model_path and cfg.effective_det_precision() != cfg.det_precision:
                log.warning("text task: this CPU has no VNNI int8 dot products, where the int8 detector "
                            "saturates; using rapidocr's fp32 detector (slower, same recall)")
            engine = RapidOCR(params=cfg.params())
            if not cfg.spin_wait:
                _stop_spinning(engine, cfg)
            _ENGINES[cfg] = (engine, threading.Lock())
        return _ENGINES[cfg]


def _stop_spinning(engine: Any, cfg: TextEngineConfig) -> None:
    """Load RapidOCR's sessions now (it loads them on first use) and rebuild each with the
    intra-op spin-wait off; RapidOCR has no setting for it.  Where its internals differ
    from what this expects, say so and keep its own sessions (spinning, same results)."""
    from active_o3_ros.backends.ort_sessions import rebuilt

    try:
        parts = [engine._load_det_model()]
        if cfg.use_cls:
            parts.append(engine._load_cls_model())
        if cfg.recognize:
            parts.append(engine._load_rec_model())
        for part in parts:
            part.session.session = rebuilt(part.session.session, spin=False)
    except (AttributeError, TypeError) as exc:
        log.warning("text task: spin_wait=false not applied (this RapidOCR version keeps its sessions "
                    "elsewhere: %s); its own spinning sessions run instead", exc)


def quad_to_box(quad: np.ndarray | Sequence[Sequence[float]], width: int, height: int) -> Box | None:
    """Axis-aligned bounds of a (possibly rotated) quadrilateral, clipped to the image;
    None when nothing of it is inside."""
    q = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    if q.size == 0 or not np.isfinite(q).all():
        return None
    b = Box(float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max()))
    b = b.clip(width, height)
    return b if b.width > 0 and b.height > 0 else None


def det_input_shape(height: int, width: int, limit_side_len: int) -> tuple[int, int]:
    """The (h, w) the PP-OCR detector runs at for a ``height x width`` input: the short side
    scaled UP to ``limit_side_len`` when smaller (RapidOCR's ``limit_type: min``), then both
    sides rounded to a multiple of 32.  This, not the crop size, is what its time follows."""
    h, w = int(height), int(width)
    ratio = float(limit_side_len) / min(h, w) if min(h, w) < limit_side_len else 1.0
    return max(32, int(round(int(h * ratio) / 32) * 32)), max(32, int(round(int(w * ratio) / 32) * 32))


class TextTaskModel(TaskModel):
    """RapidOCR text detection (+ recognition) behind the :class:`TaskModel` interface.

    ``model``, ``dtype`` and ``trust_remote_code`` are accepted for interface symmetry and
    ignored: the weights are the ONNX files inside the rapidocr wheel (override them with
    ``det_model_path`` / ``rec_model_path``) and no remote code is ever run.  ``device``
    "cuda*" uses onnxruntime's CUDA provider when that build is installed, else the CPU
    with a warning.
    """

    name = "text"
    batched = False

    def __init__(self, model: str = "", device: str = "cpu", dtype: str = "auto", trust_remote_code: bool = False,
                 **options: Any) -> None:
        opts = options_from_kwargs(TextOptions, options, "text task")
        use_cuda = str(device).startswith("cuda")
        if use_cuda:
            try:
                import onnxruntime

                use_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
            except ImportError:  # pragma: no cover
                use_cuda = False
            if not use_cuda:
                log.warning("text task: device %r requested but onnxruntime has no CUDA provider; using the CPU",
                            device)
        self.options = opts
        self.config = opts.engine(use_cuda)
        self.label = str(opts.label).strip()
        self.min_score = float(opts.min_score)
        self.min_chars, self.single_char_max_aspect = int(opts.min_chars), float(opts.single_char_max_aspect)
        self.min_box_height = float(opts.min_box_height)
        self._engine, self._lock = get_engine(self.config)

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        """Detections in each crop's own pixels; a crop the engine cannot handle yields an
        empty output with status FAILED and the reason in ``extra['error']`` (never raises
        on image content)."""
        return [self._detect_one(img) for img in images]

    def _detect_one(self, image: np.ndarray) -> TaskOutput:
        try:
            img = np.asarray(image)
            if img.ndim == 2:
                img = np.repeat(img[:, :, None], 3, axis=2)
            if img.ndim != 3 or img.shape[2] not in (3, 4) or img.shape[0] == 0 or img.shape[1] == 0:
                raise ValueError(f"crop must be HxWx3 RGB, got shape {img.shape}")
            if img.dtype != np.uint8:
                raise ValueError(f"crop must be uint8, got {img.dtype}")
            h, w = img.shape[:2]
            if min(h, w) < 4:  # below the detector's stride; nothing legible fits
                return TaskOutput([], "[]", ParseStatus.EMPTY)
            bgr = cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2BGR)
            with self._lock:
                t0 = time.perf_counter()
                res = self._engine(bgr)
                engine_s = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - a bad crop must not take the node down
            log.warning("text task failed on a crop: %s", exc)
            return TaskOutput([], "", ParseStatus.FAILED, extra={"error": str(exc)})
        cost = self._cost(res, h, w, engine_s)
        boxes = getattr(res, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return TaskOutput([], "[]", ParseStatus.EMPTY, extra={"cost": cost})
        txts = getattr(res, "txts", None) if self.config.recognize else None
        scores = getattr(res, "scores", None)
        dets: list[Detection] = []
        for i, quad in enumerate(boxes):
            box = quad_to_box(quad, w, h)
            if box is None or box.height < self.min_box_height:
                continue
            score = float(scores[i]) if scores is not None and i < len(scores) else 1.0
            if score < self.min_score:
                continue
            text = str(txts[i]) if txts is not None and i < len(txts) else ""
            if txts is not None and not self._plausible_read(text, box):
                continue
            dets.append(Detection(box=box, label=self.label, score=min(max(score, 0.0), 1.0), text=text))
        answer = [{"bbox_2d": [round(v, 1) for v in d.box.as_list()], "label": d.label, "text": d.text,
                   "score": round(d.score, 4)} for d in dets]
        return TaskOutput(dets, json.dumps(answer), ParseStatus.OK if dets else ParseStatus.EMPTY,
                          extra={"cost": cost})

    def _plausible_read(self, text: str, box: Box) -> bool:
        """``min_chars`` and ``single_char_max_aspect`` on one read."""
        read = text.strip()
        if len(read) < self.min_chars:
            return False
        if len(read) != 1 or self.single_char_max_aspect <= 0:
            return True
        limit = self.single_char_max_aspect * (WIDE_GLYPH_FACTOR if read in WIDE_GLYPHS else 1.0)
        return box.width <= limit * max(box.height, 1e-6)

    def _cost(self, res: Any, h: int, w: int, engine_s: float) -> dict[str, float]:
        """What the engine spent on one crop.  RapidOCR reports no stage times when it found
        nothing; then the whole call was the detector."""
        stages = [float(v) if v is not None else 0.0 for v in (getattr(res, "elapse_list", None) or [])]
        cls_s = stages[1] if len(stages) > 1 else 0.0
        rec_s = stages[2] if len(stages) > 2 else 0.0
        dh, dw = det_input_shape(h, w, self.config.det_limit_side_len)
        return {"engine_calls": 1.0, "engine_s": round(engine_s, 6),
                "det_s": round(max(engine_s - cls_s - rec_s, 0.0), 6), "cls_s": round(cls_s, 6),
                "rec_s": round(rec_s, 6), "det_megapixels": round(dh * dw / 1e6, 6)}

    def describe(self) -> dict[str, Any]:
        """The effective engine settings (for logs and benchmark JSON)."""
        return {"label": self.label, "min_score": self.min_score, "min_chars": self.min_chars,
                "single_char_max_aspect": self.single_char_max_aspect, "min_box_height": self.min_box_height,
                **asdict(self.config)}


__all__ = ["INT8_DET_MODEL", "TextTaskModel", "TextEngineConfig", "TextOptions", "det_input_shape", "get_engine",
           "int8_detector", "int8_exact_here", "quad_to_box"]
