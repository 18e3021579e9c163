"""Dataset versions with DVC: the workspace repo, commit + push, restore by hash, cache gc.

The workspace is a DVC repo holding ``dvc.yaml`` (one ``prepare`` stage per task),
``params.yaml`` and ``data/``. A run prepares its data in a folder of its own; once that
data passed validation, :func:`version` makes it ``data/TASK``, commits the stage
(dvc.lock records the content hash) and pushes the content to the remote. Any recorded
version can be restored from the remote by its hash alone (:func:`restore`).

Every ``dvc`` call has a deadline (``MLZOO_DVC_TIMEOUT`` seconds): a remote that does
not answer stops the step with :class:`DvcRemoteError` instead of hanging the flow.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.redact import redact
from flows.settings import PROJECT_ROOT, Settings

REMOTE = "mlzoo"
DEFAULT_TIMEOUT_S = 900.0  # a push of a full-size dataset to a slow remote fits; a dead one does not hang
REMOTE_COMMANDS = ("push", "pull", "fetch")  # the ones whose failure is (almost always) the remote's


class DvcRemoteError(RuntimeError):
    """The DVC remote could not be reached or refused a push/fetch, or a ``dvc`` call ran
    out of time (``MLZOO_DVC_TIMEOUT``). The message names the remote, credentials removed."""


class DataVersionMissing(RuntimeError):
    """The remote does not hold the data version asked for (never pushed, or removed)."""


def timeout_s() -> float:
    """Seconds one ``dvc`` call may take; read at call time so tests and operators can change it."""
    return float(os.environ.get("MLZOO_DVC_TIMEOUT", DEFAULT_TIMEOUT_S))


def dvc(s: Settings, *args: str, cwd: Path | None = None) -> str:
    """Run the ``dvc`` CLI in the workspace (or ``cwd``; DVC resolves paths from its cwd).

    Raises :class:`DvcRemoteError` when it runs out of time, or when a push/pull/fetch
    fails; :class:`RuntimeError` when another command fails.
    """
    command = f"dvc {' '.join(args)}"
    rc, output = _run(s, [str(Path(sys.executable).with_name("dvc")), *args], cwd or s.workspace, command)
    if rc != 0:
        if args and args[0] in REMOTE_COMMANDS:
            raise DvcRemoteError(f"DVC remote {redact(s.dvc_remote)}: `{command}` failed:\n{output}")
        raise RuntimeError(f"`{command}` failed:\n{output}")
    return output


def _run(s: Settings, argv: list[str], cwd: Path, command: str) -> tuple[int, str]:
    """Run ``argv`` with the DVC deadline; return its exit status and output (credentials redacted).

    The process gets its own process group, so on timeout the whole group (DVC and any
    helper it started) is killed, not just the parent.
    """
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}  # offline: no usage report daemon
    limit = timeout_s()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        with _suppress_gone():
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()  # reap it: no zombie left behind
        raise DvcRemoteError(
            f"`{command}` did not finish within {limit:g} s (MLZOO_DVC_TIMEOUT) and was stopped; "
            f"DVC remote {redact(s.dvc_remote)}"
        ) from None
    # DVC may echo the remote URL; never let its credentials into a log
    return proc.returncode, output.replace(s.dvc_remote, redact(s.dvc_remote))


@contextmanager
def _suppress_gone() -> Iterator[None]:
    try:
        yield
    except ProcessLookupError:  # it ended between the timeout and the kill
        pass


@dataclass(frozen=True)
class DataVersion:
    task: str
    md5: str  # DVC's content hash of the data folder (ends in ".dir")
    size: int
    nfiles: int
    path: Path  # the run's own copy of exactly this content (what it trains on)

    @property
    def short(self) -> str:
        return self.md5.removesuffix(".dir")[:12]


@contextmanager
def workspace_lock(s: Settings, name: str = "dvc.lock-file") -> Iterator[None]:
    """DVC takes a repo-wide lock; serialise our own DVC calls so parallel flows wait, not fail.

    An ``flock`` on a freshly opened file: it excludes other processes and other threads alike.
    """
    s.home.mkdir(parents=True, exist_ok=True)
    with open(s.home / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_workspace(s: Settings) -> Path:
    """Make the workspace a DVC repo with the project's dvc.yaml/params.yaml and our remote."""
    ws = s.workspace
    ws.mkdir(parents=True, exist_ok=True)
    with workspace_lock(s):
        if not (ws / ".dvc").is_dir():
            dvc(s, "init", "--quiet", *(() if (ws / ".git").exists() else ("--no-scm",)))
        for name in ("dvc.yaml", "params.yaml"):
            if not (ws / name).exists():
                shutil.copy(PROJECT_ROOT / name, ws / name)
        local = ws / ".dvc" / "config.local"
        configured = local.read_text() if local.exists() else ""
        if f"url = {s.dvc_remote}\n" not in configured or f"remote = {REMOTE}\n" not in configured:
            dvc(s, "remote", "add", "--local", "--default", "--force", REMOTE, s.dvc_remote)
        keyfile = os.environ.get("MLZOO_DVC_SSH_KEY")  # an ssh:// remote's private key (`mlzoo cluster env`)
        if keyfile and f"keyfile = {keyfile}\n" not in configured:
            dvc(s, "remote", "modify", "--local", REMOTE, "keyfile", keyfile)
    return ws


