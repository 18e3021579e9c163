"""The real retrain flow on a temporary state folder: a real Prefect server, DVC repo and
remote, Great Expectations, MLflow registry and BentoML store. Nothing is mocked."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from flows import tracking
from flows.cli import main as mlzoo
from flows.validation import DataValidationError

TASK = "image_classification"
pytestmark = pytest.mark.e2e

WEAK = {"epochs": 1, "max_steps_per_epoch": 2, "width": 8}  # barely trained: near chance
GOOD = {}  # the smoke profile as it is: clearly above chance
WORSE = {"epochs": 1, "max_steps_per_epoch": 1, "width": 8, "lr": 1e-6}  # must not be promoted


@pytest.fixture(scope="module")
def history(prefect_api):
    """Three retrains on the same data version: weak, good, worse."""
    from flows.pipeline import retrain

    return [retrain(TASK, "smoke", train_overrides=o) for o in (WEAK, GOOD, WORSE)]


def _versions(settings):
    return sorted(int(v.version) for v in tracking.client(settings).search_model_versions(f"name='{TASK}'"))


def test_first_run_promotes_the_better_replaces_it_and_the_worse_is_rejected(history, settings):
    weak, good, worse = history
    assert weak["promoted"] and weak["reason"] == "no champion yet"
    assert good["value"] > weak["value"] + 0.2, "the smoke profile should clearly beat a 2-step model"
    assert good["value"] > 0.3  # chance is 0.1 on 10 balanced classes
    assert good["promoted"] and good["previous_version"] == weak["model_version"]
    assert not worse["promoted"] and "does not beat" in worse["reason"]
    champ = tracking.get_alias(settings, TASK, "champion")
    prev = tracking.get_alias(settings, TASK, "previous")
    assert str(champ.version) == good["model_version"] and str(prev.version) == weak["model_version"]
    # all three share one data version, and the test metric recorded is the flow's
    assert len({r["data_md5"] for r in history}) == 1
    assert float(champ.tags["metric_value"]) == pytest.approx(good["value"])


def test_run_records_provenance_metrics_and_artifacts(history, settings):
    good = history[1]
    c = tracking.client(settings)
    run = c.get_run(good["run_id"])
    tags, metrics = run.data.tags, run.data.metrics
    for key in ("git_commit", "uv_lock_sha256", "data_md5", "seed", "torch_version", "device", "weights_sha256"):
        assert tags.get(key), key
    assert tags["data_md5"] == good["data_md5"] and tags["promotion.decision"] == "promoted"
    assert metrics["test_accuracy"] == pytest.approx(good["value"])
    assert metrics["baseline_accuracy"] > 0.5  # logistic regression on pixels, same split
    assert metrics["promotion_champion_metric"] == pytest.approx(history[0]["value"])
    epochs = c.get_metric_history(good["run_id"], "train_loss")
    assert [m.step for m in epochs] == list(range(4))  # one value per epoch of the smoke profile
    artifacts = {a.path for a in c.list_artifacts(good["run_id"])}
    assert {"confusion_matrix.png", "sample_predictions.png", "model_card.md", "validation_report.md"} <= artifacts
    card = c.download_artifacts(good["run_id"], "model_card.md")
    text = open(card).read()
    assert good["data_md5"] in text and "baseline" in text and "current champion" in text
    assert run.inputs.dataset_inputs and run.inputs.dataset_inputs[0].dataset.name == TASK


def test_registered_model_loads_with_mlflow_pyfunc(history, settings, digits_smoke_dir):
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{TASK}@champion")
    x = np.load(digits_smoke_dir / "test_x.npy")[:4]
    answers = model.predict(x)
    assert len(answers) == 4 and set(answers[0]) == {"label", "probabilities"}


def test_bento_serves_the_champion(history, settings):
    import bentoml

    tag = history[1]["bento"]
    bento = bentoml.bentos.get(tag)
    assert bento.info.labels["mlflow_version"] == history[1]["model_version"]
    assert history[2]["bento"] == tag  # rejected challenger: the champion's Bento is reused


def test_status_json(history, settings, capsys):
    assert mlzoo(["status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)[TASK]
    assert status["champion_version"] == history[1]["model_version"]
    assert status["metric"]["name"] == "accuracy"
    assert status["metric"]["value"] == pytest.approx(history[1]["value"])
    assert status["metric"]["baseline"] == pytest.approx(history[1]["baseline"])
    assert status["data_hash"] == history[1]["data_md5"]
    assert status["bento_tag"] == history[1]["bento"]


def test_validation_failure_stops_before_training_and_registers_nothing(history, settings, tmp_path):
    from flows.pipeline import retrain

    # an ImageFolder tree with one class too small to appear in every split
    rng = np.random.default_rng(0)
    for cls, n in (("big", 30), ("tiny", 2)):
        (tmp_path / cls).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    before = _versions(settings)
    lock = (settings.workspace / "dvc.lock").read_text()
    with pytest.raises(DataValidationError, match="every class present in"):
        retrain(TASK, "smoke", data_overrides={"source": "imagefolder", "path": str(tmp_path)})
    assert _versions(settings) == before
    assert (settings.workspace / "dvc.lock").read_text() == lock  # bad data never becomes the current version
    current = yaml.safe_load(lock)["stages"][f"prepare@{TASK}"]["outs"][0]["md5"]
    assert str(tracking.get_alias(settings, TASK, "champion").version) == history[1]["model_version"]
    exp = tracking.client(settings).get_experiment_by_name(TASK)
    last = tracking.client(settings).search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert last.info.status == "FAILED" and last.data.tags["validation"] == "failed"
    assert last.data.tags["data_md5"].endswith(".dir") and last.data.tags["data_md5"] != current


def test_crash_in_training_leaves_the_champion(history, settings):
    from flows.pipeline import retrain

    before = _versions(settings)
    with pytest.raises(ValueError, match="optimizer must be"):
        retrain(TASK, "smoke", train_overrides={"optimizer": "no-such-optimizer"})
    assert _versions(settings) == before
    assert str(tracking.get_alias(settings, TASK, "champion").version) == history[1]["model_version"]


def test_rollback_switches_to_the_bento_the_old_version_was_built_with(history, settings, capsys):
    import bentoml

    weak, good = history[0], history[1]
    bentos_before = sorted(str(b.tag) for b in bentoml.bentos.list() if b.tag.name == TASK)
    assert mlzoo(["rollback", TASK]) == 0
    assert str(tracking.get_alias(settings, TASK, "champion").version) == weak["model_version"]
    assert str(tracking.get_alias(settings, TASK, "previous").version) == good["model_version"]
    assert f"Bento: {weak['bento']}" in capsys.readouterr().out  # the Bento built when v1 was promoted
    assert mlzoo(["rollback", TASK]) == 0  # and back
    assert str(tracking.get_alias(settings, TASK, "champion").version) == good["model_version"]
    assert sorted(str(b.tag) for b in bentoml.bentos.list() if b.tag.name == TASK) == bentos_before  # none rebuilt


def test_reproduce_champion_in_a_separate_workspace_gives_identical_metrics(history, settings, capsys):
    """MLZOO_WORKSPACE set (this session's workspace is not the repo; test_fresh_clone covers the repo)."""
    code = mlzoo(["reproduce", f"{TASK}@champion"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "weights bit-identical: True" in out and "OK" in out


@pytest.mark.timeout(2400)  # every task through the whole flow: ~8 min on 2 idle cores, more when shared
def test_retrain_all_runs_every_registered_task(history, settings):
    from flows.pipeline import retrain_all
    from tasks_lib.core.registry import task_names

    # the flow's path for every task; how well each learns is the quality tests' job
    results = retrain_all("smoke", train_overrides={"epochs": 1, "max_steps_per_epoch": 2})
    assert set(results) == set(task_names())
    assert results[TASK]["data_md5"] == history[0]["data_md5"]
    failed = {name: r["error"] for name, r in results.items() if "error" in r}
    assert not failed, failed  # every task goes through the whole flow: version, validate, ..., Bento


def test_a_task_builds_on_another_tasks_champion_with_recorded_lineage(history, settings):
    """transfer_learning's backbone is models:/image_classification@champion, pinned to its version."""
    from flows.pipeline import retrain

    champ = tracking.get_alias(settings, TASK, "champion")
    ref = f"models:/{TASK}@champion"
    result = retrain("transfer_learning", "smoke", train_overrides={"backbone": ref, "epochs": 1})
    run = tracking.client(settings).get_run(result["run_id"])
    assert run.data.tags["upstream.backbone"] == f"models:/{TASK}/{champ.version}"
    assert run.data.params["backbone"] == f"models:/{TASK}/{champ.version}"


def test_deploy_registers_scheduled_deployments_in_work_pools(history, settings, prefect_api):
    from prefect.client.orchestration import get_client

    assert mlzoo(["deploy", TASK, "--cron", "0 4 * * *", "--pool", "gpu"]) == 0
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(f"retrain/{TASK}-gpu")
        assert dep.work_pool_name == "gpu"
        assert dep.parameters == {"task": TASK, "profile": "full"}  # a GPU pool trains the full profile
        assert dep.schedules and dep.schedules[0].schedule.cron == "0 4 * * *"
        assert client.read_work_pool("gpu").type == "process"
        limit = dep.global_concurrency_limit
        assert limit is not None and limit.limit == 1
        assert dep.concurrency_options.collision_strategy.value == "ENQUEUE"  # queued, not dropped


def test_a_worker_runs_a_deployment(history, settings, prefect_api):
    """The scheduled path for real: a deployment in the cpu pool, run by a process worker."""
    import subprocess
    import sys
    from pathlib import Path

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    assert mlzoo(["deploy", TASK, "--pool", "cpu", "--profile", "smoke"]) == 0
    before = _versions(settings)
    flow_run = run_deployment(f"retrain/{TASK}-cpu", timeout=0)
    prefect = str(Path(sys.executable).with_name("prefect"))
    worker = subprocess.run(
        [prefect, "worker", "start", "--pool", "cpu", "--run-once"], capture_output=True, text=True, timeout=600
    )
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.is_completed(), worker.stdout[-3000:] + worker.stderr[-3000:]
    assert len(_versions(settings)) == len(before) + 1  # the worker's run registered a version


def test_grown_dataset_re_evaluates_the_champion_only_on_samples_it_never_saw(history, settings):
    """A new data version means re-evaluating the champion on it; splits are a function of
    content, so the new test split holds none of the champion's train or val samples."""
    from flows.pipeline import retrain
    from flows.steps import MANIFEST_ARTIFACT

    champ = tracking.get_alias(settings, TASK, "champion")
    result = retrain(TASK, "smoke", data_overrides={"max_samples": 800})  # smoke uses 600
    assert result["data_md5"] != history[0]["data_md5"]
    before = result["champion_before"]
    assert before["version"] == str(champ.version) and before["how"] == "re-evaluated"
    assert result["promoted"] == (result["value"] > before["value"])
    c = tracking.client(settings)
    old = pd.read_csv(c.download_artifacts(champ.run_id, MANIFEST_ARTIFACT))
    new = pd.read_csv(c.download_artifacts(result["run_id"], MANIFEST_ARTIFACT))
    seen = set(old.loc[old["split"] != "test", "sha1"])
    assert not seen & set(new.loc[new["split"] == "test", "sha1"])
    both = old.merge(new, on="sha1", suffixes=("_old", "_new"))
    assert len(both) >= 100 and (both["split_old"] == both["split_new"]).all()  # nobody changed split


def test_re_drawn_splits_hold_the_challenger(history, settings):
    """Another split salt puts champion training samples in the new test split: no fair comparison."""
    from flows.pipeline import retrain
    from flows.promotion import PromotionHeld

    champ = tracking.get_alias(settings, TASK, "champion")
    with pytest.raises(PromotionHeld, match="cannot be compared fairly") as held:
        retrain(TASK, "smoke", data_overrides={"split_seed": 1})
    assert f"mlzoo promote {TASK} {held.value.result['model_version']}" in held.value.reason
    assert tracking.get_alias(settings, TASK, "champion").version == champ.version
    run = tracking.client(settings).get_run(held.value.result["run_id"])
    assert run.data.tags["promotion.decision"] == "held"


def test_registering_twice_for_one_run_gives_one_version(history, settings):
    """A retried register step (e.g. after a lost response) must not add a version."""
    mv = tracking.client(settings).get_model_version(TASK, history[1]["model_version"])
    again = tracking.register(settings, TASK, mv.source, mv.run_id, {})
    assert again == history[1]["model_version"]


def test_a_credentialed_path_reaches_prefect_only_as_a_secret_reference(prefect_api):
    from flows.redact import SECRET_PREFIX, hide, reveal

    url = "https://alice:s3cr3t@data.example.com/x.tar.gz?sig=abc"
    hidden = hide({"path": url, "source": "cifar10"})
    assert hidden["path"].startswith(SECRET_PREFIX) and "s3cr3t" not in hidden["path"]
    assert hidden["source"] == "cifar10"
    assert reveal(hidden) == {"path": url, "source": "cifar10"}


def test_gc_removes_old_unaliased_versions_and_keeps_champion_and_previous(history, settings, capsys):
    import bentoml

    c = tracking.client(settings)
    champ = tracking.get_alias(settings, TASK, "champion")
    prev = tracking.get_alias(settings, TASK, "previous")
    before = _versions(settings)
    assert len(before) > 3
    assert mlzoo(["gc", "--keep", "1"]) == 0
    listed = capsys.readouterr().out
    assert "would remove model version" in listed and _versions(settings) == before  # a dry run
    assert mlzoo(["gc", "--keep", "1", "--apply"]) == 0
    after = _versions(settings)
    kept = {int(champ.version), int(prev.version), max(before)}
    assert set(after) == kept
    for v in set(before) - kept:
        assert f"model version {TASK}/{v}" in listed
        assert not [
            b for b in bentoml.bentos.list() if b.tag.name == TASK and b.info.labels.get("mlflow_version") == str(v)
        ]
    assert c.get_run(champ.run_id).info.lifecycle_stage == "active"
    from flows import dvc_store

    restored = dvc_store.restore(settings, TASK, champ.tags["data_md5"])  # its data is still there
    assert (restored / "manifest.csv").exists()
