"""Recognition of the text lines of all K crops in one call, against one call per crop.

Question (the performance issue's "recognition of all text lines of the K crops in one
call"): the node's ``text`` module runs RapidOCR crop by crop, so its recogniser is called
once per crop. Would one recogniser call over the lines of all K crops save time, and does
it change what is recognised (RapidOCR pads the lines of a batch to its widest one)?

Each frame is a validation scene (set ``val``) at the given size. The node's own pipeline
(``config/perceive.yaml`` defaults) proposes its K regions and cuts its crops; RapidOCR's own
stages then run on each crop (preprocess, detect-and-cut the lines, the direction
classifier where the node enables it). The recogniser is timed both ways on the same line
images, alternating which goes first, ``--repeats`` times per frame (median). Texts and
scores are compared line by line: the lines read differently, the largest score change, and
the lines whose score crosses the node's recogniser floor (``text_score``) are counted.

    python benchmarks/rec_across_crops.py --help
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SIZES, command, footer, load_average, machine, parse_sizes, val_scenes, write_outputs  # noqa: E402


def frame_lines(engine: Any, crops: list) -> list[list]:
    """The line images RapidOCR would recognise in each crop (its own preprocess, detector,
    line cutting and, where enabled, direction classifier); ``[]`` for a crop without text."""
    import cv2

    out = []
    for crop in crops:
        img, op = engine.preprocess_img(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        try:
            lines, _ = engine.detect_and_crop(img, op)
        except Exception as exc:  # noqa: BLE001 - RapidOCRError: no text line in this crop
            if type(exc).__name__ != "RapidOCRError":
                raise
            out.append([])
            continue
        if engine.use_cls:
            lines, _ = engine.cls_and_rotate(lines)
        out.append(list(lines))
    return out


def compare(engine: Any, per_crop: list[list], repeats: int) -> dict[str, Any]:
    """Recogniser time per crop against one call over all lines, and what changes."""
    every = [ln for lines in per_crop for ln in lines]
    sep_t, one_t = [], []
    sep_res = one_res = None
    for r in range(repeats):
        for way in ((0, 1) if r % 2 == 0 else (1, 0)):
            t = time.perf_counter()
            if way == 0:
                sep_res = [engine.recognize_txt(lines) for lines in per_crop if lines]
                sep_t.append(time.perf_counter() - t)
            else:
                one_res = engine.recognize_txt(every)
                one_t.append(time.perf_counter() - t)
    sep_txt = [t for res in sep_res for t in res.txts]
    sep_sc = [float(s) for res in sep_res for s in res.scores]
    one_txt, one_sc = list(one_res.txts), [float(s) for s in one_res.scores]
    floor = engine.text_score
    return {"crops_with_text": sum(1 for lines in per_crop if lines), "lines": len(every),
            "per_crop_s": statistics.median(sep_t), "one_call_s": statistics.median(one_t),
            "texts_differ": sum(a != b for a, b in zip(sep_txt, one_txt)),
            "max_score_diff": max((abs(a - b) for a, b in zip(sep_sc, one_sc)), default=0.0),
            "cross_floor": sum((a >= floor) != (b >= floor) for a, b in zip(sep_sc, one_sc))}


def markdown(result: dict[str, Any]) -> str:
    lines = ["Recognition of the K crops' text lines: one recogniser call per crop (as the node runs) "
             "against one call over all lines; same line images, median of the repeats per frame.", "",
             "| size | frames | lines / frame | per crop (ms / frame) | one call (ms / frame) | ratio | "
             "texts differing | largest score change | lines crossing the floor |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in result["sizes"].items():
        lines.append(f"| {name} | {s['frames']} | {s['lines_per_frame']:.1f} | {1000 * s['per_crop_s']:.1f} | "
                     f"{1000 * s['one_call_s']:.1f} | {s['ratio']:.3f} | {s['texts_differ']} | "
                     f"{s['max_score_diff']:.2g} | {s['cross_floor']} |")
    lines += ["", f"Recogniser floor (`text_score`): {result['text_score']}. Ratio = one call / per crop, "
              "summed over the frames.", "", footer(result)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--frames", type=int, default=8, help="validation frames per size")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats of each way per frame (median)")
    p.add_argument("--out", default=str(RESULTS / "rec_across_crops"), help="output path without extension")
    args = p.parse_args(argv)
    sizes = parse_sizes(p, args.sizes)
    if args.frames < 1 or args.repeats < 1:
        p.error("--frames and --repeats must be at least 1")
    from tqdm import tqdm

    from active_o3_ros.backends.base import build_pipeline

    from frame_profile import node_config

    cfg = node_config([])
    pipeline = build_pipeline(cfg)
    engine = pipeline.task._engine
    load_before = load_average()
    result: dict[str, Any] = {"question": "recogniser time of the K crops' lines: per crop vs one call",
                              "command": command("rec_across_crops.py", argv), "text_score": engine.text_score,
                              "sizes": {}}
    try:
        for name in sizes:
            rows = []
            for scene in tqdm(val_scenes(SIZES[name], args.frames), total=args.frames, desc=name, unit="frame"):
                regions = pipeline.propose(scene.image, cfg.instruction).regions
                crops = pipeline.crop_images(scene.image, regions)
                per_crop = frame_lines(engine, crops)
                if any(per_crop):
                    rows.append(compare(engine, per_crop, args.repeats))
            if not rows:
                raise SystemExit(f"no frame of size {name} had text in its crops")
            sep, one = sum(r["per_crop_s"] for r in rows), sum(r["one_call_s"] for r in rows)
            result["sizes"][name] = {
                "frames": len(rows), "lines_per_frame": sum(r["lines"] for r in rows) / len(rows),
                "per_crop_s": sep / len(rows), "one_call_s": one / len(rows), "ratio": one / sep,
                "texts_differ": sum(r["texts_differ"] for r in rows),
                "max_score_diff": max(r["max_score_diff"] for r in rows),
                "cross_floor": sum(r["cross_floor"] for r in rows), "frames_detail": rows}
    finally:
        pipeline.close()
    result["machine"] = machine(load_before)
    print(markdown(result))
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
