"""Serving throughput: the champion's Bento against the same task code behind plain FastAPI and
against ``mlflow models serve``, each under ``wrk`` at concurrency 1, 8, 32 and 128.

What is measured, on a throw-away state folder:

1. A champion is trained with the real flow (``retrain(TASK, PROFILE)``), then served three
   ways, one server at a time: ``mlzoo serve TASK`` (its Bento), ``bench/plain_server.py``
   (FastAPI + uvicorn, one process, no batching, the same ``check_request`` / ``parse_request``
   / ``forward`` / ``postprocess``), and ``mlflow models serve`` (its JSON ``inputs``).
2. ``wrk`` (a C load generator; Debian package ``wrk``) keeps C connections busy for
   ``--seconds`` per level: requests/s, p50 and p99 latency, errors (non-2xx + socket), and the
   server's RSS after the level. The machine's load average is recorded beside the figures.
3. The ceiling: the same champion in this process, ``task.forward`` on preprocessed batches.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
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


def wait_ready(url: str, proc: subprocess.Popen, timeout: float, path: str = "/readyz") -> float:
    """Poll GET ``path`` until 200; returns the seconds it took."""
    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout:.0f} s")


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open("{body}", "rb"):read("*a")
wrk.headers["Content-Type"] = "{ctype}"
"""


