"""COCO mAP (pycocotools) on hand-computed cases, box ops, the COCO instances reader, the synthetic scene renderer."""

import json

import numpy as np
import pytest
from PIL import Image

from tasks_lib.core import synthetic
from tasks_lib.core.boxes import box_iou, nms
from tasks_lib.core.coco import coco_map
from tasks_lib.tasks.object_detection.coco import read_coco

B = np.array([[0, 0, 10, 10]], dtype=np.float32)


def pred(boxes, scores, labels):
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32), np.asarray(labels))


def test_box_iou_by_hand():
    assert box_iou(B, [[0, 0, 10, 10]])[0, 0] == 1.0
    assert box_iou(B, [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    assert box_iou(B, [[20, 20, 30, 30]])[0, 0] == 0.0
    assert box_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 0.0  # empty union: 0, not NaN


def test_nms_keeps_the_best_of_each_overlapping_group_ties_by_index():
    boxes = [[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10]]
    # IoU(0, 1) = 90 / 110 = 0.82 > 0.5: box 1 (lower score) goes; box 3 ties box 0's score and comes later
    assert nms(boxes, [0.9, 0.8, 0.7, 0.9], 0.5).tolist() == [0, 2]
    assert nms(boxes, [0.9, 0.8, 0.7, 0.9], 0.85).tolist() == [0, 1, 2]  # 0.82 is kept at 0.85, duplicates not
    assert nms(boxes, [0.9, 0.8, 0.7, 0.9], 1.0).tolist() == [0, 3, 1, 2]  # 1 = no suppression, best first


def test_perfect_detection_scores_one():
    m = coco_map([pred(B, [0.9], [0])], [(B, np.array([0]))], 1)
    assert m["map"] == pytest.approx(1.0) and m["map_50"] == pytest.approx(1.0)


def test_iou_between_thresholds_counts_only_the_lower_ones():
    # IoU 0.6 with the ground truth: a hit at t = 0.5, 0.55, 0.6 (3 of 10 thresholds), a miss above
    shifted = [[0, 0, 10, 10 / 0.6]]  # area 166.7, intersection 100 -> IoU 0.6
    m = coco_map([pred(shifted, [0.9], [0])], [(B, np.array([0]))], 1)
    assert m["map_50"] == pytest.approx(1.0)
    assert m["map_75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.3)


def test_false_positive_ranked_first_gives_101_point_ap_by_hand():
    # one gt; detections: FP (0.9) then TP (0.8): precision 1/2 at recall 1 -> AP = 0.5 at every threshold
    m = coco_map([pred([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])], [(B, np.array([0]))], 1)
    assert m["map"] == pytest.approx(0.5)
    # TP first then FP: precision 1 at recall 1 -> AP 1
    m = coco_map([pred([[50, 50, 60, 60], [0, 0, 10, 10]], [0.8, 0.9], [0, 0])], [(B, np.array([0]))], 1)
    assert m["map"] == pytest.approx(1.0)


def test_half_recall_interpolates_at_the_101_points():
    # two gts, one found: recall 0.5 with precision 1 -> points 0..0.5 (51 of 101) have precision 1
    gts = np.array([[0, 0, 10, 10], [30, 30, 40, 40]], np.float32)
    m = coco_map([pred(B, [0.9], [0])], [(gts, np.array([0, 0]))], 1)
    assert m["map"] == pytest.approx(51 / 101)


def test_duplicates_are_false_positives_and_wrong_class_does_not_match():
    # the same box twice: the second is a FP after the TP -> AP still 1 (precision at recall 1 is 1)
    m = coco_map([pred([[0, 0, 10, 10]] * 2, [0.9, 0.8], [0, 0])], [(B, np.array([0]))], 1)
    assert m["map"] == pytest.approx(1.0)
    # right box, wrong class: class 0 has recall 0, class 1 has no ground truth and is skipped
    m = coco_map([pred(B, [0.9], [1])], [(B, np.array([0]))], 2)
    assert m["map"] == pytest.approx(0.0) and m["ap_class_1"] == -1.0


def test_categories_average_and_images_pool():
    # class 0 perfect over two images; class 1 missed -> mAP 0.5
    targets = [(B, np.array([0])), (np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([0, 1]))]
    preds = [pred(B, [0.9], [0]), pred(B, [0.7], [0])]
    m = coco_map(preds, targets, 2)
    assert m["ap_class_0"] == pytest.approx(1.0) and m["ap_class_1"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.5)


def test_hand_checked_case_with_crowd_and_two_classes_matches_cocoeval():
    """Two images, two classes, a crowd region; the expected numbers worked out by hand.

    Image 1: class 0 ground truth A = [0,0,10,10] and C = [20,0,30,10]; a crowd region of class 0
    R = [40,0,80,40]. Detections (class 0): d1 = A exactly (0.9), d2 = [40,0,50,10] inside R (0.8),
    d3 = [60,60,70,70] on nothing (0.7). Image 2: class 1 ground truth E = [0,0,20,20]; detection
    d4 = [0,0,20,25] (0.6), IoU 400/500 = 0.8.

    Class 0, two ground truths (the crowd one does not count): d1 TP at every threshold; d2 lies in R,
    COCO's crowd IoU is intersection / detection area = 100/100 = 1, so d2 is ignored; d3 FP; C missed.
    Ranked: TP (precision 1, recall 0.5), FP (1/2, 0.5): the 101-point AP is 51/101 = 0.50495 at every
    threshold. Without the crowd rule d2 would be a FP too; same AP here because it ranks after the TP.
    Class 1: d4 hits at thresholds 0.5 .. 0.8 (7 of 10), misses at 0.85, 0.9, 0.95 -> AP 0.7, AP@.5 1.
    mAP = (0.50495 + 0.7) / 2 = 0.60248; mAP@.5 = (0.50495 + 1) / 2 = 0.75248; mAP@.75 the same.
    """
    targets = [
        (np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 80, 40]], np.float32), np.array([0, 0, 0]),
         np.array([False, False, True])),
        (np.array([[0, 0, 20, 20]], np.float32), np.array([1])),
    ]  # fmt: skip
    preds = [
        pred([[0, 0, 10, 10], [40, 0, 50, 10], [60, 60, 70, 70]], [0.9, 0.8, 0.7], [0, 0, 0]),
        pred([[0, 0, 20, 25]], [0.6], [1]),
    ]
    m = coco_map(preds, targets, 2)
    assert m["ap_class_0"] == pytest.approx(51 / 101)
    assert m["ap_class_1"] == pytest.approx(0.7)
    assert m["map"] == pytest.approx((51 / 101 + 0.7) / 2)
    assert m["map_50"] == pytest.approx((51 / 101 + 1) / 2) and m["map_75"] == pytest.approx(m["map_50"])
    assert m["map_small"] == pytest.approx(m["map"]) and m["map_large"] == -1.0  # every box is < 32² px
    # the crowd region makes d2 neither hit nor false positive: ranked first, it would cost precision otherwise
    preds[0] = pred([[0, 0, 10, 10], [40, 0, 50, 10]], [0.5, 0.95], [0, 0])
    assert coco_map(preds, targets, 2)["ap_class_0"] == pytest.approx(51 / 101)  # ignored: TP first
    targets[0] = (targets[0][0][:2], targets[0][1][:2])  # no crowd region: d2 is a FP ranked first
    assert coco_map(preds, targets, 2)["ap_class_0"] == pytest.approx(0.5 * 51 / 101)  # precision 1/2 to recall .5


