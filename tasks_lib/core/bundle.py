"""A model on disk: safetensors weights + JSON config, rebuilt through the task registry.

Loading never unpickles anything, so a bundle from an untrusted store cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tasks_lib.core.atomic import atomic_dir
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import LoadedModel

WEIGHTS = "weights.safetensors"
CONFIG = "config.json"


def save_bundle(loaded: LoadedModel, out: Path) -> Path:
    """Write ``loaded`` as a bundle folder and return it.

    The folder is built under a temporary name and renamed into place as a whole (replacing
    an older bundle at ``out``), so ``out`` never holds a half-written bundle.
    """
    out = Path(out)
    state = {k: v.detach().cpu().contiguous() for k, v in loaded.module.state_dict().items()}
    meta = {"task": loaded.task.name, "config": loaded.cfg.to_dict(), "info": loaded.info}
    with atomic_dir(out) as tmp:
        save_file(state, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_bytes(json.dumps(meta, indent=2, sort_keys=True).encode())
    return out


def load_bundle(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model saved in ``path`` (a folder written by ``save_bundle``)."""
    meta = json.loads((Path(path) / CONFIG).read_text())
    task = get_task(meta["task"])
    cfg = task.config_cls.from_dict(meta["config"])
    module = task.build_model(cfg, meta["info"])
    module.load_state_dict(load_file(str(Path(path) / WEIGHTS), device=str(device)))
    module.to(device).eval()
    return LoadedModel(task=task, cfg=cfg, info=meta["info"], module=module)
