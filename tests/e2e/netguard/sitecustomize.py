"""Loaded by every Python process whose PYTHONPATH holds this folder (tests/e2e/test_fresh_clone.py):
refuses, and logs to $MLZOO_NET_GUARD_LOG, every connection or name lookup off this machine, before any
packet is sent. A run that attempts none has telemetry off everywhere."""

import ipaddress
import os
import socket

_LOG = os.environ["MLZOO_NET_GUARD_LOG"]
_LOCAL_NAMES = {"localhost", "localhost.localdomain", socket.gethostname(), ""}


def _record(what):
    with open(_LOG, "a") as fh:
        fh.write(f"{os.getpid()} {what}\n")


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
