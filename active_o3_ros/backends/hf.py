"""Helpers the Hugging Face-based backends (and the MLLM trainer) share: hub ids and dtypes."""
from __future__ import annotations

import re
from typing import Any

from active_o3_ros.core.config import PARAMETER_INDEX

#: ``owner/name`` as the hub spells a repository id (a local path is checked first).
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: The dtype names every backend accepts (the node's ``dtype`` parameter choices).
DTYPES: tuple[str, ...] = tuple(PARAMETER_INDEX["dtype"].choices)


def is_hub_id(name: str) -> bool:
    return bool(HUB_ID_RE.match(name)) and not name.startswith(".")


def check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return dtype


def torch_dtype(dtype: str, device: str = "cpu", auto_cuda: str = "float32") -> Any:
    """The torch dtype for ``dtype``; ``auto`` is float32 on CPU and ``auto_cuda`` on CUDA."""
    import torch

    check_dtype(dtype)
    if dtype == "auto":
        dtype = auto_cuda if str(device).startswith("cuda") else "float32"
    return getattr(torch, dtype)


__all__ = ["DTYPES", "HUB_ID_RE", "check_dtype", "is_hub_id", "torch_dtype"]
