"""active_o3_ros: ACTIVE-o3 active perception (sense -> zoom -> detect) for ROS 2.

This file must stay tiny: ``extend_path`` merges this source package with the
rosidl-generated ``active_o3_ros.msg`` installed into the environment prefix, and
CMake installs this very file next to the generated messages.  The public API is
resolved lazily so importing the messages never drags in numpy or torch.
"""
__path__ = __import__('pkgutil').extend_path(__path__, __name__)

_LAZY = {
    'ActivePerception': 'active_o3_ros.core.pipeline',
    'PipelineConfig': 'active_o3_ros.core.config',
    'PerceptionResult': 'active_o3_ros.core.types',
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'active_o3_ros' has no attribute {name!r}")
