"""Recording survives signals; record/replay at scale loses nothing; a short soak of the node.

* SIGTERM / SIGINT to ``active-o3-bag record``: the bag is closed (metadata.yaml + indexed
  mcap) and holds every message sent.
* SIGKILL: the mcap has no footer and no metadata.yaml (rosbags refuses it); the recovery
  tool (``active_o3_ros.ros.bag_recovery``) gets back every message up to the last complete
  chunk, in order and intact -- see README "Reliability and security" for what mcap guarantees.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from relutil import REPO, node_args, ros_domain, start, stop  # noqa: F401
from rosutil import Probe, assert_bags_equal

pytest.importorskip("active_o3_ros.msg")
from sensor_msgs.msg import Image  # noqa: E402

pytestmark = pytest.mark.ros
TOPIC = "/camera/image_raw"


def _small(i: int):
    from active_o3_ros.ros.images import rgb_to_image

    m = rgb_to_image(np.full((48, 64, 3), i % 256, np.uint8))
    m.header.stamp.sec = i
    return m


def _record_and_publish(tmp_path, n: int, name: str, pause_every: int = 0):
    probe = Probe()
    pub = probe.publisher(Image, TOPIC, depth=1000)
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / name), TOPIC, log=tmp_path / f"{name}.log")
    probe.wait_for(lambda: pub.get_subscription_count() > 0, 30, "recorder subscribed")
    for i in range(n):
        pub.publish(_small(i))
        if pause_every and i % pause_every == 0:
            time.sleep(0.01)
    pub.wait_for_all_acked(__import__("rclpy").duration.Duration(seconds=20))
    return probe, rec


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_recorder_closes_bag_on_signal(ros_domain, tmp_path, sig):
    from active_o3_ros.ros import bags

    probe, rec = _record_and_publish(tmp_path, 50, "bag")
    try:
        time.sleep(0.5)
        rec.send_signal(sig)
        assert rec.wait(20) == 0, (tmp_path / "bag.log").read_text()
    finally:
        stop(rec)
        probe.close()
    assert (tmp_path / "bag" / "metadata.yaml").is_file()
    stamps = [ts for _t, _m, ts, _r in bags.iter_raw(tmp_path / "bag")]
    store = bags.typestore()
    secs = [store.deserialize_cdr(r, m).header.stamp.sec for _t, m, _ts, r in bags.iter_raw(tmp_path / "bag")]
    assert secs == list(range(50)) and len(stamps) == 50


def test_recorder_sigkill_leaves_recoverable_mcap(ros_domain, tmp_path):
    from active_o3_ros.ros import bags
    from active_o3_ros.ros.bag_recovery import recover_mcap

    n = 400  # 400 x 9.2 kB = 3.7 MB: three full 1 MiB chunks on disk, the rest in the writer's memory
    probe, rec = _record_and_publish(tmp_path, n, "bag", pause_every=20)
    try:
        time.sleep(1.0)
        rec.send_signal(signal.SIGKILL)
        rec.wait(10)
    finally:
        probe.close()
    assert not (tmp_path / "bag" / "metadata.yaml").exists()
    with pytest.raises(bags.BagError):
        bags.bag_info(tmp_path / "bag")
    out = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.bag_recovery", str(tmp_path / "bag"), "-o",
                          str(tmp_path / "fixed")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    store = bags.typestore()
    msgs = [store.deserialize_cdr(r, m) for _t, m, _ts, r in bags.iter_raw(tmp_path / "fixed")]
    secs = [m.header.stamp.sec for m in msgs]
    assert secs == list(range(len(secs)))  # an in-order prefix, nothing corrupted
    assert all(int(m.data[0]) == m.header.stamp.sec % 256 for m in msgs)
    assert 3 * 100 <= len(secs) < n  # >= 3 complete chunks of ~113 frames; the open chunk is lost
    with pytest.raises(Exception):
        recover_mcap(tmp_path / "bag", tmp_path / "fixed")  # never overwrites


@pytest.mark.slow
def test_record_replay_1000_frames_with_detections(ros_domain, tmp_path):
    """1000 camera frames + the node's detections recorded, replayed, re-recorded: equal."""
    from active_o3_ros.ros import bags

    topics = [TOPIC, "/active_o3/detections"]
    node = start("active_o3_ros.ros.node", *node_args("-p", "qos_depth:=10"), log=tmp_path / "node.log")
    rec1 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag1"), "--ready-file",
                 str(tmp_path / "rec1.ready"), *topics, log=tmp_path / "rec1.log")
    probe = Probe()
    procs = [node, rec1]
    try:
        probe.wait_for(lambda: (tmp_path / "rec1.ready").exists(), 30, "recorder subscribed to every topic")
        cam = start("active_o3_ros.ros.camera_source", "synthetic:64x48", "--fps", "100", "--max-frames", "1000",
                    "--depth", "1000", "--wait-subscribers", "2", log=tmp_path / "cam.log")
        procs.append(cam)
        assert cam.wait(120) == 0, (tmp_path / "cam.log").read_text()
        time.sleep(3.0)
        assert stop(rec1) == 0, (tmp_path / "rec1.log").read_text()
        stop(node)
        info1 = bags.bag_info(tmp_path / "bag1")
        assert info1[TOPIC].count == 1000 and info1["/active_o3/detections"].count >= 100
        total = sum(s.count for s in info1.values())
        rec2 = start("active_o3_ros.ros.bags", "record", "-o", str(tmp_path / "bag2"), "--max-messages", str(total),
                     "--node-name", "rec2", *topics, log=tmp_path / "rec2.log")
        play = start("active_o3_ros.ros.bags", "play", str(tmp_path / "bag1"), "--rate", "5", "--wait-for-node",
                     "rec2", log=tmp_path / "play.log")
        procs += [rec2, play]
        assert play.wait(180) == 0, (tmp_path / "play.log").read_text()
        assert rec2.wait(60) == 0, (tmp_path / "rec2.log").read_text()
        assert_bags_equal(tmp_path / "bag1", tmp_path / "bag2", topics)
    finally:
        for p in procs:
            stop(p)
        probe.close()


@pytest.mark.slow
def test_soak_short(tmp_path):
    """The soak runner on 300 frames at 30 fps: 0 crashes, no output lost, every frame accounted for
    (processed, or dropped by latest-frame-wins), flat RSS."""
    out = tmp_path / "soak.json"
    env = dict(os.environ, SOAK_ROS_DOMAIN_ID=str(np.random.randint(1, 100)))
    res = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--frames", "300", "--backend", "fast",
                          "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert out.is_file(), res.stdout[-2000:] + res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["crashes"] == 0 and r["frames_sent"] == 300 and r["output_messages_lost"] == 0, r
    accounted = r["frames_processed"] + r["frames_dropped_latest_wins"] + r["frames_failed"] + r["frames_rejected"]
    assert accounted == r["node_frames_received"] and r["frames_dropped_total"] >= r["frames_dropped_latest_wins"], r
    assert r["last_frame_processed"] and r["frames_processed"] > 0
    # A leak shows as growth; the allocator handing memory back (RSS -5.1 % seen on a 300-frame
    # run) is not one, so the short run checks growth only. The 10k-frame benchmark reports both.
    rss = r["rss_kb"]
    assert max(rss["middle"], rss["end"]) <= 1.05 * rss["start_after_warmup"], rss
