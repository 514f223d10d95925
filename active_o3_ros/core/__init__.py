"""ROS-free core of ACTIVE-o3: geometry, prompts/parsing, merging, pipeline, rewards, metrics.

Nothing under ``core`` imports rclpy; torch is imported only by backends.
"""
