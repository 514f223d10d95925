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

# launch argument -> (node parameter, description).  Empty default = keep the YAML value.
PARAM_ARGS = {
    "instruction": ("instruction", "What to find: class names (comma separated) or free text."),
    "sensing_backend": ("sensing_backend", "Sensing policy: small_policy, qwen_vl, tiling, random, oracle."),
    "task_module": ("task_module", "Task model on the crops: text, qwen_vl, sam, grounding_dino."),
    "model": ("model", "Local directory of the multimodal model (qwen_vl backends)."),
    "device": ("device", "Torch device: cpu, cuda, cuda:1, ..."),
    "max_regions": ("max_regions", "K: most zoom regions per frame (1-16)."),
    "mode": ("mode", "parallel | serial | full_frame."),
    "score_threshold": ("score_threshold", "Drop detections scoring below this (0-1)."),
    "merge_iou": ("merge_iou", "IoU above which two detections are the same object."),
    "qos_reliability": ("qos_reliability", "Image subscription: best_effort | reliable."),
    "qos_depth": ("qos_depth", "Image subscription queue depth."),
    "compressed": ("compressed", "Subscribe to <image>/compressed (sensor_msgs/CompressedImage)."),
    "publish_debug_image": ("publish_debug_image", "Publish ~/debug_image with regions and detections drawn."),
    "auto_activate": ("auto_activate", "Configure and activate at start (no lifecycle manager)."),
}
TYPED = {"max_regions": int, "qos_depth": int, "score_threshold": float, "merge_iou": float,
         "compressed": "bool", "publish_debug_image": "bool", "auto_activate": "bool"}


def _value(name, text):
    kind = TYPED.get(name, str)
    if kind == "bool":
        return text.lower() in ("true", "1", "yes")
    return kind(text)


def _node(context):
    overrides = {}
    for arg, (param, _desc) in PARAM_ARGS.items():
        text = LaunchConfiguration(arg).perform(context)
        if text != "":
            overrides[param] = _value(param, text)
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
    args += [DeclareLaunchArgument(name, default_value="", description=desc) for name, (_p, desc) in PARAM_ARGS.items()]
    return LaunchDescription(args + [
        SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", LaunchConfiguration("fastdds_profile")),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
        OpaqueFunction(function=_node),
    ])