def read_params(s: Settings, task: str) -> dict:
    """The task's section of the workspace's params.yaml ({} when absent)."""
    path = s.workspace / "params.yaml"
    params = yaml.safe_load(path.read_text()) if path.exists() else {}
    return (params or {}).get(task) or {}


def data_dir(s: Settings, task: str) -> Path:
    return s.workspace / "data" / task


# -- version ------------------------------------------------------------------------


def version(s: Settings, task: str, prepared: Path) -> DataVersion:
    """Make ``prepared`` the task's current data version: ``data/TASK``, dvc.lock, remote.

    ``prepared`` is the run's own folder. Everything that touches the workspace happens
    inside the workspace lock, dvc.lock included: read after the lock is released, it
    could already hold the hash of another run's data. The returned version points at
    ``prepared``, so the run trains on exactly the content whose hash it records, even
    if another run replaces ``data/TASK`` a moment later.
    """
    stage = f"prepare@{task}"
    target = data_dir(s, task)
    with workspace_lock(s):
        if prepared.resolve() != target.resolve():  # `mlzoo prepare` writes data/TASK itself
            replace_folder(target, prepared)
        dvc(s, "commit", "--force", stage)
        dvc(s, "push", "--remote", REMOTE, stage)
        lock = yaml.safe_load((s.workspace / "dvc.lock").read_text())
    out = lock["stages"][stage]["outs"][0]
    return DataVersion(task, out["md5"], int(out["size"]), int(out["nfiles"]), prepared)


def replace_folder(target: Path, source: Path) -> None:
    """Replace ``target`` with the content of ``source``, never leaving a half-written ``target``.

    The new content is built next to it (``.NAME.<unique>``, hard links: no data is
    copied on one filesystem) and renamed into place; the old one is renamed away first
    and removed after. A crash leaves at worst a hidden sibling, which the next call clears.
    Callers hold the workspace lock (POSIX cannot rename a folder over a non-empty one,
    so there is an instant without ``target``).
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stale in parent.glob(f".{target.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    unique = uuid.uuid4().hex[:12]
    fresh, old = parent / f".{target.name}.{unique}", parent / f".{target.name}.{unique}.old"
    shutil.copytree(source, fresh, copy_function=_link_or_copy, symlinks=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no bytes copied); a copy when ``src`` is on another filesystem."""
    try:
        os.link(src, dst)
    except OSError:  # EXDEV across filesystems, EPERM where links are not allowed
        shutil.copy2(src, dst)


