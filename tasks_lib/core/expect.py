"""Builders of Great Expectations records (:class:`~tasks_lib.core.task.Expectation`) that many
manifests share: a column's values in a set or a range, no content in two splits, every class in
every split, labels that index the classes, one image layout. A task lists them in ``expectations``
(``expect.in_set("height", [h], "one image size")``) beside its own."""

from __future__ import annotations

from typing import Any

from tasks_lib.core.data import SPLITS
from tasks_lib.core.task import Expectation


def all_splits() -> Expectation:
    """The expectation every prepared manifest meets: train, val and test each have rows."""
    return Expectation(
        "expect_column_distinct_values_to_equal_set",
        {"column": "split", "value_set": list(SPLITS)},
        "train, val and test all present",
    )


def min_rows(n: int, why: str) -> Expectation:
    """The manifest has at least ``n`` rows."""
    return Expectation("expect_table_row_count_to_be_between", {"min_value": n}, why)


def frame_size(h: int, w: int, why: str, where: dict[str, Any] | None = None) -> list[Expectation]:
    """Every image (or frame) of the manifest is ``h`` x ``w`` (columns height and width)."""
    return [in_set("height", [h], why, where), in_set("width", [w], why, where)]


def in_set(column: str, values: list[Any], why: str = "", where: dict[str, Any] | None = None) -> Expectation:
    """Every value of ``column`` (of the rows ``where`` selects) is one of ``values``."""
    return Expectation("expect_column_values_to_be_in_set", {"column": column, "value_set": values}, why, where or {})


def between(
    column: str,
    min_value: float | None = None,
    max_value: float | None = None,
    why: str = "",
    where: dict[str, Any] | None = None,
) -> Expectation:
    """Every value of ``column`` lies in [``min_value``, ``max_value``] (a bound left out is open)."""
    bounds = {k: v for k, v in (("min_value", min_value), ("max_value", max_value)) if v is not None}
    return Expectation("expect_column_values_to_be_between", {"column": column, **bounds}, why, where or {})


def no_leak(why: str = "no sample in two splits (test leakage)") -> Expectation:
    """Every sample's content sits in one split only (the column :func:`add_leak_column` adds)."""
    return in_set("splits_with_same_content", [1], why)


def labels_per_split(labels: list[Any], why: str = "every class present in {split}", exact: bool = True):
    """Per split, the distinct ``label`` values equal ``labels`` (``exact=False``: include them);
    ``why`` may name ``{split}``."""
    kind = "expect_column_distinct_values_to_equal_set" if exact else "expect_column_distinct_values_to_contain_set"
    return [
        Expectation(kind, {"column": "label", "value_set": list(labels)}, why.format(split=s), where={"split": s})
        for s in SPLITS
    ]


def labels_index(n: int, why: str = "") -> list[Expectation]:
    """``label`` is set on every row and indexes ``n`` classes (0 to n - 1)."""
    return [Expectation("expect_column_values_to_not_be_null", {"column": "label"}), between("label", 0, n - 1, why)]


def image_layout(
    h: int,
    w: int,
    c: int,
    why_size: str = "one image size",
    why_channels: str = "one channel count",
    why_dtype: str = "8-bit pixels",
) -> list[Expectation]:
    """Every image of the manifest is ``h`` x ``w`` x ``c`` uint8 (columns height, width, channels, dtype)."""
    return [
        *frame_size(h, w, why_size),
        in_set("channels", [c], why_channels),
        in_set("dtype", ["uint8"], why_dtype),
    ]
