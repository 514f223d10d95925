"""GPU frame latency with a real-size Qwen2.5-VL-7B, randomly initialised from its config.

Why random weights: the hub is unreachable here and latency does not depend on the weights'
values, only on the architecture, dtype, token counts and image sizes.  Random weights do
produce garbage text, so (1) every answer is forced to ``--new-tokens`` tokens
(``min_new_tokens`` = ``max_new_tokens``) and (2) when the sensing answer cannot be parsed,
K fixed regions stand in for it *after* the sensing call was made and timed, so the task
call really gets K crops.  Reported: ms per frame at K for ACTIVE-o3 parallel (1 sensing +
1 batched task call), serial zoom (1 + K calls) and the full frame alone, with transformers
in bf16 and, when ``vllm`` imports, with vLLM.

Without a CUDA device the script writes ``{"skipped": true, "reason": "no CUDA device"}``
to its JSON and exits 0 (so ``benchmarks/run_all.py`` records the reason).  ``--size tiny``
runs the same code path on the tiny model (any device) to check the script itself.

Usage::

    python benchmarks/gpu_qwen7b.py                       # -> benchmarks/results/gpu_qwen7b.json
    python benchmarks/gpu_qwen7b.py --size tiny --device cpu --frames 1 --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from active_o3_ros.backends.base import SensingOutput, SensingPolicy  # noqa: E402
from active_o3_ros.core.types import Box, Region  # noqa: E402

#: Qwen2.5-VL-7B-Instruct's architecture (config.json of the public checkpoint).
QWEN7B_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                   num_key_value_heads=4, vocab_size=152064, max_position_embeddings=128000,
                   rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]})
QWEN7B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14,
                     spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=3584, window_size=112,
                     fullatt_block_indexes=[7, 15, 23, 31])


class FixedRegionsIfUnparsed(SensingPolicy):
    """Runs the real sensing model (one counted call) and, when its answer holds fewer than
    K regions (random weights), substitutes K fixed, non-overlapping regions so the task
    call is timed on K crops as a trained policy would give it."""

    name = "fixed_if_unparsed"
    is_model_call = True

    def __init__(self, inner: SensingPolicy) -> None:
        self.inner = inner
        self.substituted = 0

    def propose(self, images, instructions, max_regions, context=None):
        outs = self.inner.propose(images, instructions, max_regions, context)
        fixed = []
        for img, out in zip(images, outs):
            if len(out.regions) >= max_regions:
                fixed.append(out)
                continue
            self.substituted += 1
            h, w = img.shape[:2]
            bw, bh = w / (max_regions + 1), h / 3
            regions = [Region(Box(i * w / max_regions, h / 3, i * w / max_regions + bw, h / 3 + bh), "fixed", i)
                       for i in range(max_regions)]
            fixed.append(SensingOutput(regions, out.text, out.status))
        return fixed

    def close(self) -> None:
        self.inner.close()


def _frame(width: int, height: int) -> np.ndarray:
    import cv2
    from skimage import data

    return np.ascontiguousarray(cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_LINEAR))


def build_model_dir(size: str, work: Path, dtype: str, device: str) -> tuple[Any, Path]:
    """(transformers model on ``device``, a directory with tokenizer/processor files).

    The 7B model is built from config on the device (no download, no disk copy); the
    tokenizer and image processor come from the offline tiny-model builder, whose special
    token ids are kept in the 7B config so prompts tokenise identically."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from active_o3_ros.testing.tiny_qwen import build_tiny_qwen

    tiny = build_tiny_qwen(work / "tiny")
    base = json.loads((tiny / "config.json").read_text())
    if size == "tiny":
        config = Qwen2_5_VLConfig.from_pretrained(tiny)
    else:
        tiny_text = base.get("text_config", {})
        text = {k: tiny_text[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in tiny_text}
        text.update(QWEN7B_TEXT)
        config = Qwen2_5_VLConfig(
            text_config=text, vision_config=QWEN7B_VISION,
            **{k: base[k] for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                    "vision_end_token_id") if k in base})
    torch_dtype = getattr(torch, dtype)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch_dtype)
    from transformers import GenerationConfig

    gen_cfg = GenerationConfig.from_pretrained(tiny)  # eos/pad ids of the shared tokenizer
    model.generation_config = gen_cfg
    return model.eval(), tiny


