# Shared steps of scripts/setup_env.sh and scripts/setup_vllm_env.sh (sourced, not run).
# The caller sets ROOT, VENV, STAMPS and defines log/die; VENV_KNOB names the variable that
# chooses the venv (for messages), PYTHON_WHY says why Python 3.11 is needed.

hash_of() {  # hash_of FILE... -> sha256 of names + contents (missing files count as empty)
  local f
  for f in "$@"; do printf '%s\n' "${f#"$ROOT"/}"; if [[ -f "$f" ]]; then cat "$f"; fi; done | sha256sum | cut -d' ' -f1
}
stamp_ok() { [[ -z "${FORCE:-}" && -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

pick_python() {
  local c
  for c in ${PYTHON:-} python3.11 python3; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$c"; return
    fi
  done
  die "need Python 3.11 (${PYTHON_WHY:-the ROS 2 Kilted wheels are cp311}); set PYTHON=/path/to/python3.11"
}

step_venv() {
  if [[ ! -x "$VENV/bin/python" ]]; then
    local py; py="$(pick_python)"
    log "creating venv $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "$VENV is not Python 3.11; remove it or set ${VENV_KNOB:-VENV}=..."
}

need_space() {  # need_space GB WHAT: fail with a clear message before pip fills the disk half-way
  local need_gb="$1" what="$2" dir="$VENV" tmp="${TMPDIR:-/tmp}" d free_kb
  while [[ ! -d "$dir" ]]; do dir="$(dirname "$dir")"; done
  for d in "$dir" "$tmp"; do
    free_kb="$(df -Pk "$d" 2>/dev/null | awk 'NR == 2 { print $4 }')"
    [[ -n "$free_kb" ]] || continue
    if (( free_kb < need_gb * 1024 * 1024 )); then
      die "$what needs about ${need_gb} GB free on the disk of $d; only $((free_kb / 1024)) MB are free (remove old clones, caches or venvs, or set ${VENV_KNOB:-VENV}/TMPDIR to a larger disk)"
    fi
  done
}