def content_hash(path: Path) -> str:
    """The DVC md5 (``....dir``) ``path`` would get when versioned, without touching the workspace.

    For data that failed validation: the failed run records its hash, but the data never
    becomes the workspace's current version. This is DVC's own tree builder
    (``dvc_data.hashfile.build``, what ``dvc add``/``dvc commit`` run) in dry-run mode,
    staging into memory, so the hash is DVC's by construction. (The workspace's
    ``.dvcignore`` is not applied: prepared folders contain only data.)
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs import MemoryFileSystem
    from dvc_objects.fs.local import LocalFileSystem

    staging = HashFileDB(MemoryFileSystem(), "memory://mlzoo-content-hash")
    _, _, obj = build(staging, str(Path(path).resolve()), LocalFileSystem(), "md5", dry_run=True)
    return obj.hash_info.value


# -- restore ------------------------------------------------------------------------


def restore(s: Settings, task: str, md5: str) -> Path:
    """Fetch the data version ``md5`` from the remote into its own folder under ``s.home``.

    Restoring goes through a scratch DVC repo (``s.home/restore``, ``dvc init --no-scm``)
    rather than pointer files in the workspace: when the workspace is a git repo DVC
    refuses a git-ignored ``.dvc`` file (``FileIsGitIgnored``), and restored data has no
    business in the project's git tree. The scratch repo uses the workspace's remote
    (with its credentials) and the workspace's cache, so nothing is downloaded twice.

    Raises :class:`DataVersionMissing` when the remote does not hold ``md5``, and
    :class:`DvcRemoteError` when the remote cannot be reached.
    """
    scratch = s.home / "restore"
    name = f"{task}-{md5.removesuffix('.dir')[:12]}"
    with workspace_lock(s, "restore.lock-file"):
        if not (scratch / ".dvc").is_dir():
            scratch.mkdir(parents=True, exist_ok=True)
            dvc(s, "init", "--quiet", "--no-scm", cwd=scratch)
        _write_scratch_config(s, scratch / ".dvc" / "config.local")
        pointer = scratch / f"{name}.dvc"
        pointer.write_text(yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5", "path": name}]}))
        dvc(s, "fetch", "--remote", REMOTE, pointer.name, cwd=scratch)
        absent = _absent_objects(cache_dir(s), md5)
        if absent:
            pointer.unlink()
            _raise_why_absent(s, scratch, task, md5, absent)
        dvc(s, "checkout", "--force", pointer.name, cwd=scratch)
    return scratch / name


def _absent_objects(cache: Path, md5: str) -> list[str]:
    """The objects of version ``md5`` (its ``.dir`` listing and every file) not in ``cache``."""
    if not _object_path(cache, md5).is_file():
        return [md5]
    return sorted(m for m in _listed(cache, md5) if not _object_path(cache, m).is_file())


# Reads the version's .dir object from the remote through DVC's own remote filesystem
# (the scratch repo's config, credentials included). fsspec raises FileNotFoundError only
# for "not there"; a refused connection or a path that is not a folder raise other errors.
_PROBE = """
import sys
from dvc.repo import Repo
with Repo(sys.argv[1]) as repo:
    odb = repo.cloud.get_remote_odb(sys.argv[2], "fetch")
    try:
        odb.fs.cat_file(odb.oid_to_path(sys.argv[3]))
    except FileNotFoundError:
        sys.exit(3)
