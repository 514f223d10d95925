"""The GRPO learning check as a test: TRL GRPO with our rewards must raise the reward.

The tiny random Qwen2.5-VL cannot learn from scratch (every answer fails to parse, so every
group ties and GRPO's advantage is zero); the check warm-starts it briefly on well-formed
answers and then GRPO (through TRL's GRPOTrainer) must learn the rewarded region. The script
exits 1 when the last steps' mean reward is not clearly above the first steps'.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_trl_grpo_raises_reward(tmp_path):
    out = tmp_path / "check.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grpo_learning_check.py"), "--steps", "30",
                           "--skip-cold", "--out", str(out)], capture_output=True, text=True, timeout=900)
    result = json.loads(out.read_text())
    assert proc.returncode == 0 and result["learned"], proc.stdout[-2000:] + proc.stderr[-2000:]
    assert result["warm"]["last"]["reward"] > result["warm"]["first"]["reward"] + 0.3
