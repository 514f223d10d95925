"""Where a node frame's time goes, at 720p, 1080p and 4K.

Question: of the embedded default's frame latency, how much is image decoding, thumbnail,
sensing, cropping, the detector's stages (det / cls / rec, as RapidOCR times them), merging,
building the output messages and publishing them?

Each frame is a validation scene (``active_o3_training.data.scenes``, set ``val``) drawn at
the given resolution, wrapped in a real ``sensor_msgs/Image`` and run through the node's own
:class:`~active_o3_ros.ros.frames.FrameProcessor`; the detections and regions are published
on a real rclpy publisher (loopback discovery, random domain).  ``--set`` applies node
parameters, so a candidate setting is profiled exactly as the node would run it.

    python benchmarks/frame_profile.py --help
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, SIZES, command, footer, load_average, machine, val_scenes, write_outputs  # noqa: E402

STAGES = ["decode_s", "preprocess_s", "sensing_s", "crop_s", "det_s", "cls_s", "rec_s", "task_other_s",
          "merge_s", "messages_s", "publish_s"]


def node_config(overrides: list[str]):
    """The node's defaults from ``config/perceive.yaml`` with ``name:=value`` overrides."""
    import yaml

    from active_o3_ros.core.config import PerceptionConfig

    flat: dict[str, Any] = {}
    for item in overrides:
        name, sep, value = item.partition(":=")
        if not sep:
            raise SystemExit(f"--set wants name:=value, got {item!r}")
        flat[name.strip()] = yaml.safe_load(value)
    return PerceptionConfig.from_yaml(ROOT / "config" / "perceive.yaml", flat)


def profile(size: tuple[int, int], frames: int, processor, pubs, instruction: str) -> dict[str, Any]:
    from active_o3_ros.ros.images import rgb_to_image

    per: list[dict[str, float]] = []
    for scene in val_scenes(size, frames):
        msg = rgb_to_image(scene.image)
        t0 = time.perf_counter()
        outcome = processor.process(msg, instruction)
        if outcome.outputs is None:
            raise SystemExit(f"frame {scene.seed} was {outcome.kind}: {outcome.error}")
        t_pub = time.perf_counter()
        pubs[0].publish(outcome.outputs.detections)
        pubs[1].publish(outcome.outputs.regions)
        publish_s = time.perf_counter() - t_pub
        wall = time.perf_counter() - t0
        res = outcome.outputs.result
        cost = res.extra.get("task_cost", {})
        row = {**res.timings.as_dict(), **outcome.outputs.door_s, "publish_s": publish_s, "wall_s": wall,
               "det_s": cost.get("det_s", 0.0), "cls_s": cost.get("cls_s", 0.0), "rec_s": cost.get("rec_s", 0.0),
               "det_megapixels": cost.get("det_megapixels", 0.0), "crops": float(len(res.task_statuses))}
        row["task_other_s"] = max(row["task_s"] - row["det_s"] - row["cls_s"] - row["rec_s"], 0.0)
        per.append(row)
    keys = per[0].keys()
    return {"frames": len(per),
            "median": {k: round(float(np.median([p[k] for p in per])), 4) for k in keys},
            "mean": {k: round(float(np.mean([p[k] for p in per])), 4) for k in keys}}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Node parameters: `{result['overrides'] or 'config/perceive.yaml defaults'}`", "",
             "| stage (median ms) | " + " | ".join(result["sizes"]) + " |",
             "|---|" + "---:|" * len(result["sizes"])]
    for st in [*STAGES, "wall_s"]:
        name = "**frame (wall)**" if st == "wall_s" else st[:-2]
        lines.append(f"| {name} | " + " | ".join(f"{1000 * r['median'][st]:.1f}" for r in result["sizes"].values())
                     + " |")
    lines.append("| crops | " + " | ".join(f"{r['median']['crops']:.0f}" for r in result["sizes"].values()) + " |")
    lines.append("| detector MP | " + " | ".join(f"{r['median']['det_megapixels']:.2f}"
                                                for r in result["sizes"].values()) + " |")
    lines += ["", footer(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    p.add_argument("--frames", type=int, default=8, help="validation frames per size")
    p.add_argument("--set", action="append", default=[], metavar="NAME:=VALUE",
                   help="node parameter override, e.g. --set crop_size:=640 (repeatable)")
    p.add_argument("--out", default=str(RESULTS / "frame_profile"), help="output path without extension")
    args = p.parse_args(argv)
    for s in args.sizes.split(","):
        if s not in SIZES:
            p.error(f"unknown size {s!r}; choose from {', '.join(SIZES)}")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_DOMAIN_ID"] = str(random.Random().randint(1, 101))
    import rclpy

    from active_o3_ros import msg as m
    from active_o3_ros.backends.base import build_pipeline
    from active_o3_ros.ros import convert
    from active_o3_ros.ros.frames import FrameProcessor

    cfg = node_config(args.set)
    pipeline = build_pipeline(cfg)
    processor = FrameProcessor(pipeline, convert.rclpy_types())
    load_before = load_average()
    rclpy.init()
    node = rclpy.create_node("frame_profile")
    try:
        pubs = (node.create_publisher(m.DetectionArray, "/active_o3/detections", 10),
                node.create_publisher(m.ZoomRegionArray, "/active_o3/regions", 10))
        pipeline(np.zeros((64, 64, 3), np.uint8), cfg.instruction)  # warm-up
        result: dict[str, Any] = {
            "question": "per-stage time of one node frame (FrameProcessor + rclpy publish), embedded default",
            "command": command("frame_profile.py", argv),
            "overrides": args.set, "sizes": {}}
        for name in args.sizes.split(","):
            result["sizes"][name] = profile(SIZES[name], args.frames, processor, pubs, cfg.instruction)
            med = result["sizes"][name]["median"]
            print(f"{name}: wall {med['wall_s']:.2f} s (det {med['det_s']:.2f}, rec {med['rec_s']:.2f}, "
                  f"sensing {med['sensing_s']:.3f})", flush=True)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        pipeline.close()
    result["machine"] = machine(load_before)
    print(markdown(result))
    write_outputs(args.out, result, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
