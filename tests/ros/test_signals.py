"""Every long-running door stops cleanly on Ctrl-C (SIGINT) and on SIGTERM (what a launch
system or a service manager sends): exit code 0, no traceback, its closing line.

WHY: rclpy's signal handler shuts the ROS context down at once. With SIGTERM no
KeyboardInterrupt follows, so a loop that was publishing got "publisher's context is invalid"
(the camera source, every time) and a spin got ExternalShutdownException (the listener), both
ending in a traceback and exit code 1; the node's diagnostics timer hit the same race in CI.
Real processes, loopback DDS, a random domain.
"""
from __future__ import annotations

import signal
import time

import pytest

from rosutil import Probe, start, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.ros
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def _signalled(proc, sig) -> int:
    try:
        proc.send_signal(sig)
        return proc.wait(30)
    finally:
        stop(proc)


@SIGNALS
@pytest.mark.parametrize("qos", ["best_effort", "reliable"])
def test_camera_source_stops_cleanly_while_publishing(ros_domain, tmp_path, qos, sig):
    log = tmp_path / "camera.log"
    proc = start("active_o3_ros.ros.camera_source", "synthetic:64x48", "--fps", "500", "--loop", "--qos", qos,
                 log=log)
    probe = Probe()
    try:
        probe.subscribe(Image, "/camera/image_raw", reliable=False)
        probe.wait_for(lambda: len(probe.got("/camera/image_raw")) >= 20, 60, "frames flowing")
    finally:
        probe.close()
        code = _signalled(proc, sig)
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]
    assert "frames on /camera/image_raw" in text


@SIGNALS
def test_listener_stops_cleanly(ros_domain, tmp_path, sig):
    log = tmp_path / "listen.log"
    proc = start("active_o3_ros.ros.listener", log=log)
    probe = Probe()
    try:
        pub = probe.publisher(DetectionArray, "/active_o3/detections")
        deadline = time.monotonic() + 60
        while "detection(s)" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            pub.publish(DetectionArray(image_width=64, image_height=48, instruction="text", mode="parallel"))
            time.sleep(0.2)
    finally:
        probe.close()
        code = _signalled(proc, sig)
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]


@SIGNALS
def test_node_stops_cleanly_while_its_diagnostics_timer_runs(ros_domain, tmp_path, sig):
    log = tmp_path / "node.log"
    proc = start("active_o3_ros.ros.node", "--ros-args", "-p", "sensing_backend:=tiling", "-p", "task_module:=blob",
                 "-p", "plugins:=ros_test_backends", "-p", "crop_size:=160", "-p", "diagnostics_period:=0.1", log=log)
    try:
        deadline = time.monotonic() + 60
        while "active: listening" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.0)  # ten diagnostics ticks
    finally:
        code = _signalled(proc, sig)
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]


@pytest.mark.slow
def test_demo_on_sigterm_stops_its_parts_and_still_summarises(tmp_path):
    """`make demo DEMO_ARGS=--loop` runs until stopped. On SIGTERM the demo stops its node,
    recorder and camera, writes the summary of what it saw, and exits 0."""
    import json
    import subprocess
    import sys

    out, log = tmp_path / "demo", tmp_path / "demo.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "active_o3_ros.ros.demo", "--out", str(out), "--frames", "2",
                                 "--frame-size", "640x360", "--fps", "2", "--loop"], stdout=fh, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while "detection(s)" not in log.read_text():
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
        finally:
            code = _signalled(proc, signal.SIGTERM)
    text = log.read_text()
    assert code == 0 and "Traceback" not in text, text[-3000:]
    assert "interrupted" in text and "frame(s) processed" in text
    assert json.loads((out / "summary.json").read_text())["frames_processed"] >= 1
    for part in ("node", "recorder", "camera"):  # each part stopped, not killed
        assert "Traceback" not in (out / f"{part}.log").read_text(), part
