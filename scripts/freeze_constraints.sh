#!/usr/bin/env bash
# Regenerate constraints.txt from the current venv (after a deliberate, tested upgrade).
# WHY a filter: the ROS 2 wheels register egg-info entries (rclpy, std_msgs, rosidl_* ...) that
# are not installable distributions; pinning them would make pip fail on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "usage: scripts/freeze_constraints.sh   (writes constraints.txt from \$VENV, default .venv)"; exit 0
fi
"$VENV/bin/python" - "$ROOT/constraints.txt" <<'PY'
import re, subprocess, sys, sysconfig, pathlib
sp = pathlib.Path(sysconfig.get_paths()["purelib"])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
egg = {norm(p.name.split("-")[0]) for p in sp.glob("*.egg-info")}
frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all"], check=True,
                        capture_output=True, text=True).stdout.splitlines()
keep = [l for l in frozen if "==" in l and norm(l.split("==")[0]) not in egg | {"pip", "wheel"}
        and not l.startswith(("-e", "active-o3-ros-py"))]
header = [
    "# Known-good, fully resolved set (Python 3.11, CPU). Used as: pip install -r requirements.txt -c constraints.txt",
    "# torch is the CPU build; never relax it to a bare 'torch' (that resolves to multi-GB CUDA wheels).",
    "# Regenerate: scripts/freeze_constraints.sh (drops the egg-info entries the ROS wheels register).",
]
pathlib.Path(sys.argv[1]).write_text("\n".join(header + sorted(keep, key=str.lower)) + "\n")
print(f"wrote {sys.argv[1]}: {len(keep)} pins")
PY
