"""A sample's split is a pure function of its content: growing or subsampling the data never moves it."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from tasks_lib.core.data import hash_split
from tasks_lib.core.registry import get_task


def _keys(n: int, start: int = 0) -> list[str]:
    return [hashlib.sha1(str(i).encode()).hexdigest() for i in range(start, start + n)]


def test_hash_split_is_stable_when_keys_are_added_or_removed():
    keys = _keys(2000)
    before = hash_split(keys, 0.1, 0.2, salt=0)
    grown = hash_split(_keys(500, start=5000) + keys[::-1], 0.1, 0.2, salt=0)[500:][::-1]
    shrunk = hash_split(keys[::3], 0.1, 0.2, salt=0)
    assert (grown == before).all()
    assert (shrunk == before[::3]).all()
    assert hash_split(keys[:1], 0.1, 0.2)[0] == before[0]  # a key alone gets the same split


def test_hash_split_meets_the_fractions_on_10k_keys():
    split = hash_split(_keys(10_000), 0.1, 0.2, salt=3)
    share = pd.Series(split).value_counts(normalize=True)
    assert set(share.index) == {"train", "val", "test"}
    assert abs(share["test"] - 0.2) < 0.015 and abs(share["val"] - 0.1) < 0.015 and abs(share["train"] - 0.7) < 0.015
    assert split.dtype == object


def test_hash_split_salt_changes_membership_and_no_test_without_a_test_fraction():
    keys = _keys(2000)
    a, b = hash_split(keys, 0.1, 0.2, salt=0), hash_split(keys, 0.1, 0.2, salt=1)
    assert (a == hash_split(keys, 0.1, 0.2, salt=0)).all()  # deterministic
    assert 0.3 < (a != b).mean() < 0.6  # a fresh draw: about 1 - (0.7² + 0.1² + 0.2²) = 0.46 move
    carved = hash_split(keys, 0.1, 0.0)
    assert "test" not in set(carved) and abs((carved == "val").mean() - 0.1) < 0.03


def test_image_classification_keeps_each_digit_in_its_split_across_max_samples(tmp_path):
    task = get_task("image_classification")
    manifests = []
    for max_samples in (600, 1000):
        dcfg, _ = task.configs("smoke", data_overrides={"source": "digits", "max_samples": max_samples})
        manifests.append(task.prepare(dcfg, tmp_path / str(max_samples)).manifest[["sha1", "split"]])
    small, large = manifests
    assert len(small) == 600 and len(large) == 1000
    both = small.merge(large, on="sha1", suffixes=("_small", "_large"))
    assert len(both) > 250  # two random subsets of ~1,790 digits share about a third
    assert (both["split_small"] == both["split_large"]).all()
    # and the split is the hash bucket of the content itself, salted with split_seed
    assert (np.asarray(hash_split(both["sha1"], dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed))
            == both["split_small"].to_numpy()).all()  # fmt: skip
