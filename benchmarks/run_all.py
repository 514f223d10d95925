"""Run every benchmark in ``benchmarks/`` and summarise ``benchmarks/results/*.json``.

One command, so the README's numbers are reproducible::

    python benchmarks/run_all.py                 # run all, then write results/SUMMARY.md
    python benchmarks/run_all.py --quick         # pass --quick to scripts that accept it
    python benchmarks/run_all.py --only memory_soak,gpu_qwen7b
    python benchmarks/run_all.py --summary-only  # just rebuild SUMMARY.md from the JSON files

Why discovery instead of a fixed list: each engineer adds a script per question; a runner
that globs ``benchmarks/*.py`` cannot forget one.  Each script runs in its own process
(``sys.executable``, no shell) with a timeout, so one crash or hang is recorded in
``results/run_all.json`` and the others still run.  A script's own JSON is the source of
truth; SUMMARY.md renders every results file (tables for lists of rows, key/value tables
for scalars), newest run status included.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: Not benchmarks: this runner and helper modules.
EXCLUDE = {"run_all", "__init__"}


def discover(bench_dir: Path = HERE) -> list[Path]:
    """Benchmark scripts: ``*.py`` in ``bench_dir`` that are runnable (have a ``__main__``
    guard), excluding the runner and private helpers (``_name.py``)."""
    out = []
    for p in sorted(bench_dir.glob("*.py")):
        if p.stem in EXCLUDE or p.stem.startswith("_"):
            continue
        if "__main__" not in p.read_text(encoding="utf-8", errors="replace"):
            continue
        out.append(p)
    return out


def accepts(script: Path, flag: str) -> bool:
    """Whether the script defines ``flag`` (read from its source: cheaper than ``--help``,
    which would import torch in every script)."""
    return f'"{flag}"' in script.read_text(encoding="utf-8", errors="replace") or \
        f"'{flag}'" in script.read_text(encoding="utf-8", errors="replace")


def run_script(script: Path, extra: Sequence[str], timeout_s: float, log_dir: Path) -> dict[str, Any]:
    """Run one benchmark; returns its status record (never raises on the script's failure)."""
    cmd = [sys.executable, str(script), *extra]
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{script.stem}.log"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    t0 = time.perf_counter()
    try:
        with log.open("w") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout_s, env=env,
                                  cwd=str(HERE.parent))
        rc: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    wall = time.perf_counter() - t0
    tail = log.read_text(errors="replace").splitlines()[-8:] if log.is_file() else []
    status = "ok" if rc == 0 else ("timeout" if rc == "timeout" else "failed")
    return {"script": script.name, "command": " ".join(["python", f"benchmarks/{script.name}", *extra]),
            "status": status, "returncode": rc, "wall_s": round(wall, 2), "log": str(log.relative_to(HERE.parent))
            if log.is_relative_to(HERE.parent) else str(log), "tail": tail}


# -- summary -------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        a = abs(v)
        return f"{v:.3g}" if a and (a < 0.01 or a >= 1e5) else f"{v:.3f}".rstrip("0").rstrip(".")
    if v is None:
        return "—"
    s = str(v).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= 80 else s[:77] + "..."


