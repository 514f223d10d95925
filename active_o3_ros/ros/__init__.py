"""ROS 2 adapter for the ACTIVE-o3 pipeline: the only subpackage that imports rclpy.

Modules: ``images`` (Image <-> numpy), ``convert`` (PerceptionResult -> our messages),
``node`` (the lifecycle node ``active_o3``), ``camera_source`` (video/folder/bag/synthetic
frames -> image topic), ``bags`` (record / play / offline pipeline over rosbag2 files),
``listener`` (prints detections), ``env`` (loopback-only DDS defaults for every entry point).
"""
