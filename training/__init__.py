"""Training, data and evaluation code of active_o3_ros, installed as ``active_o3_training``.

WHY a separate import name: a bare top-level ``training`` package would clash with other
projects in site-packages.
"""