"""
_PROBE_MISSING = 3


def _raise_why_absent(s: Settings, scratch: Path, task: str, md5: str, absent: list[str]) -> None:
    """After ``dvc fetch`` left objects out: raise DataVersionMissing or DvcRemoteError.

    ``dvc fetch`` succeeds when an http remote cannot be reached (fsspec answers "does
    not exist" to a refused connection), so the remote is asked once more, directly.
    """
    rc, output = _run(s, [sys.executable, "-c", _PROBE, str(scratch), REMOTE, md5], scratch, "probe the remote")
    if rc not in (0, _PROBE_MISSING):
        last = (output.strip().splitlines() or ["(no output)"])[-1]  # the exception, after its traceback
        raise DvcRemoteError(f"DVC remote {redact(s.dvc_remote)} cannot be read: {last}")
    raise DataVersionMissing(
        f"data version {md5} of '{task}' is not on the DVC remote {redact(s.dvc_remote)} "
        f"(never pushed, or removed): {len(absent)} object(s) missing, e.g. {absent[0]}"
    )


def _write_scratch_config(s: Settings, path: Path) -> None:
    """The scratch repo's config: the workspace's remote (``s.dvc_remote`` with the options the
    workspace configured for it: credentials, keys, timeouts) and the workspace's cache."""
    from configobj import ConfigObj

    section = f'remote "{REMOTE}"'
    remote = dict(_workspace_config(s).get(section, {}))
    remote["url"] = _absolute(s.dvc_remote, s.workspace)  # as `dvc remote add` in the workspace resolves it
    config = ConfigObj()
    config.filename = str(path)
    config["core"] = {"remote": REMOTE}
    config[section] = remote
    config["cache"] = {"dir": str(_cache_root(s))}
    config.write()


def _workspace_config(s: Settings):
    """The workspace's DVC config, ``config.local`` over ``config`` as DVC merges them."""
    from configobj import ConfigObj

    merged = ConfigObj()
    for name in ("config", "config.local"):
        path = s.workspace / ".dvc" / name
        if path.exists():
            merged.merge(ConfigObj(str(path)))
    return merged


def _cache_root(s: Settings) -> Path:
    """The workspace's cache folder: ``cache.dir`` (relative to ``.dvc/``) or ``.dvc/cache``."""
    return Path(_absolute(_workspace_config(s).get("cache", {}).get("dir", "cache"), s.workspace / ".dvc"))


def _absolute(location: str, base: Path) -> str:
    """``location`` as DVC would resolve it from a config file in ``base``: URLs stay as they are."""
    if "://" in location or os.path.isabs(location):
        return location
    return str((base / location).resolve())


# -- cache garbage collection -------------------------------------------------------


def cache_dir(s: Settings) -> Path:
    """Where DVC 3 keeps the workspace's md5 objects (``<cache>/files/md5/ab/cdef...``)."""
    return _cache_root(s) / "files" / "md5"


def _object_path(cache: Path, md5: str) -> Path:
    return cache / md5[:2] / md5[2:]


def _listed(cache: Path, md5: str) -> set[str]:
    """``md5`` plus, for a ``.dir`` object in the cache, the file objects it lists."""
    found = {md5}
    listing = _object_path(cache, md5)
    if md5.endswith(".dir") and listing.is_file():
        found |= {entry["md5"] for entry in json.loads(listing.read_text())}
    return found


def unreferenced_cache_objects(s: Settings, keep: set[str], drop: set[str]) -> list[Path]:
    """The local cache files of the versions in ``drop`` that nothing kept still needs.

    A file object is listed only if no version in ``keep`` and no output recorded in the
    workspace's dvc.lock (its current data) references it: versions share the files they
    have in common. Only the local cache is considered; the remote keeps every version,
    so a removed version can still be restored. A kept version whose ``.dir`` listing is
    not in the local cache cannot say which files it shares: those may be listed, and come
    back from the remote when that version is next restored.
    """
    cache = cache_dir(s)
    current: set[str] = set()
    lock_file = s.workspace / "dvc.lock"
    if lock_file.exists():
        lock = yaml.safe_load(lock_file.read_text()) or {}
        for stage in (lock.get("stages") or {}).values():
            current |= {out["md5"] for out in stage.get("outs", []) if "md5" in out}
    referenced: set[str] = set()
    for md5 in keep | current:
        referenced |= _listed(cache, md5)
    dropped: set[str] = set()
    for md5 in drop:
        dropped |= _listed(cache, md5)
    paths = (_object_path(cache, md5) for md5 in sorted(dropped - referenced))
    return [p for p in paths if p.is_file()]


def remove_cache_objects(paths: Iterable[Path]) -> None:
    """Delete cache objects listed by :func:`unreferenced_cache_objects` (gone already is fine)."""
    for path in paths:
        path.unlink(missing_ok=True)
