"""The checkpoint format (weights_only, every RNG restored) and atomic writes (a kill never
leaves a truncated file under the final name)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from tasks_lib.core import checkpoint as ckpt_mod
from tasks_lib.core import engine
from tasks_lib.core.atomic import atomic_dir, atomic_path, atomic_write_bytes
from tasks_lib.core.checkpoint import load_checkpoint, save_checkpoint
from tasks_lib.core.config import TaskConfig


def _draws(gen: torch.Generator) -> dict:
    return {
        "python": [random.random(), random.gauss(0, 1), random.getrandbits(64)],
        "numpy": np.concatenate([np.random.rand(5), np.random.randn(3)]).tolist(),
        "torch": torch.rand(5).tolist() + torch.randn(3).tolist(),
        "gen": torch.rand(5, generator=gen).tolist(),
    }


def test_checkpoint_loads_weights_only_and_restores_every_rng(tmp_path):
    path = tmp_path / "ckpt.pt"
    engine.seed_everything(3)
    gen = torch.Generator().manual_seed(11)
    # odd numbers of Gaussian draws: both Python and NumPy then hold a cached second Gaussian
    random.gauss(0, 1)
    np.random.randn(1)
    model = nn.Linear(3, 2)
    save_checkpoint(path, {"model": model.state_dict(), "epoch": 4, "best": float("-inf")}, {"data": gen})

    raw = torch.load(path, weights_only=True)  # nothing beyond tensors and plain containers
    assert raw["state"]["epoch"] == 4

    after_save = _draws(gen)
    engine.seed_everything(99)  # a fresh process would have seeded: make every stream differ
    gen.manual_seed(99)
    assert _draws(gen) != after_save
    state = load_checkpoint(path, "cpu", {"data": gen})
    assert _draws(gen) == after_save
    assert state["epoch"] == 4 and state["best"] == float("-inf")
    for k, v in model.state_dict().items():
        assert torch.equal(state["model"][k], v)


def test_checkpoint_refuses_an_unknown_generator(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"epoch": 0}, {"data": torch.Generator()})
    with pytest.raises(KeyError, match="no state for generator 'aug'"):
        load_checkpoint(tmp_path / "c.pt", "cpu", {"aug": torch.Generator()})


def test_checkpoint_interrupted_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"epoch": 1})
    old = path.read_bytes()

    real_save = torch.save

    def half_then_die(obj, f):
        import io

        buf = io.BytesIO()
        real_save(obj, buf)
        with open(f, "wb") as out:
            out.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise KeyboardInterrupt  # what a Ctrl-C or a dying worker looks like mid-write

    monkeypatch.setattr(ckpt_mod.torch, "save", half_then_die)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == old
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temporary left behind


def test_sigkill_mid_write_never_truncates_the_final_name(tmp_path):
    """A real SIGKILL: no cleanup runs, the temporary may stay, the final name is untouched."""
    path = tmp_path / "manifest.csv"
    path.write_bytes(b"old,complete\n")
    script = textwrap.dedent(
        f"""
        import os, signal
        from tasks_lib.core.atomic import atomic_path
        with atomic_path({str(path)!r}) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"new,half")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), check=False)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"old,complete\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "manifest.csv"]
    assert all(n.startswith(".manifest.csv.") and n.endswith(".tmp") for n in leftovers)


def test_atomic_writes_replace_whole_files_and_folders(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"one")
    atomic_write_bytes(tmp_path / "a.bin", b"two")
    assert (tmp_path / "a.bin").read_bytes() == b"two"
    mode = (tmp_path / "a.bin").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # as a plain open() would create it, not mkstemp's 0600

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"thr")
        raise RuntimeError
    assert (tmp_path / "a.bin").read_bytes() == b"two"

    bundle = tmp_path / "bundle"
    with atomic_dir(bundle) as tmp:
        (tmp / "weights").write_bytes(b"w1")
        (tmp / "config.json").write_bytes(b"{}")
    with pytest.raises(RuntimeError), atomic_dir(bundle) as tmp:
        (tmp / "weights").write_bytes(b"w2-ha")
        raise RuntimeError
    assert (bundle / "weights").read_bytes() == b"w1"
    with atomic_dir(bundle) as tmp:
        (tmp / "weights").write_bytes(b"w3")
    assert sorted(p.name for p in bundle.iterdir()) == ["weights"]  # replaced as a whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "bundle"]


def _dropout_loop(cfg: TaskConfig, checkpoint, stop_after: int | None = None) -> nn.Module:
    """A recipe of its own batches whose dropout draws from torch's global RNG, killed after ``stop_after``."""
    engine.seed_everything(cfg.seed)
    model = nn.Sequential(nn.Linear(4, 32), nn.Dropout(0.5), nn.Linear(32, 2))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()

    def batches(gen):
        perm = torch.randperm(64, generator=gen)
        for i in range(4):
            yield x[perm[i * 16 : (i + 1) * 16]], y[perm[i * 16 : (i + 1) * 16]]

    class Stop(Exception):
        pass

    def log(metrics, epoch):
        if epoch == stop_after:
            raise Stop

    recipe = engine.Recipe(batches, lambda b: {"loss": nn.functional.cross_entropy(model(b[0]), b[1])}, 4)
    try:
        engine.train(model, recipe, cfg, log, checkpoint=checkpoint)
    except Stop:
        pass
    return model


def test_custom_loop_resumes_bit_exactly(tmp_path):
    cfg = TaskConfig(epochs=4, batch_size=16, lr=0.05)
    full = _dropout_loop(cfg, None)
    ckpt = tmp_path / "loop.pt"
    _dropout_loop(cfg, ckpt, stop_after=2)  # dies while logging epoch 2: resumes after epoch 1
    # whatever else the process drew in between must not matter
    random.random()
    np.random.rand()
    torch.rand(3)
    resumed = _dropout_loop(cfg, ckpt)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
