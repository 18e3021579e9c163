"""One contract over the whole registry: a task is tested the moment it registers.

smoke data -> expectations hold (real Great Expectations) -> two training steps ->
evaluate and baseline report the primary metric -> bundle round trip -> predict -> bad requests
refused. Each link is its own small test, so one failure does not hide the rest; they share one
prepared and one trained result per task (``smoke_cache``, tests/contract/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flows.validation import validate
from tasks_lib.core.data import read_info, read_manifest
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import get_task, task_names


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


def test_manifest_keys_every_sample_by_content(task, smoke_cache):
    """``sha1`` (the content hash a split is keyed on) and ``split`` on every manifest; no content twice
    in one split where the task's samples are distinct, and no content in two splits."""
    manifest = smoke_cache.prepared(task).prepared.manifest
    assert {"sha1", "split", "splits_with_same_content"} <= set(manifest.columns)
    assert set(manifest["split"]) <= {"train", "val", "test"}
    samples = manifest.dropna(subset=["sha1"])  # rows that are not samples (face_verification's pairs) have none
    assert len(samples) and samples["sha1"].astype(str).str.len().gt(0).all()
    if task.name not in REPEATED_CONTENT:
        assert not samples.duplicated(["split", "sha1"]).any(), "a content hash repeats inside a split"
    assert samples.groupby("sha1")["split"].nunique().eq(1).all(), "a content hash sits in two splits"


def test_smoke_data_meets_its_expectations(task, smoke_cache):
    """The written folder, as the flow reads it back, passes the task's own suite (real GX)."""
    data_dir = smoke_cache.prepared(task).data_dir
    report = validate(read_manifest(data_dir), task.expectations(read_info(data_dir)), task.name)
    assert report.success, report.summary()


def test_two_training_steps_log_a_finite_loss(task, smoke_cache):
    run = smoke_cache.trained(task)
    assert run.result.steps == 2 and run.logged and np.isfinite(run.logged[-1]["train_loss"])


def test_evaluate_and_baseline_report_the_metric(task, smoke_cache):
    run = smoke_cache.trained(task)
    metrics = task.evaluate(run.model, run.data, "test")
    baseline = task.baseline(run.data, "test")
    assert task.metric in metrics and task.metric in baseline
    assert all(np.isfinite(v) for v in metrics.values())


def test_bundle_round_trip_keeps_every_weight(task, smoke_cache):
    loaded, reloaded = smoke_cache.bundled(task)
    for a, b in zip(loaded.module.state_dict().values(), reloaded.module.state_dict().values(), strict=True):
        assert torch.equal(a.cpu(), b)


def test_request_examples_are_answered_alike_after_reload(task, smoke_cache):
    loaded, reloaded = smoke_cache.bundled(task)
    requests = task.request_examples(smoke_cache.trained(task).data, 3)
    assert len(requests) == 3 and all(set(r) <= set(task.request_fields) for r in requests)
    answers = task.predict(reloaded, requests)
    assert len(answers) == 3 and all(isinstance(a, dict) and a for a in answers)
    assert answers == task.predict(loaded, requests)  # the reloaded model answers the same
    if task.output_media:
        assert all(isinstance(a.get("media"), bytes) for a in answers)


def test_bad_requests_are_refused_with_their_status(task, smoke_cache):
    _, reloaded = smoke_cache.bundled(task)
    for request, status, message in [({}, 422, "empty"), *task.bad_requests()]:
        with pytest.raises(InvalidInput, match=message) as err:
            task.predict(reloaded, [request])
        assert err.value.status == status
