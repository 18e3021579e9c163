"""Helpers shared by the benchmark scripts: a throw-away state folder, a description
of the machine, and writing one script's section of ``bench/RESULTS.md``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
HEADER = """# mlzoo benchmarks

How to run (each takes a few minutes; each uses its own throw-away state folder):
`.venv/bin/python bench/overhead.py [--profile quick]` and `.venv/bin/python bench/serving.py [--profile quick]`.
Each script rewrites only its own section below and writes `bench/overhead.json` / `bench/serving.json`.
"""


def use_scratch_home(home: str | None) -> Path:
    """Point MLZOO_HOME/MLZOO_WORKSPACE at ``home`` (or a new temp folder) before any import of
    Prefect, MLflow or BentoML, then apply the settings; returns the folder."""
    root = Path(home) if home else Path(tempfile.mkdtemp(prefix="mlzoo-bench-"))
    os.environ["MLZOO_HOME"] = str(root)
    os.environ["MLZOO_WORKSPACE"] = str(root / "ws")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME"):
        os.environ.pop(var, None)  # everything under the scratch folder, nothing shared
    return root


def cpu_times() -> tuple[int, int, int]:
    """(jiffies of all CPUs, of which idle, of which this process): compare two with ``others_busy``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return sum(fields), fields[3] + fields[4], int(own[11]) + int(own[12])  # utime + stime


def others_busy(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """Share of the machine's CPU time used by other processes between two ``cpu_times()``."""
    total, idle, own = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (total - idle - own) / max(total, 1))


def cpu_busy(seconds: float = 2.0) -> float:
    """Share of all CPUs busy during ``seconds``; call it while this script idles."""
    before = cpu_times()
    time.sleep(seconds)
    return others_busy(before, cpu_times())


def wait_quiet(max_wait: float = 120, threshold: float = 0.25) -> float:
    """The machine may be shared (tests running beside us): wait up to ``max_wait`` s until other
    processes keep less than ``threshold`` of the CPUs busy. Returns the last busy share, which is
    recorded next to the figures it precedes."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    while busy > threshold and time.monotonic() < deadline:
        busy = cpu_busy()
    return busy


def machine() -> dict[str, object]:
    import torch

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def machine_line(m: dict[str, object]) -> str:
    return (f"{m['date']} on {m['nproc']} CPUs ({m['cpu']}), torch {m['torch']} "
            f"({m['torch_threads']} threads), Python {m['python']}")


def write_results(name: str, markdown: str, data: dict) -> None:
    """Write ``bench/NAME.json`` and replace the NAME section of RESULTS.md (others are kept)."""
    (BENCH / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
