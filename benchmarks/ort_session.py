"""onnxruntime session settings for the node's text detector and recogniser, side by side.

Question (the performance issue's "onnxruntime session settings (graph optimisation,
threads, memory arena)"): RapidOCR builds its sessions with full graph optimisation, the
CPU memory arena off, and onnxruntime's default thread pool. Does another layout make the
node's task stage faster on this machine, and does it change any detection?

Each frame is a validation scene (set ``val``) at the given size. The node's own pipeline
(``config/perceive.yaml`` defaults) proposes its K regions and cuts its crops once; its text
module is built with RapidOCR's own session settings, the reference row. For each
variant, the detector's and recogniser's sessions are rebuilt from the same model files
with that variant's ``SessionOptions``, and the node's ``text`` module runs on the same
crops, ``--repeats`` times per frame in rotating order (median per frame). Every variant's
detections are compared with RapidOCR's own sessions (boxes, texts, scores). All variants
live in one process, so a pool that spin-waits after its run also slows the variant after
it: read the ratios as a screen, and time a chosen setting on whole node frames, one process
per setting (``frame_profile.py --set task_options:=...``).

    python benchmarks/ort_session.py --help
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

#: name -> :func:`active_o3_ros.backends.ort_sessions.session_options` changes against
#: RapidOCR's own sessions ("arena": the CPU memory arena; "spin": the intra-op pool's
#: spin-wait, on in onnxruntime by default; "threads" / "inter_threads": pool sizes; "parallel":
#: the parallel executor).
VARIANTS: dict[str, dict[str, Any]] = {
    "rapidocr": {},
    "arena": {"arena": True},
    "no spin": {"spin": False},
    "arena + no spin": {"arena": True, "spin": False},  # the node's default since this run
    "1 thread": {"threads": 1},
    "parallel executor": {"parallel": True, "inter_threads": 2},
}


def engine_sessions(engine: Any) -> list[Any]:
    """RapidOCR's loaded session wrappers (detector, classifier where used, recogniser)."""
    return [getattr(engine, part).session for part in ("text_det", "text_cls", "text_rec")
            if getattr(engine, part, None) is not None]


def build_variant(originals: list[Any], change: dict[str, Any]) -> list[Any]:
    """Sessions of the same model files with the variant's options (the originals when
    ``change`` is empty)."""
    from active_o3_ros.backends.ort_sessions import rebuilt

    return [rebuilt(o, **change) for o in originals] if change else list(originals)


def detections(outs: list) -> list[tuple]:
    return [(tuple(round(v, 2) for v in d.box.as_list()), d.label, round(float(d.score), 4))
            for o in outs for d in o.detections]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--frames", type=int, default=6, help="validation frames per size")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of each variant per frame (median)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--out", default=str(RESULTS / "ort_session"), help="output path without extension")
    args = p.parse_args(argv)
    sizes = parse_sizes(p, args.sizes)
    names = list(dict.fromkeys(v.strip() for v in args.variants.split(",") if v.strip()))
    if any(n not in VARIANTS for n in names) or not names:
        p.error(f"--variants takes names of: {', '.join(VARIANTS)}; got {args.variants!r}")
    if "rapidocr" not in names:
        names.insert(0, "rapidocr")  # the reference every variant is compared with
    if args.frames < 1 or args.repeats < 1:
        p.error("--frames and --repeats must be at least 1")
    from tqdm import tqdm

    from active_o3_ros.backends.base import build_pipeline

    from frame_profile import node_config

    # The reference is RapidOCR's own sessions (the node's defaults differ: arena on, spin-wait off).
    cfg = node_config(['task_options:={"mem_arena": false, "spin_wait": true}'])
    pipeline = build_pipeline(cfg)
    task = pipeline.task
    load_before = load_average()
    result: dict[str, Any] = {"question": "the node's text task time under other onnxruntime session settings",
                              "command": command("ort_session.py", argv), "variants": {n: VARIANTS[n] for n in names},
                              "sizes": {}}
    wrappers: list[Any] = []
    originals: list[Any] = []
    try:
        frames: dict[str, list[list]] = {}
        for name in sizes:
            frames[name] = []
            for scene in tqdm(val_scenes(SIZES[name], args.frames), total=args.frames, desc=f"crops {name}", unit="frame"):
                regions = pipeline.propose(scene.image, cfg.instruction).regions
                frames[name].append(pipeline.crop_images(scene.image, regions))
        first = next(c for fs in frames.values() for c in fs if c)
        task.detect(first[:1], [cfg.instruction])  # RapidOCR loads its sessions on first use
        wrappers[:] = engine_sessions(task._engine)
        originals[:] = [w.session for w in wrappers]
        sessions = {n: build_variant(originals, VARIANTS[n]) for n in names}
        result["models"] = [Path(o._model_path).name for o in originals]

        def run(n: str, crops: list) -> tuple[float, list]:
            for w, s in zip(wrappers, sessions[n]):
                w.session = s
            t = time.perf_counter()
            outs = task.detect(crops, [cfg.instruction] * len(crops))
            return time.perf_counter() - t, outs

        for name in sizes:
            per = {n: [] for n in names}
            differ = {n: 0 for n in names}
            for i, crops in enumerate(tqdm(frames[name], desc=name, unit="frame")):
                if not crops:
                    continue
                warm = {n: detections(run(n, crops)[1]) for n in names}  # first call at new input shapes
                for n in names:
                    differ[n] += int(warm[n] != warm["rapidocr"])
                times: dict[str, list[float]] = {n: [] for n in names}
                for r in range(args.repeats):
                    k = (i + r) % len(names)
                    for n in names[k:] + names[:k]:
                        times[n].append(run(n, crops)[0])
                for n in names:
                    per[n].append(statistics.median(times[n]))
            base = sum(per["rapidocr"])
            result["sizes"][name] = {n: {"task_s_per_frame": sum(per[n]) / max(1, len(per[n])),
                                         "over_rapidocr": sum(per[n]) / base if base else float("nan"),
                                         "frames_with_other_detections": differ[n]} for n in names}
            result["sizes"][name]["frames"] = len(per["rapidocr"])
    finally:
        for w, o in zip(wrappers, originals):
            w.session = o
        pipeline.close()
    result["machine"] = machine(load_before)
    print(markdown(result))
    write_outputs(args.out, result, markdown)
    return 0


def markdown(result: dict[str, Any]) -> str:
    names = list(result["variants"])
    sizes = list(result["sizes"])
    lines = ["The node's text task (detector + recogniser on its K crops) under onnxruntime session settings; "
             "same crops, rotating order, median of the repeats per frame. Each cell: ms per frame "
             "(ratio to RapidOCR's own sessions) [frames whose detections differ].", "",
             "| variant | " + " | ".join(f"{s} ({result['sizes'][s]['frames']} frames)" for s in sizes) + " |",
             "|---|" + "---:|" * len(sizes)]
    for n in names:
        cells = [f"{1000 * result['sizes'][s][n]['task_s_per_frame']:.0f} ({result['sizes'][s][n]['over_rapidocr']:.3f}) "
                 f"[{result['sizes'][s][n]['frames_with_other_detections']}]" for s in sizes]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Variants (changes to RapidOCR's SessionOptions): "
              + "; ".join(f"{n}: {v or 'as built'}" for n, v in result["variants"].items()),
              f"Models: {', '.join(result.get('models', []))}",
              "All variants run in one process: a pool that spin-waits after its run also slows the variant "
              "after it. Whole node frames, one process per setting: `frame_profile.py --set task_options:=...`.",
              "", footer(result)]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
