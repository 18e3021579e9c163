"""``mlzoo gc``: remove model versions nobody can reach any more, with what they left behind.

Per task it keeps the newest ``keep`` versions and every version behind an alias
(@champion, @previous: never touched), and removes the rest: the registry version, its
MLflow run and logged model with their artifacts (``mlflow gc``), its Bento models and
Bentos, and the DVC cache objects that no kept version (nor the workspace's current
data) still references. Without ``apply`` it only lists what it would remove.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from flows import dvc_store, tracking
from flows.settings import Settings


@dataclass
class Garbage:
    versions: list[tuple[str, str]] = field(default_factory=list)  # (task, version)
    runs: list[str] = field(default_factory=list)
    logged_models: list[str] = field(default_factory=list)
    bento_models: list[str] = field(default_factory=list)
    bentos: list[str] = field(default_factory=list)
    cache_objects: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        return (
            [f"model version {t}/{v}" for t, v in self.versions]
            + [f"MLflow run {r}" for r in self.runs]
            + [f"Bento {b}" for b in self.bentos]
            + [f"Bento model {m}" for m in self.bento_models]
            + [f"DVC cache object {p}" for p in self.cache_objects]
        )


def find(s: Settings, keep: int) -> Garbage:
    import bentoml

    c = tracking.client(s)
    g = Garbage()
    kept_data, dropped_data = set(), set()
    for task in tracking.registered_tasks(s):
        versions = sorted(c.search_model_versions(f"name='{task}'"), key=lambda v: -int(v.version))
        aliased = {str(v) for v in c.get_registered_model(task).aliases.values()} if versions else set()
        for i, mv in enumerate(versions):
            md5 = mv.tags.get("data_md5")
            if i < keep or str(mv.version) in aliased:
                kept_data.add(md5)
                continue
            dropped_data.add(md5)
            g.versions.append((task, str(mv.version)))
            g.runs.append(mv.run_id)
            if getattr(mv, "model_id", None):
                g.logged_models.append(mv.model_id)
        dropped = {v for t, v in g.versions if t == task}
        g.bentos += [
            str(b.tag)
            for b in bentoml.bentos.list()
            if b.tag.name == task and b.info.labels.get("mlflow_version") in dropped
        ]
        g.bento_models += [
            str(m.tag)
            for m in bentoml.models.list()
            if m.tag.name == task and m.info.labels.get("mlflow_version") in dropped
        ]
    kept_data.discard(None)
    dropped_data.discard(None)
    g.cache_objects = dvc_store.unreferenced_cache_objects(s, keep=kept_data, drop=dropped_data - kept_data)
    return g


def remove(s: Settings, g: Garbage) -> None:
    import bentoml

    c = tracking.client(s)
    for tag in g.bentos:
        bentoml.bentos.delete(tag)
    for tag in g.bento_models:
        bentoml.models.delete(tag)
    for task, version in g.versions:
        c.delete_model_version(task, version)
    for run_id in g.runs:
        c.delete_run(run_id)
    for model_id in g.logged_models:
        c.delete_logged_model(model_id)
    if g.runs:  # permanently, artifacts included (delete_run only marks the run deleted)
        store = (
            ["--tracking-uri", s.tracking_uri]
            if "://" in s.tracking_uri and not s.tracking_uri.startswith(("sqlite:", "file:"))
            else ["--backend-store-uri", s.tracking_uri]
        )
        ids = ["--run-ids", ",".join(g.runs)] + (
            ["--logged-model-ids", ",".join(g.logged_models)] if g.logged_models else []
        )
        subprocess.run(
            [str(Path(sys.executable).with_name("mlflow")), "gc", *store, *ids],
            check=True,
            capture_output=True,
            timeout=600,
        )
    dvc_store.remove_cache_objects(g.cache_objects)
