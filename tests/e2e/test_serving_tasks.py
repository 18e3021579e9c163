"""Every task's model served for real by ``bentoml serve`` of the one generic service.

Per task: a smoke-trained bundle goes into the Bento model store, the service starts
on it, the task's own request examples are answered over HTTP exactly as in process,
its bad requests get the 4xx they name, and the server keeps serving afterwards.
(image_classification is served through the whole flow in test_serving.py.)
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import httpx
import pytest

from flows.settings import PROJECT_ROOT
from tasks_lib.core.bundle import save_bundle
from tasks_lib.core.registry import get_task, task_names
from tasks_lib.core.task import FILE_FIELDS, LoadedModel
from tests import smoke
from tests.e2e.bento_server import free_port, running

pytestmark = pytest.mark.e2e
TASKS = [t for t in task_names() if t != "image_classification"]


def post(url: str, path: str, request: dict) -> httpx.Response:
    """Files go multipart (with any other fields as form values), everything else as JSON."""
    files = {k: (k, v, "application/octet-stream") for k, v in request.items() if k in FILE_FIELDS}
    if files:
        form = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in request.items() if k not in files}
        return httpx.post(f"{url}{path}", files=files, data=form, timeout=120)
    return httpx.post(f"{url}{path}", json=request, timeout=120)


def as_json(answer: dict) -> dict:
    """An in-process answer as /predict sends it (media base64-encoded), through a JSON round trip."""
    out = {f"{k}_base64" if isinstance(v, bytes) else k: v for k, v in answer.items()}
    out = {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in out.items()}
    return json.loads(json.dumps(out))


@pytest.fixture(scope="module", params=TASKS)
def served(request, settings, tmp_path_factory):
    import bentoml

    task = get_task(request.param)
    tmp = tmp_path_factory.mktemp(task.name)
    run = smoke.train(task, tmp / "data", train={"epochs": 1, "max_steps_per_epoch": 2})
    loaded = LoadedModel(task, run.cfg, run.data.info, run.model.eval())
    bundle = save_bundle(loaded, tmp / "bundle")
    with bentoml.models.create(name=f"test-{task.name}".replace("_", "-"), labels={"task": task.name}) as bm:
        for f in bundle.iterdir():
            (Path(bm.path) / f.name).write_bytes(f.read_bytes())
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", "serving.service:MLZooService", "--port", str(port)]
    with running(command, port, env={"MLZOO_MODEL_TAG": str(bm.tag)}, cwd=PROJECT_ROOT) as url:
        yield task, loaded, task.request_examples(run.data, 3), url


def test_answers_over_http_as_in_process(served):
    task, loaded, requests, url = served
    meta = httpx.get(f"{url}/metadata", timeout=10).json()
    assert meta["task"] == task.name and set(meta["request_fields"]) == set(task.request_fields)
    expected = task.predict(loaded, requests)
    for request, want in zip(requests, expected, strict=True):
        resp = post(url, "/predict", request)
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert set(got) == set(as_json(want))
        for key, value in as_json(want).items():
            if isinstance(value, str | bool | int) and not isinstance(value, float):
                assert got[key] == value, key


def test_media_tasks_render_the_media_itself(served):
    task, _, requests, url = served
    resp = post(url, "/render", requests[0])
    if task.output_media is None:
        assert resp.status_code == 404
    else:
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(task.output_media) and resp.content


def test_bad_requests_get_the_4xx_they_name_and_the_server_keeps_serving(served):
    task, _, requests, url = served
    for request, status, message in [({}, 422, "empty"), *task.bad_requests()]:
        resp = post(url, "/predict", request)
        assert resp.status_code == status, (request.keys(), resp.text)
        assert message in resp.text
        assert post(url, "/predict", requests[0]).status_code == 200
