"""Lifecycle transitions via the change_state service from another process, parameters at
run time, and record -> replay -> record over DDS losing nothing."""
from __future__ import annotations

import os
import time

import pytest

from rosutil import Probe, assert_bags_equal, start, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray  # noqa: E402
from lifecycle_msgs.msg import State, Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from test_node_dds import node_args  # noqa: E402


def _call(probe, client, request, timeout=15.0):
    assert client.wait_for_service(timeout_sec=timeout), f"service {client.srv_name} not available"
    fut = client.call_async(request)
    end = time.monotonic() + timeout
    while not fut.done() and time.monotonic() < end:
        time.sleep(0.02)
    assert fut.done(), f"{client.srv_name} timed out"
    return fut.result()


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
            return _call(probe, get, GetState.Request()).current_state.id

        def transition(tid: int) -> None:
            assert _call(probe, change, ChangeState.Request(transition=Transition(id=tid))).success

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
        assert _call(probe, setp, req).results[0].successful
        send_and_count(True)
        assert probe.got("/active_o3/detections")[-1].instruction == "white squares"
        instr.publish(String(data="text, logos"))
        time.sleep(0.5)
        send_and_count(True)
        assert probe.got("/active_o3/detections")[-1].instruction == "text, logos"
        bad = SetParameters.Request(parameters=[Parameter(name="max_regions", value=ParameterValue(
            type=ParameterType.PARAMETER_INTEGER, integer_value=99))])
        res = _call(probe, setp, bad).results[0]
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


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_record_replay_record_loses_nothing(ros_domain, tmp_path, storage):
    from active_o3_ros.ros import bags

    env = dict(os.environ)
    topics = ["/camera/image_raw", "/active_o3/detections"]
    node = start("active_o3_ros.ros.node", *node_args("-p", "qos_depth:=10"), env=env, log=tmp_path / "node.log")
    rec1 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag1"), "--storage", storage, *topics,
                 env=env, log=tmp_path / "rec1.log")
    probe = Probe()
    try:
        probe.wait_for(lambda: probe.node.count_subscribers("/active_o3/detections") >= 1
                       and probe.node.count_publishers("/active_o3/detections") >= 1
                       and probe.node.count_subscribers("/camera/image_raw") >= 2, 30, "recorder and node ready")
        time.sleep(1.0)  # the recorder subscribes to a topic once it sees it in the graph
        cam = start("active_o3_ros.ros.camera_source", "synthetic:320x240", "--fps", "5", "--max-frames", "12",
                    "--depth", "50", "--wait-subscribers", "2", env=env, log=tmp_path / "cam.log")
        assert cam.wait(60) == 0
        time.sleep(2.0)
        assert stop(rec1) == 0, (tmp_path / "rec1.log").read_text()
        stop(node)
        info1 = bags.bag_info(tmp_path / "bag1")
        assert info1["/camera/image_raw"].count == 12
        assert info1["/active_o3/detections"].count >= 2
        rec2 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag2"), "--storage", storage,
                     "--max-messages", str(sum(s.count for s in info1.values())), *topics, env=env,
                     log=tmp_path / "rec2.log")
        # the recorder subscribes once play's publishers make the topics (and types) visible;
        # play waits for that subscription before sending anything
        play = start("active_o3_ros.ros.bags", "play", str(tmp_path / "bag1"), "--rate", "4", "--wait-subscribers",
                     "1", env=env, log=tmp_path / "play.log")
        assert play.wait(60) == 0, (tmp_path / "play.log").read_text()
        assert rec2.wait(30) == 0, (tmp_path / "rec2.log").read_text()
        assert_bags_equal(tmp_path / "bag1", tmp_path / "bag2", topics)
    finally:
        for p in (node, rec1):
            stop(p)
        probe.close()
