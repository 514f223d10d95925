"""Process defaults shared by every ROS entry point (node, camera, bag, listener, tests), and
how they publish while a signal may be shutting them down (:func:`publish_unless_shut_down`).

Why: the project's rule is that all DDS traffic stays on loopback unless a user decides
otherwise, and large frames should travel over shared memory.  Each entry point calls
:func:`ros_defaults` *before* ``rclpy.init`` so these hold without the user exporting anything;
explicit user settings are never overridden.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

PACKAGE = "active_o3_ros"


def data_path(relative: str) -> Path | None:
    """Find a shipped data file (``config/...``, ``msg/...``, ``launch/...``).

    Looks in the source checkout first (``<repo>/relative``), then in the package's share
    directory as the ament index resolves it (a colcon install space on ``AMENT_PREFIX_PATH``),
    then in ``<sys.prefix>/share/active_o3_ros`` (the venv install).  Returns None when absent.
    """
    candidates = [Path(__file__).resolve().parents[2] / relative]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)) / relative)
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no sourced ROS shell)
            pass
    except ImportError:  # no ROS environment: the venv layout below still works
        pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE / relative)
    for c in candidates:
        if c.exists():
            return c
    return None


def ros_defaults() -> None:
    """Loopback discovery and the shared-memory FastDDS profile, unless already set."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        profile = data_path("config/fastdds_shm.xml")
        if profile is not None:
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    # rclpy buffers stdout when piped; console tools should print promptly.
    os.environ.setdefault("RCUTILS_LOGGING_BUFFERED_STREAM", "1")


def split_ros_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``argv`` at ``--ros-args`` into (our CLI args, ROS args incl. the marker)."""
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        return argv[:i], argv[i:]
    return argv, []


def publish_unless_shut_down(pub: Any, msg: Any, context: Any = None) -> bool:
    """``pub.publish(msg)``; False, and nothing raised, when the ROS context is already shut down.

    WHY: on Ctrl-C or SIGTERM rclpy's signal handler shuts the context down at once, while a
    timer callback, a worker thread or a publishing loop may be about to publish; rcl then
    refuses with "publisher's context is invalid" (or, once the node is destroyed, the handle is
    gone).  That is the process stopping, not a failure: it must not end in a traceback and exit
    code 1 (seen in CI for the node; every time for the camera source on SIGTERM).  Any other
    publish error still raises.  ``context``: the publisher's node's context (default: rclpy's)."""
    import rclpy
    from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

    try:
        pub.publish(msg)
        return True
    except (_rclpy.RCLError, _rclpy.InvalidHandle):
        if rclpy.ok(context=context):
            raise
        return False
