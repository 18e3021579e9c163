"""A real ``mlzoo serve`` (``bentoml serve`` of the champion's Bento) answering over HTTP."""

from __future__ import annotations

import io
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from flows import tracking
from tests.e2e.bento_server import free_port, running

TASK = "image_classification"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def champion(settings, prefect_api):
    if tracking.get_alias(settings, TASK, "champion") is None:
        from flows.pipeline import retrain

        retrain(TASK, "smoke")
    return tracking.get_alias(settings, TASK, "champion")


@pytest.fixture(scope="module")
def server(champion):
    port = free_port()
    with running([str(Path(sys.executable).with_name("mlzoo")), "serve", TASK, "--port", str(port)], port) as url:
        yield url


def _png(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(buf, format=fmt)
    return buf.getvalue()


def _post_image(url: str, data: bytes, name: str = "x.png") -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"image": (name, data, "image/png")}, timeout=30)


def test_png_prediction_matches_the_champion_in_process(server, settings, champion, tmp_path):
    from tasks_lib.core.bundle import load_bundle

    data_dir = settings.workspace / "data" / TASK
    images = np.load(data_dir / "test_x.npy")[:8, :, :, 0]
    loaded = load_bundle(tracking.download_bundle(settings, TASK, str(champion.version), tmp_path))
    expected = loaded.task.predict(loaded, [{"image": _png(i)} for i in images])
    for img, want in zip(images, expected, strict=True):
        resp = _post_image(server, _png(img))
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got["label"] == want["label"]
        assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert set(got["probabilities"]) == {str(d) for d in range(10)}


def test_json_array_form(server):
    resp = httpx.post(f"{server}/predict", json={"array": np.zeros((8, 8)).tolist()}, timeout=30)
    assert resp.status_code == 200 and "label" in resp.json()


def test_metadata_tells_provenance(server, champion):
    meta = httpx.get(f"{server}/metadata", timeout=10).json()
    assert meta["task"] == TASK and meta["mlflow_model"] == TASK
    assert meta["mlflow_version"] == str(champion.version)
    assert meta["mlflow_run_id"] == champion.run_id
    assert meta["data_md5"] == champion.tags["data_md5"]
    assert meta["git_commit"] and "test_accuracy" in meta["metrics"]


rng = np.random.default_rng(0)
BAD = {
    "truncated": (_png(rng.integers(0, 256, (64, 64), dtype=np.uint8))[:200], 400, "truncated"),
    "not an image": (b"just some text", 415, "not an image"),
    "zero bytes": (b"", 400, "empty"),
    "wrong channels": (_png(np.zeros((8, 8, 3), np.uint8), "JPEG", "CMYK"), 422, "CMYK"),
    "too small": (_png(np.zeros((2, 2), np.uint8)), 422, "too small"),
    "oversize": (b"\x89PNG\r\n\x1a\n" + bytes(11 * 1024 * 1024), 413, "too large"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_a_4xx_naming_the_problem_and_server_keeps_serving(server, case):
    data, status, message = BAD[case]
    resp = _post_image(server, data)
    assert resp.status_code == status, resp.text
    assert message in resp.text
    ok = _post_image(server, _png(np.zeros((8, 8), np.uint8)))
    assert ok.status_code == 200


def test_bad_json_arrays_are_rejected(server):
    for body, message in (
        ({"array": [[0, 999]] * 4}, "0-255"),
        ({}, "empty"),
        ({"array": [[1, 2], [3]]}, "rectangular"),
    ):
        resp = httpx.post(f"{server}/predict", json=body, timeout=30)
        assert 400 <= resp.status_code < 500 and message in resp.text, resp.text


def test_concurrent_requests_are_batched_and_all_answered(server):
    """32 at a time, 300 in all, through the in-process batcher (no internal HTTP hop)."""
    img = _png(np.zeros((8, 8), np.uint8))
    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(32) as pool:
        post = lambda _: client.post(f"{server}/predict", files={"image": ("x.png", img, "image/png")})  # noqa: E731
        codes = [r.status_code for r in pool.map(post, range(300))]
    assert codes.count(200) == 300, {c: codes.count(c) for c in set(codes)}


def test_the_bento_names_its_model_by_service_argument(server, settings, champion):
    import bentoml

    from flows import packaging

    bento = bentoml.bentos.get(packaging.find_bento(champion))
    model_tags = [str(m.tag) for m in bento.info.models]
    assert bento.info.args == {"model": model_tags[0]} and len(model_tags) == 1
    assert not (Path(bento.path) / "src" / "serving" / "model.json").exists()
    assert httpx.get(f"{server}/metadata", timeout=10).json()["bento_model"] == model_tags[0]


def test_there_is_no_public_route_that_skips_validation(server):
    resp = httpx.post(f"{server}/forward", json={"batch": [[1e9] * 64]}, timeout=10)
    assert resp.status_code == 404 and resp.json()["error"]["status"] == 404


def test_serve_all_puts_every_champion_under_its_task(champion):
    port = free_port()
    command = [str(Path(sys.executable).with_name("mlzoo")), "serve", "all", "--port", str(port)]
    with running(command, port) as url:
        meta = httpx.get(f"{url}/{TASK}/metadata", timeout=10).json()
        assert meta["mlflow_version"] == str(champion.version)
        resp = _post_image(f"{url}/{TASK}", _png(np.zeros((8, 8), np.uint8)))
        assert resp.status_code == 200 and "label" in resp.json()
        print(f"serve all: {url.rss_bytes() / 2**20:.0f} MiB RSS")
