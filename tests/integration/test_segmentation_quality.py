"""Real training at a small 'test' setting, for the two tasks of the segmentation family (same
generated scenes, same small U-Net): foreground masks beat Otsu thresholding by a wide margin, and
per-class masks are well above the colour rule."""

from tests import smoke

DATA = {"n_train": 320, "n_val": 32, "n_test": 64, "image_size": 32, "min_object": 10, "max_object": 20}
TRAIN = {"epochs": 8, "width": 8, "depth": 2, "batch_size": 16, "lr": 5e-3}


def _trained_and_baseline(name, tmp_path):
    run = smoke.train(name, tmp_path, data=DATA, train=TRAIN)
    return run.task.evaluate(run.model, run.data), run.task.baseline(run.data)


def test_small_unet_beats_otsu_on_unseen_scenes(tmp_path):
    m, base = _trained_and_baseline("image_segmentation", tmp_path)
    assert m["iou"] > 0.6, m
    assert m["iou"] > base["iou"] + 0.15, (m, base)


def test_small_unet_beats_the_colour_rule_on_unseen_scenes(tmp_path):
    m, base = _trained_and_baseline("semantic_segmentation", tmp_path)
    assert m["miou"] > base["miou"] + 0.1, (m, base)
    assert m["pixel_accuracy"] > base["pixel_accuracy"], (m, base)
