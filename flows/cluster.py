"""``mlzoo cluster``: the scale-out topology, on one machine exactly as on several.

``up`` starts, as separate processes with their own state under ``$MLZOO_HOME/cluster/``:

- PostgreSQL (Debian's package; ``initdb`` / ``pg_ctl`` on a loopback port) with two
  databases, ``mlflow`` and ``prefect``;
- an MLflow tracking server on PostgreSQL that proxies artifacts (``--serve-artifacts``),
  so a client needs only its URL;
- a Prefect server on PostgreSQL (asyncpg);
- an SSH server (Debian's ``openssh-server``: own config and host key, loopback, key
  auth only) holding the DVC remote (``ssh://``, the ``dvc-ssh`` plugin);
- a bare git repository the deployments pull the code from (Prefect's git storage);
- N Prefect process workers in the ``cpu`` pool, each in its own folder with its own
  ``MLZOO_HOME``, DVC workspace and cache, and BentoML home: they share nothing with the
  client but the three server URLs.

PostgreSQL refuses to run as root; as root its data folder belongs to the ``postgres``
user and lives in ``/var/tmp/mlzoo-postgres/ID`` (named by ``status``), because the state
folder's parents (``/root``, ``mktemp -d``) are closed to other users.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from flows.settings import PROJECT_ROOT, TELEMETRY_OFF, Settings

POOL = "cpu"
REPO = "mlzoo.git"
BIN = Path(sys.executable).parent  # mlflow, prefect and dvc of this environment
# The client's settings a worker must not inherit: it gets the cluster's URLs and its own folders.
NOT_INHERITED = ("MLZOO_", "MLFLOW_", "PREFECT_", "BENTOML_", "DVC_")
KEPT = ("MLZOO_DATASETS", "MLZOO_DEVICE", "MLZOO_DVC_TIMEOUT")


class ClusterError(RuntimeError):
    """A service of the cluster did not start; the message names it and its log."""


def root(s: Settings) -> Path:
    return s.home / "cluster"


def _state_path(s: Settings) -> Path:
    return root(s) / "state.json"


def read_state(s: Settings) -> dict[str, Any] | None:
    path = _state_path(s)
    return json.loads(path.read_text()) if path.exists() else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback)
            return resp.status == 200
    except OSError:
        return False


def _ssh_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def _wait(check, what: str, log: Path, proc: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"{what} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} did not become healthy in {timeout:.0f} s; see {log}")
        time.sleep(0.5)


def _spawn(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


def _quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(NOT_INHERITED) or k in KEPT}
    return {**env, **TELEMETRY_OFF, **extra}


# -- PostgreSQL -------------------------------------------------------------------------------


def _pg_tool(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return shutil.which(name)
    raise ClusterError(f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql; `make setup`)")


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg_dir(s: Settings) -> Path:
    if os.geteuid() != 0:
        return root(s) / "postgres"
    key = hashlib.sha1(str(root(s)).encode()).hexdigest()[:12]
    return Path("/var/tmp/mlzoo-postgres") / key


def _pg_url(state: dict[str, Any], db: str, driver: str) -> str:
    pg = state["postgres"]
    return f"postgresql+{driver}://mlzoo:{pg['password']}@127.0.0.1:{pg['port']}/{db}"


def _start_postgres(s: Settings, previous: dict[str, Any] | None) -> dict[str, Any]:
    base = _pg_dir(s)
    data, log = base / "data", base / "postgres.log"
    password = (previous or {}).get("password") or secrets.token_urlsafe(18)
    if os.geteuid() == 0:
        Path("/var/tmp/mlzoo-postgres").mkdir(mode=0o711, exist_ok=True)
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o700)
    if not (data / "PG_VERSION").exists():
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        cmd = [_pg_tool("initdb"), "-D", str(data), "-U", "mlzoo", "--auth=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run([*_as_postgres(), *cmd, "-E", "UTF8"], check=True, capture_output=True)
        pwfile.unlink()
    port = (previous or {}).get("port") or _free_port()
    opts = f"-p {port} -h 127.0.0.1 -k {data}"
    start = [*_as_postgres(), _pg_tool("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]
    proc = subprocess.run(start, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"PostgreSQL did not start: {proc.stdout}{proc.stderr}; see {log}")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    state = {"port": port, "password": password, "pid": pid, "data": str(data), "log": str(log)}
    import psycopg

    with psycopg.connect(f"postgresql://mlzoo:{password}@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for db in ("mlflow", "prefect"):
            if db not in have:
                conn.execute(f'CREATE DATABASE "{db}"')
    return state


def _stop_postgres(pg: dict[str, Any]) -> None:
    if Path(pg["data"], "postmaster.pid").exists():
        cmd = [*_as_postgres(), _pg_tool("pg_ctl"), "-D", pg["data"], "-m", "fast", "-w", "stop"]
        subprocess.run(cmd, capture_output=True)


# -- SSH (the DVC remote) ---------------------------------------------------------------------


def _start_sshd(s: Settings, previous: dict[str, Any] | None) -> dict[str, Any]:
    d = root(s) / "ssh"
    d.mkdir(parents=True, exist_ok=True)
    for key in ("host_key", "client_key"):
        if not (d / key).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    port = (previous or {}).get("port") or _free_port()
    user = getpass.getuser()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nAllowUsers {user}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise ClusterError("sshd is not installed (Debian: apt-get install openssh-server; `make setup`)")
    log = d / "sshd.log"
    proc = _spawn([sshd, "-D", "-e", "-f", str(d / "sshd_config")], log, _quiet_env())
    _wait(lambda: _ssh_ok(port), "sshd", log, proc, timeout=30)
    remote = root(s) / "dvc-remote"
    remote.mkdir(exist_ok=True)
    url = f"ssh://{user}@127.0.0.1:{port}{remote}"
    return {"port": port, "pid": proc.pid, "url": url, "keyfile": str(d / "client_key"), "log": str(log)}


# -- MLflow and Prefect servers ---------------------------------------------------------------


def _start_mlflow(s: Settings, state: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    port = (previous or {}).get("port") or _free_port()
    artifacts = root(s) / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    log = root(s) / "mlflow.log"
    cmd = [str(BIN / "mlflow"), "server", "--backend-store-uri", _pg_url(state, "mlflow", "psycopg")]
    cmd += ["--artifacts-destination", str(artifacts), "--serve-artifacts"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    proc = _spawn(cmd, log, _quiet_env())
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _http_ok(f"{url}/health"), "the MLflow server", log, proc)
    return {"port": port, "pid": proc.pid, "url": url, "log": str(log)}


def _start_prefect(s: Settings, state: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    port = (previous or {}).get("port") or _free_port()
    home = root(s) / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    log = root(s) / "prefect.log"
    env = _quiet_env(
        PREFECT_HOME=str(home),
        PREFECT_API_DATABASE_CONNECTION_URL=_pg_url(state, "prefect", "asyncpg"),
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    cmd = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = _spawn(cmd, log, env)
    url = f"http://127.0.0.1:{port}/api"
    _wait(lambda: _http_ok(f"{url}/health"), "the Prefect server", log, proc)
    return {"port": port, "pid": proc.pid, "url": url, "log": str(log)}


# -- code and workers -------------------------------------------------------------------------


def repo_url(s: Settings) -> str:
    return (root(s) / "git" / REPO).as_uri()


def publish_code(s: Settings) -> str:
    """Push this checkout's HEAD to the cluster's git repository; returns the commit.

    Workers run committed code only (as from any git host): uncommitted changes stay here.
    """
    bare = root(s) / "git" / REPO
    if not bare.exists():
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "push", "-q", "--force", str(bare), "HEAD:refs/heads/main"], check=True
    )
    return subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()


def worker_env(s: Settings, state: dict[str, Any], name: str) -> dict[str, str]:
    """A worker's environment: the three URLs, and its own folders for everything else."""
    from tasks_lib.core.data import datasets_mirror

    d = root(s) / "workers" / name
    mirror = datasets_mirror()  # resolved here: a worker's clone lives elsewhere, its ../shared is not ours
    return _quiet_env(
        **({"MLZOO_DATASETS": str(mirror)} if mirror else {}),
        PREFECT_API_URL=state["prefect"]["url"],
        MLFLOW_TRACKING_URI=state["mlflow"]["url"],
        MLZOO_DVC_REMOTE=state["sshd"]["url"],
        MLZOO_DVC_SSH_KEY=state["sshd"]["keyfile"],
        MLZOO_HOME=str(d / "home"),
        MLZOO_WORKSPACE=str(d / "workspace"),
        BENTOML_HOME=str(d / "bentoml"),
        PREFECT_HOME=str(d / "prefect"),
        MLZOO_WORKER=name,
        PREFECT_LOGGING_LEVEL="INFO",
        PREFECT_WORKER_QUERY_SECONDS="5",  # how soon a free worker picks up a scheduled run
    )


