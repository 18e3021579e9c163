"""Serving throughput of the champion over HTTP, against the raw model in-process.

What is measured, on a throw-away state folder:

1. A champion is trained with the real flow (``retrain(TASK, PROFILE)``; Prefect server
   started and stopped here), then the real server is started as a subprocess exactly as a
   user would: ``.venv/bin/mlzoo serve TASK --port PORT`` (BentoML, adaptive batching).
2. For each concurrency level (default 1, 8, 32) an httpx AsyncClient keeps that many
   requests in flight (a semaphore), each a real test-split digit sent as PNG in the
   multipart field ``image`` to ``POST /predict``; at most ``--requests`` requests or
   ``--seconds`` seconds per level. Reported: requests/s, p50/p99 latency, errors, and the
   share of answers whose label matches the test label (a sanity check, not a metric).
3. The baseline: the same champion bundle loaded in this process (``load_bundle``) and
   ``task.forward`` on batches of 1, 8, 32, 64 preprocessed test images: images/s. The gap
   between (2) and (3) is what HTTP, multipart parsing, PNG decoding and batching cost.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import (cpu_times, machine, machine_line, others_busy, use_scratch_home,  # noqa: E402
                          wait_quiet, write_results)  # noqa: E402

TASK = "image_classification"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Poll GET /readyz until 200; returns the seconds it took."""
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout:.0f} s")


async def load_level(url: str, pngs: list[tuple[bytes, str]], concurrency: int, max_requests: int,
                     max_seconds: float) -> dict:
    """Send up to ``max_requests`` requests with ``concurrency`` in flight, stop after ``max_seconds``."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies, statuses, correct = [], Counter(), 0
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            nonlocal correct
            async with sem:
                if time.perf_counter() > deadline:
                    return
                png, label = pngs[i % len(pngs)]
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/predict", files={"image": ("digit.png", png, "image/png")})
                    status = str(resp.status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                latencies.append(time.perf_counter() - t0)
                statuses[status] += 1
                if status == "200" and resp.json()["label"] == label:
                    correct += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(max_requests)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    errors = len(latencies) - statuses["200"]
    return {"concurrency": concurrency, "requests": len(latencies), "errors": errors, "statuses": dict(statuses),
            "seconds": wall,
            "requests_per_s": len(latencies) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "label_matches": correct / max(statuses["200"], 1)}


def raw_forward(loaded, images, batch_sizes: list[int], threads: int, seconds: float = 1, repeats: int = 3) -> list[dict]:
    """images/s of ``task.forward`` on preprocessed batches with ``threads`` torch threads:
    best of ``repeats`` windows of ``seconds``."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    task = loaded.task
    arrays = np.stack([task.preprocess(loaded, im) for im in images])
    out = []
    for bs in batch_sizes:
        batch = arrays[np.arange(bs) % len(arrays)]
        task.forward(loaded, batch)  # warm-up
        best = None
        for _ in range(repeats):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                task.forward(loaded, batch)
                n += 1
            ms = (time.perf_counter() - t0) / n * 1000
            best = ms if best is None else min(best, ms)
        out.append({"batch": bs, "threads": threads, "images_per_s": bs / best * 1000, "ms_per_batch": best})
    torch.set_num_threads(default_threads)
    return out


def _codes(r: dict) -> str:
    bad = {k: v for k, v in r["statuses"].items() if k != "200"}
    return f"({', '.join(f'{k}: {v}' for k, v in bad.items())}) " if bad else ""


