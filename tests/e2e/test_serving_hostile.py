"""Hostile requests against a real ``bentoml serve`` of the generic service (loopback only).

One server serves five representative tasks (image, audio, text, array, options) under
``/TASK/...``; each hostile input of issue 13 gets one test naming the answer it must get.
A second, deliberately small server (one request in flight, a 3 s timeout) shows the
overload answers. Then a bounded fuzz (hypothesis, from the served OpenAPI schema, plus a
corpus of hostile files) and a soak of mixed valid and malformed requests at concurrency 32.
"""

from __future__ import annotations

import functools
import io
import json
import os
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from flows.settings import PROJECT_ROOT
from tasks_lib.core.audio import wav_bytes
from tasks_lib.core.images import png_bytes
from tests.e2e.bento_server import Smoke, free_port, running, serve_command

pytestmark = pytest.mark.e2e
IMAGE, AUDIO, TEXT, ARRAY, OPTIONS = (
    "image_classification",
    "speech_recognition",
    "text_classification",
    "game_control",
    "image_generation",
)
SOAK_REQUESTS = int(os.environ.get("MLZOO_SOAK_REQUESTS", "2000"))  # the 10,000 with MLZOO_SOAK_REQUESTS


@pytest.fixture(scope="module")
def models(settings, tmp_path_factory):
    return {n: Smoke(n, tmp_path_factory.mktemp(n)) for n in (IMAGE, AUDIO, TEXT, ARRAY, OPTIONS)}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    port = free_port()
    command = serve_command([m.tag for m in models.values()], tmp_path_factory.mktemp("a") / "args.yaml")
    with running([*command, "--port", str(port)], port, cwd=PROJECT_ROOT) as url:
        yield url


def err(resp: httpx.Response) -> dict:
    """The error of an answer, checked to be in the one error shape."""
    body = resp.json()
    assert set(body) == {"error"}, body
    e = body["error"]
    assert set(e) == {"status", "field", "message", "fields"} and e["status"] == resp.status_code, e
    return e


def digit_png() -> bytes:
    return png_bytes(np.zeros((8, 8), np.uint8))


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and holds none."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def foreign(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def tone(seconds: float, rate: int) -> np.ndarray:
    return 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)


def predict(url: str, task: str, **kw) -> httpx.Response:
    return httpx.post(f"{url}/{task}/predict", timeout=60, **kw)


# -- the list, one answer each -----------------------------------------------------


def test_a_multipart_field_the_task_does_not_take_is_422_listing_its_fields(server):
    resp = predict(server, IMAGE, files={"file": ("x.png", digit_png(), "image/png")})
    e = err(resp)
    assert resp.status_code == 422 and e["field"] == "file" and e["fields"] == ["image", "array"]
    assert "takes image, array" in e["message"]


def test_a_missing_field_is_422_listing_the_fields(server):
    resp = predict(server, TEXT, json={})
    assert resp.status_code == 422 and "takes text, texts" in err(resp)["message"]


def test_a_string_in_a_file_field_is_422(server):
    resp = predict(server, IMAGE, data={"image": "not a file"})
    assert resp.status_code == 422 and err(resp)["field"] == "image"
    assert predict(server, IMAGE, json={"image": "aGVsbG8="}).status_code == 422


def test_a_png_header_claiming_20000x20000_pixels_is_413(server):
    resp = predict(server, IMAGE, files={"image": ("x.png", png_header(20000, 20000), "image/png")})
    assert resp.status_code == 413 and err(resp)["field"] == "image"


def test_infinity_in_options_is_refused(server):
    literal = predict(server, OPTIONS, content=b'{"options": {"n": 4, "seed": Infinity}}')
    assert literal.status_code == 400 and "Infinity" in err(literal)["message"]
    overflow = predict(server, OPTIONS, content=b'{"options": {"n": 1e999}}')
    assert overflow.status_code == 422 and err(overflow)["field"] == "options"


def test_deep_json_is_400(server):
    deep = b'{"array": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = predict(server, ARRAY, content=deep, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422) and err(resp)


def test_a_string_image_on_render_is_422(server):
    resp = httpx.post(f"{server}/{OPTIONS}/render", json={"options": "a string"}, timeout=30)
    assert resp.status_code == 422 and err(resp)["field"] == "options"
    resp = httpx.post(f"{server}/{IMAGE}/render", json={"image": "a string"}, timeout=30)
    assert resp.status_code == 404 and err(resp)  # image_classification answers JSON only


