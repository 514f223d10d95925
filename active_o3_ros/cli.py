"""``active-o3``: command-line door into the same pipeline the ROS node runs.

Subcommands live in :data:`SUBCOMMANDS` (name -> (add_arguments, run, help)), so this file
does not grow an if-ladder.  ``detect`` flags are generated from :data:`core.config.PARAMETERS`, the table
the node's parameters and YAML files also use, so names and checks agree everywhere.

Errors a user can fix (unreadable image, missing model directory, bad K, unknown backend)
print one line on stderr and exit with code 2 — no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

from active_o3_ros.core.config import PARAMETERS, ConfigError, PerceptionConfig

EXIT_USAGE = 2

#: Short aliases the issue's examples use, on top of the generated ``--<parameter>`` flags.
FLAG_ALIASES: dict[str, list[str]] = {
    "instruction": ["--target"],
    "sensing_backend": ["--sensing"],
    "task_module": ["--task"],
}


class UsageError(Exception):
    """A user-fixable problem: reported in one line, exit code 2."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_parameter_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :data:`PARAMETERS` entry; defaults are None so YAML/defaults apply."""
    group = parser.add_argument_group("pipeline parameters (same names as the ROS node's)")
    for p in PARAMETERS:
        opts = [_flag(p.name), *FLAG_ALIASES.get(p.name, [])]
        group.add_argument(*opts, dest=p.name, default=None, metavar=p.type.__name__.upper(),
                           help=f"{p.help()} (default: {p.default!r})")


def config_from_args(args: argparse.Namespace) -> PerceptionConfig:
    """YAML (``--config``) first, then flags on top; validated by :class:`PerceptionConfig`."""
    flags = {p.name: getattr(args, p.name) for p in PARAMETERS if getattr(args, p.name, None) is not None}
    explicit = set(flags)
    if getattr(args, "config", None):
        import yaml

        path = Path(args.config)
        cfg = PerceptionConfig.from_yaml(path, flags)
        try:
            explicit |= set(yaml.safe_load(path.read_text()) or {})
        except (yaml.YAMLError, AttributeError, TypeError):
            pass
    else:
        cfg = PerceptionConfig.from_flat(flags)
    # `active-o3 detect IMG --model DIR`: a model directory alone means Qwen2.5-VL in both roles
    if cfg.backend.model and not ({"sensing_backend", "task_module"} & explicit):
        flat = cfg.to_flat()
        flat.update(sensing_backend="qwen_vl", task_module="qwen_vl")
        cfg = PerceptionConfig.from_flat(flat)
    return cfg


def read_image(path: str):
    """RGB uint8 array from an image file; UsageError when missing or unreadable."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"image not found: {path}")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise UsageError(f"cannot read image {path}: not an image format OpenCV can decode")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# -- detect ----------------------------------------------------------------------------------
def _detect_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="image file (PNG, JPEG, ...)")
    parser.add_argument("--config", help="YAML of parameters (flat, or the node's ros__parameters file)")
    parser.add_argument("--output", "-o", help="write the annotated image (regions + detections) here")
    parser.add_argument("--json", dest="json_out", help="also write the JSON result to this file")
    add_parameter_flags(parser)


def _detect(args: argparse.Namespace) -> int:
    from active_o3_ros.backends.base import build_pipeline

    cfg = config_from_args(args)
    frame = read_image(args.image)
    pipe = build_pipeline(cfg)
    try:
        result = pipe(frame, cfg.instruction)
    finally:
        pipe.close()
    out: dict[str, Any] = {"image": str(args.image), "sensing_backend": cfg.backend.sensing,
                           "task_module": cfg.backend.task, **result.to_json()}
    if args.output:
        from active_o3_ros.draw import draw_result, save_rgb

        save_rgb(args.output, draw_result(frame, result))
        out["annotated_image"] = str(args.output)
    text = json.dumps(out, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)
    return 0


# -- backends --------------------------------------------------------------------------------
def _backends_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true",
                        help="import each backend to tell which are usable in this environment")


def _backends(args: argparse.Namespace) -> int:
    from active_o3_ros.backends import base

    listing: dict[str, Any] = base.available_backends()
    if args.check:
        usable: dict[str, dict[str, str]] = {}
        for kind, table in (("sensing", base._SENSING), ("task", base._TASK)):
            usable[kind] = {}
            for name in sorted(table):
                try:
                    base._resolve(table, kind, name)
                    usable[kind][name] = "ok"
                except Exception as exc:  # report, never crash: this is a diagnostic
                    usable[kind][name] = f"unusable: {exc}"
        listing["usable"] = usable
    print(json.dumps(listing, indent=2))
    return 0


SubcommandSetup = Callable[[argparse.ArgumentParser], None]
SubcommandRun = Callable[[argparse.Namespace], int]
SUBCOMMANDS: dict[str, tuple[SubcommandSetup, SubcommandRun, str]] = {
    "detect": (_detect_args, _detect, "run sensing -> zoom -> detect on one image and print JSON"),
    "backends": (_backends_args, _backends, "list the registered sensing and task backends"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="active-o3", description="ACTIVE-o3 active perception: a sensing "
                                     "policy picks up to K zoom regions, a task model detects in all crops "
                                     "in one batched call.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (setup, run, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        setup(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (UsageError, ConfigError, ValueError, RuntimeError, OSError) as exc:
        print(f"active-o3 {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
