"""Make ``active_o3_training`` importable from the source tree when the package is not
installed yet (setup.py maps ``training/`` to that name)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if importlib.util.find_spec("active_o3_training") is None:
    spec = importlib.util.spec_from_file_location("active_o3_training", ROOT / "training" / "__init__.py",
                                                  submodule_search_locations=[str(ROOT / "training")])
    if spec is not None and spec.loader is not None and (ROOT / "training" / "__init__.py").is_file():
        mod = importlib.util.module_from_spec(spec)
        sys.modules["active_o3_training"] = mod
        spec.loader.exec_module(mod)
