"""Nobody on the DDS graph can make the node import code, load other models, or die.

Another process (this test's participant) calls the node's SetParameters services with the
values an attacker would send: a module whose import has side effects (``this`` prints the Zen
of Python), one whose import raises SystemExit (``venv.__main__``), remote code, other weights.
Every call must be refused, nothing imported, and the node must keep serving frames.
"""
from __future__ import annotations

import time

import pytest

from relutil import node_args, ros_domain, start, stop  # noqa: F401
from rosutil import Probe, call_service

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters, SetParametersAtomically  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.ros

ATTACKS = [
    ("plugins", "this"),
    ("plugins", "venv.__main__"),
    ("plugins", "ros_test_backends,os"),
    ("trust_remote_code", True),
    ("model", "/tmp/some/other/model"),
    ("sensing_model", "/tmp/evil.safetensors"),
    ("task_model", "/tmp/evil.pth"),
    ("sensing_backend", "random"),
    ("task_module", "faulty"),
    ("task_options", '{"sleep_s": 100}'),
    ("sensing_options", '{"rows": 9}'),
    ("allow_hub_downloads", True),
]


def _param(name, value) -> Parameter:
    if isinstance(value, bool):
        v = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    else:
        v = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    return Parameter(name=name, value=v)


def _frame(i: int):
    from active_o3_ros.ros.camera_source import synthetic_frame
    from active_o3_ros.ros.images import rgb_to_image

    m = rgb_to_image(synthetic_frame(320, 240, i))
    m.header.stamp.sec = 100 + i
    return m


def test_set_parameters_cannot_import_load_or_kill(ros_domain, tmp_path):
    probe = Probe()
    log = tmp_path / "node.log"
    node = start("active_o3_ros.ros.node", *node_args("-p", "qos_depth:=10"), log=log)
    try:
        setp = probe.node.create_client(SetParameters, "/active_o3/set_parameters")
        atomic = probe.node.create_client(SetParametersAtomically, "/active_o3/set_parameters_atomically")
        getp = probe.node.create_client(GetParameters, "/active_o3/get_parameters")
        probe.subscribe(DetectionArray, "/active_o3/detections")
        pub = probe.publisher(Image, "/camera/image_raw")
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 30, "node active")
        for name, value in ATTACKS:
            res = call_service(setp, SetParameters.Request(parameters=[_param(name, value)])).results[0]
            assert not res.successful and "read-only" in res.reason, (name, value, res.reason)
            res = call_service(atomic, SetParametersAtomically.Request(parameters=[_param(name, value)])).result
            assert not res.successful, (name, value)
        # a harmless change batched with a forbidden one is refused as a whole
        res = call_service(atomic, SetParametersAtomically.Request(parameters=[
            _param("instruction", "cats"), _param("plugins", "this")])).result
        assert not res.successful
        assert node.poll() is None, log.read_text()
        got = call_service(getp, GetParameters.Request(names=["plugins", "trust_remote_code", "instruction"])).values
        assert got[0].string_value == "ros_test_backends" and got[1].bool_value is False
        assert got[2].string_value == "bright blobs"
        # still serving, with the start-time models
        pub.publish(_frame(1))
        probe.wait_for(lambda: len(probe.got("/active_o3/detections")) >= 1, 20, "detections after the attacks")
        assert probe.got("/active_o3/detections")[-1].detections
        # an allowed run-time change still works
        res = call_service(setp, SetParameters.Request(parameters=[_param("instruction", "white squares")])).results[0]
        assert res.successful
        assert node.poll() is None
    finally:
        code = stop(node)
        probe.close()
    text = log.read_text()
    assert code == 0, text
    assert "Beautiful is better than ugly" not in text, "a module was imported on a remote request"
    assert "usage: venv" not in text


def test_compressed_input_follows_the_remapped_name(ros_domain, tmp_path):
    """image_transport's rule: '<remapped image>/compressed', and the node's own 'image' unused."""
    probe = Probe()
    node = start("active_o3_ros.ros.node", "--ros-args", "-r", "image:=/cam/left", "-p", "compressed:=true",
                 "-p", "sensing_backend:=tiling", "-p", "task_module:=blob", "-p", "plugins:=ros_test_backends",
                 log=tmp_path / "node.log")
    try:
        probe.wait_for(lambda: probe.node.count_subscribers("/cam/left/compressed") > 0, 30,
                       "subscription on /cam/left/compressed")
        assert probe.node.count_subscribers("/cam/left") == 0 and probe.node.count_subscribers("/image") == 0
    finally:
        code = stop(node)
        probe.close()
    assert code == 0, (tmp_path / "node.log").read_text()


def test_plugins_must_be_module_names(ros_domain, tmp_path):
    """A start-time plugins value that is not a dotted module name fails configure with a clear error."""
    log = tmp_path / "node.log"
    node = start("active_o3_ros.ros.node", "--ros-args", "-p", "plugins:=os;print(1)", "-p",
                 "sensing_backend:=tiling", log=log)
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end and "configure failed" not in log.read_text():
            time.sleep(0.2)
        assert "not Python module names" in log.read_text(), log.read_text()
        assert node.poll() is None  # the node stays up, unconfigured, to be fixed and reconfigured
    finally:
        stop(node)