def time_modes(sensing: SensingPolicy, task: Any, frame: np.ndarray, k: int, frames: int, crop_size: int,
               modes: Sequence[str] = ("parallel", "serial", "full_frame")) -> dict[str, Any]:
    """Median ms per frame and model calls for each pipeline mode (one warm-up frame each)."""
    from active_o3_ros.core.geometry import ResizeCropConfig
    from active_o3_ros.core.config import PipelineConfig
    from active_o3_ros.core.pipeline import ActivePerception

    out: dict[str, Any] = {}
    for mode in modes:
        cfg = PipelineConfig(max_regions=k, mode=mode, crop=ResizeCropConfig(output_size=crop_size),
                             fallback_full_frame=True)
        pipe = ActivePerception(sensing if mode != "full_frame" else None, task, cfg)
        pipe(frame, "person")  # warm-up: kernels, allocator, caches
        times, calls, crops, stage = [], [], [], []
        for _ in range(frames):
            _sync()
            r = pipe(frame, "person")
            _sync()
            times.append(r.timings.total_s * 1000)
            calls.append(r.model_calls)
            crops.append(len(r.task_statuses))
            stage.append(r.timings.as_dict())
        out[mode] = {
            "ms_per_frame_p50": statistics.median(times), "ms_per_frame_min": min(times),
            "model_calls": statistics.median(calls), "crops": statistics.median(crops),
            "sensing_ms_p50": statistics.median(s["sensing_s"] for s in stage) * 1000,
            "task_ms_p50": statistics.median(s["task_s"] for s in stage) * 1000,
            "frames": frames,
        }
    if "parallel" in out and "serial" in out:
        out["serial_over_parallel"] = out["serial"]["ms_per_frame_p50"] / out["parallel"]["ms_per_frame_p50"]
    return out


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_transformers(args: argparse.Namespace, work: Path, frame: np.ndarray) -> dict[str, Any]:
    from active_o3_ros.backends.qwen_vl import QwenVLModel, QwenVLSensing, QwenVLTask, load_processor

    t0 = time.perf_counter()
    model, tok_dir = build_model_dir(args.size, work, args.dtype, args.device)
    build_s = time.perf_counter() - t0
    processor = load_processor(str(tok_dir), False, args.min_pixels, args.max_pixels)
    qm = QwenVLModel(model, processor, key=None)
    opts = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, score_mode="constant",
                max_pixels=args.max_pixels, min_pixels=args.min_pixels)
    sensing = FixedRegionsIfUnparsed(QwenVLSensing(shared_model=qm, **opts))
    task = QwenVLTask(shared_model=qm, **opts)
    res = time_modes(sensing, task, frame, args.k, args.frames, args.crop_size)
    res.update(build_s=build_s, generate_calls=qm.stats.generate_calls, substituted_sensing=sensing.substituted,
               parameters_b=sum(p.numel() for p in model.parameters()) / 1e9)
    if args.device.startswith("cuda"):
        import torch

        res["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    sensing.close()
    task.close()
    qm.release()
    del model, qm
    return res


def run_vllm(args: argparse.Namespace, work: Path, frame: np.ndarray) -> dict[str, Any]:
    """vLLM needs the checkpoint on disk: save the random model (bf16 safetensors) first."""
    if importlib.util.find_spec("vllm") is None:
        return {"skipped": True, "reason": "vllm is not importable in this environment (pip install '.[vllm]')"}
    try:
        from active_o3_ros.backends.vllm_qwen import VLLMQwenSensing, VLLMQwenTask

        model, tok_dir = build_model_dir(args.size, work, args.dtype, args.device)
        ckpt = work / "ckpt"
        model.save_pretrained(ckpt, safe_serialization=True)
        for f in tok_dir.iterdir():
            if f.suffix in (".json", ".jinja") and f.name not in ("config.json", "model.safetensors"):
                (ckpt / f.name).write_bytes(f.read_bytes())
        del model
        _free()
        opts = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, score_mode="constant",
                    max_pixels=args.max_pixels, min_pixels=args.min_pixels)
        common = dict(model=str(ckpt), device=args.device, dtype=args.dtype)
        sensing = FixedRegionsIfUnparsed(VLLMQwenSensing(**common, **opts))
        task = VLLMQwenTask(**common, **opts)
        res = time_modes(sensing, task, frame, args.k, args.frames, args.crop_size)
        res["substituted_sensing"] = sensing.substituted
        sensing.close()
        task.close()
        return res
    except Exception as exc:  # noqa: BLE001 - report why, keep the transformers numbers
        return {"skipped": True, "reason": f"vLLM run failed: {type(exc).__name__}: {exc}"}


def _free() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--size", choices=("7b", "tiny"), default="7b", help="model architecture")
    p.add_argument("--device", default="cuda", help="torch device")
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument("--k", type=int, default=3, help="zoom regions per frame")
    p.add_argument("--frames", type=int, default=5, help="timed frames per mode (median reported)")
    p.add_argument("--new-tokens", type=int, default=128, help="generated tokens per answer (forced)")
    p.add_argument("--frame-size", default="1920x1080", help="camera frame WxH")
    p.add_argument("--crop-size", type=int, default=840, help="task crop long side (paper: ~840)")
    p.add_argument("--min-pixels", type=int, default=None, help="processor min_pixels")
    p.add_argument("--max-pixels", type=int, default=1280 * 28 * 28, help="processor max_pixels per image")
    p.add_argument("--no-vllm", action="store_true", help="skip the vLLM part")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_qwen7b.json"))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "gpu_qwen7b",
                              "command": " ".join(["python benchmarks/gpu_qwen7b.py",
                                                   *(argv if argv is not None else sys.argv[1:])]),
                              "size": args.size, "k": args.k,
                              "frame_size": args.frame_size, "new_tokens": args.new_tokens,
                              "crop_size": args.crop_size, "dtype": args.dtype, "python": platform.python_version()}
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        result.update(skipped=True, reason="no CUDA device")
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("skipped: no CUDA device")
        return 0
    if args.device.startswith("cuda"):
        result["device"] = torch.cuda.get_device_name(0)
    else:
        result["device"] = f"cpu ({platform.machine()})"
    w, h = (int(v) for v in args.frame_size.lower().split("x"))
    frame = _frame(w, h)
    with tempfile.TemporaryDirectory(prefix="gpu_qwen7b_") as tmp:
        result["skipped"] = False
        result["transformers"] = run_transformers(args, Path(tmp), frame)
        _free()
        result["vllm"] = ({"skipped": True, "reason": "--no-vllm"} if args.no_vllm
                          else run_vllm(args, Path(tmp), frame))
    out.write_text(json.dumps(result, indent=2) + "\n")
    tr = result["transformers"]
    print(json.dumps({"device": result["device"], "parallel_ms": tr["parallel"]["ms_per_frame_p50"],
                      "serial_ms": tr["serial"]["ms_per_frame_p50"], "full_frame_ms": tr["full_frame"]["ms_per_frame_p50"],
                      "vllm": result["vllm"].get("parallel", result["vllm"])}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