def test_no_detections_at_all_scores_zero():
    m = coco_map([pred(np.zeros((0, 4)), [], [])], [(B, np.array([0]))], 1)
    assert m["map"] == 0.0 and m["map_50"] == 0.0


def test_read_coco_instances_json(tmp_path):
    """The exact COCO layout: images/annotations/categories, bbox = [x, y, w, h], iscrowd skipped."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (200, 100), (10, 20, 30)).save(tmp_path / "images" / "a.jpg")
    Image.new("RGB", (50, 50)).save(tmp_path / "images" / "b.png")
    doc = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 200, "height": 100},
            {"id": 3, "file_name": "b.png", "width": 50, "height": 50},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [20, 10, 40, 50], "area": 2000, "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 200, 100], "area": 20000, "iscrowd": 1},
            {"id": 3, "image_id": 3, "category_id": 1, "bbox": [5, 5, 10, 20], "area": 200, "iscrowd": 0},
        ],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}],
    }
    (tmp_path / "instances_val.json").write_text(json.dumps(doc))
    read = read_coco(tmp_path / "instances_val.json", None, 64)
    images, boxes, labels, classes, names = read[:5]
    assert images.shape == (2, 64, 64, 3) and names == ["b.png", "a.jpg"]  # sorted by image id
    assert classes == ["person", "dog"]  # category-id order
    np.testing.assert_allclose(boxes[1], [[20 * 64 / 200, 10 * 64 / 100, 60 * 64 / 200, 60 * 64 / 100]])
    assert labels[1].tolist() == [1]  # the crowd box is not a training target ...
    np.testing.assert_allclose(read.crowd_boxes[1], [[0, 0, 64, 64]])  # ... but an ignore region for COCOeval
    assert read.crowd_labels[1].tolist() == [0] and len(read.crowd_boxes[0]) == 0
    np.testing.assert_allclose(boxes[0], [[5 * 64 / 50, 5 * 64 / 50, 15 * 64 / 50, 25 * 64 / 50]])
    assert labels[0].tolist() == [0]


def test_scene_boxes_are_exact_visible_extents_and_deterministic():
    rng = np.random.default_rng(3)
    bg = synthetic.background(rng, 64)
    objs = [synthetic.SceneObject("square", "red", 20, 10, 10), synthetic.SceneObject("square", "blue", 20, 20, 10)]
    img, boxes, visible = synthetic.render(bg, objs)
    np.testing.assert_array_equal(boxes[1], [20, 10, 40, 30])
    np.testing.assert_array_equal(boxes[0], [10, 10, 20, 30])  # the right half is covered by the blue square
    assert visible[0] == pytest.approx(0.5, abs=0.05) and visible[1] == 1.0
    assert tuple(img[15, 15]) != tuple(img[15, 25])  # red vs blue
    a = synthetic.detection_scene(np.random.default_rng(5), 96, 5)
    b = synthetic.detection_scene(np.random.default_rng(5), 96, 5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    img, boxes, labels = a
    assert len(boxes) == len(labels) >= 1
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes.min() >= 0 and boxes.max() <= 96
