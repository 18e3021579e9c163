"""``mlzoo reproduce TASK@ALIAS``: rebuild a model version from what it recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flows import dvc_store, steps, tracking
from flows.provenance import provenance_tags
from flows.settings import Settings

CODE_TAGS = ("git_commit", "git_changes_sha256", "uv_lock_sha256")


class CodeDrift(RuntimeError):
    """The checkout is not the code (or lock file) that trained the version."""


CPU_TOLERANCE = 0.0  # same data, params, seed and CPU type give bit-identical results
GPU_TOLERANCE = 0.01  # cuDNN/bf16 kernels are not bitwise deterministic


@dataclass
class Reproduction:
    task: str
    version: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    tolerance: float
    weights_identical: bool

    @property
    def max_difference(self) -> float:
        return max((abs(self.recorded[k] - self.reproduced[k]) for k in self.recorded), default=0.0)

    @property
    def ok(self) -> bool:
        return self.max_difference <= self.tolerance

    def table(self) -> str:
        lines = [f"{'metric':<24}{'recorded':>12}{'reproduced':>12}{'diff':>12}"]
        for k in sorted(self.recorded):
            r, p = self.recorded[k], self.reproduced[k]
            lines.append(f"{k:<24}{r:>12.6f}{p:>12.6f}{p - r:>12.2e}")
        lines.append(
            f"weights bit-identical: {self.weights_identical}; tolerance {self.tolerance}; "
            f"{'OK' if self.ok else 'DIFFERENT'}"
        )
        return "\n".join(lines)


def parse_spec(spec: str) -> tuple[str, str]:
    """'task@alias' or 'task/version' -> (task, alias-or-version)."""
    for sep in ("@", "/"):
        if sep in spec:
            task, ref = spec.split(sep, 1)
            return task, ref
    return spec, tracking.CHAMPION


def code_drift(recorded: dict[str, str]) -> str:
    """Side by side, the code tags that differ between the run and this checkout ("" if none)."""
    now = provenance_tags()
    rows = [(k, recorded.get(k, ""), now.get(k, "")) for k in CODE_TAGS if recorded.get(k, "") != now.get(k, "")]
    if not rows:
        return ""
    lines = [f"{'':<20}{'recorded':<48}{'checkout':<48}"] + [f"{k:<20}{r or '-':<48}{n or '-':<48}" for k, r, n in rows]
    return "\n".join(lines)


def reproduce(s: Settings, spec: str, tolerance: float | None = None, allow_code_drift: bool = False) -> Reproduction:
    """Restore the version's data from the DVC remote, retrain with its params and seed, compare.

    Raises :class:`CodeDrift` (unless ``allow_code_drift``) and
    :class:`~flows.dvc_store.DataVersionMissing` before any training.
    """
    task, ref = parse_spec(spec)
    c = tracking.client(s)
    mv = c.get_model_version(task, ref) if ref.isdigit() else c.get_model_version_by_alias(task, ref)
    run = c.get_run(mv.run_id)
    tags = run.data.tags
    drift = code_drift(tags)
    if drift and not allow_code_drift:
        raise CodeDrift(f"{task} v{mv.version} was trained from other code:\n{drift}")
    p = steps.Plan(
        task,
        tags["mlzoo.profile"],
        json.loads(tags["mlzoo.data_config"]),
        json.loads(tags["mlzoo.train_config"]),
        int(tags.get("mlzoo.nproc", "1")),  # a data-parallel model is rebuilt with as many processes
    )
    dvc_store.ensure_workspace(s)
    data_dir = dvc_store.restore(s, task, tags["data_md5"])
    trained = steps.train(s, p, data_dir)
    from tasks_lib.core.bundle import load_bundle
    from tasks_lib.core.registry import get_task

    t = get_task(task)
    metrics = t.evaluate(load_bundle(trained.bundle_dir).module, t.load(data_dir), "test")
    recorded = {k.removeprefix("test_"): v for k, v in run.data.metrics.items() if k.startswith("test_")}
    if tolerance is None:
        tolerance = CPU_TOLERANCE if tags.get("device", "").startswith("cpu") else GPU_TOLERANCE
    return Reproduction(
        task,
        str(mv.version),
        recorded,
        {k: metrics[k] for k in recorded},
        tolerance,
        trained.weights_sha256 == tags.get("weights_sha256"),
    )
