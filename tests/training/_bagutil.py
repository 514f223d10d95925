"""Write real rosbag2 files (rosbags, our message types) for the training tests."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from active_o3_training.data.rosbag import DETECTION_ARRAY, IMAGE, typestore


def header(T, stamp_ns: int, frame_id: str = "cam"):
    return T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                                    frame_id=frame_id)


def image_msg(T, stamp_ns: int, rgb: np.ndarray, encoding: str = "rgb8"):
    h, w = rgb.shape[:2]
    data = rgb[:, :, ::-1] if encoding == "bgr8" else rgb
    return T[IMAGE](header=header(T, stamp_ns), height=h, width=w, encoding=encoding, is_bigendian=0, step=w * 3,
                    data=np.ascontiguousarray(data).reshape(-1))


def labels_msg(T, stamp_ns: int, w: int, h: int, boxes: Sequence[Sequence[float]], labels: Sequence[str],
               instruction: str = ""):
    dets = [T["active_o3_ros/msg/Detection"](label=l, text="", score=1.0, x_min=b[0], y_min=b[1], x_max=b[2], y_max=b[3],
                                             region_index=-1, mask_index=-1) for b, l in zip(boxes, labels)]
    return T[DETECTION_ARRAY](header=header(T, stamp_ns), image_width=w, image_height=h, instruction=instruction,
                              mode="labels", detections=dets, model_calls=0, preprocess_time=0.0, sensing_time=0.0,
                              crop_time=0.0, task_time=0.0, merge_time=0.0, total_time=0.0, latency=0.0,
                              sensing_status="ok")


def write_bag(path: Path, images: Sequence[tuple[int, np.ndarray]], labels: Sequence[tuple[int, list, list, str]],
              storage: str = "mcap", camera_topic: str = "/camera/image_raw",
              labels_topic: str = "/active_o3/detections", encoding: str = "rgb8") -> Path:
    """``images``: (stamp_ns, rgb); ``labels``: (stamp_ns, boxes, names, instruction).  Bag
    receive times are the stamps plus 1 ms (a recorder's arrival time, not the header stamp)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    T = store.types
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as w:
        ci = w.add_connection(camera_topic, IMAGE, typestore=store)
        cl = w.add_connection(labels_topic, DETECTION_ARRAY, typestore=store)
        msgs = [(s, ci, store.serialize_cdr(image_msg(T, s, rgb, encoding), IMAGE)) for s, rgb in images]
        for s, boxes, names, instr in labels:
            h, wd = images[0][1].shape[:2]
            msgs.append((s, cl, store.serialize_cdr(labels_msg(T, s, wd, h, boxes, names, instr), DETECTION_ARRAY)))
        for s, c, raw in sorted(msgs, key=lambda m: m[0]):
            w.write(c, s + 1_000_000, raw)
    return path


def robot_bag(path: Path) -> Path:
    """Four 168x112 frames 0.1 s apart, a bright 20x20 box moving right, each with its label:
    the small training bag of the GRPO tests (main and vLLM environments)."""
    s0, ms = 1_700_000_000 * 10**9, 1_000_000
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for k in range(4):
        img = rng.integers(0, 60, (112, 168, 3), dtype=np.uint8)
        x = 20 + 30 * k
        img[40:60, x:x + 20] = 250
        imgs.append((s0 + k * 100 * ms, img))
        labels.append((s0 + k * 100 * ms + 2 * ms, [[x, 40, x + 20, 60]], ["box"], "box"))
    return write_bag(path, imgs, labels)

