"""onnxruntime session settings shared by the text task module and the policy's cue look.

WHY: RapidOCR builds its CPU sessions with the memory arena off and onnxruntime's default
intra-op pool, whose threads spin-wait after every run.  The node runs several sessions in
turn (the cue look's detector, then the task's detector and recogniser, with Python and
OpenCV work in between), so a pool that spins after its run takes a core from whatever
runs next.  On the 2-core CPU this was measured with ``benchmarks/ort_session.py`` (same
crops, same detections) and ``benchmarks/frame_profile.py`` (whole node frames); see
``docs/performance.md``.
"""
from __future__ import annotations

from typing import Any

#: The node's settings: the memory arena on and the spin-wait off, for the text module's
#: detector and recogniser (``TextOptions.mem_arena`` / ``spin_wait``) and the policy's cue
#: look.  Same detections; the node frame took 0.75-0.9x the time (docs/performance.md).
DEFAULT_ARENA = True
DEFAULT_SPIN = False

#: Session config key of onnxruntime's intra-op spin-wait ("1" = on, its default).
SPIN_KEY = "session.intra_op.allow_spinning"


def session_options(base: Any = None, *, threads: int | None = None, inter_threads: int | None = None,
                    arena: bool | None = None, spin: bool | None = None, parallel: bool = False) -> Any:
    """``onnxruntime.SessionOptions``: a copy of ``base``'s log level, graph optimisation,
    arena and thread counts (onnxruntime's defaults without ``base``), with the given
    settings changed; ``None`` keeps the base's."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if base is not None:
        so.log_severity_level = base.log_severity_level
        so.graph_optimization_level = base.graph_optimization_level
        so.enable_cpu_mem_arena = base.enable_cpu_mem_arena
        so.intra_op_num_threads = base.intra_op_num_threads
        so.inter_op_num_threads = base.inter_op_num_threads
        so.execution_mode = base.execution_mode
        old_spin = spin_entry(base)
        if old_spin is not None:
            so.add_session_config_entry(SPIN_KEY, old_spin)
    else:
        so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    if inter_threads is not None:
        so.inter_op_num_threads = int(inter_threads)
    if arena is not None:
        so.enable_cpu_mem_arena = bool(arena)
    if spin is not None:
        so.add_session_config_entry(SPIN_KEY, "1" if spin else "0")
    if parallel:
        so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    return so


def spin_entry(so: Any) -> str | None:
    """The spin-wait entry of ``so`` ("0" / "1"), or None where it was never set (on)."""
    try:
        return str(so.get_session_config_entry(SPIN_KEY))
    except RuntimeError:  # onnxruntime raises for a key that was never set
        return None


def rebuilt(session: Any, **changes: Any) -> Any:
    """A new session of ``session``'s model file and providers with :func:`session_options`
    ``changes`` applied to its options."""
    import onnxruntime as ort

    return ort.InferenceSession(session._model_path, session_options(session.get_session_options(), **changes),
                                providers=session.get_providers())


__all__ = ["DEFAULT_ARENA", "DEFAULT_SPIN", "SPIN_KEY", "rebuilt", "session_options", "spin_entry"]
