"""Helpers shared by the benchmark scripts: a throw-away state folder, the machine and how
busy other processes keep it, stopping a server's process tree, and writing one script's
section of ``bench/RESULTS.md``."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
HEADER = """# mlzoo benchmarks

How to run (a few minutes each, each on its own throw-away state folder):
`.venv/bin/python bench/overhead.py [--profile quick]` and `.venv/bin/python bench/serving.py [--profile quick]`
(or `make bench`). Each script rewrites only its own section below and writes `bench/overhead.json` /
`bench/serving.json` with every figure.
"""


def use_scratch_home(home: str | None) -> Path:
    """Point MLZOO_HOME/MLZOO_WORKSPACE at ``home`` (default: a new temp folder) before Prefect,
    MLflow or BentoML are imported; every store then lives under it."""
    root = Path(home) if home else Path(tempfile.mkdtemp(prefix="mlzoo-bench-"))
    os.environ["MLZOO_HOME"] = str(root)
    os.environ["MLZOO_WORKSPACE"] = str(root / "ws")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    for var in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME"):
        os.environ.pop(var, None)  # nothing shared with other state folders
    return root


# -- how busy the machine is (it may be shared with tests running beside us) --------------


def cpu_times() -> tuple[int, int, int]:
    """(jiffies of all CPUs, of which idle, of which this process): compare two with ``others_busy``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return sum(fields), fields[3] + fields[4], sum(int(v) for v in own[11:15])  # utime, stime, waited children


def others_busy(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """Share of the machine's CPU time used by other processes between two ``cpu_times()``."""
    total, idle, own = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (total - idle - own) / max(total, 1))


def own_cpu_share(before: tuple[int, int, int], after: tuple[int, int, int]) -> float:
    """Share of the machine's CPU time used by this process between two ``cpu_times()``."""
    return (after[2] - before[2]) / max(after[0] - before[0], 1)


def wait_quiet(max_wait: float = 60, threshold: float = 0.2) -> float:
    """Wait up to ``max_wait`` s until other processes use less than ``threshold`` of the CPUs
    (sampled over 2 s while we idle); returns the last share, recorded with the figures."""
    deadline = time.monotonic() + max_wait
    while True:
        before = cpu_times()
        time.sleep(2)
        busy = others_busy(before, cpu_times())
        if busy < threshold or time.monotonic() > deadline:
            return busy


def machine() -> dict[str, object]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def machine_line(m: dict) -> str:
    return (
        f"{m['date']}, {m['nproc']} CPUs ({m['cpu']}), torch {m['torch']} "
        f"({m['torch_threads']} threads), Python {m['python']}"
    )


def write_results(name: str, markdown: str, data: dict) -> None:
    """Write ``bench/NAME.json`` and replace the NAME section of RESULTS.md (others are kept)."""
    (BENCH / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


# -- stopping a server and everything it started ------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (BentoML's workers run in their own process groups)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def stop_process_tree(proc: subprocess.Popen) -> None:
    """SIGTERM the process group ``proc`` leads (started with ``start_new_session=True``), then
    SIGKILL any process it had started that is still alive."""
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
