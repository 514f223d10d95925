"""Offline bag mode (no DDS): every input message is copied unchanged, each good frame gets a
DetectionArray + ZoomRegionArray (+ masks) with the image's header; bad frames are counted."""
from __future__ import annotations

import numpy as np
import pytest

import ros_test_backends  # noqa: F401  (registers 'blob')
from active_o3_ros.core.config import PerceptionConfig
from active_o3_ros.backends.base import build_pipeline
from active_o3_ros.ros import bags, convert
from active_o3_ros.ros.camera_source import synthetic_frame


def _write_input(path, storage, n_good=4):
    store = bags.typestore()
    T = store.types
    Image, Header, Time, String = (T["sensor_msgs/msg/Image"], T["std_msgs/msg/Header"],
                                   T["builtin_interfaces/msg/Time"], T["std_msgs/msg/String"])
    writer = bags.open_writer(path, storage)
    img_c = writer.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=store)
    str_c = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
    frames = []
    for i in range(n_good + 1):
        rgb = synthetic_frame(320, 240, i)
        data = rgb.reshape(-1)
        enc = "rgb8"
        if i == 2:  # a truncated frame in the middle of the log
            data = data[:1000]
        msg = Image(header=Header(stamp=Time(sec=100 + i, nanosec=7), frame_id=f"cam{i}"), height=240, width=320,
                    encoding=enc, is_bigendian=0, step=960, data=np.ascontiguousarray(data))
        writer.write(img_c, (100 + i) * 10**9, store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
        writer.write(str_c, (100 + i) * 10**9 + 1, store.serialize_cdr(String(data=f"hello {i}"), "std_msgs/msg/String"))
        frames.append(rgb)
    writer.close()
    return frames


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_offline_adds_outputs_and_drops_nothing(tmp_path, storage):
    src, dst = tmp_path / "in", tmp_path / "out"
    _write_input(src, storage)
    cfg = PerceptionConfig.from_flat({"sensing_backend": "tiling", "sensing_options": '{"rows": 1, "cols": 2}',
                                      "task_module": "blob", "task_options": '{"mask": true}', "max_regions": 2,
                                      "instruction": "bright blobs"})
    pipe = build_pipeline(cfg)
    stats = bags.run_offline(src, dst, "/camera/image_raw", pipe, cfg.instruction, progress=False)
    f = stats.frames  # the node's own counters (one frame processor for both doors)
    assert (f.received, f.processed, f.rejected, f.failed, f.dropped) == (5, 4, 1, 0, 0)
    assert "truncated" in f.errors[0] and f.last_error == f.errors[0]
    originals = list(bags.iter_raw(src))
    copied = [m for m in bags.iter_raw(dst) if m[0] in ("/camera/image_raw", "/chatter")]
    assert copied == originals  # same topics, timestamps and bytes, in order
    info = bags.bag_info(dst)
    assert info["/active_o3/detections"].count == 4 and info["/active_o3/regions"].count == 4
    assert info["/active_o3/masks"].count == 4
    store = bags.typestore()
    images = {ts: store.deserialize_cdr(raw, mt) for t, mt, ts, raw in originals if t == "/camera/image_raw"}
    n_dets = 0
    for topic, mt, ts, raw in bags.iter_raw(dst, ["/active_o3/detections", "/active_o3/regions", "/active_o3/masks"]):
        msg = store.deserialize_cdr(raw, mt)
        img = images[ts]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (
            img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id)
        assert (msg.image_width, msg.image_height) == (320, 240)
        if topic.endswith("detections"):
            assert msg.instruction == "bright blobs" and len(msg.detections) >= 1
            n_dets += len(msg.detections)
            for d in msg.detections:
                assert 0 <= d.x_min <= d.x_max <= 320 and 0 <= d.y_min <= d.y_max <= 240
                assert d.label == "blob" and d.mask_index >= 0 and d.region_index in (0, 1)
        elif topic.endswith("regions"):
            assert 1 <= len(msg.regions) <= 2
        else:
            for m in msg.masks:
                mask, (x0, y0) = convert.mask_from_msg(m)
                assert mask.any() and x0 + m.width <= 320 and y0 + m.height <= 240
    assert n_dets == f.detections > 0
    with pytest.raises(bags.BagError, match="already exists"):
        bags.run_offline(src, dst, "/camera/image_raw", pipe, "x", progress=False)
    with pytest.raises(bags.BagError, match="no topic"):
        bags.run_offline(src, tmp_path / "o2", "/nope", pipe, "x", progress=False)


def test_corrupt_bag_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9, storage_identifier: mcap")
    with pytest.raises(bags.BagError, match="cannot open bag"):
        bags.bag_info(bad)
    with pytest.raises(bags.BagError, match="does not exist"):
        bags.bag_info(tmp_path / "missing")
