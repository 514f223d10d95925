"""Lifecycle transitions via the change_state service from another process, parameters at
run time, and record -> replay -> record over DDS losing nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from rosutil import Probe, assert_bags_equal, call_service, start, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_node_dds import node_args  # noqa: E402


def test_lifecycle_transitions_and_runtime_instruction(ros_domain, tmp_path):
    from active_o3_ros.ros.camera_source import synthetic_frame
    from active_o3_ros.ros.images import rgb_to_image

    probe = Probe()
    node = start("active_o3_ros.ros.node", *node_args("-p", "auto_activate:=false", "-p", "qos_depth:=10"),
                 env=dict(os.environ), log=tmp_path / "node.log")
    try:
        change = probe.node.create_client(ChangeState, "/active_o3/change_state")
        get = probe.node.create_client(GetState, "/active_o3/get_state")
        setp = probe.node.create_client(SetParameters, "/active_o3/set_parameters")
        probe.subscribe(DetectionArray, "/active_o3/detections")
        pub = probe.publisher(Image, "/camera/image_raw")
        instr = probe.publisher(String, "/active_o3/instruction")

        def state() -> int:
            return call_service(get, GetState.Request()).current_state.id

        def transition(tid: int) -> None:
            assert call_service(change, ChangeState.Request(transition=Transition(id=tid))).success

        frame_no = [0]

        def send_and_count(expect: bool) -> None:
            frame_no[0] += 1
            before = len(probe.got("/active_o3/detections"))
            m = rgb_to_image(synthetic_frame(320, 240, frame_no[0]))
            m.header.stamp.sec = frame_no[0]
            pub.publish(m)
            if expect:
                probe.wait_for(lambda: len(probe.got("/active_o3/detections")) > before, 15, "detections")
            else:
                time.sleep(1.5)
                assert len(probe.got("/active_o3/detections")) == before

        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        transition(Transition.TRANSITION_CONFIGURE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        transition(Transition.TRANSITION_ACTIVATE)
        assert state() == State.PRIMARY_STATE_ACTIVE
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 15, "node subscribed")
        send_and_count(True)
        # run-time instruction: parameter service, then topic
        req = SetParameters.Request(parameters=[Parameter(name="instruction", value=ParameterValue(
            type=ParameterType.PARAMETER_STRING, string_value="white squares"))])
        assert call_service(setp, req).results[0].successful
        send_and_count(True)
        assert probe.got("/active_o3/detections")[-1].instruction == "white squares"
        instr.publish(String(data="text, logos"))
        time.sleep(0.5)
        send_and_count(True)
        assert probe.got("/active_o3/detections")[-1].instruction == "text, logos"
        bad = SetParameters.Request(parameters=[Parameter(name="max_regions", value=ParameterValue(
            type=ParameterType.PARAMETER_INTEGER, integer_value=99))])
        res = call_service(setp, bad).results[0]
        assert not res.successful and "max_regions" in res.reason
        transition(Transition.TRANSITION_DEACTIVATE)
        assert state() == State.PRIMARY_STATE_INACTIVE
        send_and_count(False)
        transition(Transition.TRANSITION_ACTIVATE)
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 15, "node re-subscribed")
        send_and_count(True)
        transition(Transition.TRANSITION_DEACTIVATE)
        transition(Transition.TRANSITION_CLEANUP)
        assert state() == State.PRIMARY_STATE_UNCONFIGURED
        transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert state() == State.PRIMARY_STATE_FINALIZED
        assert node.poll() is None
    finally:
        code = stop(node)
        probe.close()
    assert code == 0, (tmp_path / "node.log").read_text()


def _image_bag(path, frames: int, size: tuple[int, int]) -> None:
    """A bag of ``frames`` rgb8 images on /camera/image_raw, 0.1 s apart."""
    import numpy as np

    from active_o3_ros.ros import bags
    from active_o3_ros.ros.camera_source import synthetic_frame

    store = bags.typestore()
    T = store.types
    w, h = size
    writer = bags.open_writer(path, "mcap")
    conn = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
    for i in range(frames):
        msg = T["sensor_msgs/msg/Image"](
            header=T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=10 + i, nanosec=0),
                                            frame_id="cam"), height=h, width=w, encoding="rgb8", is_bigendian=0,
            step=3 * w, data=np.ascontiguousarray(synthetic_frame(w, h, i).reshape(-1)))
        writer.write(conn, (10 + i) * 10**9 // 10, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    writer.close()


def _wait_log(log, needle: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while needle not in log.read_text():
        assert time.monotonic() < end, log.read_text()
        time.sleep(0.02)


def _wait_file(path, proc, log, timeout=30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < end, f"{path} did not appear: " + log.read_text()
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(3))
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_replay_record_loses_nothing(ros_domain, tmp_path, storage, repeat):
    """Under a CPU hog and with a bystander subscriber on the domain, record -> play -> record
    gives the same bytes: play waits for the *named* recorder, not for any subscriber."""
    from active_o3_ros.ros import bags

    env = dict(os.environ)
    topics = ["/camera/image_raw", "/active_o3/detections"]
    procs = []
    # a busy core for the whole test (bounded: it ends itself after 120 s)
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 120\nwhile time.time() < end: pass"])
    probe = Probe()
    try:
        probe.subscribe(Image, "/camera/image_raw")  # the bystander: a subscriber that is not the recorder
        probe.subscribe(DetectionArray, "/active_o3/detections")
        node = start("active_o3_ros.ros.node", *node_args("-p", "qos_depth:=10"), env=env, log=tmp_path / "node.log")
        procs.append(node)
        probe.wait_for(lambda: probe.node.count_publishers("/active_o3/detections") >= 1
                       and probe.node.count_subscribers("/camera/image_raw") >= 2, 30, "node ready")
        rec1 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag1"), "--storage", storage,
                     "--ready-file", str(tmp_path / "rec1.ready"), *topics, env=env, log=tmp_path / "rec1.log")
        procs.append(rec1)
        _wait_file(tmp_path / "rec1.ready", rec1, tmp_path / "rec1.log")
        cam = start("active_o3_ros.ros.camera_source", "synthetic:320x240", "--fps", "5", "--max-frames", "12",
                    "--depth", "50", "--wait-subscribers", "3", env=env, log=tmp_path / "cam.log")
        procs.append(cam)
        assert cam.wait(60) == 0, (tmp_path / "cam.log").read_text()
        probe.wait_for(lambda: len(probe.got("/active_o3/detections")) >= 2, 30, "detections")
        time.sleep(2.0)
        assert stop(rec1) == 0, (tmp_path / "rec1.log").read_text()
        assert "recorded" in (tmp_path / "rec1.log").read_text()
        if storage == "sqlite3":  # the user is told what a kill would have cost
            assert "every message is lost" in (tmp_path / "rec1.log").read_text()
        stop(node)
        info1 = bags.bag_info(tmp_path / "bag1")
        assert info1["/camera/image_raw"].count == 12
        assert info1["/active_o3/detections"].count >= 2
        rec2 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag2"), "--storage", storage,
                     "--node-name", "rec2", "--max-messages", str(sum(s.count for s in info1.values())), *topics,
                     env=env, log=tmp_path / "rec2.log")
        procs.append(rec2)
        # the recorder subscribes once play's publishers make the topics (and types) visible; play
        # waits for *that* node -- the bystander already satisfies any subscriber count
        play = start("active_o3_ros.ros.bags", "play", str(tmp_path / "bag1"), "--rate", "4", "--wait-for-node",
                     "rec2", env=env, log=tmp_path / "play.log")
        procs.append(play)
        assert play.wait(60) == 0, (tmp_path / "play.log").read_text()
        assert "every one acknowledged" in (tmp_path / "play.log").read_text()
        assert rec2.wait(30) == 0, (tmp_path / "rec2.log").read_text()
        assert_bags_equal(tmp_path / "bag1", tmp_path / "bag2", topics)
    finally:
        for p in procs:
            stop(p)
        hog.kill()
        hog.wait()
        probe.close()


def test_play_to_a_stalled_recorder_is_an_error(ros_domain, tmp_path):
    """SIGSTOP the recorder: play must exit non-zero, never print a success line."""
    env = dict(os.environ)
    src = tmp_path / "src"
    _image_bag(src, frames=24, size=(640, 480))
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "out"), "--node-name", "stalled",
                "/camera/image_raw", env=env, log=tmp_path / "rec.log")
    play = None
    try:
        play = start("active_o3_ros.ros.bags", "play", str(src), "--topics", "/camera/image_raw", "--rate", "1",
                     "--wait-for-node", "stalled", "--ack-timeout", "3", env=env, log=tmp_path / "play.log")
        _wait_log(tmp_path / "rec.log", "recording /camera/image_raw")
        os.kill(rec.pid, signal.SIGSTOP)  # 24 frames 0.1 s apart: most are still to come
        code = play.wait(60)
        text = (tmp_path / "play.log").read_text()
        assert code == 1, text
        assert "acknowledged" in text and "published 24 messages" not in text, text
    finally:
        if rec.poll() is None:
            os.kill(rec.pid, signal.SIGCONT)
        for p in (play, rec):
            if p is not None:
                stop(p)


def test_play_waits_for_the_named_recorder_not_a_bystander(ros_domain, tmp_path):
    src = tmp_path / "src"
    _image_bag(src, frames=3, size=(64, 48))
    probe = Probe()
    try:
        probe.subscribe(Image, "/camera/image_raw")  # bystander
        play = start("active_o3_ros.ros.bags", "play", str(src), "--topics", "/camera/image_raw", "--wait-for-node",
                     "nobody_records", "--wait-timeout", "3", env=dict(os.environ), log=tmp_path / "play.log")
        assert play.wait(30) == 1, (tmp_path / "play.log").read_text()
        assert "nothing published" in (tmp_path / "play.log").read_text()
        time.sleep(0.3)
        assert probe.got("/camera/image_raw") == []
    finally:
        probe.close()


def test_recorder_exits_on_a_second_signal_and_reports_missing_topics(ros_domain, tmp_path):
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "out"), "/never/published",
                env=dict(os.environ), log=tmp_path / "rec.log")
    try:
        time.sleep(3.0)
        rec.send_signal(signal.SIGINT)
        code = rec.wait(30)
        text = (tmp_path / "rec.log").read_text()
        assert code == 1 and "never recorded" in text and "recorded 0 messages" in text, text
    finally:
        stop(rec)
    # a second signal ends it at once, whatever it is doing
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "out2"), "/x", env=dict(os.environ),
                log=tmp_path / "rec2.log")
    try:
        time.sleep(3.0)
        rec.send_signal(signal.SIGINT)
        rec.send_signal(signal.SIGINT)
        assert rec.wait(10) in (1, 130)
    finally:
        stop(rec)


def test_exit_watchdog_ends_a_hung_process():
    """The teardown guard: a process blocked forever (here in a C-level wait) still exits."""
    code = ("import threading\nfrom active_o3_ros.ros.bags import exit_watchdog\n"
            "exit_watchdog(0.5, 7, 'test teardown')\nthreading.Event().wait()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 7 and "still running after" in out.stderr, out.stderr


def test_sqlite3_recording_warns_and_help_says_what_a_kill_loses():
    from active_o3_ros.ros import bags

    help_text = bags.build_parser()._subparsers._group_actions[0].choices["record"].format_help()
    assert "a kill loses EVERY message" in " ".join(help_text.split()) and "open chunk" in help_text


def test_camera_source_exits_1_when_a_subscriber_does_not_acknowledge(ros_domain, tmp_path):
    """A stalled (SIGSTOP) reliable subscriber: the camera must not report success."""
    env = dict(os.environ)
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "out"), "/camera/image_raw", env=env,
                log=tmp_path / "rec.log")
    cam = None
    try:
        cam = start("active_o3_ros.ros.camera_source", "synthetic:640x480", "--fps", "10", "--max-frames", "30",
                    "--depth", "50", "--wait-subscribers", "1", "--ack-timeout", "2", env=env, log=tmp_path / "cam.log")
        _wait_log(tmp_path / "rec.log", "recording /camera/image_raw")
        os.kill(rec.pid, signal.SIGSTOP)  # 30 frames at 10 fps: most are still to come
        code = cam.wait(60)
        text = (tmp_path / "cam.log").read_text()
        assert code == 1 and "acknowledged" in text, text
    finally:
        if rec.poll() is None:
            os.kill(rec.pid, signal.SIGCONT)
        for p in (cam, rec):
            if p is not None:
                stop(p)
