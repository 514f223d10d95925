"""What the benchmark scripts share: import paths, the machine record, the output files, the
recall-vs-cost scatter.  Not a benchmark itself (``run_all`` skips ``_``-prefixed modules).

Importing it makes a plain checkout work without ``pip install``: the repository root goes on
``sys.path`` and ``training/`` is importable as ``active_o3_training`` (its installed name).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:  # run from a checkout without install
    sys.path.insert(0, str(ROOT))
try:
    import active_o3_training  # noqa: F401
except ImportError:  # pragma: no cover - checkout without pip install
    import importlib

    sys.modules["active_o3_training"] = importlib.import_module("training")


#: The frame sizes the latency benchmarks profile (``--sizes`` names).
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4K": (3840, 2160)}
#: Names of the scene generator's frame sizes by their short side, smallest first.
FRAME_SIZE_NAMES = {720: "720p", 1080: "1080p", 1440: "1440p", 2160: "4K"}


def size_name(width: int, height: int) -> str:
    """``720p`` ... ``4K`` for the generator's 16:9 landscape frame sizes, else ``WxH`` (a 4:3
    frame 1440 px tall is not "1440p", nor a portrait 1080x1920 frame "1080p")."""
    name = FRAME_SIZE_NAMES.get(height)
    return name if name and abs(width / height - 16 / 9) < 0.02 else f"{width}x{height}"


def parse_sizes(parser: Any, spec: str) -> list[str]:
    """``--sizes`` as a list of :data:`SIZES` names (comma-separated, blanks ignored); an
    unknown name is a usage error (exit 2) through ``parser.error``."""
    sizes = [s.strip() for s in spec.split(",") if s.strip()]
    for s in sizes:
        if s not in SIZES:
            parser.error(f"unknown size {s!r}; choose from {', '.join(SIZES)}")
    return sizes


def val_scenes(size: tuple[int, int], frames: int):
    """The first ``frames`` validation scenes (set ``val``) drawn at ``size`` (width, height)."""
    yield from scenes_at("val", (size,), frames)


def scenes_at(set_name: str, frame_sizes: tuple[tuple[int, int], ...], frames: int | None = None,
              every_size: bool = False):
    """The first ``frames`` (None: all) scenes of a frozen set, same seeds and families, drawn
    at ``frame_sizes`` (each scene picks one, as the generator picks among its own; with
    ``every_size`` each scene is drawn once at every size, so sizes compare on the same seeds)."""
    from dataclasses import replace

    from active_o3_training.data import scenes

    base = scenes.set_config(set_name)
    cfgs = [replace(base, frame_sizes=(fs,)) for fs in frame_sizes] if every_size else \
        [replace(base, frame_sizes=tuple(frame_sizes))]
    for seed in scenes.frozen_seeds(set_name)[:frames]:
        for cfg in cfgs:
            yield scenes.render_scene(seed, cfg)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine(load_before: list[float]) -> dict[str, Any]:
    """CPU count, platform and the load average before/after (contended runs stay visible)."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_before": load_before, "load_after": load_average()}


def command(script: str, argv: list[str] | None) -> str:
    """The command line that reproduces this run (repo-relative script path)."""
    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{script} {shlex.join(args)}".strip()


def write_outputs(out: str | Path, result: dict[str, Any], markdown: Callable[[dict[str, Any]], str],
                  plot: Callable[[dict[str, Any], Path], None] | None = None) -> Path:
    """``<out>.json``, ``<out>.md`` and (with ``plot``) ``<out>.png``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown(result))
    if plot is not None:
        plot(result, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')}, .md" + (", .png" if plot is not None else ""))
    return out


def recall_scatter(ax: Any, rows: dict[str, dict[str, Any]], key: str, xlabel: str, title: str,
                   log_x: bool = False) -> None:
    """One point per row: recall@0.5 with its 95 % interval against ``rows[...][key]``."""
    for name, r in rows.items():
        y = r["recall@0.5"]
        x = max(r[key], 1e-3) if log_x else r[key]
        if "recall_ci95" in r:
            lo, hi = r["recall_ci95"]
            ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="s" if "SAHI" in name else "o", ms=5, capsize=3)
        else:
            ax.plot(x, y, "o", ms=6)
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall @ IoU 0.5" + (" (95% CI)" if any("recall_ci95" in r for r in rows.values()) else ""))
    ax.set_title(title)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both" if log_x else "major")


def footer(result: dict[str, Any]) -> str:
    """The markdown's last line: the machine's load and the command that reproduces the table."""
    m = result["machine"]
    return (f"Machine: {m['cpus']} CPUs, load average {m['load_before']} before / {m['load_after']} after.  "
            f"Reproduce: `{result['command']}`")


def ratios_line(ratios: dict[str, Any]) -> str:
    """``Ratios: name value, ...`` of the ratios this run could measure (rows it ran)."""
    shown = [f"{k} {v}" for k, v in ratios.items() if v is not None]
    return "Ratios: " + (", ".join(shown) if shown else "none (their rows were not run)")


def recall_cell(r: dict[str, Any]) -> str:
    """A table cell: recall@0.5 with its 95 % interval."""
    lo, hi = r["recall_ci95"]
    return f"{r['recall@0.5']:.3f} [{lo:.2f}, {hi:.2f}]"
