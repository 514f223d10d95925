"""Model backends behind two small interfaces: :class:`SensingPolicy` and :class:`TaskModel`.

Backends are registered by name (``register_sensing`` / ``register_task``) so that choosing
one is configuration (node parameter, CLI flag, YAML), not an if-ladder.
"""
from active_o3_ros.backends.base import (  # noqa: F401
    SensingOutput, SensingPolicy, TaskModel, TaskOutput, available_backends, build_sensing, build_task,
    register_sensing, register_task,
)
