"""``mlzoo status``: every registered task's champion, metric, data and Bento."""

from __future__ import annotations

import os
from typing import Any

from flows import packaging, recovery, tracking
from flows.settings import Settings
from tasks_lib.core.registry import task_names


def collect(s: Settings) -> dict[str, dict[str, Any]]:
    """One entry per task in the registry (tasks never trained show nulls)."""
    c = tracking.client(s)
    out: dict[str, dict[str, Any]] = {}
    registered = set(tracking.registered_tasks(s))
    for task in task_names():
        if task in registered or c.get_experiment_by_name(task) is not None:
            recovery.recover(s, task, prefect=bool(os.environ.get("PREFECT_API_URL")))
        entry: dict[str, Any] = {
            "champion_version": None,
            "metric": None,
            "data_hash": None,
            "last_run": None,
            "bento_tag": None,
        }
        exp = c.get_experiment_by_name(task)
        if exp is not None:
            runs = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
            if runs:
                r = runs[0].info
                entry["last_run"] = {"run_id": r.run_id, "status": r.status, "start_time": r.start_time}
        champ = tracking.get_alias(s, task, tracking.CHAMPION) if task in registered else None
        if champ is not None:
            baseline = champ.tags.get("baseline_value")
            entry.update(
                champion_version=str(champ.version),
                metric={
                    "name": champ.tags.get("metric_name"),
                    "value": float(champ.tags["metric_value"]),
                    "baseline": float(baseline) if baseline else None,
                },
                data_hash=champ.tags.get("data_md5"),
                bento_tag=packaging.find_bento(champ),
            )
        out[task] = entry
    return out


def table(status: dict[str, dict[str, Any]]) -> str:
    head = f"{'task':<24}{'champion':>9}  {'metric':<20}{'baseline':>9}  {'data':<14}{'last run':<10}  bento"
    lines = [head, "-" * len(head)]
    for task, e in status.items():
        m = e["metric"] or {}
        metric = f"{m.get('name')}={m.get('value'):.4f}" if m else "-"
        base = f"{m['baseline']:.4f}" if m.get("baseline") is not None else "-"
        data = (e["data_hash"] or "-")[:12]
        last = (e["last_run"] or {}).get("status", "-")
        lines.append(
            f"{task:<24}{e['champion_version'] or '-':>9}  {metric:<20}{base:>9}  {data:<14}"
            f"{last:<10}  {e['bento_tag'] or '-'}"
        )
    return "\n".join(lines)
