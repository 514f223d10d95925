"""Launch the ACTIVE-o3 perception node (lifecycle node ``active_o3``).

    ros2 launch active_o3_ros perceive.launch.py image:=/camera/color/image_raw \
        instruction:="person, car" max_regions:=3

Starts ``<prefix>/lib/active_o3_ros/active_o3_node`` (installed by CMakeLists.txt).  ``image``
is a *remapping* of the node's relative input ``image`` (so it composes with namespaces and the
``/compressed`` suffix); ``namespace`` moves every output but ``/diagnostics``.  Loads
``config/perceive.yaml`` (or ``params_file:=...``); every other argument mirrors a node parameter
and, when given, overrides the YAML.  Arguments left empty keep the YAML value.
tests/ros/test_launch_config.py checks (without importing launch) that the arguments, the
node's declared parameters and the installed executables agree.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode

from active_o3_ros.ros.node import ALL_PARAMETERS

PARAMETERS = {p.name: p for p in ALL_PARAMETERS}

# Launch arguments: node parameters of the same name.  Descriptions, choices (backend names from
# the registry) and types come from the node's parameter table, so they cannot drift from it.
PARAM_ARGS = ("instruction", "sensing_backend", "task_module", "model", "sensing_model", "device", "max_regions",
              "mode", "score_threshold", "merge_iou", "qos_reliability", "qos_depth", "compressed",
              "publish_debug_image", "auto_activate")


def _value(name, text):
    """The launch argument's text as the parameter's type (checked like the node checks it)."""
    return PARAMETERS[name].coerce(text)


def _node(context):
    overrides = {}
    for name in PARAM_ARGS:
        text = LaunchConfiguration(name).perform(context)
        if text != "":
            overrides[name] = _value(name, text)
    return [LifecycleNode(
        package="active_o3_ros", executable="active_o3_node", name="active_o3",
        namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
        parameters=[LaunchConfiguration("params_file").perform(context), overrides],
        remappings=[("image", LaunchConfiguration("image"))],
    )]


def generate_launch_description():
    share = get_package_share_directory("active_o3_ros")
    args = [
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "perceive.yaml"),
                              description="Node parameter YAML."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node."),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Camera topic the node's input 'image' is remapped to."),
        DeclareLaunchArgument("fastdds_profile", default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                              description="FastDDS profile (shared memory, loopback)."),
    ]
    args += [DeclareLaunchArgument(name, default_value="", description=PARAMETERS[name].help()) for name in PARAM_ARGS]
    return LaunchDescription(args + [
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
        OpaqueFunction(function=_node),
    ])
