"""Build the int8 text detector: rapidocr's PP-OCR det model, statically quantised.

WHY: the detector is where the embedded default's time goes (about 0.5 s of every 840 px crop
on 2 cores; the sensing policy takes 40 ms).  On a CPU with int8 dot-product instructions
(AVX512-VNNI / AVX-VNNI, ARM dot-product) a statically quantised copy runs the same network
about 2-3x faster.  Whether recall holds is measured on validation frames
(``benchmarks/choose_settings.py``), not assumed.

How: the fp32 model inside the installed ``rapidocr`` wheel is converted to opset 17 (its
opset 11 has no per-channel DequantizeLinear), and quantised by onnxruntime's
``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations) with calibration
inputs made exactly as the node makes them: ResizeCropped windows of TRAINING scenes
(``active_o3_training.data.scenes``; validation and test seeds are never used) around words
and at random places, preprocessed by rapidocr's own ``DetPreProcess``.  Deterministic for a
given rapidocr version and font set.  A JSON card next to the model records the source
model's sha256, the calibration seeds and the command.

    python -m active_o3_training.quantize --help
    python -m active_o3_training.quantize --out active_o3_ros/data/ppocr_det_int8.onnx
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def source_det_model() -> Path:
    """The fp32 detector the installed rapidocr uses by default."""
    import rapidocr

    models = sorted((Path(rapidocr.__file__).parent / "models").glob("*det*.onnx"))
    if not models:
        raise SystemExit("no det model inside the rapidocr wheel (is rapidocr installed?)")
    return models[0]


def calibration_inputs(n_scenes: int, crop_size: int, det_limit: int, seed0: int) -> tuple[list[np.ndarray], list[int]]:
    """Detector inputs of node-like crops of ``n_scenes`` training scenes (2 per scene)."""
    import cv2
    from rapidocr.ch_ppocr_det.utils import DetPreProcess
    from tqdm import tqdm

    from active_o3_ros.core.geometry import ResizeCropConfig, resize_crop
    from active_o3_ros.core.types import Box
    from active_o3_training.data import scenes

    pre = DetPreProcess(det_limit, "min")
    crop = ResizeCropConfig(output_size=crop_size, max_zoom=3.0, context=1.3)
    cfg = scenes.set_config("train")
    rng = np.random.default_rng(seed0)
    out, seeds = [], []
    for i in tqdm(range(n_scenes), desc="calibration scenes", unit="scene"):
        seed = scenes.train_seed(seed0 + i)
        s = scenes.render_scene(seed, cfg)
        seeds.append(seed)
        h, w = s.image.shape[:2]
        word = s.boxes[int(rng.integers(len(s.boxes)))] if s.boxes else None
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        for region in ([word] if word else []) + [Box(cx - 150, cy - 100, cx + 150, cy + 100)]:
            img, _, _ = resize_crop(s.image, region.clip(w, h), crop)
            out.append(pre(cv2.cvtColor(img, cv2.COLOR_RGB2BGR)))
    return out, seeds


def quantize(src: Path, out: Path, inputs: list[np.ndarray], reduce_range: bool = False) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {"x": x}

    src, out = Path(src).resolve(), Path(out).resolve()
    # onnxruntime's quantisation tools write scratch files (external data, shape-inference
    # temporaries) into the working directory: keep them in the temporary one.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        m17, pre = Path(tmp) / "det17.onnx", Path(tmp) / "det_pre.onnx"
        onnx.save(version_converter.convert_version(onnx.load(str(src)), 17), str(m17))
        # symbolic shape inference cannot finish on this graph's dynamic sizes; the ONNX
        # shape inference and graph optimisation still run.
        quant_pre_process(str(m17), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce_range)


def agreement(src: Path, q: Path, inputs: list[np.ndarray], threads: int) -> dict[str, float]:
    """How close the int8 probability map is to the fp32 one on the calibration inputs, and
    the speed of each on this machine (information; quality is judged on validation frames)."""
    import onnxruntime as ort

    from active_o3_ros.backends.ort_sessions import session_options

    so = session_options(threads=threads, inter_threads=1)
    a_sess = ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    b_sess = ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
    agree, diff, ta, tb = [], [], 0.0, 0.0
    for x in inputs[:8]:
        t = time.perf_counter()
        a = a_sess.run(None, {"x": x})[0]
        ta += time.perf_counter() - t
        t = time.perf_counter()
        b = b_sess.run(None, {"x": x})[0]
        tb += time.perf_counter() - t
        agree.append(float(((a > 0.3) == (b > 0.3)).mean()))
        diff.append(float(np.abs(a - b).mean()))
    n = len(inputs[:8])
    return {"binary_map_agreement_at_0.3": round(float(np.mean(agree)), 5),
            "mean_abs_prob_difference": round(float(np.mean(diff)), 5),
            "fp32_seconds_per_input": round(ta / n, 4), "int8_seconds_per_input": round(tb / n, 4)}


def main(argv: list[str] | None = None) -> int:
    from active_o3_ros.backends.text import INT8_DET_MODEL

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(INT8_DET_MODEL), help="the int8 .onnx to write (a .json card goes next to it)")
    p.add_argument("--scenes", type=int, default=24, help="training scenes for calibration (2 crops each)")
    p.add_argument("--seed0", type=int, default=90_000, help="first training-scene index of the calibration set")
    p.add_argument("--crop-size", type=int, default=840, help="crop long side (the node's crop_size)")
    p.add_argument("--det-limit", type=int, default=736, help="the detector's short-side limit at calibration")
    p.add_argument("--threads", type=int, default=2, help="threads for the agreement check")
    p.add_argument("--reduce-range", action="store_true",
                   help="7-bit weights (onnxruntime's reduce_range): a pair of u8 x s7 products cannot "
                        "saturate int16, so x86 CPUs without VNNI compute it exactly")
    args = p.parse_args(argv)
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("quantize needs the onnx package: pip install onnx", file=sys.stderr)
        return 2
    src = source_det_model()
    inputs, seeds = calibration_inputs(args.scenes, args.crop_size, args.det_limit, args.seed0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    quantize(src, out, inputs, args.reduce_range)
    import importlib.metadata as md

    card: dict[str, Any] = {
        "model": out.name, "what": "rapidocr's PP-OCR text detector, statically quantised to int8 (QDQ)",
        "source_model": src.name, "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "rapidocr": md.version("rapidocr"), "onnxruntime": md.version("onnxruntime"), "onnx": md.version("onnx"),
        "calibration": {"training_scene_seeds": seeds, "crops": len(inputs), "crop_size": args.crop_size,
                        "det_limit_side_len": args.det_limit, "method": "MinMax (onnxruntime default)",
                        "weights": "7-bit (reduce_range)" if args.reduce_range else "8-bit"},
        "quantize_seconds": round(time.perf_counter() - t, 1),
        "agreement_on_calibration_inputs": agreement(src, out, inputs, args.threads),
        "command": ("python -m active_o3_training.quantize " + shlex.join(argv if argv is not None else sys.argv[1:])).strip(),
        "quality": "see benchmarks/results/choose_settings.md (validation) and cost_curve.md (test)",
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card["agreement_on_calibration_inputs"]))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
