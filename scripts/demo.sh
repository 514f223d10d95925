#!/usr/bin/env bash
# `make demo`: run the main job on its embedded default.
# PLACEHOLDER body (build owner): runs the CLI on a photo bundled with scikit-image using the tiny
# offline Qwen2.5-VL. The ROS / embedded-default engineers replace this body; keep the file name.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
PY="$VENV/bin/python"
OUT="$ROOT/artifacts/demo"
mkdir -p "$OUT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" HF_HUB_OFFLINE=1

if ! "$PY" -c 'import active_o3_ros.cli' 2>/dev/null; then
  echo "demo: active_o3_ros.cli is not there yet (being written); environment is ready:" >&2
  "$PY" -c 'from active_o3_ros.msg import DetectionArray; import active_o3_ros.core.pipeline; print("  messages + core import OK")'
  exit 0
fi

IMAGE="$("$PY" -c 'import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png"))')"
MODEL="$OUT/tiny_qwen"
"$PY" -m active_o3_ros.backends.tiny_qwen "$MODEL" >/dev/null
"$VENV/bin/active-o3" detect "$IMAGE" --target person --sensing qwen_vl --task qwen_vl --model "$MODEL" \
  --output "$OUT/astronaut_annotated.png"
echo "demo: annotated image written to ${OUT#"$ROOT"/}/astronaut_annotated.png" >&2