def markdown(d: dict) -> str:
    http_rows = "\n".join(
        f"| {r['concurrency']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | "
        f"{r['p99_ms']:.1f} | {r['errors']} {_codes(r)}| {r['label_matches'] * 100:.0f} % |" for r in d["http"])
    raw_rows = "\n".join(f"| {r['batch']} | {r['threads']} | {r['images_per_s']:.0f} | {r['ms_per_batch']:.2f} |"
                         for r in d["raw"])
    best_http = max(r["requests_per_s"] for r in d["http"])
    best_raw = max(r["images_per_s"] for r in d["raw"])
    return f"""## Serving throughput (`bench/serving.py`, task `{TASK}`, champion from profile `{d['profile']}`)

{machine_line(d['machine'])}. Server: `mlzoo serve {TASK}` (BentoML, 1 worker, adaptive batching
max 64 / 100 ms), ready {d['ready_seconds']:.1f} s after start. Requests: one real test digit as PNG
(multipart `image`), httpx AsyncClient on 127.0.0.1, at most {d['max_requests']} requests or
{d['max_seconds']:.0f} s per level. CPUs busy with other work just before: {d['cpu_busy_before']['http'] * 100:.0f} %.

| concurrency | requests | requests/s | p50 ms | p99 ms | errors | label = test label |
|---|---|---|---|---|---|---|
{http_rows}

Baseline: the same champion in-process (`load_bundle` + `task.forward`, preprocessed uint8 images, no HTTP;
best of 3 one-second windows, with torch's default thread count and with 1 thread; CPUs used by other
processes meanwhile: {d['raw_others_busy'] * 100:.0f} %):

| batch | torch threads | images/s | ms per batch |
|---|---|---|---|
{raw_rows}

Best HTTP rate {best_http:.0f} requests/s vs best in-process {best_raw:.0f} images/s
({best_http / best_raw * 100:.1f} %): the rest is HTTP, multipart, PNG decoding and batching, and the
load generator sharing the same {d['machine']['nproc']} CPUs.
"""


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (BentoML's workers run in their own process groups)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever it started that is still there."""
    below = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="profile of the champion's training run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="max requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=20, help="max seconds per concurrency level")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--home", help="state folder (reused if it has a champion; default: temp, deleted)")
    args = parser.parse_args()

    home = use_scratch_home(args.home)
    from flows.settings import Settings

    s = Settings.from_env().apply()
    import torch

    from flows import tracking
    from flows.prefect_server import ensure_server, stop_server
    from tasks_lib.core.bundle import load_bundle
    from tasks_lib.core.registry import get_task

    if tracking.get_alias(s, TASK, tracking.CHAMPION) is None:
        ensure_server(s)
        try:
            from flows.pipeline import retrain

            retrain(TASK, args.profile)
        finally:
            stop_server(s)
    champ = tracking.get_alias(s, TASK, tracking.CHAMPION)
    task = get_task(TASK)
    data = task.load(s.workspace / "data" / TASK)
    images = task.request_examples(data, 64)
    pngs = []
    for im, y in zip(images, data.y["test"][:64].tolist(), strict=True):
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        pngs.append((buf.getvalue(), data.info["classes"][y]))

    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_bundle(tracking.download_bundle(s, TASK, str(champ.version), Path(tmp)))
    busy_before = {"raw": wait_quiet()}
    before, raw = cpu_times(), []
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):  # the default, and 1 thread
        raw += raw_forward(loaded, images, args.batches, threads)
    raw_others_busy = others_busy(before, cpu_times())

    busy_before["http"] = wait_quiet()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "mlzoo"), "serve", TASK, "--port", str(port)],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ready = wait_ready(url, proc, timeout=180)
            asyncio.run(load_level(url, pngs, 4, 20, 10))  # warm-up, not reported
            http = [asyncio.run(load_level(url, pngs, c, args.requests, args.seconds)) for c in args.concurrency]
        finally:
            stop(proc)

    d = {"machine": machine(), "task": TASK, "profile": args.profile, "champion_version": champ.version,
         "ready_seconds": ready, "max_requests": args.requests, "max_seconds": args.seconds, "http": http,
         "raw": raw, "cpu_busy_before": busy_before, "raw_others_busy": raw_others_busy}
    write_results("serving", markdown(d), d)
    print(markdown(d))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
