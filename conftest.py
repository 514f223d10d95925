"""Session-wide test environment, applied before any test module is imported.

WHY here (root conftest) and via os.environ: ROS tests start real child processes, which inherit
the environment; setting it once keeps every DDS participant of a test run on loopback and on a
domain of its own, so parallel test runs (several engineers, CI) never see each other's topics.
"""
from __future__ import annotations

import os
import random
import sys

# Loopback-only discovery and a random domain per test session (0..101 keeps the FastDDS port
# arithmetic valid on every platform); an explicit ROS_DOMAIN_ID from the caller wins.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 101)))
# ament_index lookups (package share dirs, rosidl type support) resolve in the venv prefix,
# where scripts/setup_env.sh installs the messages.
os.environ.setdefault('AMENT_PREFIX_PATH', sys.prefix)
# 2 shared CPU cores: one intra-op thread per process avoids oversubscription in torch/OpenCV.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
# Tests never download: model hubs are unreachable and a silent retry loop would look like a hang.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
