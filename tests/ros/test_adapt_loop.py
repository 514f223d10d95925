"""The "adapt to your robot" loop at small size, with real processes over loopback DDS:
record (camera source + recorder) -> label (teacher) -> train (GRPO, a few steps) -> the
node loads the new weights and publishes, and its regions are the new weights' regions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rosutil import Probe, start, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import DetectionArray, ZoomRegionArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from test_lifecycle_bags_dds import _wait_file  # noqa: E402

IMAGES, GT = "/camera/image_raw", "/ground_truth/detections"
ROOT = Path(__file__).resolve().parents[2]


def _train_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "active_o3_training.cli", *args]


@pytest.mark.ros
@pytest.mark.slow
def test_record_label_train_and_the_node_runs_the_new_weights(ros_domain, tmp_path):
    from active_o3_ros.backends.base import build_pipeline
    from active_o3_ros.core.config import PerceptionConfig
    from active_o3_ros.ros.bags import bag_info
    from active_o3_ros.ros.images import rgb_to_image
    from active_o3_training.data.drive import DriveConfig, iter_drive, write_sequence

    env = dict(os.environ)
    frames = 6
    drive = tmp_path / "drive"
    write_sequence(drive, DriveConfig(seed=3, frames=frames, width=640, height=360), progress=False)
    # 1. record: the real camera source (ground truth on its own topic) and the real recorder
    bag = tmp_path / "rec"
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(bag), IMAGES, GT, "--ready-file",
                str(tmp_path / "rec.ready"), env=env, log=tmp_path / "rec.log")
    try:
        cam = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.camera_source", str(drive / "images"),
                              "--labels", str(drive / "annotations.json"), "--fps", "4", "--depth", "10",
                              "--wait-subscribers", "1"], env=env, capture_output=True, text=True, timeout=120)
        assert cam.returncode == 0, cam.stderr
        _wait_file(tmp_path / "rec.ready", rec, tmp_path / "rec.log")
    finally:
        assert stop(rec) == 0, (tmp_path / "rec.log").read_text()
    counts = {t: s.count for t, s in bag_info(bag).items()}
    assert counts == {IMAGES: frames, GT: frames}
    # 2. label (no ground truth is read: the teacher sees the camera topic only)
    labels = tmp_path / "labels"
    out = subprocess.run(_train_cli("label", str(bag), "-o", str(labels), "--max-tiles", "3", "--workers", "1",
                                    "--threads", "2", "--dedup", "0", "--cache-dir", str(tmp_path / "tcache")),
                         env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads((labels / "teacher.json").read_text())["frames"]["labelled"] == frames
    # 3. train a few steps from the shipped weights
    policy = tmp_path / "policy"
    out = subprocess.run(_train_cli(
        "policy", "--config", "training/configs/policy_robot.yaml", "--set", f"data.bag={bag}",
        "--set", f"data.labels_bag={labels}", "--set", "data.dedup_threshold=0", "--set", "data.val_fraction=0.2",
        "--set", "cache.task_frames=1", "--set", f"cache.cache_dir={tmp_path / 'acache'}",
        "--set", "trainer.max_steps=2", "--set", "trainer.per_device_train_batch_size=16",
        "--set", "trainer.eval_steps=0", "--set", f"trainer.output_dir={policy}"),
        env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    weights = policy / "small_policy.safetensors"
    assert weights.is_file() and (policy / "small_policy.json").is_file()
    # 4. the node with sensing_model:=FILE publishes over DDS; its regions are the new weights'
    frame = next(iter_drive(DriveConfig(seed=3, frames=frames, width=640, height=360))).image
    expected = build_pipeline(PerceptionConfig.from_yaml(ROOT / "config" / "perceive.yaml",
                                                         {"sensing_model": str(weights)})).propose(frame, "text")
    probe = Probe()
    node = start("active_o3_ros.ros.node", "--ros-args", "-r", f"image:={IMAGES}", "-p", f"sensing_model:={weights}",
                 "-p", "qos_reliability:=reliable", env=env, log=tmp_path / "node.log")
    try:
        probe.subscribe(DetectionArray, "/active_o3/detections")
        probe.subscribe(ZoomRegionArray, "/active_o3/regions")
        pub = probe.publisher(Image, IMAGES)
        probe.wait_for(lambda: pub.get_subscription_count() > 0, 60, "node subscribed")
        msg = rgb_to_image(frame)
        msg.header.stamp.sec = 42
        pub.publish(msg)
        probe.wait_for(lambda: probe.got("/active_o3/regions") and probe.got("/active_o3/detections"), 60,
                       "the node's results")
    finally:
        code = stop(node)
        probe.close()
    assert code == 0, (tmp_path / "node.log").read_text()
    assert f"sensing weights={weights}" in (tmp_path / "node.log").read_text()
    regions = probe.got("/active_o3/regions")[-1]
    assert regions.header.stamp.sec == 42
    got = [[r.x_min, r.y_min, r.x_max, r.y_max] for r in regions.regions]
    want = [r.box.as_list() for r in expected.regions]
    assert len(got) == len(want) == 3
    np.testing.assert_allclose(got, want, atol=0.5)
