"""tests/ on sys.path (for the shared ``fixtures_models`` session fixtures), whichever test
directory pytest happens to collect first."""
from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
