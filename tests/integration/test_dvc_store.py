"""Real DVC: version a run's own data, restore it by hash from the remote alone, collect
the cache, and fail fast (with the remote named) when the remote is unreachable or silent.

Every test but the first gets its own workspace, state folder and remote under
``tmp_path``; the remotes that fail are real loopback addresses, not mocks.
"""

import dataclasses
import hashlib
import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from flows import dvc_store, steps
from flows.settings import PROJECT_ROOT

TASK = "image_classification"  # any task with a prepare@TASK stage in dvc.yaml
NEVER_PUSHED = "0123456789abcdef0123456789abcdef.dir"  # not in any cache or remote: the remote must be asked


def own_settings(settings, tmp_path: Path, remote: str | None = None, workspace: Path | None = None):
    """A workspace, state folder and remote of the test's own."""
    return dataclasses.replace(
        settings,
        workspace=workspace or tmp_path / "workspace",
        home=tmp_path / "home",
        dvc_remote=remote or str(tmp_path / "remote"),
    )


def write_files(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def file_md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def same_content(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def on_remote(s, md5: str) -> bool:
    return (Path(s.dvc_remote) / "files" / "md5" / md5[:2] / md5[2:]).is_file()


# -- versions and restore ------------------------------------------------------------


def test_version_and_restore_round_trip(settings, tmp_path):
    p = steps.plan(settings, TASK, "smoke")
    prepared = steps.prepare(settings, p, tmp_path / "prepared")
    dv = dvc_store.version(settings, TASK, prepared)
    assert dv.md5.endswith(".dir") and dv.nfiles == len(list(prepared.iterdir()))
    assert dv.path == prepared, "the run trains on its own copy"
    assert dv.md5 == dvc_store.content_hash(prepared)
    assert same_content(dvc_store.data_dir(settings, TASK), prepared)
    assert (settings.workspace / "dvc.lock").exists()
    assert on_remote(settings, dv.md5), "the version was not pushed to the remote"

    # same data -> same hash
    assert dvc_store.version(settings, TASK, prepared).md5 == dv.md5

    # wipe the local cache: restore must come from the remote
    shutil.rmtree(settings.workspace / ".dvc" / "cache")
    restored = dvc_store.restore(settings, TASK, dv.md5)
    assert same_content(restored, prepared)


def test_two_runs_at_once_each_record_the_hash_of_their_own_data(settings, tmp_path, monkeypatch):
    s = own_settings(settings, tmp_path)
    dvc_store.ensure_workspace(s)
    prepared = {
        run: write_files(tmp_path / run, {"manifest.csv": f"sample,{run}\n", f"images/{run}.txt": run * 100})
        for run in ("run-a", "run-b")
    }
    versions, errors = {}, []

    # Widen the race: the first run to leave the workspace lock waits there until the
    # other run has versioned too, so anything it read after the lock would be the other's.
    real_lock, released, other_done = dvc_store.workspace_lock, [], threading.Event()

    @contextmanager
    def lingering_lock(*args, **kwargs):
        with real_lock(*args, **kwargs):
            yield
        released.append(threading.current_thread())
        if len(released) == 1:
            other_done.wait(60)

    monkeypatch.setattr(dvc_store, "workspace_lock", lingering_lock)

    def run(name: str) -> None:
        try:
            versions[name] = dvc_store.version(s, TASK, prepared[name])
        except Exception as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)
        finally:
            other_done.set()

    threads = [threading.Thread(target=run, args=(name,)) for name in prepared]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    assert versions["run-a"].md5 != versions["run-b"].md5
    for name, dv in versions.items():
        assert dv.md5 == dvc_store.content_hash(prepared[name]), f"{name} recorded another run's hash"
        assert dv.path == prepared[name] and same_content(dv.path, prepared[name])
        assert on_remote(s, dv.md5)
    # the workspace ends on one of the two versions, whole, with no half-built sibling left
    current = [name for name in prepared if same_content(dvc_store.data_dir(s, TASK), prepared[name])]
    assert len(current) == 1
    assert dvc_store.content_hash(dvc_store.data_dir(s, TASK)) == versions[current[0]].md5
    assert [p.name for p in (s.workspace / "data").iterdir() if p.name.startswith(f".{TASK}.")] == []


def test_content_hash_is_dvcs_hash_without_touching_the_workspace(settings, tmp_path):
    s = own_settings(settings, tmp_path)
    data = write_files(tmp_path / "failed-validation", {"a.txt": "a\r\n", "sub/deeper/b.bin": "b", "c": ""})
    md5 = dvc_store.content_hash(data)
    assert md5.endswith(".dir")
    assert not s.workspace.exists(), "hashing must not create or touch a workspace"
    dvc_store.ensure_workspace(s)
    assert dvc_store.version(s, TASK, data).md5 == md5


def git_workspace(tmp_path: Path) -> Path:
    """A workspace laid out like the repo itself: a git repo ignoring restored data and state."""
    ws = tmp_path / "repo"
    ws.mkdir()
    subprocess.run(["git", "init", "--quiet", str(ws)], check=True)
    (ws / ".gitignore").write_text("/data/restored/\n.mlzoo/\n")
    return ws


def test_restore_in_a_git_workspace_from_the_remote_alone(settings, tmp_path):
    ws = git_workspace(tmp_path)
    s = dataclasses.replace(own_settings(settings, tmp_path, workspace=ws), home=ws / ".mlzoo")
    dvc_store.ensure_workspace(s)
    data = write_files(tmp_path / "prepared", {"manifest.csv": "sample\n1\n", "x/1.txt": "one"})
    dv = dvc_store.version(s, TASK, data)

    shutil.rmtree(ws / ".dvc" / "cache")
    restored = dvc_store.restore(s, TASK, dv.md5)
    assert same_content(restored, data)
    assert restored.is_relative_to(s.home)
    assert not (ws / "data" / "restored").exists(), "no pointer files inside the git repo"
    cached = dvc_store.cache_dir(s) / dv.md5[:2] / dv.md5[2:]
    assert cached.is_file(), "restore fills the workspace's cache: nothing is downloaded twice"

    with pytest.raises(dvc_store.DataVersionMissing) as info:
        dvc_store.restore(s, TASK, NEVER_PUSHED)
    assert NEVER_PUSHED in str(info.value) and s.dvc_remote in str(info.value)


# -- cache garbage collection --------------------------------------------------------


def test_gc_removes_only_what_the_dropped_version_does_not_share(settings, tmp_path):
    s = own_settings(settings, tmp_path)
    dvc_store.ensure_workspace(s)
    kept_files = {"shared.txt": "in both", "kept.txt": "only kept"}
    dropped_files = {"shared.txt": "in both", "dropped.txt": "only dropped"}
    kept = dvc_store.version(s, TASK, write_files(tmp_path / "kept", kept_files))
    dropped = dvc_store.version(s, TASK, write_files(tmp_path / "dropped", dropped_files))
    current = dvc_store.version(s, TASK, write_files(tmp_path / "current", {"now.txt": "current"}))
    cache = dvc_store.cache_dir(s)

    garbage = dvc_store.unreferenced_cache_objects(s, keep={kept.md5}, drop={dropped.md5})
    own = {dropped.md5, file_md5("only dropped")}
    assert sorted(garbage) == sorted(cache / m[:2] / m[2:] for m in own)
    # the workspace's current data (dvc.lock) is never garbage, kept or not
    assert dvc_store.unreferenced_cache_objects(s, keep=set(), drop={current.md5}) == []

    dvc_store.remove_cache_objects(garbage)
    assert not any(p.exists() for p in garbage)

    # the kept version is whole in the local cache: it restores with no remote at all
    offline = dataclasses.replace(s, dvc_remote=str(tmp_path / "no-remote"))
    assert same_content(dvc_store.restore(offline, TASK, kept.md5), tmp_path / "kept")
    # and the dropped one is still on the remote
    assert same_content(dvc_store.restore(s, TASK, dropped.md5), tmp_path / "dropped")


# -- remotes that fail ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def silent_server():
    """A loopback TCP listener that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # closed: the test is over
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def processes_in(folder: Path) -> list[int]:
    """Pids of live processes whose working directory is ``folder`` (how dvc is started)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == folder:
                    pids.append(int(proc.name))
            except OSError:  # gone, or not ours
                pass
    return pids


def _version_fails_within(s, tmp_path, seconds: float) -> dvc_store.DvcRemoteError:
    """Versioning a one-file folder against ``s``'s remote raises a remote error within ``seconds``."""
    data = write_files(tmp_path / "prepared", {"a.txt": "a"})
    start = time.monotonic()
    with pytest.raises(dvc_store.DvcRemoteError) as info:
        dvc_store.version(s, TASK, data)
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"push took {elapsed:.1f} s, more than {seconds} s"
    return info.value


def test_unreachable_http_remote_fails_fast_and_names_it_without_credentials(settings, tmp_path):
    port = closed_port()
    s = own_settings(settings, tmp_path, remote=f"http://mlzoo:s3cret@127.0.0.1:{port}/x?token=t0ken")
    dvc_store.ensure_workspace(s)
    message = str(_version_fails_within(s, tmp_path, 30))
    assert f"http://***@127.0.0.1:{port}/x?***" in message and "push" in message
    assert "s3cret" not in message and "t0ken" not in message

    # a restore from it is a remote error too, not "that version does not exist"
    with pytest.raises(dvc_store.DvcRemoteError) as info:
        dvc_store.restore(s, TASK, NEVER_PUSHED)
    assert not isinstance(info.value, dvc_store.DataVersionMissing)
    assert f"127.0.0.1:{port}" in str(info.value) and "s3cret" not in str(info.value)


def test_remote_that_is_a_file_fails_and_names_it(settings, tmp_path):
    not_a_folder = tmp_path / "remote-file"
    not_a_folder.write_text("not a DVC remote")
    s = own_settings(settings, tmp_path, remote=str(not_a_folder))
    dvc_store.ensure_workspace(s)
    with pytest.raises(dvc_store.DvcRemoteError, match=str(not_a_folder)):
        dvc_store.version(s, TASK, write_files(tmp_path / "prepared", {"a.txt": "a"}))


def test_silent_remote_is_abandoned_after_the_timeout(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("MLZOO_DVC_TIMEOUT", "5")
    with silent_server() as (port, accepted):
        s = own_settings(settings, tmp_path, remote=f"http://127.0.0.1:{port}/x")
        dvc_store.ensure_workspace(s)
        error = _version_fails_within(s, tmp_path, 10)  # against a 5 s limit
        assert accepted, "dvc never reached the listener"
        assert f"http://127.0.0.1:{port}/x" in str(error) and "dvc push" in str(error)
        assert processes_in(s.workspace) == [], "a dvc process outlived its timeout"

        start = time.monotonic()
        with pytest.raises(dvc_store.DvcRemoteError):
            dvc_store.restore(s, TASK, NEVER_PUSHED)
        assert time.monotonic() - start < 10
        assert processes_in(s.home / "restore") == []


def test_the_repo_does_not_git_ignore_dvc_files():
    """`make run` versions data in the repo itself, and DVC refuses to load a git-ignored
    dvc.lock (FileIsGitIgnored); the tests' own workspaces are not git repos and would not see it."""
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=PROJECT_ROOT).returncode
        assert ignored == 1, f"{name} is git-ignored"
