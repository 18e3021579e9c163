"""Every task's model served for real by one ``bentoml serve`` of the generic service.

All tasks' smoke-trained bundles go into the Bento model store and one server serves them all,
each under ``/TASK/...`` (what ``mlzoo serve all`` runs): one server start for the whole file
instead of one per task. Per task: its own request examples are answered over HTTP exactly
as in process, its bad requests get the 4xx they name in the one error shape, the server
keeps serving, and the OpenAPI page shows exactly that task's fields.
(image_classification is served alone, through the whole flow, in test_serving.py.)
"""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from flows.settings import PROJECT_ROOT
from tasks_lib.core.registry import task_names
from tasks_lib.core.task import FILE_FIELDS
from tests.e2e.bento_server import Smoke, free_port, running, serve_command

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


def assert_error_shape(resp: httpx.Response, fields: tuple[str, ...] | None = None) -> dict:
    err = resp.json()["error"]
    assert set(err) == {"status", "field", "message", "fields"} and err["status"] == resp.status_code, err
    if fields is not None:
        assert err["fields"] == list(fields)
    return err


@pytest.fixture(scope="module")
def fleet(settings, tmp_path_factory):
    """(smoke models by task, the URL of the one server serving them all)."""
    models = {name: Smoke(name, tmp_path_factory.mktemp(name)) for name in TASKS}
    port = free_port()
    command = serve_command([m.tag for m in models.values()], tmp_path_factory.mktemp("args") / "args.yaml")
    with running([*command, "--port", str(port)], port, cwd=PROJECT_ROOT) as url:
        yield models, url


@pytest.fixture(params=TASKS)
def served(request, fleet):
    models, url = fleet
    m = models[request.param]
    return m.task, m.loaded, m.task.request_examples(m.data, 3), f"{url}/{m.task.name}"


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
        if task.answer_model is not None:  # the declared answer model is what is answered
            for row in got.get("predictions", [got]):
                task.answer_model.model_validate(row)
        for key, value in as_json(want).items():
            if isinstance(value, str | bool | int) and not isinstance(value, float):
                assert got[key] == value, key


def test_media_tasks_render_the_media_itself(served):
    task, _, requests, url = served
    resp = post(url, "/render", requests[0])
    if task.output_media is None:
        assert resp.status_code == 404
        assert_error_shape(resp, task.request_fields)
    else:
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(task.output_media) and resp.content


def test_bad_requests_get_the_4xx_they_name_and_the_server_keeps_serving(served):
    task, _, requests, url = served
    for request, status, message in [({}, 422, "empty"), *task.bad_requests()]:
        resp = post(url, "/predict", request)
        assert resp.status_code == status, (request.keys(), resp.text)
        err = assert_error_shape(resp, task.request_fields)
        assert message in err["message"]
        assert post(url, "/predict", requests[0]).status_code == 200


def test_openapi_shows_exactly_the_task_fields(served, fleet):
    task, _, _, url = served
    spec = httpx.get(f"{fleet[1]}/docs.json", timeout=30).json()
    op = spec["paths"][f"/{task.name}/predict"]["post"]
    shown = set()
    for content in op["requestBody"]["content"].values():
        shown |= set(content["schema"]["properties"])
        assert content["schema"]["additionalProperties"] is False
    assert shown == set(task.request_fields)
    answer = op["responses"]["200"]["content"]["application/json"]["schema"]
    answer = answer.get("anyOf", [answer])[0]
    if task.answer_model is not None:
        assert set(answer["properties"]) == set(task.answer_model.model_fields)
    assert "error" in op["responses"]["422"]["content"]["application/json"]["schema"]["properties"]


def test_one_server_holds_every_task(fleet):
    """What ``mlzoo serve all`` costs: every task's smoke model in one worker (printed with -s)."""
    models, url = fleet
    rss = url.rss_bytes()
    for name in models:
        assert httpx.get(f"{url}/{name}/metadata", timeout=10).status_code == 200
    print(f"one server, {len(models)} tasks: {rss / 2**20:.0f} MiB RSS")
    assert rss < 6 << 30
