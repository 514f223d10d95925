#!/usr/bin/env bash
# `make demo`: the main job on its embedded default: the active_o3 node with the
# GRPO-trained small sensing policy + rapidocr, fed by a generated camera recording over DDS
# (loopback only, random ROS_DOMAIN_ID), printing detections as they arrive, writing annotated
# PNGs and a bag under artifacts/demo/, ending with a summary line when the recording ends.
# Extra arguments go to `active-o3-demo` (e.g. `make demo DEMO_ARGS="--loop"`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" HF_HUB_OFFLINE=1
exec "$VENV/bin/python" -m active_o3_ros.ros.demo "$@"
