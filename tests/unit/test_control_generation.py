"""image_generation: the Frechet distance by hand, the options checks, the grid, the prepared-data loader."""

import numpy as np
import pandas as pd
import pytest
import torch

from tasks_lib.core.data import write_prepared
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import Prepared
from tasks_lib.tasks.image_generation.model import frechet_distance
from tasks_lib.tasks.image_generation.task import grid, parse_options


def test_frechet_distance_of_a_set_with_itself_is_zero():
    a = np.random.default_rng(0).normal(size=(200, 5))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_1d_by_hand():
    # 1-D: (mu_a - mu_b)^2 + (s_a - s_b)^2 with sample variances (ddof 1)
    a = np.array([[0.0], [2.0]])  # mean 1, var 2
    b = np.array([[4.0], [12.0]])  # mean 8, var 32
    assert frechet_distance(a, b) == pytest.approx(49 + (np.sqrt(2) - np.sqrt(32)) ** 2)


def test_frechet_distance_diagonal_by_hand():
    # independent dims: per-dim contributions add up; a shift of 3 in one dim adds 9
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5000, 2))
    b = a + np.array([3.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(9.0, abs=1e-6)
    c = a * np.array([2.0, 1.0])  # std 1 -> 2 in dim 0: (1 - 2)^2 = 1
    assert frechet_distance(a, c) == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"n": 0}, "n must"),
        ({"n": 65}, "n must"),
        ({"n": 2.5}, "n must"),
        ({"n": True}, "n must"),
        ({"n": 4, "seed": -1}, "seed must"),
        ({"n": 4, "seed": "7"}, "seed must"),
        ({"n": 4, "label": 10}, "label must"),
        ({"n": 4, "label": -1}, "label must"),
        ({"n": 4, "colour": "red"}, "unknown option"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_options_are_refused(opts, message):
    with pytest.raises(InvalidInput, match=message) as err:
        parse_options(opts, 10)
    assert err.value.status == 422


def test_good_options_get_defaults():
    assert parse_options({}, 10) == {"n": 16, "seed": 0, "label": None}
    assert parse_options({"n": 3, "seed": 5.0, "label": 9}, 10) == {"n": 3, "seed": 5, "label": 9}


def test_grid_layout():
    imgs = np.full((5, 4, 4), 255, dtype=np.uint8)
    g = grid(imgs, cols=3, pad=1)
    assert g.shape == (2 * 5 + 1, 3 * 5 + 1)
    assert g[1:5, 1:5].min() == 255 and g[0].max() == 0  # image then padding
    assert g[6:10, 11:15].max() == 0  # sixth cell is empty


def test_loader_reads_the_prepared_layout(tmp_path):
    for s, n in (("train", 3), ("val", 1), ("test", 2)):
        np.save(tmp_path / f"{s}_x.npy", np.full((n, 32, 32, 1), 7, dtype=np.uint8))
        np.save(tmp_path / f"{s}_y.npy", np.arange(n, dtype=np.int64))
    write_prepared(tmp_path, Prepared(pd.DataFrame({"split": ["train"]}), {"classes": ["0"]}))
    data = get_task("image_generation").load(tmp_path)
    assert data.x["train"].shape == (3, 32, 32, 1) and data.x["train"].dtype == torch.uint8
    assert data.y["test"].tolist() == [0, 1] and data.info["classes"] == ["0"]


def test_prepare_upsamples_digits_to_32(tmp_path):
    task = get_task("image_generation")
    dcfg, _ = task.configs("smoke")
    prepared = task.prepare(dcfg, tmp_path)
    x = np.load(tmp_path / "train_x.npy")
    assert x.shape[1:] == (32, 32, 1) and x.dtype == np.uint8
    assert prepared.info["image_shape"] == [32, 32, 1]
    assert (prepared.manifest["splits_with_same_content"] == 1).all()
