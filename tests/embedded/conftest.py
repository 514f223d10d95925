"""Make ``active_o3_training`` importable from a plain checkout.

WHY: the package is installed under that name by setup.py (``package_dir``); before (or
without) ``pip install -e .`` the same code is the repo's ``training/`` folder, so we alias it.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("active_o3_training") is None:  # pragma: no cover - depends on install
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    sys.modules["active_o3_training"] = importlib.import_module("training")
