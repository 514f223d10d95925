"""Plots for ``active-o3-eval`` reports: AP_s vs K, latency vs K, recall by object size,
and example frames with the zoom regions and detections drawn.

Why separate from evaluate.py: plots are a pure function of the report JSON (plus the
raw runs for the example images), so they can be re-made from a saved ``eval.json``
(``python -m active_o3_training.plots eval.json``) without re-running any model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Consistent colours/markers per evaluation method across every figure.
STYLE = {
    "full_frame": ("tab:gray", "s"), "tiling": ("tab:brown", "D"), "random": ("tab:orange", "v"),
    "oracle": ("tab:green", "*"), "serial": ("tab:purple", "^"), "parallel": ("tab:blue", "o"),
    "parallel_full": ("tab:cyan", "P"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless: CI and robots have no display
    import matplotlib.pyplot as plt

    return plt


def _by_method(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    return out


def _vs_k(rows: Sequence[dict[str, Any]], key: str, ylabel: str, title: str, path: Path, scale: float) -> str:
    """One line per K-dependent method; K-independent methods (full frame, tiling) are
    horizontal reference lines so the budget comparison stays visible."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ks = sorted({r["k"] for r in rows if r["k"] is not None}) or [1]
    for method, rs in _by_method(rows).items():
        colour, marker = STYLE.get(method, ("black", "x"))
        vals = [(r["k"], r[key]) for r in rs if r.get(key) is not None and r[key] >= 0]
        if not vals:
            continue
        if rs[0]["k"] is None:
            ax.axhline(vals[0][1] * scale, color=colour, ls="--", lw=1.2, label=method)
        else:
            vals.sort()
            ax.plot([v[0] for v in vals], [v[1] * scale for v in vals], color=colour, marker=marker, label=method)
    ax.set_xticks(ks)
    ax.set_xlabel("K (zoom regions per frame)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _recall_by_size(rows: Sequence[dict[str, Any]], path: Path) -> str:
    """Grouped bars AR_s/AR_m/AR_l per run (the biggest K of each method): where small
    objects are lost shows up directly."""
    plt = _plt()
    chosen: dict[str, dict[str, Any]] = {}
    for r in rows:
        prev = chosen.get(r["method"])
        if prev is None or (r["k"] or 0) >= (prev["k"] or 0):
            chosen[r["method"]] = r
    sizes = [("AR_s", "small"), ("AR_m", "medium"), ("AR_l", "large")]
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    width = 0.8 / max(len(chosen), 1)
    x = np.arange(len(sizes))
    for i, (method, r) in enumerate(chosen.items()):
        vals = [max(r.get(k, -1.0), 0.0) * 100 for k, _ in sizes]
        label = method + (f" K={r['k']}" if r["k"] is not None else "")
        ax.bar(x + i * width - 0.4 + width / 2, vals, width, color=STYLE.get(method, ("black", ""))[0], label=label)
    ax.set_xticks(x, [s for _, s in sizes])
    ax.set_ylabel("recall (AR, %)")
    ax.set_title("Recall by object size (COCO ranges)")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def plot_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, str]:
    """AP_s vs K, latency vs K and recall-by-size PNGs; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = report["rows"]
    ap_key = "AP_s" if any(r.get("AP_s", -1) >= 0 for r in rows) else "AP"
    return {
        "plot_ap_s_vs_k": _vs_k(rows, ap_key, f"{ap_key} (%)", f"{ap_key} vs K", out / "ap_s_vs_k.png", 100.0),
        "plot_latency_vs_k": _vs_k(rows, "latency_ms_mean", "ms / image", "Latency vs K", out / "latency_vs_k.png", 1.0),
        "plot_recall_by_size": _recall_by_size(rows, out / "recall_by_size.png"),
    }


def draw_result(frame: np.ndarray, result: Any, gt_boxes: Sequence[Any] = ()) -> np.ndarray:
    """RGB copy of ``frame`` with ground truth (thin white) under the package's own drawing
    of zoom regions and detections (:mod:`active_o3_ros.draw`, as the CLI and node draw)."""
    import cv2

    from active_o3_ros.draw import draw_annotations

    img = np.ascontiguousarray(frame.copy())
    t = max(1, round(max(img.shape[:2]) / 1000))
    for b in gt_boxes:
        cv2.rectangle(img, (int(b.x1), int(b.y1)), (int(round(b.x2)), int(round(b.y2))), (255, 255, 255), t)
    return draw_annotations(img, result.regions, result.detections, show_scores=False)


def plot_examples(runs: Sequence[Any], samples: Sequence[Any], out_dir: str | Path, n: int = 3) -> dict[str, str]:
    """For the first ``n`` images: one PNG with a panel per method (largest K), so the same
    frame's regions and detections can be compared side by side."""
    if n <= 0 or not runs:
        return {}
    plt = _plt()
    out = Path(out_dir)
    chosen: dict[str, Any] = {}
    for run in runs:
        prev = chosen.get(run.method)
        if prev is None or (run.k or 0) >= (prev.k or 0):
            chosen[run.method] = run
    paths = {}
    for i, s in enumerate(samples[:n]):
        frame = s.load()
        cols = min(len(chosen), 4)
        rows = (len(chosen) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, (method, run) in zip(axes.flat, chosen.items()):
            res = run.results[i]
            ax.imshow(draw_result(frame, res, s.gt.boxes))
            ax.set_title(f"{method}" + (f" K={run.k}" if run.k else "") +
                         f": {len(res.detections)} det, {res.timings.total_s * 1000:.0f} ms", fontsize=8)
        fig.suptitle(f"{s.file_name} — white: ground truth, yellow: zoom regions, coloured: detections", fontsize=9)
        fig.tight_layout()
        p = out / f"example_{i}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        paths[f"example_{i}"] = str(p)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="active-o3-plots", description="Re-draw the K and size plots from an eval.json.")
    ap.add_argument("report", help="eval.json written by active-o3-eval")
    ap.add_argument("--out", help="output folder (default: the report's folder)")
    args = ap.parse_args(argv)
    path = Path(args.report)
    if not path.is_file():
        print(f"active-o3-plots: error: {path} not found", file=sys.stderr)
        return 2
    try:
        report = json.loads(path.read_text())
        written = plot_report(report, args.out or path.parent)
    except (ValueError, KeyError) as exc:
        print(f"active-o3-plots: error: {path} is not an eval report: {exc}", file=sys.stderr)
        return 2
    print("\n".join(written.values()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