def wrk_level(url: str, body_file: Path, ctype: str, concurrency: int, seconds: float) -> dict:
    """``wrk`` at ``concurrency`` connections for ``seconds``: requests/s, p50/p99 ms, errors."""
    script = body_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT.format(body=body_file, ctype=ctype))
    threads = min(concurrency, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:.0f}s", "--latency", "--timeout", "30s"]
    out = subprocess.run([*cmd, "-s", str(script), url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\b", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[m.group(2)]

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "concurrency": concurrency,
        "requests": total,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
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


SERVERS = ("bento", "fastapi", "mlflow")


def tree_rss(pid: int) -> int:
    import psutil

    total = 0
    for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def markdown(d: dict) -> str:
    levels = d["concurrency"]
    rows = []
    for c in levels:
        by = {name: next((r for r in d["http"][name] if r["concurrency"] == c), None) for name in d["http"]}
        peer = by.get("fastapi")
        cells = []
        for name in SERVERS:
            r = by.get(name)
            cells.append(
                f"{r['requests_per_s']:.0f}, {r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms, {r['errors']} err, "
                f"{r['rss_mib']:.0f} MiB"
                if r
                else "-"
            )
        ratio = by["bento"]["requests_per_s"] / peer["requests_per_s"] if peer and by.get("bento") else float("nan")
        rows.append(f"| {c} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    raw = "\n".join(
        f"| {r['batch']} | {r['threads']} | {r['images_per_s']:.0f} | {r['ms_per_batch']:.2f} |" for r in d["raw"]
    )
    table = "\n".join(rows)
    return f"""## Serving throughput (`bench/serving.py`, task `{TASK}`, champion trained with profile `{d["profile"]}`)

{common.machine_line(d["machine"])}. Load average (1/5/15 min) before the run: {d["load_before"]},
after: {d["load_after"]} (the machine is shared with other agents: figures move with their load).
Load: `wrk` ({d["seconds"]:.0f} s per level, loopback), every request the same test digit as PNG in the multipart
field `image` (`mlflow models serve`: the same digit as its JSON `inputs`, model-ready pixels).
Servers, one at a time: **bento** = `mlzoo serve {TASK}` (the champion's Bento: one worker, typed app,
in-process micro-batching); **fastapi** = `bench/plain_server.py`, the same task code behind FastAPI + uvicorn,
one process, no batching; **mlflow** = `mlflow models serve` of the same champion (`--env-manager local`).
Cells: requests/s, p50 / p99 latency, errors (non-2xx + socket), server RSS after the level (the whole
process tree: BentoML runs an arbiter and a worker, each with torch imported, so shared pages count twice).
Ready after start (s): {", ".join(f"{k} {v:.0f}" for k, v in d["startup_s"].items())}.
{"".join(f"Failed: {k}: {v}. " for k, v in d["failed"].items())}

| concurrency | bento | fastapi | mlflow | bento / fastapi req/s |
|---|---|---|---|---|
{table}

Ceiling: the same champion in-process (`load_bundle` + `task.forward` on preprocessed images, no HTTP;
best of 3 one-second windows):

| batch | torch threads | images/s | ms per batch |
|---|---|---|---|
{raw}
"""


MULTIPART_BOUNDARY = "mlzoobenchboundary"


def multipart(field: str, data: bytes) -> bytes:
    head = (
        f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()


def start(cmd: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:

    log = open(log_path, "wb")  # noqa: SIM115 (lives as long as the server)
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", help="profile of the champion's training run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--seconds", type=float, default=8, help="wrk seconds per concurrency level")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--home", help="state folder (a champion there is reused; default: temp, deleted)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (the bench target does it)")

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
    requests = task.request_examples(data, 64)
    bundle_dir = tracking.download_bundle(s, TASK, str(champ.version), home / "bundle")
    loaded = load_bundle(bundle_dir)
    load_before = load_average()

    raw = []
    for threads in sorted({torch.get_num_threads(), 1}, reverse=True):  # the default, and 1 thread
        raw += raw_forward(loaded, requests, args.batches, threads)

    work = home / "wrk"
    work.mkdir(exist_ok=True)
    png_body = work / "png.body"
    png_body.write_bytes(multipart("image", requests[0]["image"]))
    json_body = work / "json.body"
    pixels = task.parse_request(loaded, requests[0])[0]
    json_body.write_text(json.dumps({"inputs": [pixels.tolist()]}))

    http: dict[str, list[dict]] = {}
    startup: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in args.servers:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if name == "bento":
            proc = start([str(ROOT / ".venv/bin/mlzoo"), "serve", TASK, "--port", str(port)], home / "bento.log")
            path, body, ctype, ready_path = (
                "/predict",
                png_body,
                f"multipart/form-data; boundary={MULTIPART_BOUNDARY}",
                "/readyz",
            )
        elif name == "fastapi":
            proc = start(
                [sys.executable, str(ROOT / "bench/plain_server.py"), str(bundle_dir), "--port", str(port)],
                home / "fastapi.log",
            )
            path, body, ctype, ready_path = (
                "/predict",
                png_body,
                f"multipart/form-data; boundary={MULTIPART_BOUNDARY}",
                "/readyz",
            )
        else:
            cmd = [str(ROOT / ".venv/bin/mlflow"), "models", "serve", "-m", f"models:/{TASK}@champion"]
            cmd += ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            env = {"MLFLOW_TRACKING_URI": s.tracking_uri, "PYTHONPATH": str(ROOT)}
            env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"  # it execs `uvicorn`
            proc = start(cmd, home / "mlflow.log", env)
            path, body, ctype, ready_path = "/invocations", json_body, "application/json", "/ping"
        try:
            ready = wait_ready(url, proc, timeout=240, path=ready_path)
            wrk_level(url + path, body, ctype, 4, 2)  # warm-up, not reported
            http[name] = []
            for c in args.concurrency:
                r = wrk_level(url + path, body, ctype, c, args.seconds)
                r["rss_mib"] = tree_rss(proc.pid) / 2**20
                r["load"] = load_average()
                http[name].append(r)
                print(name, r, flush=True)
            startup[name] = ready
        except (RuntimeError, subprocess.CalledProcessError) as exc:  # one server failing keeps the others' figures
            failed[name] = f"{type(exc).__name__}: {exc} (log: {name}.log)"
            http.pop(name, None)
            print(name, "failed:", failed[name], flush=True)
        finally:
            if proc.poll() is None:
                common.stop_process_tree(proc)

    d = {
        "machine": common.machine(),
        "task": TASK,
        "profile": args.profile,
        "champion_version": champ.version,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "load_before": load_before,
        "load_after": load_average(),
        "http": http,
        "startup_s": startup,
        "failed": failed,
        "raw": raw,
    }
    common.write_results("serving", markdown(d), d)
    print(markdown(d))
    if not args.home:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
