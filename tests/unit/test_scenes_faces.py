"""Face verification pieces: the identity renderer, the LFW reader, ROC AUC / EER / threshold metrics."""

import numpy as np
import pytest
from PIL import Image

from tasks_lib.tasks.face_verification.faces import render_identities
from tasks_lib.tasks.face_verification.metrics import (
    best_threshold,
    equal_error_rate,
    pair_accuracy,
    roc_auc,
    roc_curve,
)
from tasks_lib.tasks.face_verification.readers import read_lfw, read_lfw_pairs
from tasks_lib.tasks.face_verification.task import sample_pairs


def test_rendered_identities_are_deterministic_and_samples_vary():
    x1, y1 = render_identities(3, 2, 24, seed=5)
    x2, _ = render_identities(3, 2, 24, seed=5)
    assert np.array_equal(x1, x2) and x1.shape == (6, 24, 24, 3) and y1.tolist() == [0, 0, 1, 1, 2, 2]
    assert not np.array_equal(x1[0], x1[1])  # two photos of one identity differ


def test_sample_pairs_are_half_same_and_consistent():
    ids = np.repeat(np.arange(5), 3)
    pairs = sample_pairs(ids, 40, np.random.default_rng(0))
    assert pairs[:, 2].sum() == 20
    assert all((ids[a] == ids[b]) == bool(s) and a != b for a, b, s in pairs)


def test_metrics_by_hand():
    same = np.array([1, 1, 0, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    # positive-negative orderings: 0.9, 0.8 beat all 3 negatives; 0.6 beats 2 of 3 -> 8/9
    assert roc_auc(same, score) == pytest.approx(8 / 9)
    fpr, tpr, _ = roc_curve(same, score)
    assert fpr.tolist() == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert tpr.tolist() == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert equal_error_rate(same, score) == pytest.approx(1 / 3)
    thr = best_threshold(same, score)
    assert 0.2 < thr <= 0.6 and pair_accuracy(same, score, thr) == pytest.approx(5 / 6)
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)  # ties count half
    assert equal_error_rate([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == pytest.approx(0.0)


def test_read_lfw_layout(tmp_path):
    for name, n in (("Aaron_Peirsol", 2), ("Abel_Pacheco", 1), ("Zico", 3)):
        (tmp_path / name).mkdir()
        for i in range(1, n + 1):
            Image.fromarray(np.full((250, 250, 3), 20 * i, np.uint8)).save(tmp_path / name / f"{name}_{i:04d}.jpg")
    (tmp_path / "pairs.txt").write_text("1\t2\nAaron_Peirsol\t1\t2\nAaron_Peirsol\t1\tAbel_Pacheco\t1\n")
    assert read_lfw_pairs(tmp_path / "pairs.txt") == [
        ("Aaron_Peirsol", 1, "Aaron_Peirsol", 2),
        ("Aaron_Peirsol", 1, "Abel_Pacheco", 1),
    ]
    persons, pairs = read_lfw(tmp_path, 16)
    assert sorted(persons) == ["Aaron_Peirsol", "Abel_Pacheco", "Zico"] and len(pairs) == 2
    assert [n for n, _ in persons["Zico"]] == [1, 2, 3] and persons["Zico"][0][1].shape == (16, 16, 3)


def test_lfw_pairs_line_of_the_wrong_shape_is_refused(tmp_path):
    (tmp_path / "pairs.txt").write_text("300\nA\t1\n")
    with pytest.raises(ValueError, match="line 2"):
        read_lfw_pairs(tmp_path / "pairs.txt")
