"""The scene generator, the segmentation metrics and the Pascal VOC reader."""

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core.scenes import (
    SCENE_CLASSES,
    SceneSpec,
    generate_scenes,
    instance_pools,
    pixel_confusion,
    segmentation_scores,
)
from tasks_lib.families.segmentation import read_voc, voc_palette
from tasks_lib.tasks.image_segmentation.task import otsu_masks
from tasks_lib.tasks.semantic_segmentation.task import colour_rule_masks

SPEC = SceneSpec(size=32, min_object=10, max_object=18)


def test_scenes_are_deterministic_and_splits_differ():
    x1, m1 = generate_scenes(6, SPEC, "train", seed=3)
    x2, m2 = generate_scenes(6, SPEC, "train", seed=3)
    x3, _ = generate_scenes(6, SPEC, "test", seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(m1, m2)
    assert x1.shape == (6, 32, 32, 3) and x1.dtype == np.uint8 and m1.shape == (6, 32, 32)
    assert not np.array_equal(x1, x3)


def test_masks_hold_only_scene_classes_and_every_scene_has_an_object():
    _, masks = generate_scenes(40, SPEC, "val", seed=0)
    assert set(np.unique(masks)) <= set(range(len(SCENE_CLASSES)))
    assert all((m > 0).any() and (m == 0).any() for m in masks)
    assert set(np.unique(masks)) == set(range(len(SCENE_CLASSES)))  # every kind appears in 40 scenes


def test_masks_are_exact_where_objects_are_flat_coloured():
    """A disc is painted in one colour (times texture): inside its mask, pixels differ from just outside."""
    spec = SceneSpec(size=32, min_object=14, max_object=16, kinds=("disc",), noise=0.0, max_objects=1)
    x, m = generate_scenes(1, spec, "train", seed=1)
    fg = x[0][m[0] == 1].astype(float)
    # the fill is colour * (0.75..1): every channel's spread inside stays within that band
    assert ((fg.max(0) + 1) / (fg.min(0) + 1) < 1.45).all()


def test_digit_and_face_instances_never_cross_splits():
    pools = {s: instance_pools(s) for s in ("train", "val", "test")}
    for k in (0, 1):
        sets = [set(pools[s][k].tolist()) for s in pools]
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(pools["train"][1]) + len(pools["val"][1]) + len(pools["test"][1]) == 100


def test_segmentation_scores_by_hand():
    true = np.array([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 1]])
    cm = pixel_confusion(true, pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 1]]  # the 255 pixel is ignored
    s = segmentation_scores(cm)
    assert s["iou_class_0"] == pytest.approx(2 / 4)  # tp 2, union 3 + 3 - 2
    assert s["iou_class_1"] == pytest.approx(2 / 3)
    assert s["iou_class_2"] == pytest.approx(1 / 2)
    assert s["miou"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert s["pixel_accuracy"] == pytest.approx(5 / 7)


def test_baselines_on_an_easy_image():
    img = np.full((1, 16, 16, 3), 30, np.uint8)
    img[0, 4:10, 5:12] = 220
    truth = (img[..., 0] > 100).astype(np.uint8)
    assert np.array_equal(otsu_masks(img), truth)
    assert np.array_equal(otsu_masks(255 - img), truth)  # polarity from the border
    assert np.array_equal(colour_rule_masks(img, truth, img, 2), truth)


def test_read_voc_layout(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    for i, sid in enumerate(["2007_000032", "2007_000039", "2007_000063"]):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(root / "JPEGImages" / f"{sid}.jpg")
        mask = np.zeros((20, 30), np.uint8)
        mask[5:15, 10:20] = 15 if i else 1  # person / aeroplane
        mask[5, 10:20] = 255  # void border
        png = Image.fromarray(mask, mode="P")
        png.putpalette(voc_palette())
        png.save(root / "SegmentationClass" / f"{sid}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000032\n2007_000039\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000063\n")
    voc = read_voc(tmp_path, 16)
    assert list(voc["train"]["ids"]) == ["2007_000032", "2007_000039"] and len(voc["val"]["x"]) == 1
    assert voc["train"]["x"].shape == (2, 16, 16, 3) and voc["train"]["decoded"].all()
    assert set(np.unique(voc["train"]["y"][0])) == {0, 1, 255}
    assert set(np.unique(voc["val"]["y"][0])) == {0, 15, 255}


def test_read_voc_flags_a_broken_jpeg(tmp_path):
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "JPEGImages" / "a.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="P").save(tmp_path / "SegmentationClass" / "a.png")
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("")
    assert not read_voc(tmp_path, 8)["train"]["decoded"][0]