def test_there_is_no_forward_route(server):
    for path in ("/forward", f"/{IMAGE}/forward"):
        resp = httpx.post(f"{server}{path}", json={"batch": [[1e9]]}, timeout=30)
        assert resp.status_code in (404, 405) and err(resp)
    spec = httpx.get(f"{server}/docs.json", timeout=30).json()
    assert not [p for p in spec["paths"] if p.endswith("/forward")]


def _raw_upload(port: int, total: int, chunked: bool) -> tuple[float, bytes]:
    """Send a ``total``-byte body over a raw socket; (seconds until the status line, the status line)."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST /{IMAGE}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    start = time.monotonic()
    sock.sendall(head.encode())
    stop = threading.Event()

    def feed() -> None:
        block = b"[" * (1 << 20)
        sent = 0
        try:
            while sent < total and not stop.is_set():
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent += len(block)
        except OSError:
            pass  # the server answered and closed: what we want

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    sock.settimeout(30)
    line = b""
    while b"\r\n" not in line:
        got = sock.recv(4096)
        if not got:
            break
        line += got
    elapsed = time.monotonic() - start
    stop.set()
    sock.close()
    feeder.join(timeout=10)
    return elapsed, line.split(b"\r\n")[0]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
def test_a_400_mib_upload_is_413_within_a_second_and_costs_little_memory(server, chunked):
    port = int(server.rsplit(":", 1)[1])
    before = server.rss_bytes()
    elapsed, status = _raw_upload(port, 400 << 20, chunked)
    grown = server.rss_bytes() - before
    assert b" 413 " in status and elapsed < (1.0 if not chunked else 5.0), (status, elapsed)
    assert grown < 50 << 20, f"server memory grew {grown / 2**20:.0f} MiB"


def test_readyz_answers_while_a_7_mib_json_request_is_parsed(server):
    big = json.dumps({"array": np.random.default_rng(0).random((400_000, 2)).round(6).tolist()}).encode()
    assert len(big) > 7 << 20
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(predict, server, ARRAY, content=big, headers={"content-type": "application/json"})
        time.sleep(0.2)
        start = time.monotonic()
        ready = httpx.get(f"{server}/readyz", timeout=10)
        assert ready.status_code == 200 and time.monotonic() - start < 1.0
        assert 400 <= slow.result().status_code < 500


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "ICO"])
def test_formats_other_than_png_and_jpeg_never_reach_a_decoder(server, fmt):
    resp = predict(server, IMAGE, files={"image": ("x", foreign(fmt), "application/octet-stream")})
    assert resp.status_code == 415 and "PNG or JPEG" in err(resp)["message"]


def test_a_16_khz_wav_is_resampled_and_answered(server, models):
    m = models[AUDIO]
    clip = m.task.request_examples(m.data, 1)[0]["audio"]
    import soundfile as sf

    x, sr = sf.read(io.BytesIO(clip), dtype="float32")
    import soxr

    wav16 = wav_bytes(soxr.resample(x, sr, 16000), 16000)
    resp = predict(server, AUDIO, files={"audio": ("a.wav", wav16, "audio/wav")})
    assert resp.status_code == 200 and "transcript" in resp.json(), resp.text


def test_a_wav_over_the_duration_limit_is_413_and_an_odd_rate_422(server):
    long = predict(server, AUDIO, files={"audio": ("a.wav", wav_bytes(tone(11, 16000), 16000), "audio/wav")})
    assert long.status_code == 413 and "too long" in err(long)["message"]
    odd = predict(server, AUDIO, files={"audio": ("a.wav", wav_bytes(tone(1, 12345), 12345), "audio/wav")})
    assert odd.status_code == 422 and "sample rate" in err(odd)["message"]


def test_huge_headers_are_refused_and_the_server_keeps_serving(server):
    try:
        resp = predict(server, TEXT, json={"text": "hi"}, headers={"x-padding": "a" * (256 << 10)})
        assert 400 <= resp.status_code < 500  # refused by the HTTP parser before the app
    except httpx.HTTPError:
        pass  # or the connection is dropped: either way nothing reaches the app
    assert predict(server, TEXT, json={"text": "hi"}).status_code == 200


def test_every_error_on_every_route_has_the_one_shape(server):
    answers = [
        httpx.get(f"{server}/nowhere", timeout=10),  # BentoML's own 404
        httpx.get(f"{server}/{IMAGE}/predict", timeout=10),  # wrong method
        httpx.post(f"{server}/readyz", timeout=10),
        httpx.post(f"{server}/{IMAGE}/predict", content=b"{not json", timeout=10),
        httpx.post(f"{server}/{IMAGE}/predict", content=b"x", headers={"content-type": "text/plain"}, timeout=10),
        httpx.post(f"{server}/{IMAGE}/predict", json=[1, 2], timeout=10),
    ]
    for resp in answers:
        assert 400 <= resp.status_code < 500, (resp.request.url, resp.status_code)
        err(resp)


# -- overload: a server that takes one request at a time, for at most 3 s ------------------


@pytest.fixture(scope="module")
def small_server(models, tmp_path_factory):
    port = free_port()
    args = tmp_path_factory.mktemp("s") / "args.yaml"
    command = serve_command([models[OPTIONS].tag], args, max_in_flight=1, max_queued=0, timeout_s=3)
    with running([*command, "--port", str(port)], port, cwd=PROJECT_ROOT) as url:
        yield url


def _hold_the_slot(url: str) -> socket.socket:
    """A request whose body never finishes arriving: it holds a slot until the server's timeout."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST /{OPTIONS}/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Content-Length: 100\r\n\r\n"
    sock.sendall(head.encode() + b"{")
    time.sleep(0.3)  # admitted and reading its body
    return sock


