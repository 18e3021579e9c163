"""game_control: the numpy renderer, the observation checks, the environment-spec loader, the summary metric."""

import json

import numpy as np
import pandas as pd
import pytest

from tasks_lib.core.data import write_prepared
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import Prepared
from tasks_lib.tasks.game_control.env import pixel_observation, render_frames
from tasks_lib.tasks.game_control.task import GameControl, parse_observation

STATE_INFO = {"observation": "state", "obs_shape": [4]}
PIXEL_INFO = {"observation": "pixels", "obs_shape": [64, 64, 3]}


def test_renderer_moves_the_cart_and_tilts_the_pole():
    centre, right, tilted = render_frames(np.array([[0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 0.2, 0]]))
    cols = np.arange(64)
    com = lambda img: (img[44:48] * cols).sum() / img[44:48].sum()  # noqa: E731 (cart rows, above the ground line)
    assert com(right) - com(centre) == pytest.approx(64 / (2 * 2.4 * 1.1), abs=0.3)  # 1 unit = 12.1 px
    top = lambda img: (img[5:25] * cols).sum() / img[5:25].sum()  # noqa: E731 (upper pole rows)
    assert top(tilted) > top(centre) + 2  # positive angle leans right
    assert 0 <= centre.min() and centre.max() <= 1


def test_sub_pixel_motion_shows_in_the_frame():
    a, b = render_frames(np.array([[0, 0, 0, 0], [0.02, 0, 0, 0]]))  # 0.24 px apart
    assert np.abs(a - b).sum() > 0.3


def test_pixel_observation_channels_are_the_lagged_scenes():
    history = np.zeros((1, 5, 4))
    history[0, 0, 0] = 1.0  # newest state moved right; older ones at the centre
    frame = pixel_observation(history)[0]
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert not np.array_equal(frame[..., 0], frame[..., 1])  # R (now) differs from G (t-2)
    assert np.array_equal(frame[..., 1], frame[..., 2])  # G and B both show the old scene


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, 0.1, 0.2], "shape"),
        ([0.0, "0.1", 0.2, 0.3], "numbers"),
        ([0.0, None, 0.2, 0.3], "numbers"),
        ([0.0, float("nan"), 0.2, 0.3], "NaN"),
        ([0.0, float("inf"), 0.2, 0.3], "NaN"),
        ([[0.0, 0.1], [0.2]], "rectangular"),
        ([True, 0.1, 0.2, 0.3], "numbers"),
        (None, "missing"),
    ],
)
def test_malformed_state_observations_are_refused(values, message):
    with pytest.raises(InvalidInput, match=message) as err:
        parse_observation(values, STATE_INFO)
    assert err.value.status == 422


def test_good_observations_parse():
    assert parse_observation([0, 0.5, -0.1, 2], STATE_INFO).dtype == np.float32
    frame = parse_observation(np.full((64, 64, 3), 200).tolist(), PIXEL_INFO)
    assert frame.dtype == np.uint8 and frame.shape == (64, 64, 3)
    with pytest.raises(InvalidInput, match="0-255"):
        parse_observation(np.full((64, 64, 3), 300).tolist(), PIXEL_INFO)
    with pytest.raises(InvalidInput, match="shape"):
        parse_observation([0, 0, 0, 0], PIXEL_INFO)


def test_loader_reads_seeds_per_split_from_the_manifest(tmp_path):
    manifest = pd.DataFrame({"split": ["train", "val", "test", "test"], "seed": [3, 100, 200, 201]})
    write_prepared(tmp_path, Prepared(manifest, {"env_id": "CartPole-v1", "observation": "state"}))
    data = get_task("game_control").load(tmp_path)
    assert data.seeds == {"train": [3], "val": [100], "test": [200, 201]}
    assert data.info["env_id"] == "CartPole-v1"


def test_prepare_writes_the_environment_spec(tmp_path):
    task = get_task("game_control")
    dcfg, _ = task.configs("smoke", data_overrides={"observation": "pixels"})
    prepared = task.prepare(dcfg, tmp_path)
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert spec["env_id"] == "CartPole-v1" and spec["n_actions"] == 2 and spec["obs_shape"] == [64, 64, 3]
    m = prepared.manifest
    assert set(m["split"]) == {"train", "val", "test"} and m["seed"].is_unique
    assert (m["initial_state_abs_max"] <= 0.05).all()


def test_summary_metrics_by_hand():
    s = GameControl._summary(np.array([500.0, 480.0, 100.0]), np.array([500, 480, 100]), 475.0)
    assert s["mean_return"] == pytest.approx(360.0)
    assert s["min_return"] == 100.0
    assert s["solved_fraction"] == pytest.approx(2 / 3)
    assert s["std_return"] == pytest.approx(np.std([500, 480, 100]))
