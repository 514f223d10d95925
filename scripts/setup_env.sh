#!/usr/bin/env bash
# Create/refresh the project environment: Debian build tools, a Python 3.11 venv with the pinned
# dependency set (CPU torch), the ROS 2 messages in msg/ built into the venv prefix, and an editable
# install of this repository.
#
# Idempotent: every step leaves a stamp (a hash of its inputs) in $VENV/.stamps; a second run only
# verifies and takes seconds. Editing requirements/constraints, msg/*.msg, CMakeLists.txt or
# setup.py re-runs just the affected step. colcon gets a venv of its own ($VENV/colcon).
#
# Environment knobs:
#   VENV=path        venv location (default: <repo>/.venv)
#   PYTHON=exe       interpreter used to create the venv (default: python3.11, then python3)
#   JOBS=n           parallel build jobs for the messages (default: 2)
#   SKIP_APT=1       never call apt-get (just report what is missing)
#   FORCE=1          ignore stamps, redo every step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Absolute: the steps cd around, and the venv path is part of the message-build stamp.
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
JOBS="${JOBS:-2}"
STAMPS="$VENV/.stamps"
BUILD_DIR="$ROOT/build/msgs"

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }
VENV_KNOB=VENV
# shellcheck source=scripts/env_lib.sh
source "$ROOT/scripts/env_lib.sh"

case "${1:-}" in
  -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1' (try --help)" ;;
esac

