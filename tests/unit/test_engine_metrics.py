import numpy as np
import pytest
import torch
from torch import nn

from tasks_lib.core import engine
from tasks_lib.core.config import TaskConfig
from tasks_lib.core.metrics import classification_metrics, confusion_matrix


def test_metrics_on_a_hand_computed_case():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per class: precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    f1 = [0.5, 0.8, 2 / 3]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert [m[f"acc_class_{i}"] for i in range(3)] == pytest.approx([0.5, 1.0, 0.5])


def _toy_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _train(cfg, checkpoint=None, log=None):
    x, y = _toy_problem()
    engine.seed_everything(cfg.seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    logged = []
    engine.fit(
        model, x, y, cfg, log or (lambda m, s: logged.append((s, m))), nn.CrossEntropyLoss(), checkpoint=checkpoint
    )
    acc = (model(x).argmax(1) == y).float().mean().item()
    return model, acc, logged


def test_engine_learns_logs_once_per_epoch_and_is_deterministic():
    cfg = TaskConfig(epochs=5, batch_size=32, lr=0.05)
    m1, acc, logged = _train(cfg)
    assert acc > 0.9  # a linearly separable problem; chance is 0.5
    assert [s for s, _ in logged] == list(range(5))
    assert logged[-1][1]["train_loss"] < logged[0][1]["train_loss"]
    m2, _, _ = _train(cfg)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_engine_caps_steps_per_epoch():
    cfg = TaskConfig(epochs=2, batch_size=32, lr=0.05, max_steps_per_epoch=2)
    x, y = _toy_problem()
    res = engine.fit(nn.Linear(4, 2), x, y, cfg, lambda m, s: None, nn.CrossEntropyLoss())
    assert res.steps == 4


def test_engine_resumes_from_checkpoint(tmp_path):
    """A run interrupted after epoch 2 and resumed ends with the same weights as an uninterrupted one."""
    full, _, _ = _train(TaskConfig(epochs=4, batch_size=32, lr=0.05))
    ckpt = tmp_path / "ckpt.pt"

    class Stop(Exception):
        pass

    def crash_after_two(metrics, step):
        if step == 1:
            raise Stop

    with pytest.raises(Stop):
        _train(TaskConfig(epochs=4, batch_size=32, lr=0.05), checkpoint=ckpt, log=crash_after_two)
    # the crash happened in log() of epoch 1, before its checkpoint: resume from epoch 0's
    resumed, _, _ = _train(TaskConfig(epochs=4, batch_size=32, lr=0.05), checkpoint=ckpt)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer must be"):
        engine.make_optimizer(nn.Linear(2, 2), TaskConfig(optimizer="adamax"))