def _start_worker(s: Settings, state: dict[str, Any], name: str) -> dict[str, Any]:
    d = root(s) / "workers" / name
    d.mkdir(parents=True, exist_ok=True)
    log = d / "worker.log"
    # one flow run at a time per worker, as one training job per machine
    cmd = [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process", "--name", name, "--limit", "1"]
    proc = _spawn(cmd, log, worker_env(s, state, name), cwd=d)
    return {"name": name, "pid": proc.pid, "dir": str(d), "log": str(log)}


def _ensure_pool(prefect_url: str) -> None:
    from flows.deploy import ensure_pool

    with _pointed_at(prefect_url):
        ensure_pool(POOL)


class _pointed_at:
    """Point this process's Prefect client at ``url`` for a block."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._ctx = temporary_settings({PREFECT_API_URL: self.url})
        self._ctx.__enter__()

    def __exit__(self, *exc) -> None:
        self._ctx.__exit__(*exc)


# -- up / down / status -----------------------------------------------------------------------


def _workers_online(url: str, names: list[str]) -> bool:
    from prefect.client.orchestration import get_client

    with _pointed_at(url), get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(POOL, limit=100, offset=0)  # 3.8.8 sends nulls otherwise: 422
    online = {w.name for w in workers if w.status.value == "ONLINE"}
    return set(names) <= online


def up(s: Settings, workers: int = 2) -> dict[str, Any]:
    """Start whatever of the cluster is not running (a second ``up`` reuses it); returns the state."""
    previous = read_state(s) or {}
    root(s).mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    health = status(s) if previous else {}
    pg = previous.get("postgres")
    state["postgres"] = pg if health.get("postgres", {}).get("healthy") else _start_postgres(s, pg)
    _write(s, {**previous, **state})
    starters = {
        "sshd": lambda: _start_sshd(s, previous.get("sshd")),
        "mlflow": lambda: _start_mlflow(s, state, previous.get("mlflow")),
        "prefect": lambda: _start_prefect(s, state, previous.get("prefect")),
    }
    for name, start in starters.items():
        state[name] = previous[name] if health.get(name, {}).get("healthy") else start()
        _write(s, {**previous, **state})
    state["git"] = {"url": repo_url(s), "commit": publish_code(s)}
    _ensure_pool(state["prefect"]["url"])
    running = {w["name"]: w for w in previous.get("workers", []) if alive(w["pid"])}
    state["workers"] = []
    for i in range(1, workers + 1):
        name = f"{socket.gethostname()}-w{i}"
        state["workers"].append(running.get(name) or _start_worker(s, state, name))
    _write(s, state)
    names = [w["name"] for w in state["workers"]]
    _wait(lambda: _workers_online(state["prefect"]["url"], names), "the Prefect workers", root(s) / "workers")
    return state


def _write(s: Settings, state: dict[str, Any]) -> None:
    path = _state_path(s)
    path.write_text(json.dumps(state, indent=2))
    path.chmod(0o600)  # it holds the database password


def _kill(pid: int | None) -> None:
    if not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.killpg(pid, signal.SIGKILL)


def down(s: Settings, purge: bool = False) -> list[str]:
    """Stop everything ``up`` started (workers first, PostgreSQL last); returns what was stopped.

    ``purge`` also deletes the cluster's data: databases, artifacts, DVC remote, keys."""
    state = read_state(s)
    if not state:
        return []
    stopped = []
    for w in state.get("workers", []):
        _kill(w["pid"])
        stopped.append(f"worker {w['name']}")
    for name in ("prefect", "mlflow", "sshd"):
        if name in state:
            _kill(state[name]["pid"])
            stopped.append(name)
    if "postgres" in state:
        _stop_postgres(state["postgres"])
        stopped.append("postgres")
    if purge:
        shutil.rmtree(_pg_dir(s), ignore_errors=True)
        shutil.rmtree(root(s), ignore_errors=True)
        return stopped
    state["workers"] = []
    _write(s, state)  # ports, password and keys stay: the next `up` starts on the same data
    return stopped


def status(s: Settings) -> dict[str, Any]:
    """Each service with its URL, pid and health (an empty dict when no cluster was ever started)."""
    state = read_state(s)
    if not state:
        return {}
    out: dict[str, Any] = {}
    pg = state.get("postgres")
    if pg:
        out["postgres"] = {
            "url": f"postgresql://mlzoo@127.0.0.1:{pg['port']}/{{mlflow,prefect}}",
            "pid": pg["pid"],
            "data": pg["data"],
            "healthy": alive(pg["pid"]) and _pg_ok(pg),
        }
    checks = {
        "mlflow": lambda v: _http_ok(f"{v['url']}/health"),
        "prefect": lambda v: _http_ok(f"{v['url']}/health"),
        "sshd": lambda v: _ssh_ok(v["port"]),
    }
    for name, check in checks.items():
        if name in state:
            v = state[name]
            out[name] = {"url": v["url"], "pid": v["pid"], "healthy": alive(v["pid"]) and check(v)}
    if "git" in state:
        out["git"] = state["git"]
    out["workers"] = [
        {"name": w["name"], "pid": w["pid"], "dir": w["dir"], "healthy": alive(w["pid"])}
        for w in state.get("workers", [])
    ]
    return out


def _pg_ok(pg: dict[str, Any]) -> bool:
    import psycopg

    try:
        url = f"postgresql://mlzoo:{pg['password']}@127.0.0.1:{pg['port']}/postgres"
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def env(s: Settings) -> dict[str, str]:
    """What points a shell (or another machine) at the cluster."""
    state = read_state(s)
    if not state or "prefect" not in state:
        raise ClusterError("no cluster: run `mlzoo cluster up` first")
    return {
        "MLFLOW_TRACKING_URI": state["mlflow"]["url"],
        "PREFECT_API_URL": state["prefect"]["url"],
        "MLZOO_DVC_REMOTE": state["sshd"]["url"],
        "MLZOO_DVC_SSH_KEY": state["sshd"]["keyfile"],
    }