# ---------------------------------------------------------------- 1. Debian packages
step_apt() {
  local missing=() p
  command -v dpkg-query >/dev/null 2>&1 || { log "no dpkg: skipping Debian package check"; return; }
  # fonts: the font families of the training scenes (training/data/scenes.py FONT_PACKAGES)
  local fonts=(fonts-dejavu-extra fonts-liberation2 fonts-freefont-ttf fonts-roboto-unhinted fonts-lato
               fonts-open-sans fonts-crosextra-carlito fonts-crosextra-caladea fonts-cantarell fonts-firacode
               fonts-inconsolata fonts-noto-mono fonts-oxygen fonts-urw-base35 fonts-comic-neue)
  for p in cmake g++ make python3-venv python3-dev "${fonts[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return
  [[ -n "${SKIP_APT:-}" ]] && die "missing Debian packages: ${missing[*]} (SKIP_APT set)"
  local sudo=()
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "missing Debian packages: ${missing[*]}; run as root or install them"
    sudo=(sudo)
  fi
  log "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- 2. venv: step_venv (env_lib.sh)

# ---------------------------------------------------------------- 3. pinned dependencies
step_pip() {
  local h; h="$(hash_of "$ROOT/requirements.txt" "$ROOT/requirements-nodeps.txt" "$ROOT/requirements-nobuildiso.txt" \
    "$ROOT/constraints.txt")"
  stamp_ok pip "$h" && return
  need_space 4 "installing the main environment (~2.5 GB)"
  log "installing pinned requirements (torch CPU wheel; first run downloads ~1 GB)"
  # pip's own version is pinned in the constraints too, but upgrading pip must come first.
  "$VENV/bin/python" -m pip install -q "pip==26.3"
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt" -c "$ROOT/constraints.txt"
  # sahi declares opencv-python; with it a second cv2 wheel would shadow the headless one.
  "$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-nodeps.txt" -c "$ROOT/constraints.txt"
  "$VENV/bin/python" -m pip install -q --no-build-isolation -r "$ROOT/requirements-nobuildiso.txt" \
    -c "$ROOT/constraints.txt"
  "$VENV/bin/python" - <<'PY' || die "more than one OpenCV wheel in the venv"
import importlib.metadata as md, sys
wheels = {d.metadata["Name"].lower() for d in md.distributions()} & {
    "opencv-python", "opencv-contrib-python", "opencv-python-headless", "opencv-contrib-python-headless"}
sys.exit(0 if len(wheels) == 1 else 1)
PY
  "$VENV/bin/python" - <<'PY' || die "torch in the venv is not the CPU build (a CUDA wheel slipped in)"
import importlib.metadata as md, sys
v = md.version("torch")
sys.exit(0 if v.endswith("+cpu") or "cu" not in v else 1)
PY
  stamp_set pip "$h"
}

# ---------------------------------------------------------------- 4. messages (rosidl, cmake)
msgs_import_ok() {
  (cd / && "$VENV/bin/python" -c 'from active_o3_ros.msg import DetectionArray, ZoomRegionArray, InstanceMaskArray' >/dev/null 2>&1)
}

step_msgs() {
  local inputs=("$ROOT"/msg/*.msg "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT/active_o3_ros/__init__.py")
  local h; h="$(printf '%s\n' "$(hash_of "${inputs[@]}")" "$VENV" | sha256sum | cut -d' ' -f1)"
  if stamp_ok msgs "$h" && msgs_import_ok; then return; fi
  # The wheels hard-code their build machine's include dirs; fix before configuring.
  "$VENV/bin/python" "$ROOT/scripts/patch_ros_cmake_exports.py" --prefix "$VENV"
  log "building messages in $BUILD_DIR -> $VENV"
  local t0=$SECONDS
  # A stale cache from another prefix/python would silently reuse wrong paths.
  if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && ! grep -q "CMAKE_INSTALL_PREFIX:PATH=$VENV\$" "$BUILD_DIR/CMakeCache.txt"; then
    rm -rf "$BUILD_DIR"
  fi
  mkdir -p "$BUILD_DIR"
  export VIRTUAL_ENV="$VENV" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
  export PATH="$VENV/bin:$PATH"
  cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" -DINSTALL_PYTHON_SOURCES=OFF -DBUILD_TESTING=OFF \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_FIND_VIRTUALENV=ONLY \
    > "$BUILD_DIR/configure.log" 2>&1 \
    || { tail -40 "$BUILD_DIR/configure.log" >&2; die "cmake configure failed (full log: $BUILD_DIR/configure.log)"; }
  cmake --build "$BUILD_DIR" -j "$JOBS" > "$BUILD_DIR/build.log" 2>&1 \
    || { tail -40 "$BUILD_DIR/build.log" >&2; die "message build failed (full log: $BUILD_DIR/build.log)"; }
  cmake --install "$BUILD_DIR" > "$BUILD_DIR/install.log" 2>&1 \
    || { tail -20 "$BUILD_DIR/install.log" >&2; die "message install failed"; }
  msgs_import_ok || die "messages built but 'from active_o3_ros.msg import DetectionArray' fails"
  log "messages built in $((SECONDS - t0)) s"
  stamp_set msgs "$h"
}

# ---------------------------------------------------------------- 5. editable install
step_editable() {
  # launch/ and config/ are copied into <venv>/share/active_o3_ros by setup.py's data_files, so
  # editing them must refresh the install (get_package_share_directory() reads the copies).
  local inputs=("$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/pyproject.toml" "$ROOT/package.xml"
                "$ROOT"/launch/* "$ROOT"/config/*)
  local h; h="$(printf '%s\n' "$(hash_of "${inputs[@]}")" "$ROOT" | sha256sum | cut -d' ' -f1)"
  local site; site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  if ! stamp_ok editable "$h"; then
    log "pip install -e . (distribution active-o3-ros-py)"
    "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    stamp_set editable "$h"
  fi
  # WHY this .pth: the generated messages live in site-packages/active_o3_ros (a regular package
  # whose __init__ is pkgutil.extend_path). extend_path only scans sys.path, and setuptools'
  # editable finder does not put the repo on it, so without this the source half (core, ros, ...)
  # would be invisible when running outside the repo directory.
  printf '%s\n' "$ROOT" > "$site/active_o3_ros_src.pth"
}

# ---------------------------------------------------------------- 6. colcon (build tool, own venv)
step_colcon() {
  local h; h="$(hash_of "$ROOT/requirements-colcon.txt")"
  if stamp_ok colcon "$h" && [[ -x "$VENV/colcon/bin/colcon" ]]; then return; fi
  log "installing colcon into $VENV/colcon (for the colcon build test)"
  [[ -x "$VENV/colcon/bin/python" ]] || "$(pick_python)" -m venv "$VENV/colcon"
  "$VENV/colcon/bin/python" -m pip install -q -r "$ROOT/requirements-colcon.txt"
  stamp_set colcon "$h"
}

# ---------------------------------------------------------------- 7. final check
step_check() {
  (cd / && "$VENV/bin/python" - <<'PY') || die "environment check failed"
import active_o3_ros, active_o3_ros.core  # source half (editable)
from active_o3_ros.msg import DetectionArray, ZoomRegionArray, InstanceMaskArray  # generated half
import rclpy, torch
assert torch.__version__.endswith("+cpu") or not torch.version.cuda, torch.__version__
PY
}

t_start=$SECONDS
# Several shells (engineers, CI, tests) may run this at once; the message build dir and pip are
# not safe to share concurrently, so serialise whole runs.
mkdir -p "$ROOT/build"
exec 9>"$ROOT/build/setup_env.lock"
if command -v flock >/dev/null 2>&1 && ! flock -n 9; then
  log "another setup_env.sh is running; waiting for it"
  flock 9
fi
step_apt
step_venv
step_pip
step_msgs
step_editable
step_colcon
step_check
log "environment ready: $VENV ($((SECONDS - t_start)) s)"
