"""Ground truth beside the camera: ``active-o3-camera FOLDER --labels COCO.json`` publishes a
DetectionArray with the image's own header; recorded by the real recorder, both topics carry
equal stamps and the labels carry the COCO boxes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from rosutil import start, stop

pytest.importorskip("active_o3_ros.msg")
from active_o3_ros.msg import Detection, DetectionArray  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from test_lifecycle_bags_dds import _wait_file  # noqa: E402

from active_o3_ros.ros import camera_source  # noqa: E402

IMAGES, LABELS = "/camera/image_raw", "/ground_truth/detections"


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """4 frames of 320x180 from the warehouse drive, with their COCO file."""
    from active_o3_training.data.drive import DriveConfig, write_sequence

    out = tmp_path_factory.mktemp("drive")
    path = write_sequence(out, DriveConfig(seed=11, frames=4, width=320, height=180), progress=False)
    data = json.loads(path.read_text())
    # one frame with no annotation at all: it must still publish an (empty) labels message
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    path.write_text(json.dumps(data))
    return out, data


def _stamp(h) -> int:
    return int(h.stamp.sec) * 1_000_000_000 + int(h.stamp.nanosec)


@pytest.mark.ros
def test_labels_recorded_with_the_image_stamps_and_coco_boxes(ros_domain, tmp_path, sequence):
    from active_o3_ros.ros import bags

    seq, data = sequence
    env = dict(os.environ)
    bag = tmp_path / "bag"
    rec = start("active_o3_ros.ros.bags", "record", "-o", str(bag), IMAGES, LABELS, "--ready-file",
                str(tmp_path / "rec.ready"), env=env, log=tmp_path / "rec.log")
    cam = None
    try:
        # the recorder subscribes once the camera's publishers appear; the camera waits for it
        cam = start("active_o3_ros.ros.camera_source", str(seq / "images"), "--labels", str(seq / "annotations.json"),
                    "--fps", "5", "--depth", "10", "--frame-id", "drive_cam", "--wait-subscribers", "1",
                    env=env, log=tmp_path / "cam.log")
        _wait_file(tmp_path / "rec.ready", rec, tmp_path / "rec.log")
        assert cam.wait(60) == 0, (tmp_path / "cam.log").read_text()
        assert "4 labels on /ground_truth/detections" in (tmp_path / "cam.log").read_text()
        time.sleep(0.5)
        assert stop(rec) == 0, (tmp_path / "rec.log").read_text()
    finally:
        for p in (cam, rec):
            if p is not None:
                stop(p)
    store = bags.typestore()
    images = [store.deserialize_cdr(raw, t) for _, t, _, raw in bags.iter_raw(bag, [IMAGES])]
    labels = [store.deserialize_cdr(raw, t) for _, t, _, raw in bags.iter_raw(bag, [LABELS])]
    assert len(images) == len(labels) == 4
    images.sort(key=lambda m: _stamp(m.header))
    labels.sort(key=lambda m: _stamp(m.header))
    assert [_stamp(m.header) for m in images] == [_stamp(m.header) for m in labels]
    assert len({_stamp(m.header) for m in images}) == 4
    assert {m.header.frame_id for m in images + labels} == {"drive_cam"}
    import cv2

    for i, (img, lab) in enumerate(zip(images, labels)):
        im = data["images"][i]
        png = cv2.cvtColor(cv2.imread(str(seq / im["file_name"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(np.asarray(img.data).reshape(img.height, img.width, 3), png)  # frame i is file i
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        assert (lab.mode, lab.instruction, lab.image_width, lab.image_height) == ("labels", "text", 320, 180)
        assert len(lab.detections) == len(anns)
        if im["id"] == 2:
            assert anns == [] and len(lab.detections) == 0
        for d, a in zip(lab.detections, anns):
            x, y, w, h = a["bbox"]
            np.testing.assert_allclose([d.x_min, d.y_min, d.x_max, d.y_max], [x, y, x + w, y + h], rtol=1e-6, atol=1e-4)
            assert (d.label, d.text, d.score, d.region_index, d.mask_index) == ("text", a["text"], 1.0, -1, -1)
    assert sum(len(m.detections) for m in labels) > 0


def test_labels_message_scales_boxes_with_the_resize(sequence):
    seq, data = sequence
    labels = camera_source.load_labels(seq / "annotations.json")
    assert sorted(labels.by_name) == [f"frame_{i:06d}.png" for i in range(4)]
    assert labels.by_name["frame_000001.png"] == ()
    entry = labels.by_name["frame_000000.png"]
    assert entry
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = camera_source.labels_message(DetectionArray, Detection, header, entry, labels.instruction, (160, 90), (320, 180))
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, "cam")
    assert (msg.image_width, msg.image_height, msg.mode) == (160, 90, "labels")
    for d, lb in zip(msg.detections, entry):
        np.testing.assert_allclose([d.x_min, d.y_min, d.x_max, d.y_max], np.array(lb.box) / 2, rtol=1e-6)
        assert d.text == lb.text


@pytest.mark.parametrize("case", ["synthetic", "bag", "missing", "not_json", "not_coco", "bad_bbox", "no_match",
                                  "same_topic"])
def test_bad_labels_are_a_clear_error_exit_2(case, sequence, tmp_path, monkeypatch, capsys):
    seq, data = sequence
    monkeypatch.setattr(os, "environ", dict(os.environ))  # main() sets ROS defaults; keep them to this test
    source, labels, extra = str(seq / "images"), tmp_path / "l.json", []
    if case == "synthetic":
        source, labels = "synthetic:64x64", seq / "annotations.json"
    elif case == "bag":
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "metadata.yaml").write_text("x")
        source, labels = str(tmp_path / "b"), seq / "annotations.json"
    elif case == "missing":
        labels = tmp_path / "nope.json"
    elif case == "not_json":
        labels.write_text("{images:")
    elif case == "not_coco":
        labels.write_text("[1, 2]")
    elif case == "bad_bbox":
        bad = dict(data, annotations=[dict(data["annotations"][0], bbox=[1, 2, -3, 4])])
        labels.write_text(json.dumps(bad))
    elif case == "no_match":
        labels.write_text(json.dumps(dict(data, images=[dict(im, file_name=f"x{im['id']}.png") for im in data["images"]],
                                          annotations=[])))
    elif case == "same_topic":
        labels, extra = seq / "annotations.json", ["--labels-topic", IMAGES]
    assert camera_source.main([source, "--labels", str(labels), *extra]) == 2
    text = capsys.readouterr().err
    assert text.startswith("active-o3-camera: error:") and "labels" in text, text


def test_labels_cli_help_and_exit_code_in_a_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.camera_source", "--help"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "--labels" in out.stdout and "--labels-topic" in out.stdout
    out = subprocess.run([sys.executable, "-m", "active_o3_ros.ros.camera_source", "synthetic:64x64", "--labels",
                          str(tmp_path / "none.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "image-folder source" in out.stderr, out.stderr
