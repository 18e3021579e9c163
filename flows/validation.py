"""The data gate: a Great Expectations suite over the task's manifest.

The task states its expectations as plain records (tasks_lib never imports GX);
here they become GX 1.x expectations run in an ephemeral context. A failure
raises :class:`DataValidationError` carrying a report that names each failed
expectation, what it checks and what was observed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks_lib.core.task import Expectation


@dataclass
class CheckResult:
    kind: str
    kwargs: dict[str, Any]
    where: dict[str, Any]
    why: str
    success: bool
    observed: dict[str, Any] = field(default_factory=dict)


@dataclass
class ValidationReport:
    suite: str
    rows: int
    checks: list[CheckResult]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    def to_markdown(self) -> str:
        status = "PASSED" if self.success else f"FAILED ({len(self.failed)} of {len(self.checks)})"
        lines = [
            f"# Data validation: {self.suite}",
            "",
            f"{self.rows} rows; {status}",
            "",
            "| ok | expectation | arguments | why | observed |",
            "|---|---|---|---|---|",
        ]
        for c in sorted(self.checks, key=lambda c: c.success):
            args = ", ".join(f"{k}={v}" for k, v in {**c.kwargs, **c.where}.items())
            lines.append(
                f"| {'yes' if c.success else '**NO**'} | {c.kind} | {args} | {c.why} | "
                f"{json.dumps(c.observed, default=str)[:200]} |"
            )
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """One line per failed expectation, for error messages and logs."""
        return "\n".join(
            f"- {c.kind}({', '.join(f'{k}={v}' for k, v in {**c.kwargs, **c.where}.items())}): "
            f"{c.why or 'failed'}; "
            f"observed {json.dumps(c.observed, default=str)[:200]}"
            for c in self.failed
        )


class DataValidationError(RuntimeError):
    """The data failed its expectations; training must not start."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(
            f"Data validation failed for '{report.suite}': {len(report.failed)} of "
            f"{len(report.checks)} expectations failed:\n{report.summary()}"
        )


def _gx_class(kind: str):
    import great_expectations as gx

    name = "".join(part.capitalize() for part in kind.split("_"))
    try:
        return getattr(gx.expectations, name)
    except AttributeError:
        raise ValueError(f"'{kind}' is not a Great Expectations expectation") from None


def _gx_kwargs(exp: Expectation) -> dict[str, Any]:
    """The expectation's arguments; ``where={"split": "val"}`` becomes a GX row condition."""
    from great_expectations.expectations.row_conditions import Column

    kwargs = dict(exp.kwargs)
    for column, value in exp.where.items():
        cond = Column(column) == value
        kwargs["row_condition"] = cond if "row_condition" not in kwargs else kwargs["row_condition"] & cond
    return kwargs


def validate(manifest: pd.DataFrame, expectations: list[Expectation], suite: str) -> ValidationReport:
    """Run ``expectations`` on ``manifest`` with Great Expectations; never raises on failure."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas("mlzoo")
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": manifest})
    )
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite))  # in a context: ids are assigned
    ids = [gx_suite.add_expectation(_gx_class(e.kind)(**_gx_kwargs(e))).id for e in expectations]
    result = batch.validate(gx_suite, result_format="SUMMARY")
    by_id = {res.expectation_config.id: res for res in result.results}  # results come in any order
    checks = []
    for exp, exp_id in zip(expectations, ids, strict=True):
        res = by_id[exp_id]
        observed = {
            k: v
            for k, v in (res.result or {}).items()
            if k in ("observed_value", "unexpected_count", "unexpected_percent", "partial_unexpected_list")
            and v is not None
            and not (isinstance(v, list) and not v)  # observed values may be numpy scalars: no `in` test
        }
        if res.exception_info and res.exception_info.get("raised_exception"):
            observed["error"] = res.exception_info.get("exception_message")
        checks.append(CheckResult(exp.kind, exp.kwargs, exp.where, exp.why, bool(res.success), observed))
    return ValidationReport(suite=suite, rows=len(manifest), checks=checks)
