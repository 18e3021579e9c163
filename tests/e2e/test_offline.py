"""A whole smoke run with every non-loopback connection refused and recorded, in the CLI's
process and in every Python subprocess it starts (DVC, BentoML's build, MLflow's env
resolution): telemetry is off everywhere, so nothing tries to phone home."""

from __future__ import annotations

import pytest

from tests.e2e.isolated import MLZOO, Home, tail

pytestmark = pytest.mark.e2e

GUARD = """
import ipaddress, os, socket

_LOG = os.environ["MLZOO_NET_GUARD_LOG"]
_LOCAL_NAMES = {"localhost", "localhost.localdomain", socket.gethostname(), ""}


def _record(what):
    with open(_LOG, "a") as fh:
        fh.write(f"{os.getpid()} {what}\\n")


def _is_local(host):
    if host is None or str(host) in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _record(f"connect {address}")
        raise OSError(f"mlzoo test guard: connection to {address} refused")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _record(f"connect_ex {address}")
        return 111
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host if not isinstance(host, bytes) else host.decode()):
        _record(f"getaddrinfo {host}")
        raise socket.gaierror(f"mlzoo test guard: no name resolution for {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
"""


def test_a_smoke_run_makes_no_connection_off_this_machine(tmp_path, prefect_api):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "attempts.log"
    log.write_text("")
    import subprocess
    import sys

    probe = subprocess.run(  # the guard is active in subprocesses (refused before any packet is sent)
        [sys.executable, "-c", "import socket; socket.getaddrinfo('example.invalid', 80)"],
        env={"PYTHONPATH": str(guard), "MLZOO_NET_GUARD_LOG": str(log)},
        capture_output=True,
    )
    assert probe.returncode != 0 and "example.invalid" in log.read_text()
    log.write_text("")
    h = Home(tmp_path / "state", prefect_api)
    proc = subprocess.run(  # a process of its own (not forked from the warm parent): the guard loads at start
        [MLZOO, "run", "image_classification", "--profile", "smoke", "--set", "epochs=1", "--set", "width=8"],
        env=h.env(PYTHONPATH=str(guard), MLZOO_NET_GUARD_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, tail(proc)
    assert log.read_text() == "", f"connections off this machine were attempted:\n{log.read_text()}"
