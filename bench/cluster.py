"""Fan-out on the cluster against one process, for the same six smoke tasks.

In one run, on throw-away state folders:

1. ``up``: wall time of ``mlzoo cluster up --workers 2`` from nothing (PostgreSQL initdb,
   MLflow and Prefect servers with their migrations, sshd, two workers).
2. sequential: ``retrain`` of each task one after another in one process (the embedded
   defaults: SQLite MLflow, a local Prefect server, a folder DVC remote).
3. fan-out: ``mlzoo run TASKS --fan-out`` on the cluster's two workers (each run clones
   the code from git, talks to PostgreSQL-backed servers, pushes data over ssh).
4. per-run overhead of the servers: one smoke ``image_classification`` run from the client
   against the cluster's servers, minus the same run on the embedded defaults.

Goal: fan-out <= 0.65 x sequential on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import common  # noqa: E402

TASKS = [
    "image_classification",
    "text_classification",
    "sentiment_analysis",
    "speech_recognition",
    "game_control",
    "denoising",
]
MLZOO = str(Path(sys.executable).with_name("mlzoo"))
ROOT = Path(__file__).resolve().parents[1]
CLIENT_ONLY = ("MLZOO_", "MLFLOW_", "PREFECT_", "BENTOML_")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_ONLY) or k in ("MLZOO_DATASETS",)}
    return {**env, "MLZOO_DEVICE": "cpu", "PREFECT_SERVER_ANALYTICS_ENABLED": "false", **extra}


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.stdout


SEQUENTIAL = """
import sys
from flows.prefect_server import ensure_server
from flows.settings import Settings
s = Settings.from_env().apply()
ensure_server(s)
from flows.pipeline import retrain
for task in sys.argv[1:]:
    retrain(task, "smoke")
"""


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="mlzoo-bench-cluster-"))
    client = _env(MLZOO_HOME=str(scratch / "client"))
    busy = common.wait_quiet()
    up_s, up_out = timed([MLZOO, "cluster", "up", "--workers", "2"], client)
    urls = dict(
        line.removeprefix("export ").split("=", 1) for line in up_out.splitlines() if line.startswith("export ")
    )
    try:
        embedded = _env(MLZOO_HOME=str(scratch / "seq"), MLZOO_WORKSPACE=str(scratch / "seq" / "ws"))
        seq_s, _ = timed([sys.executable, "-c", SEQUENTIAL, *TASKS], embedded)
        fan_s, _ = timed([MLZOO, "run", *TASKS, "--fan-out", "--profile", "smoke"], {**client, **urls})
        one = [MLZOO, "run", "image_classification", "--profile", "smoke"]
        alone = _env(MLZOO_HOME=str(scratch / "one"), MLZOO_WORKSPACE=str(scratch / "one" / "ws"))
        emb_s, _ = timed(one, alone)
        emb2_s, _ = timed(one, alone)  # warm local Prefect server, like the cluster's
        srv_s, _ = timed(one, {**client, **urls, "MLZOO_WORKSPACE": str(scratch / "client-ws")})
    finally:
        subprocess.run([MLZOO, "cluster", "down", "--purge"], env=client, capture_output=True)
    m = common.machine()
    data = {
        "machine": m,
        "others_busy_at_start": busy,
        "tasks": TASKS,
        "cluster_up_s": up_s,
        "sequential_s": seq_s,
        "fan_out_2_workers_s": fan_s,
        "ratio": fan_s / seq_s,
        "one_run_embedded_warm_s": emb2_s,
        "one_run_embedded_first_s": emb_s,
        "one_run_on_cluster_servers_s": srv_s,
    }
    md = f"""## Cluster: fan-out over 2 workers vs one process (`bench/cluster.py`)

{common.machine_line(m)}; other processes used {busy:.0%} of the CPUs at the start.
Tasks (smoke profile): {", ".join(TASKS)}.

| measurement | wall time |
|---|---|
| `mlzoo cluster up --workers 2` from nothing | {up_s:.0f} s |
| sequential `retrain` of the 6 tasks, one process, embedded defaults | {seq_s:.0f} s |
| `mlzoo run ... --fan-out` on 2 workers | {fan_s:.0f} s (**{fan_s / seq_s:.2f} x** sequential; goal <= 0.65) |
| one smoke `image_classification` run, embedded (2nd run, warm Prefect) | {emb2_s:.0f} s |
| the same run on the cluster's servers (PostgreSQL, ssh DVC) | {srv_s:.0f} s (+{srv_s - emb2_s:.0f} s) |
"""
    common.write_results("cluster", md, data)
    print(md)


if __name__ == "__main__":
    main()