def _flatten(d: dict[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and depth < 2:
            out.update(_flatten(v, key + ".", depth + 1))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[key] = v
    return out


def _rows_table(rows: list[dict[str, Any]], max_cols: int = 14) -> list[str]:
    flat = [_flatten(r) for r in rows]
    cols: list[str] = []
    for r in flat:
        for k in r:
            if k not in cols:
                cols.append(k)
    cols = cols[:max_cols]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
    for r in flat:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return lines


def render_result(name: str, data: Any, max_scalars: int = 40) -> list[str]:
    """Markdown for one results file: its lists of row dicts as tables, its scalars (up to
    two levels of nesting, dotted keys) as a key/value table."""
    lines = [f"### {name}", ""]
    if not isinstance(data, dict):
        data = {"value": data}
    scalars = _flatten({k: v for k, v in data.items() if not isinstance(v, list)})
    if scalars:
        items = list(scalars.items())
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in items[:max_scalars]]
        if len(items) > max_scalars:
            lines.append(f"| … | {len(items) - max_scalars} more keys in `{name}.json` |")
        lines.append("")
    for key, val in data.items():
        if isinstance(val, list) and val and all(isinstance(r, dict) for r in val) and len(val) <= 60:
            lines += [f"`{key}`:", ""] + _rows_table(val) + [""]
    return lines


def write_summary(results_dir: Path = RESULTS, runs: Sequence[dict[str, Any]] | None = None) -> Path:
    """SUMMARY.md from every ``*.json`` in ``results_dir`` (plus this run's statuses)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    status_file = results_dir / "run_all.json"
    if runs is None and status_file.is_file():
        try:
            runs = json.loads(status_file.read_text()).get("runs", [])
        except ValueError:
            runs = []
    lines = ["# Benchmark summary", "",
             f"Generated by `python benchmarks/run_all.py` on {_dt.datetime.now().isoformat(timespec='seconds')}. "
             "Every number below is read from the JSON file named in its heading; "
             "each script's docstring says what it measures and how.", ""]
    if runs:
        lines += ["## Last run", "", "| script | status | wall s | command |", "|---|---|---:|---|"]
        lines += [f"| {r['script']} | {r['status']} | {r['wall_s']} | `{r['command']}` |" for r in runs]
        lines.append("")
    lines += ["## Results", ""]
    for p in sorted(results_dir.glob("*.json")):
        if p.name == "run_all.json":
            continue
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            lines += [f"### {p.stem}", "", f"unreadable: {exc}", ""]
            continue
        lines += render_result(p.stem, data)
    out = results_dir / "SUMMARY.md"
    out.write_text("\n".join(lines) + "\n")
    return out


# -- README section ------------------------------------------------------------------------
README_BEGIN = "<!-- results:begin (generated by benchmarks/run_all.py --readme; edit the scripts, not this) -->"
README_END = "<!-- results:end -->"
#: Curated order; files not listed follow alphabetically.
README_ORDER = ("sensing_domains", "cost_curve", "choose_settings_v3", "choose_settings", "frame_profile", "eval_embedded", "embedded_default", "pipeline_calls", "task_modules", "ros_transport",
                "memory_soak", "gpu_qwen7b")


def _command_of(name: str, data: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    if isinstance(data.get("command"), str):
        return data["command"].strip()
    if f"{name}.py" in runs:
        return runs[f"{name}.py"]["command"]
    return f"python benchmarks/{name}.py"


def _section_eval(name: str, data: dict[str, Any], results_dir: Path, rel: str) -> list[str]:
    lines = []
    md = results_dir / name / "eval.md"
    if md.is_file():
        lines += [md.read_text().strip(), ""]
    if data.get("policy_methods_skipped"):
        lines += [f"Policy methods (serial, parallel) not in this run: {data['policy_methods_skipped']}", ""]
    if data.get("policy_weights_sha256"):
        lines += [f"Sensing policy weights: `active_o3_ros/data/small_policy.safetensors`, sha256 "
                  f"`{data['policy_weights_sha256'][:16]}…` (the numbers belong to these weights). Serial and "
                  "parallel rows see the same regions, so their accuracy is identical by construction; they "
                  "differ in model calls and time.", ""]
    if data.get("eval_command"):
        lines += [f"Equivalent evaluation command: `{data['eval_command']}`", ""]
    pngs = [f for f in ("ap_s_vs_k.png", "latency_vs_k.png", "recall_by_size.png") if (results_dir / name / f).is_file()]
    if pngs:
        lines += [" ".join(f"![{f[:-4]}]({rel}/{name}/{f})" for f in pngs), ""]
    if (results_dir / name / "example_0.png").is_file():
        lines += [f"![example frame: regions and detections per method]({rel}/{name}/example_0.png)", ""]
    return lines


def _section_soak(data: dict[str, Any]) -> list[str]:
    keys = ("sensing", "task", "frames", "frame_size", "rss_start_mib", "rss_middle_mib", "rss_end_mib",
            "rss_peak_mib", "slope_second_half_mib_per_100_frames", "flat", "mean_ms_per_frame", "note")
    return ["| key | value |", "|---|---|"] + [f"| {k} | {_cell(data[k])} |" for k in keys if k in data] + [""]


def readme_section(results_dir: Path = RESULTS, rel: str = "benchmarks/results") -> str:
    """The README's Results section body, built only from the results files."""
    runs = {}
    if (results_dir / "run_all.json").is_file():
        try:
            runs = {r["script"]: r for r in json.loads((results_dir / "run_all.json").read_text()).get("runs", [])}
        except ValueError:
            runs = {}
    files = {p.stem: p for p in results_dir.glob("*.json") if p.name != "run_all.json"}
    order = [n for n in README_ORDER if n in files] + sorted(set(files) - set(README_ORDER))
    lines = [README_BEGIN, "",
             "Every figure here is read from `benchmarks/results/*.json`, written by the scripts in `benchmarks/` "
             "(each script's docstring says what it measures). Reproduce all of it with "
             "`python benchmarks/run_all.py --readme docs/results.md` (`--quick` for a short run); "
             f"every file in full: [SUMMARY.md]({rel}/SUMMARY.md). Timings come from the shared 2-core CPU "
             "machine these were produced on unless a section names another device.", ""]
    for name in order:
        try:
            data = json.loads(files[name].read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            data = {"value": data}
        lines += [f"#### {name}", "", f"Command: `{_command_of(name, data, runs)}`", ""]
        if name == "eval_embedded":
            lines += _section_eval(name, data, results_dir, rel)
        elif name == "memory_soak":
            lines += _section_soak(data)
        elif data.get("skipped") is True:
            lines += [f"Skipped: {data.get('reason', 'no reason recorded')}.", ""]
        elif (results_dir / f"{name}.md").is_file():
            lines += [(results_dir / f"{name}.md").read_text().strip(), ""]
        else:
            lines += render_result(name, data, max_scalars=24)[2:]
        if (results_dir / f"{name}.png").is_file():
            lines += [f"![{name}]({rel}/{name}.png)", ""]
    lines.append(README_END)
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, results_dir: Path = RESULTS) -> None:
    """Replace the text between the markers (or append a ``## Results`` section) — nothing
    else in the README is touched."""
    text = readme.read_text() if readme.is_file() else ""
    # links relative to the page that holds the section (docs/results.md -> ../benchmarks/results)
    rel = os.path.relpath(results_dir.resolve(), readme.resolve().parent).replace(os.sep, "/")
    body = readme_section(results_dir, rel)
    if README_BEGIN in text and README_END in text:
        head, rest = text.split(README_BEGIN, 1)
        tail = rest.split(README_END, 1)[1]
        text = head + body.rstrip("\n") + tail
    else:
        text = text.rstrip("\n") + "\n\n## Results\n\n" + body
    readme.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run every benchmark script and write results/SUMMARY.md.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated script names (without .py) to run")
    p.add_argument("--skip", default="", help="comma-separated script names to leave out")
    p.add_argument("--quick", action="store_true", help="pass --quick to scripts that define it")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per script")
    p.add_argument("--list", action="store_true", help="print the discovered scripts and exit")
    p.add_argument("--summary-only", action="store_true", help="do not run anything; rebuild SUMMARY.md")
    p.add_argument("--results", default=str(RESULTS), help="results folder to summarise")
    p.add_argument("--readme", help="also rewrite the generated results section of this page (docs/results.md)")
    p.add_argument("--bench-dir", default=str(HERE), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    scripts = discover(Path(args.bench_dir))
    names = {s.stem for s in scripts}
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    unknown = (only | skip) - names
    if unknown:
        print(f"run_all: error: unknown benchmark(s) {sorted(unknown)}; available: {sorted(names)}", file=sys.stderr)
        return 2
    scripts = [s for s in scripts if (not only or s.stem in only) and s.stem not in skip]
    if args.list:
        print("\n".join(s.name for s in scripts))
        return 0
    results = Path(args.results)
    runs: list[dict[str, Any]] | None = None
    if not args.summary_only:
        runs = []
        for s in scripts:
            extra = ["--quick"] if args.quick and accepts(s, "--quick") else []
            print(f"[run_all] {s.name} {' '.join(extra)}", flush=True)
            rec = run_script(s, extra, args.timeout, results / "logs")
            runs.append(rec)
            print(f"[run_all]   {rec['status']} in {rec['wall_s']} s (log: {rec['log']})", flush=True)
        results.mkdir(parents=True, exist_ok=True)
        (results / "run_all.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    summary = write_summary(results, runs)
    print(f"[run_all] wrote {summary}")
    if args.readme:
        update_readme(Path(args.readme), results)
        print(f"[run_all] updated the Results section of {args.readme}")
    failed = [r for r in runs or [] if r["status"] != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
