"""Loaders of the temporal/pose tasks on tiny files in the upstream layouts, and their metrics."""

import json

import av
import numpy as np
import pytest
from PIL import Image

from tasks_lib.core.data import read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.families.video import read_clip
from tasks_lib.tasks.pose_estimation import decode_heatmaps, pck, read_coco_keypoints
from tasks_lib.tasks.pose_estimation.task import heatmap_targets


def _write_video(path, frames, fps=12, codec="mpeg4"):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _moving_bar(n, direction, h=48, w=64):
    frames = np.zeros((n, h, w, 3), np.uint8)
    for t in range(n):
        x = 8 + 3 * t if direction > 0 else w - 16 - 3 * t
        frames[t, :, x : x + 8] = 255
    return frames


def test_read_clip_decodes_avi_and_mp4_written_by_pyav(tmp_path):
    frames = _moving_bar(10, +1)
    _write_video(tmp_path / "a.avi", frames, fps=12)
    _write_video(tmp_path / "b.mp4", frames, fps=25, codec="libx264")
    for name, fps in (("a.avi", 12), ("b.mp4", 25)):
        clip, rate, n = read_clip(tmp_path / name, 4, 16)
        assert clip.shape == (4, 16, 16, 3) and n == 10 and rate == pytest.approx(fps)
        # centre-cropped 48x48 square: the bar starts left and ends right
        col = clip[..., 0].astype(float).mean(axis=(1,))  # (T, W)
        centre = (col * np.arange(16)).sum(1) / col.sum(1)
        assert centre[0] < centre[-1]


def test_ucf101_style_folder_source(tmp_path):
    root = tmp_path / "ucf"
    for cls, d in (("MoveLeft", -1), ("MoveRight", +1)):
        (root / cls).mkdir(parents=True)
        for g in (1, 2, 8, 9, 10, 11):  # UCF names: groups 1-7 are split 1's test set
            _write_video(root / cls / f"v_{cls}_g{g:02d}_c01.avi", _moving_bar(6, d))
    (root / "MoveLeft" / "broken.avi").write_bytes(b"not a video")
    task = get_task("video_classification")
    dcfg, _ = task.configs(
        "smoke", data_overrides={"source": "folder", "path": str(root), "n_frames": 4, "frame_size": 16}
    )
    out = tmp_path / "prepared"
    prep = task.prepare(dcfg, out)
    write_prepared(out, prep)
    m = read_manifest(out)
    assert prep.info["classes"] == ["MoveLeft", "MoveRight"]
    assert prep.info["unreadable"] == ["MoveLeft/broken.avi: InvalidDataError"]
    test_files = set(m.loc[m["split"] == "test", "file"])
    assert test_files == {f"{c}/v_{c}_g{g:02d}_c01.avi" for c in ("MoveLeft", "MoveRight") for g in (1, 2)}
    assert (m["n_frames"] == 4).all() and (m["source_frames"] == 6).all() and (m["fps"] > 0).all()
    assert np.load(out / "train_x.npy").shape[1:] == (4, 16, 16, 3)


def _write_coco(tmp_path):
    names = ["nose", "left_eye", "right_eye"]
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(tmp_path / "000001.jpg")
    doc = {
        "images": [{"id": 1, "file_name": "000001.jpg", "width": 60, "height": 40}],
        "categories": [{"id": 1, "name": "person", "keypoints": names, "skeleton": [[1, 2], [1, 3]]}],
        "annotations": [
            {
                "id": 7,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "num_keypoints": 2,
                "bbox": [10, 5, 20, 20],
                "keypoints": [20, 15, 2, 15, 10, 1, 0, 0, 0],
            },
            {
                "id": 8,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 1,
                "num_keypoints": 3,
                "bbox": [0, 0, 5, 5],
                "keypoints": [1, 1, 2, 2, 2, 2, 3, 3, 2],
            },
        ],
    }
    (tmp_path / "person_keypoints_val.json").write_text(json.dumps(doc))
    return names


def test_coco_keypoints_reader(tmp_path):
    names = _write_coco(tmp_path)
    r = read_coco_keypoints(tmp_path / "person_keypoints_val.json", tmp_path, 50)
    assert r["joints"] == names and r["ann_ids"] == [7]  # the crowd annotation is skipped
    assert r["images"].shape == (1, 50, 50, 3) and r["skeleton"] == [[1, 2], [1, 3]]
    kp = r["keypoints"][0]
    # box 20x20 widened by 1.25 to a 25-pixel square around (20, 15): scale 2, origin (7.5, 2.5)
    assert kp[0] == pytest.approx([(20.5 - 7.5) * 2, (15.5 - 2.5) * 2, 1])
    assert kp[1, 2] == 1 and kp[2, 2] == 0  # v=1 labelled (occluded) counts, v=0 does not
    assert r["boxes"][0] == pytest.approx([5, 5, 45, 45])


def test_pck_hand_computed():
    gt = np.array([[[0, 0], [10, 0], [0, 10], [5, 5]]], float)
    pred = gt + np.array([[[1, 0], [0, 3], [2.5, 0], [100, 100]]])
    vis = np.array([[1, 1, 1, 0]])
    # threshold 0.1 * 25 = 2.5: errors 1 (ok), 3 (miss), 2.5 (ok, boundary); joint 4 not labelled
    assert pck(pred, gt, vis, np.array([25.0])) == pytest.approx(2 / 3)
    assert pck(pred, gt, vis, np.array([25.0]), alpha=0.2) == pytest.approx(1.0)
    assert pck(pred, gt, np.zeros((1, 4)), np.array([25.0])) == 0.0


def test_heatmap_targets_decode_back_to_the_keypoints():
    import torch

    kp = torch.tensor([[[13.0, 21.0, 1.0], [40.0, 7.0, 1.0]]])
    hm = heatmap_targets(kp, (32, 32), 2, 1.0)
    xy, conf = decode_heatmaps(hm, 2)
    assert np.abs(xy[0] - kp[0, :, :2].numpy()).max() <= 0.5 + 1e-6  # within the decoder's quarter-cell step
    assert conf.min() > 0.7
