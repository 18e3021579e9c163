import numpy as np
import pytest
import torch
from torch import nn

from tasks_lib.core import engine
from tasks_lib.core.config import TaskConfig
from tasks_lib.core.metrics import classification_metrics, confusion_matrix
from tasks_lib.core.recipes import supervised


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
    recipe = supervised(model, x, y, cfg, nn.CrossEntropyLoss())
    engine.train(model, recipe, cfg, log or (lambda m, s: logged.append((s, m))), checkpoint=checkpoint)
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
    model = nn.Linear(4, 2)
    res = engine.train(model, supervised(model, x, y, cfg, nn.CrossEntropyLoss()), cfg, lambda m, s: None)
    assert res.steps == 4 and res.epochs == 2 and res.samples_per_s > 0


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
        assert torch.equal(a, b)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="optimizer must be"):
        engine.make_optimizer(nn.Linear(2, 2), TaskConfig(optimizer="adamax"))


class _Counter:
    """Task-side state the engine checkpoints (``Recipe.state``)."""

    def __init__(self):
        self.seen = 0

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def _two_player(cfg, checkpoint=None, stop_after=None):
    """A GAN-shaped recipe: two optimisers updated in turn through the Stepper, dropout, task state."""
    engine.seed_everything(cfg.seed)
    model = nn.ModuleDict({"a": nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1)), "b": nn.Linear(4, 1)})
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    counter, hooks = _Counter(), []

    def batches(gen):
        perm = torch.randperm(64, generator=gen)
        for i in range(4):
            yield x[perm[i * 16 : (i + 1) * 16]], torch.randn(16, 4, generator=gen)

    def step(batch, stepper):
        real, noise = batch
        loss_a = (model["a"](real) - model["b"](noise).detach()).pow(2).mean()
        stepper.update(loss_a, "a")
        loss_b = model["a"](noise + model["b"](noise)).mean()
        stepper.update(loss_b, "b")
        counter.seen += len(real)
        return {"loss": loss_a + loss_b, "a": loss_a, "b": loss_b}

    def end_epoch(epoch, metrics):
        metrics["seen"] = float(counter.seen)
        if stop_after is not None and epoch == stop_after:
            raise KeyboardInterrupt  # killed right after this epoch's metrics, before its checkpoint

    recipe = engine.Recipe(
        batches,
        step,
        4,
        optimizers=lambda m: {
            "a": torch.optim.Adam(m["a"].parameters(), 1e-2),
            "b": torch.optim.SGD(m["b"].parameters(), 1e-2),
        },
        schedule=engine.lambda_schedule(lambda s, total: 1 - s / total),
        end_epoch=end_epoch,
        finish=lambda: hooks.append("finish"),
        state=counter,
        manual=True,
    )
    logged = []
    engine.train(model, recipe, cfg, lambda m, s: logged.append(m), checkpoint=checkpoint)
    return model, logged, counter, hooks


def test_manual_recipe_with_two_optimisers_resumes_bit_exactly(tmp_path):
    cfg = TaskConfig(epochs=4, grad_clip=0.5)
    full, logged, counter, hooks = _two_player(cfg)
    assert hooks == ["finish"] and counter.seen == 4 * 64
    assert set(logged[0]) == {"train_loss", "train_a", "train_b", "lr_a", "lr_b", "seen"}
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        _two_player(cfg, ckpt, stop_after=2)  # epochs 0, 1 checkpointed
    torch.rand(3)  # whatever else the process drew in between must not matter
    resumed, logged2, counter2, _ = _two_player(cfg, ckpt)
    assert len(logged2) == 2 and counter2.seen == counter.seen and logged2 == logged[2:]
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_layout_is_refused_clearly(tmp_path):
    from tasks_lib.core.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "old.pt", {"model": {}, "optimizer": {}, "epoch": 0})  # the pre-engine layout
    with pytest.raises(ValueError, match="delete it to start over"):
        _train(TaskConfig(epochs=1, batch_size=32), checkpoint=tmp_path / "old.pt")