def test_past_the_in_flight_limit_is_503_with_retry_after(small_server):
    sock = _hold_the_slot(small_server)
    try:
        start = time.monotonic()
        busy = httpx.post(f"{small_server}/{OPTIONS}/predict", json={"options": {"n": 1, "seed": 0}}, timeout=30)
        assert busy.status_code == 503 and busy.headers.get("retry-after") == "1", busy.text
        assert "busy" in err(busy)["message"] and time.monotonic() - start < 1.0  # at once, never queued
        assert httpx.get(f"{small_server}/readyz", timeout=10).status_code == 200
    finally:
        sock.close()
    time.sleep(3.5)  # the held request times out and frees its slot
    ok = httpx.post(f"{small_server}/{OPTIONS}/predict", json={"options": {"n": 1, "seed": 0}}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_timed_out_requests_are_503_and_dropped(small_server):
    sock = _hold_the_slot(small_server)
    sock.settimeout(10)
    start = time.monotonic()
    status = sock.recv(4096).split(b"\r\n")[0]
    assert b" 503 " in status and 2.0 < time.monotonic() - start < 6, status
    sock.close()
    ok = httpx.post(f"{small_server}/{OPTIONS}/predict", json={"options": {"n": 1, "seed": 0}}, timeout=30)
    assert ok.status_code == 200, ok.text


# -- fuzz: requests generated from the served OpenAPI schema, and hostile files -------------


@functools.cache
def hostile_files() -> dict[str, bytes]:
    noise = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    bomb = io.BytesIO()
    Image.new("L", (4096, 4096)).save(bomb, format="PNG", optimize=True)  # ~16 MPx from a few KiB
    return {
        "zero bytes": b"",
        "truncated png": noise[: len(noise) // 3],
        "png header only": noise[:8],
        "claims 20000x20000": png_header(20000, 20000),
        "claims 0x0": png_header(0, 0),
        "bomb 4096x4096": bomb.getvalue(),
        "polyglot png+zip": noise + b"PK\x03\x04" + os.urandom(64),
        "gif as png": foreign("GIF"),
        "tiff": foreign("TIFF"),
        "jpeg garbage": b"\xff\xd8\xff\xe0" + os.urandom(300),
        "wav header, no data": b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16),
        "wav 1 GHz": wav_bytes(np.zeros(100), 8000).replace(struct.pack("<I", 8000), struct.pack("<I", 10**9), 1),
        "wav 0 channels": wav_bytes(np.zeros(100), 8000).replace(struct.pack("<HH", 1, 1), struct.pack("<HH", 1, 0), 1),
        "random": os.urandom(2048),
        "huge text": b"a" * (6 << 20),
    }


def _strategy(schema: dict, st):
    """A hypothesis strategy for values of one JSON schema (and a little beyond it)."""
    if "anyOf" in schema:
        return st.one_of([_strategy(s, st) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "string" and schema.get("format") == "binary":
        return st.one_of(st.binary(max_size=512), st.sampled_from(list(hostile_files().values())))
    if kind == "string":
        return st.text(max_size=300)
    if kind == "integer":
        return st.one_of(st.integers(schema.get("minimum", -(2**40)), schema.get("maximum", 2**40)), st.integers())
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        numbers = st.one_of(st.integers(-300, 300), st.floats(-1e6, 1e6, allow_nan=False))
        nested = st.recursive(numbers, lambda inner: st.lists(inner, max_size=6), max_leaves=60)
        items = schema.get("items")
        return st.lists(_strategy(items, st) if items else nested, max_size=8)
    if kind == "object" and "properties" in schema:
        props = {k: _strategy(v, st) for k, v in schema["properties"].items()}
        return st.fixed_dictionaries({}, optional=props)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=20,
    )
    return st.dictionaries(st.text(max_size=10), json_values, max_size=4)


@pytest.mark.parametrize("task", [IMAGE, AUDIO, TEXT, ARRAY, OPTIONS])
def test_fuzz_from_the_openapi_schema_never_5xx(server, task):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    spec = httpx.get(f"{server}/docs.json", timeout=30).json()
    content = spec["paths"][f"/{task}/predict"]["post"]["requestBody"]["content"]
    form = content["multipart/form-data"]["schema"]["properties"]
    files = {k for k, v in form.items() if v.get("format") == "binary"}
    fields = st.fixed_dictionaries({}, optional={k: _strategy(v, st) for k, v in form.items()})
    extra = st.dictionaries(st.sampled_from(["image", "file", "audio", "text", "x", "array"]), st.text(max_size=5))
    requests = st.one_of(fields, st.builds(lambda a, b: {**a, **b}, fields, extra))
    before = server.rss_bytes()
    client = httpx.Client(timeout=60)

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(requests, st.booleans())
    def one(request, as_form):
        if files & set(request) or as_form:
            parts = {k: ("f", v if isinstance(v, bytes) else str(v).encode()) for k, v in request.items() if k in files}
            data = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in request.items() if k not in files}
            resp = client.post(f"{server}/{task}/predict", files=parts or None, data=data or None)
        else:
            resp = client.post(f"{server}/{task}/predict", json=request)
        assert resp.status_code < 500, (request, resp.text)
        if resp.status_code >= 400:
            err(resp)

    one()
    for name, data in hostile_files().items():
        field = sorted(files)[0] if files else "image"
        resp = client.post(f"{server}/{task}/predict", files={field: ("f", data)})
        assert resp.status_code < 500, (name, resp.status_code, resp.text[:200])  # a polyglot PNG is a PNG
        if resp.status_code >= 400:
            err(resp)
    client.close()
    assert httpx.get(f"{server}/readyz", timeout=10).status_code == 200
    grown = server.rss_bytes() - before
    assert grown < 200 << 20, f"server memory grew {grown / 2**20:.0f} MiB"


# -- soak: mixed valid and malformed requests at concurrency 32 ------------------------------


def test_soak_mixed_requests_at_concurrency_32(server, models):
    """SOAK_REQUESTS requests (2,000 by default: ~20 s on 2 shared cores), a third malformed."""
    m = models[IMAGE]
    valid = m.task.request_examples(m.data, 16)
    expected = m.task.predict(m.loaded, valid)
    malformed = [
        ({"files": {"image": ("x.png", b"just text", "image/png")}}, 415),
        ({"json": {"array": [[0, 999]] * 4}}, 422),
        ({"json": {"text": "hello"}}, 422),
        ({"content": b"{broken", "headers": {"content-type": "application/json"}}, 400),
    ]
    httpx.get(f"{server}/{IMAGE}/metadata", timeout=10)
    warm = [predict(server, IMAGE, files={"image": ("x.png", r["image"], "image/png")}) for r in valid[:4]]
    assert all(r.status_code == 200 for r in warm)
    before = server.rss_bytes()
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))

    def one(i: int):
        if i % 3 == 2:
            kw, want = malformed[i % len(malformed)]
            return i, want, client.post(f"{server}/{IMAGE}/predict", **kw)
        r = valid[i % len(valid)]
        return i, 200, client.post(f"{server}/{IMAGE}/predict", files={"image": ("x.png", r["image"], "image/png")})

    start = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(SOAK_REQUESTS)))
    elapsed = time.monotonic() - start
    client.close()
    codes = [resp.status_code for _, _, resp in answers]
    assert not [c for c in codes if c >= 500], {c: codes.count(c) for c in set(codes)}
    for i, want, resp in answers:
        assert resp.status_code == want, (i, resp.text)
        if want == 200:
            got, exp = resp.json(), expected[i % len(valid)]
            assert got["label"] == exp["label"]
            assert got["probabilities"] == pytest.approx(exp["probabilities"], abs=1e-4)
    grown = server.rss_bytes() - before
    assert grown < 0.10 * before, f"RSS grew {grown / 2**20:.0f} MiB over {before / 2**20:.0f} MiB"
    meta = httpx.get(f"{server}/{IMAGE}/metadata", timeout=10).json()
    assert meta["batching"]["batches"] < meta["batching"]["batched_items"]  # requests were merged
    print(f"soak: {SOAK_REQUESTS} requests in {elapsed:.1f} s ({SOAK_REQUESTS / elapsed:.0f}/s)")
