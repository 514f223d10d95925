#!/usr/bin/env bash
# The vLLM tests: builds/refreshes the second environment (scripts/setup_vllm_env.sh, idempotent:
# seconds when nothing changed) and runs tests/vllm_env/ with ITS pytest. Exit status: pytest's
# (non-zero on any failure; 5, "no tests collected", is turned into a failure too).
#
# Usage: scripts/test_vllm.sh [extra pytest args]
# Knobs: VLLM_VENV (default <repo>/.venv-vllm), and those of setup_vllm_env.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VLLM_VENV:-$ROOT/.venv-vllm}")"

bash "$ROOT/scripts/setup_vllm_env.sh"

cd "$ROOT"
# 2 shared cores: one intra-op thread per process; tests never download.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rc=0
"$VENV/bin/python" -m pytest tests/vllm_env "$@" || rc=$?
if [[ $rc -eq 5 ]]; then echo "test_vllm.sh: pytest collected no tests (exit 5): failing" >&2; fi
exit "$rc"
