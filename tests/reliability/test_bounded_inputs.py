"""Every input size bounded, every rejection counted and truthful in /diagnostics.

Real node process, real DDS: decompression-bomb PNGs, a 1 MB instruction, a huge error text,
counters across deactivate/activate, a run-time ``diagnostics_period``, and ``fps`` for frames
slower than a second.
"""
from __future__ import annotations

import struct
import time
import zlib

import pytest

from relutil import counter, diag, node_args, publish_each_counted, ros_domain, start, stop  # noqa: F401
from rosutil import Probe, call_service

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

pytestmark = pytest.mark.ros


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid, tiny PNG whose header declares ``width x height`` pixels (10 gigapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _good_png() -> bytes:
    import cv2

    from active_o3_ros.ros.camera_source import synthetic_frame

    return cv2.imencode(".png", synthetic_frame(320, 240, 1)[:, :, ::-1])[1].tobytes()


def test_bombs_counted_instruction_bounded(ros_domain, tmp_path):
    log = tmp_path / "node.log"
    probe = Probe()
    node = start("active_o3_ros.ros.node", *node_args("-p", "compressed:=true", "-p", "qos_depth:=50",
                                                       "-p", "diagnostics_period:=0.1"), log=log)
    try:
        probe.subscribe(DiagnosticArray, "/diagnostics")
        probe.subscribe(DetectionArray, "/active_o3/detections")
        pub = probe.publisher(CompressedImage, "/camera/image_raw/compressed", depth=50)
        instr = probe.publisher(String, "/active_o3/instruction")
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 30, "node subscribed")
        data = bomb_png()
        assert len(data) < 80
        probe.wait_for(lambda: diag(probe, "frames_rejected") is not None, 30, "first diagnostics")
        t0 = time.monotonic()
        publish_each_counted(probe, pub, [CompressedImage(format="png", data=data) for _ in range(20)],
                             "frames_rejected")
        elapsed = time.monotonic() - t0
        probe.wait_for(lambda: diag(probe, "frames_rejected") == "20", 20, "20 bombs counted as rejected")
        assert counter(probe, "frames_processed", "frames_failed", "frames_dropped") == 0
        err = diag(probe, "last_error")
        assert "decompression bomb" in err, err
        # throttled to one line per 5 s, not one ERROR per message
        assert log.read_text().count("skipping image") <= 2 + int(elapsed // 5.0) < 20
        # a 1 MB instruction is refused; the published instruction stays bounded and unchanged
        instr.publish(String(data="x" * 1_000_000))
        time.sleep(1.0)
        pub.publish(CompressedImage(format="png", data=_good_png()))
        probe.wait_for(lambda: len(probe.got("/active_o3/detections")) >= 1, 20, "a good frame after the bombs")
        assert probe.got("/active_o3/detections")[-1].instruction == "bright blobs"
        assert node.poll() is None
    finally:
        code = stop(node)
        probe.close()
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "exceeds 1000" in text and len(text) < 100_000  # refused, and the log did not get the megabyte


def test_huge_error_text_is_truncated_in_diagnostics(ros_domain, tmp_path):
    probe = Probe()
    garbage = "{" + "x" * 100_000  # not JSON: configure fails with a message that would quote it
    node = start("active_o3_ros.ros.node", *node_args(task_options=garbage), log=tmp_path / "node.log")
    try:
        probe.subscribe(DiagnosticArray, "/diagnostics")
        probe.wait_for(lambda: (diag(probe, "last_error") or "").startswith("configure failed"), 30,
                       "configure failure in diagnostics")
        err = diag(probe, "last_error")
        assert 0 < len(err) <= 400, len(err)
        assert sum(len(kv.value) for arr in probe.got("/diagnostics") for st in arr.status for kv in st.values) \
            < 2000 * len(probe.got("/diagnostics"))
        assert node.poll() is None
    finally:
        stop(node)
        probe.close()


def test_counters_survive_activate_period_applies_fps_honest(ros_domain, tmp_path):
    probe = Probe()
    node = start("active_o3_ros.ros.node", *node_args("-p", "qos_depth:=10", task="faulty",
                                                      task_options='{"sleep_s": 1.5}'), log=tmp_path / "node.log")
    try:
        from active_o3_ros.ros.camera_source import synthetic_frame
        from active_o3_ros.ros.images import rgb_to_image

        probe.subscribe(DiagnosticArray, "/diagnostics")
        probe.subscribe(DetectionArray, "/active_o3/detections")
        pub = probe.publisher(Image, "/camera/image_raw")
        change = probe.node.create_client(ChangeState, "/active_o3/change_state")
        setp = probe.node.create_client(SetParameters, "/active_o3/set_parameters")
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 30, "node subscribed")
        for i in range(12):  # 4 Hz against 1.5 s frames: most are dropped (latest frame wins)
            pub.publish(rgb_to_image(synthetic_frame(160, 120, i)))
            time.sleep(0.25)
        probe.wait_for(lambda: len(probe.got("/active_o3/detections")) >= 2, 20, "two slow frames done")
        # the latest diagnostics may predate the second frame's end (published every period):
        # read fps from one that counts both frames
        probe.wait_for(lambda: int(diag(probe, "frames_received") or 0) == 12
                       and int(diag(probe, "frames_processed") or 0) >= 2, 10, "12 received, 2 processed")
        fps = float(diag(probe, "fps"))
        assert 0.2 <= fps <= 1.0, fps  # ~0.67 frames per wall second, not 0.00
        dropped = int(diag(probe, "frames_dropped"))
        assert dropped >= 6
        for tid in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_ACTIVATE):
            assert call_service(change, ChangeState.Request(transition=Transition(id=tid))).success
        time.sleep(1.5)
        assert int(diag(probe, "frames_received")) == 12
        assert int(diag(probe, "frames_dropped")) >= dropped  # not restarted at activate
        s = {k: int(diag(probe, k)) for k in ("frames_received", "frames_processed", "frames_dropped",
                                               "frames_rejected", "frames_failed")}
        # every received frame is accounted for once the slot is empty
        assert s["frames_received"] == s["frames_processed"] + s["frames_dropped"] + s["frames_rejected"] \
            + s["frames_failed"], s
        # a run-time diagnostics_period is applied, not just accepted
        res = call_service(setp, SetParameters.Request(parameters=[Parameter(name="diagnostics_period", value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=2.0))])).results[0]
        assert res.successful
        time.sleep(1.0)
        n0 = len(probe.got("/diagnostics"))
        time.sleep(6.0)
        n = len(probe.got("/diagnostics")) - n0
        assert 2 <= n <= 4, n  # 0.5 s period would give ~12
        assert node.poll() is None
    finally:
        code = stop(node)
        probe.close()
    assert code == 0, (tmp_path / "node.log").read_text()[-3000:]


@pytest.mark.parametrize("remap", ["image:=/bad name", "image:=/cam/1x"])
def test_invalid_input_name_is_a_clear_error_at_start(ros_domain, tmp_path, remap):
    """An input name that is no topic name fails at start with exit 2 and one line, not at the
    next activate with a bare lifecycle error that unloads the models."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.node", "--ros-args", "-r", remap, "-p",
                          "sensing_backend:=tiling"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "invalid ROS arguments" in out.stderr and remap in out.stderr and "Traceback" not in out.stderr
