"""Choose the small policy's ``windows_above`` on validation frames of off-aspect cameras.

Question: from which frame size on should a frame that is not 16:9 (a 4:3 or portrait
camera) be read as overlapping 16:9 windows instead of one letterboxed image?

Input: a ``sensing_domains.py`` result drawn with ``--frame-sizes ... --every-size`` (every
validation seed at every size) that has the letterboxed policy row and a row with windows at
every off-aspect size (``--compare-sensing 'windows={"windows_above": 1}'``).  A candidate
threshold T reads a size as windows where its letterbox canvas is wider than T px, else
letterboxed, so each candidate's recall and seconds per frame are sums over the by-size
figures of the two rows: nothing is rerun.  The rule is given on the command line and
printed with the result; validation sets only (the result file says which sets it drew).

    python benchmarks/choose_windows.py --help
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:  # imported from outside benchmarks/
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, command, footer, load_average, machine, write_outputs  # noqa: E402


def canvas_width(name: str, aspect: float = 16 / 9) -> int:
    """Width in pixels of the letterbox canvas of a ``WxH`` frame size (its own width when 16:9)."""
    from active_o3_ros.backends.small_policy import letterbox_window

    w, _, h = name.partition("x")
    px = letterbox_window(int(w), int(h), aspect)
    return int(w) if px is None else px[2]


def candidate(rows: dict[str, Any], base: str, windows: str, threshold: int) -> dict[str, Any]:
    """Pooled recall and seconds per frame of reading sizes whose canvas is wider than
    ``threshold`` (0: none) with the ``windows`` row's figures, the others with ``base``'s."""
    found = words = frames = secs = sensing = 0.0
    used = []
    for size, b in rows[base]["by_frame_size"].items():
        win = bool(threshold) and canvas_width(size) > threshold
        r = rows[windows]["by_frame_size"][size] if win else b
        used += [size] if win else []
        found += r["recall@0.5"] * r["words"]
        words += r["words"]
        frames += r["frames"]
        secs += r["seconds_per_frame"] * r["frames"]
        sensing += r["sensing_seconds_per_frame"] * r["frames"]
    return {"windows_at": used, "recall@0.5": round(found / max(words, 1.0), 4), "words": int(words),
            "seconds_per_frame": round(secs / max(frames, 1.0), 3),
            "sensing_seconds_per_frame": round(sensing / max(frames, 1.0), 4)}


def choose(result: dict[str, Any], base: str, windows: str, thresholds: list[int], decide_on: str, check_on: str,
           min_gain: float) -> dict[str, Any]:
    sets = {name: {str(t): candidate(s["rows"], base, windows, t) for t in [0, *thresholds]}
            for name, s in result["sets"].items()}
    dec = sets[decide_on]
    best = max(thresholds, key=lambda t: (dec[str(t)]["recall@0.5"], -t))  # ties: the larger threshold wins
    gain = dec[str(best)]["recall@0.5"] - dec["0"]["recall@0.5"]
    held = sets[check_on][str(best)]["recall@0.5"] - sets[check_on]["0"]["recall@0.5"] if check_on in sets else None
    adopted = gain >= min_gain - 1e-9 and (held is None or held >= -1e-9)
    return {"sets": sets, "best_threshold": best, "gain_on_" + decide_on: round(gain, 4),
            "change_on_" + check_on: None if held is None else round(held, 4),
            "adopted": adopted, "windows_above": best if adopted else 0}


def markdown(result: dict[str, Any]) -> str:
    c = result["choice"]
    lines = [f"Rule: {result['rule']}", ""]
    for name, cands in c["sets"].items():
        lines += [f"### {name}", "", "| windows_above | sizes read as windows | recall@0.5 | s/frame | sensing s/frame |",
                  "|---:|---|---:|---:|---:|"]
        for t, r in cands.items():
            lines.append(f"| {t} | {', '.join(r['windows_at']) or 'none'} | {r['recall@0.5']:.3f} | "
                         f"{r['seconds_per_frame']:.2f} | {r['sensing_seconds_per_frame']:.2f} |")
        lines.append("")
    gains = ", ".join(f"{k} {v:+.3f}" for k, v in c.items() if k.startswith(("gain_on_", "change_on_")) and v is not None)
    lines += [f"Best candidate {c['best_threshold']} ({gains}): "
              + (f"**adopted, windows_above = {c['windows_above']}**." if c["adopted"] else "**not adopted** (stays 0)."), "",
              footer(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("result", nargs="?", default=str(RESULTS / "windows_4x3_val.json"),
                   help="a sensing_domains.py JSON drawn with --frame-sizes ... --every-size (default: the 4:3 run)")
    p.add_argument("--base", default="policy K=3", help="the letterboxed policy row")
    p.add_argument("--windows", default="policy K=3, windows", help="the row with windows at every off-aspect size")
    p.add_argument("--thresholds", default="4000,3000,2000,1",
                   help="comma-separated candidate widths in px (0, never, is always the reference)")
    p.add_argument("--decide-on", default="val", help="the set that decides")
    p.add_argument("--check-on", default="val_held_out", help="a set where the choice must not lose recall")
    p.add_argument("--min-gain", type=float, default=0.02, help="recall the choice must gain on --decide-on")
    p.add_argument("--out", default=str(RESULTS / "windows_4x3_choice"), help="output path without extension")
    args = p.parse_args(argv)
    try:
        thresholds = [int(t) for t in args.thresholds.split(",") if t.strip()]
        if not thresholds or min(thresholds) < 1:
            raise ValueError
    except ValueError:
        p.error(f"--thresholds takes widths in px >= 1, got {args.thresholds!r}")
    path = Path(args.result)
    if not path.is_file():
        p.error(f"no such result file: {path}")
    res = json.loads(path.read_text())
    for name, s in res.get("sets", {}).items():
        if not name.startswith("val"):
            p.error(f"{path} holds set {name!r}: settings are chosen on validation sets only")
        if not s.get("every_size"):
            p.error(f"{path} was not drawn with --every-size (sizes must compare on the same seeds)")
        for row in (args.base, args.windows):
            if row not in s["rows"]:
                p.error(f"{path} has no row {row!r} in {name} (rows: {sorted(s['rows'])})")
            if not all("sensing_seconds_per_frame" in b for b in s["rows"][row]["by_frame_size"].values()):
                p.error(f"{path}: row {row!r} has no per-size timings (rerun sensing_domains.py)")
    if args.decide_on not in res["sets"]:
        p.error(f"--decide-on {args.decide_on!r} is not in {path}")
    load_before = load_average()
    rule = (f"the candidate with the highest recall on {args.decide_on} (pooled over the sizes) is adopted if it "
            f"gains at least {args.min_gain:g} over 0 (never) there and {args.check_on} does not fall")
    out = {"question": "from which letterbox canvas width should an off-aspect frame be read as 16:9 windows",
           "command": command("choose_windows.py", argv), "source": str(path.resolve().relative_to(Path.cwd().resolve()))
           if path.resolve().is_relative_to(Path.cwd().resolve()) else path.name,
           "rule": rule, "choice": choose(res, args.base, args.windows, thresholds, args.decide_on, args.check_on,
                                          args.min_gain)}
    out["machine"] = machine(load_before)
    write_outputs(args.out, out, markdown)
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
