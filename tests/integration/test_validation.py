"""The Great Expectations gate on real manifests: good data passes, broken data fails by name."""

import numpy as np
import pandas as pd

from flows.validation import validate
from tasks_lib.core.data import add_leak_column, read_info, read_manifest
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import Expectation


def _suite(data_dir):
    return get_task("image_classification").expectations(read_info(data_dir))


def test_digits_manifest_passes(digits_smoke_dir):
    report = validate(read_manifest(digits_smoke_dir), _suite(digits_smoke_dir), "image_classification")
    assert report.success, report.summary()
    assert len(report.checks) == len(_suite(digits_smoke_dir)) and report.rows > 0


def test_broken_manifest_fails_naming_each_problem(digits_smoke_dir):
    m = read_manifest(digits_smoke_dir).drop(columns="splits_with_same_content")
    m.loc[0, "label"] = 11  # label out of range
    m.loc[1, "height"] = 9  # an image of another size
    m.loc[2, "pixel_max"] = 300  # a value no uint8 can hold
    test_rows = m.index[m["split"] == "test"]
    m.loc[test_rows[0], "sha1"] = m.loc[m["split"] == "train", "sha1"].iloc[0]  # test sample leaked
    m = m[~((m["split"] == "val") & (m["label"] == 3))]  # class 3 missing from val
    report = validate(add_leak_column(pd.DataFrame(m)), _suite(digits_smoke_dir), "image_classification")
    assert not report.success
    failed = {(c.kind, c.kwargs.get("column"), c.where.get("split")) for c in report.failed}
    assert ("expect_column_values_to_be_between", "label", None) in failed
    assert ("expect_column_values_to_be_in_set", "height", None) in failed
    assert ("expect_column_values_to_be_between", "pixel_max", None) in failed
    assert ("expect_column_values_to_be_in_set", "splits_with_same_content", None) in failed
    assert ("expect_column_distinct_values_to_equal_set", "label", "val") in failed
    # label 11 also makes the test split's class set wrong, if row 0 is a test row
    assert 5 <= len(report.failed) <= 6
    md = report.to_markdown()
    assert f"FAILED ({len(report.failed)} of" in md and "no sample in two splits" in md


def test_numeric_observed_values_are_reported():
    """GX returns numpy scalars as observed values for aggregate expectations (e.g. a column mean)."""
    df = pd.DataFrame({"x": np.arange(10, dtype=np.float64)})
    exp = Expectation("expect_column_mean_to_be_between", {"column": "x", "min_value": 100, "max_value": 200})
    report = validate(df, [exp], "numeric")
    assert not report.success
    assert report.checks[0].observed["observed_value"] == 4.5
