"""A local Prefect server the CLI starts once and reuses (Prefect's ephemeral API takes
~20 s to start per process here; a warm server makes each later flow run cheap).

``PREFECT_API_URL`` set by the user (a remote server) always wins.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from flows.settings import Settings


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _wait_healthy(url: str, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``url`` until healthy; False on timeout or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not _healthy(url):
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _free_port(preferred: int = 4200) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
                return sock.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port for the Prefect server")


def _state_file(s: Settings) -> Path:
    return s.prefect_home / "server.json"


def attach(s: Settings) -> str | None:
    """Point this process at the Prefect API already running (``PREFECT_API_URL`` or the
    recorded local server); None, and nothing started, when there is none."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    state = _state_file(s)
    if state.exists():
        recorded = json.loads(state.read_text())
        if _alive(recorded["pid"]) and _healthy(recorded["url"]):
            os.environ["PREFECT_API_URL"] = recorded["url"]
            return recorded["url"]
    return None


def ensure_server(s: Settings, timeout: float = 120) -> str:
    """Return the Prefect API URL, starting a local server when none is running."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    state = _state_file(s)
    if state.exists():
        recorded = json.loads(state.read_text())
        if _alive(recorded["pid"]) and _wait_healthy(recorded["url"], timeout):
            os.environ["PREFECT_API_URL"] = recorded["url"]
            return recorded["url"]
    s.prefect_home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = open(s.prefect_home / "server.log", "ab")  # noqa: SIM115 (handed to the server process)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={
            **os.environ,
            "PREFECT_HOME": str(s.prefect_home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": "",
        },
    )
    if not _wait_healthy(url, timeout, proc):
        proc.kill()
        raise RuntimeError(f"Prefect server did not start; see {s.prefect_home / 'server.log'}")
    state.write_text(json.dumps({"url": url, "pid": proc.pid}))
    os.environ["PREFECT_API_URL"] = url
    return url


def stop_server(s: Settings) -> bool:
    """Stop the server started by :func:`ensure_server`; False when none was recorded."""
    state = _state_file(s)
    if not state.exists():
        return False
    pid = json.loads(state.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    state.unlink()
    return True
