"""``active-o3-train``: train the sensing policy and move data between bags and COCO.

  active-o3-train policy --config training/configs/policy_robot.yaml --set data.bag=REC ...  (small CPU policy)
  active-o3-train label REC -o LABELS      (offline teacher: labels for an unlabelled bag)
  active-o3-train grpo --config training/configs/cpu_smoke.yaml --set trainer.max_steps=5  (MLLM)
  active-o3-train export-bag BAG OUT_DIR   [--camera-topic ... --labels-topic ...]
  active-o3-train import-coco ANN.json IMAGE_DIR OUT_BAG [--storage mcap|sqlite3]
  active-o3-train dataset --config ...     (build the dataset only and print a summary)

Errors in configs or inputs print one clear line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Sequence

from active_o3_training import config as tcfg


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="active-o3-train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in (("grpo", "GRPO-train the MLLM sensing policy with TRL"),
                        ("dataset", "build the configured dataset and print a summary")):
        g = sub.add_parser(name, help=help_, formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="config keys (section.key = default):\n" + tcfg.describe())
        g.add_argument("--config", help="YAML recipe (see training/configs/)")
        g.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override one key (repeatable), e.g. --set trainer.learning_rate=1e-5")
    from active_o3_training import policy_train

    policy_train.add_parser(sub)
    sub.add_parser("label", help="label an unlabelled bag with the offline teacher (see `label --help`)",
                   add_help=False)
    e = sub.add_parser("export-bag", help="bag (camera + DetectionArray labels) -> COCO JSON + PNG images")
    e.add_argument("bag")
    e.add_argument("out_dir")
    e.add_argument("--camera-topic", default="/camera/image_raw")
    e.add_argument("--labels-topic", default="/active_o3/detections")
    e.add_argument("--tolerance", type=float, default=0.02, help="stamp pairing tolerance, seconds")
    e.add_argument("--min-interval", type=float, default=0.0, help="keep at most one frame per this many seconds")
    e.add_argument("--dedup", type=float, default=0.0, help="skip near-duplicate frames (mean abs diff, 0-255)")
    i = sub.add_parser("import-coco", help="COCO JSON + images -> bag (Image + DetectionArray, same stamps)")
    i.add_argument("ann_file")
    i.add_argument("image_dir")
    i.add_argument("out_bag")
    i.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    i.add_argument("--fps", type=float, default=10.0, help="stamps for images without stamp_ns")
    i.add_argument("--camera-topic", default="/camera/image_raw")
    i.add_argument("--labels-topic", default="/active_o3/detections")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv_list = list(sys.argv[1:] if argv is None else argv)
    if argv_list[:1] == ["label"]:  # the teacher has its own parser (also `python -m active_o3_training.teacher`)
        from active_o3_training import teacher

        return teacher.main(argv_list[1:])
    args = _parser().parse_args(argv_list)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "policy":
            from active_o3_training import policy_train

            return policy_train.main_policy(args, argv_list)
        if args.command in ("grpo", "dataset"):
            cfg = tcfg.load_config(args.config, args.set)
            from active_o3_training import grpo_mllm

            if args.command == "dataset":
                ds = grpo_mllm.build_dataset(cfg)
                n_gt = sum(len(g) for g in ds["gt_boxes"])
                print(json.dumps({"samples": len(ds), "gt_boxes": n_gt, "columns": ds.column_names}))
                return 0
            out = grpo_mllm.train(cfg)
            print(f"policy saved to {out}  (load with: active-o3 detect IMAGE --model {out})")
            return 0
        from active_o3_training.data import rosbag

        if args.command == "export-bag":
            bcfg = rosbag.BagDatasetConfig(camera_topic=args.camera_topic, labels_topic=args.labels_topic,
                                           tolerance_s=args.tolerance, min_interval_s=args.min_interval,
                                           dedup_threshold=args.dedup)
            path, rep = rosbag.bag_to_coco(args.bag, args.out_dir, bcfg)
            print(f"{path}: {rep.summary()}")
            return 0
        if args.command == "import-coco":
            n = rosbag.coco_to_bag(args.ann_file, args.image_dir, args.out_bag, args.camera_topic,
                                   args.labels_topic, args.storage, args.fps)
            print(f"{args.out_bag}: {n} frames written")
            return 0
    except (tcfg.ConfigError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        print(f"active-o3-train: error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
