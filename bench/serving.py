"""Serving throughput of the champion over HTTP, against the raw model in-process.

What is measured, on a throw-away state folder:

1. A champion is trained with the real flow (``retrain(TASK, PROFILE)``, Prefect server started
   and stopped here), then served exactly as a user would: ``.venv/bin/mlzoo serve TASK --port
   PORT`` as a subprocess (BentoML, 1 worker, adaptive batching), ready when GET /readyz is 200.
2. For each concurrency level (default 1, 8, 32) an httpx AsyncClient keeps that many requests
   in flight (a semaphore), each a real test digit as PNG in the multipart field ``image`` to
   ``POST /predict``; at most ``--requests`` requests or ``--seconds`` s per level. Reported:
   requests/s, p50/p99 latency, errors by status, the client's own CPU share (it shares the
   CPUs with the server), and how often the answer is the test label (a sanity check).
3. The baseline: the same champion loaded in this process (``load_bundle``) and ``task.forward``
   on batches of 1, 8, 32, 64 preprocessed test images, images/s, with torch's default thread
   count and with 1 thread. The gap to (2) is what HTTP, multipart, PNG decoding and batching cost.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
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
from bench import common  # noqa: E402

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


async def load_level(url: str, pngs: list[tuple[bytes, str]], concurrency: int, n: int, seconds: float) -> dict:
    """Send up to ``n`` requests, ``concurrency`` in flight; none starts after ``seconds``."""
    import httpx

    sem = asyncio.Semaphore(concurrency)
    latencies, statuses, correct = [], Counter(), 0
    deadline = time.perf_counter() + seconds
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

        before, t0 = common.cpu_times(), time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall, after = time.perf_counter() - t0, common.cpu_times()
    lat = np.array(latencies) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(latencies) - statuses["200"],
        "statuses": dict(statuses),
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "client_cpu_share": common.own_cpu_share(before, after),
        "label_matches": correct / max(statuses["200"], 1),
    }


def raw_forward(loaded, images, batch_sizes: list[int], threads: int, seconds: float = 1, repeats: int = 3) -> list:
    """images/s of ``task.forward`` on preprocessed batches with ``threads`` torch threads
    (best of ``repeats`` windows of ``seconds``)."""
    import torch

    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    task = loaded.task
    arrays = np.stack([item for request in images for item in task.parse_request(loaded, request)])
    out = []
    for bs in batch_sizes:
        batch = arrays[np.arange(bs) % len(arrays)]
        task.forward(loaded, batch)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                task.forward(loaded, batch)
                calls += 1
            best = min(best, (time.perf_counter() - t0) / calls * 1000)
        out.append({"batch": bs, "threads": threads, "images_per_s": bs / best * 1000, "ms_per_batch": best})
    torch.set_num_threads(default_threads)
    return out


def markdown(d: dict) -> str:
    def errors(r: dict) -> str:
        bad = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items() if k != "200")
        return f"{r['errors']} ({bad})" if bad else "0"

    http = "\n".join(
        f"| {r['concurrency']} | {r['requests']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
        f"| {errors(r)} | {r['client_cpu_share']:.0%} | {r['label_matches']:.0%} |"
        for r in d["http"]
    )
    raw = "\n".join(
        f"| {r['batch']} | {r['threads']} | {r['images_per_s']:.0f} | {r['ms_per_batch']:.2f} |" for r in d["raw"]
    )
    best_http = max(r["requests_per_s"] for r in d["http"])
    best_raw = max(r["images_per_s"] for r in d["raw"])
    return f"""## Serving throughput (`bench/serving.py`, task `{TASK}`, champion trained with profile `{d["profile"]}`)

{common.machine_line(d["machine"])}. Server: `mlzoo serve {TASK}` (BentoML, 1 worker, adaptive batching),
ready {d["ready_seconds"]:.1f} s after start. Load: one real test digit per request as PNG (multipart `image`),
httpx AsyncClient on 127.0.0.1 sharing the CPUs with the server, at most {d["max_requests"]} requests or
{d["max_seconds"]:.0f} s per level. CPUs busy with other processes just before: {d["cpu_busy_before"]["http"]:.0%}.

| concurrency | requests | requests/s | p50 ms | p99 ms | errors | client CPU | label = test label |
|---|---|---|---|---|---|---|---|
{http}

Baseline: the same champion in-process (`load_bundle` + `task.forward` on preprocessed images, no HTTP;
best of 3 one-second windows; CPU share used by other processes meanwhile: {d["raw_others_busy"]:.0%}):

| batch | torch threads | images/s | ms per batch |
|---|---|---|---|
{raw}

Best HTTP rate {best_http:.0f} requests/s = {best_http / best_raw:.1%} of the best in-process rate ({best_raw:.0f}
images/s): the rest goes to HTTP, multipart parsing, PNG decoding, the service's internal call to its batched
`forward` API, and the load generator on the same {d["machine"]["nproc"]} CPUs. Errors: the server's log is
kept in `bench/_work/serve.log` (git-ignored).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="profile of the champion's training run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=400, help="max requests per concurrency level")
    parser.add_argument("--seconds", type=float, default=20, help="max seconds per concurrency level")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--home", help="state folder (a champion there is reused; default: temp, deleted)")
    args = parser.parse_args()

    home = common.use_scratch_home(args.home)
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
    busy_before = {"raw": common.wait_quiet()}
    before, raw = common.cpu_times(), []
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):  # the default, and 1 thread
        raw += raw_forward(loaded, images, args.batches, threads)
    raw_others_busy = common.others_busy(before, common.cpu_times())

    busy_before["http"] = common.wait_quiet()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(ROOT / ".venv" / "bin" / "mlzoo"), "serve", TASK, "--port", str(port)]
    with open(home / "serve.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            ready = wait_ready(url, proc, timeout=180)
            asyncio.run(load_level(url, pngs, 4, 20, 10))  # warm-up, not reported
            http = [asyncio.run(load_level(url, pngs, c, args.requests, args.seconds)) for c in args.concurrency]
        finally:
            common.stop_process_tree(proc)
    (common.BENCH / "_work").mkdir(exist_ok=True)  # git-ignored: the server log, for a look at errors
    shutil.copy(home / "serve.log", common.BENCH / "_work" / "serve.log")

    d = {
        "machine": common.machine(),
        "task": TASK,
        "profile": args.profile,
        "champion_version": champ.version,
        "ready_seconds": ready,
        "max_requests": args.requests,
        "max_seconds": args.seconds,
        "cpu_busy_before": busy_before,
        "http": http,
        "raw": raw,
        "raw_others_busy": raw_others_busy,
    }
    common.write_results("serving", markdown(d), d)
    print(markdown(d))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
