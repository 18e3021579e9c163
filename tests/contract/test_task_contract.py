"""One contract over the whole registry: a task is tested the moment it registers.

smoke data -> expectations hold (real Great Expectations) -> two training steps ->
evaluate and baseline report the primary metric -> bundle round trip -> predict.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flows.validation import validate
from tasks_lib.core.bundle import load_bundle, save_bundle
from tasks_lib.core.data import read_info, read_manifest, write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import get_task, task_names
from tasks_lib.core.task import LoadedModel


@pytest.fixture(params=task_names())
def task(request):
    return get_task(request.param)


def test_declares_what_the_platform_needs(task):
    assert task.name and task.seed_sections and task.metric
    assert {"smoke", "quick", "full"} <= set(task.profiles)
    assert task.default_source in task.sources()
    for profile in task.profiles:
        task.configs(profile)  # every profile builds a valid config


# Tasks whose manifest repeats a content hash inside one split by design (the reason is the value).
REPEATED_CONTENT = {
    "audio_enhancement": "one row per noisy mixture; sha1 is the clean recording, mixed several times in train",
}


def test_manifest_keys_every_sample_by_content(task, tmp_path):
    """``sha1`` (the content hash a split is keyed on) and ``split`` on every manifest; no content twice
    in one split where the task's samples are distinct, and no content in two splits."""
    dcfg, _ = task.configs("smoke")
    manifest = task.prepare(dcfg, tmp_path).manifest
    assert {"sha1", "split", "splits_with_same_content"} <= set(manifest.columns)
    assert set(manifest["split"]) <= {"train", "val", "test"}
    samples = manifest.dropna(subset=["sha1"])  # rows that are not samples (face_verification's pairs) have none
    assert len(samples) and samples["sha1"].astype(str).str.len().gt(0).all()
    if task.name not in REPEATED_CONTENT:
        assert not samples.duplicated(["split", "sha1"]).any(), "a content hash repeats inside a split"
    assert samples.groupby("sha1")["split"].nunique().eq(1).all(), "a content hash sits in two splits"


def test_smoke_round_trip(task, tmp_path):
    dcfg, cfg = task.configs("smoke", train_overrides={"epochs": 1, "max_steps_per_epoch": 2})
    data_dir = tmp_path / "data"
    write_prepared(data_dir, task.prepare(dcfg, data_dir))

    report = validate(read_manifest(data_dir), task.expectations(read_info(data_dir)), task.name)
    assert report.success, report.summary()

    data = task.load(data_dir)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    logged = []
    result = task.fit(model, data, cfg, lambda m, s: logged.append(m))
    assert result.steps == 2 and logged and np.isfinite(logged[-1]["train_loss"])

    metrics = task.evaluate(model, data, "test")
    baseline = task.baseline(data, "test")
    assert task.metric in metrics and task.metric in baseline
    assert all(np.isfinite(v) for v in metrics.values())

    loaded = LoadedModel(task, cfg, data.info, model)
    reloaded = load_bundle(save_bundle(loaded, tmp_path / "bundle"))
    for a, b in zip(model.state_dict().values(), reloaded.module.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b)

    requests = task.request_examples(data, 3)
    assert len(requests) == 3 and all(set(r) <= set(task.request_fields) for r in requests)
    answers = task.predict(reloaded, requests)
    assert len(answers) == 3 and all(isinstance(a, dict) and a for a in answers)
    assert answers == task.predict(loaded, requests)  # the reloaded model answers the same
    if task.output_media:
        assert all(isinstance(a.get("media"), bytes) for a in answers)

    for request, status, message in [({}, 422, "empty"), *task.bad_requests()]:
        with pytest.raises(InvalidInput, match=message) as err:
            task.predict(reloaded, [request])
        assert err.value.status == status
