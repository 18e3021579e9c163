"""The smallest complete task: wine cultivar from 13 chemical measurements (scikit-learn's
``load_wine``), a two-layer MLP. ``docs/adding_a_task.md`` walks through it; the contract
tests run it like any registered task (tests/contract/test_example_task.py).

A real task is this module placed in ``tasks_lib/tasks/`` with ``@register`` on the class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.recipes import supervised
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task


@dataclass(frozen=True)
class WineConfig(TaskConfig):
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-2
    hidden: int = 32  # one hidden layer is plenty for 13 measurements


@dataclass
class WineData:
    x: dict[str, torch.Tensor]  # float32 N x 13, raw measurements
    y: dict[str, torch.Tensor]  # int64 N, cultivar 0-2
    info: dict[str, Any]


class WineClassification(Task):
    """Wine cultivar classification from 13 measurements (the guide's example)."""

    name = "wine_classification"
    seed_sections = (0,)
    metric = "accuracy"
    request_fields = ("array",)
    config_cls = WineConfig
    default_source = "sklearn"
    profiles = {
        "smoke": {"train": {"epochs": 2}},
        "quick": {"train": {"epochs": 30}},
        "full": {"train": {"epochs": 100, "hidden": 64}},
    }

    # -- data ---------------------------------------------------------------
    def sources(self) -> dict[str, DataSource]:
        return {"sklearn": DataSource("sklearn", "scikit-learn's bundled UCI wine table (178 wines)", "package")}

    def prepare(self, dcfg: DataConfig, out: Path) -> Prepared:
        from sklearn.datasets import load_wine  # optional heavy import: inside the function

        wine = load_wine()
        x, y = wine.data.astype(np.float32), wine.target.astype(np.int64)
        sha1 = [sha1_bytes(row.tobytes()) for row in x]
        split = hash_split(sha1, dcfg.val_fraction, dcfg.test_fraction, salt=dcfg.split_seed)
        out.mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            np.save(out / f"{s}_x.npy", x[split == s])
            np.save(out / f"{s}_y.npy", y[split == s])
        manifest = pd.DataFrame({"sha1": sha1, "split": split, "label": y, "n_features": x.shape[1]})
        train = x[split == "train"]
        info = {
            "classes": [str(c) for c in wine.target_names],
            "features": list(wine.feature_names),
            "mean": train.mean(0).tolist(),  # normalisation from the training split only
            "std": (train.std(0) + 1e-6).tolist(),
        }
        return Prepared(add_leak_column(manifest), info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        return [
            Expectation(
                "expect_column_values_to_be_between",
                {"column": "label", "min_value": 0, "max_value": len(info["classes"]) - 1},
                "labels index the classes",
            ),
            Expectation(
                "expect_column_values_to_be_in_set",
                {"column": "n_features", "value_set": [len(info["features"])]},
                "every wine has every measurement",
            ),
            Expectation(
                "expect_column_values_to_be_in_set",
                {"column": "splits_with_same_content", "value_set": [1]},
                "no wine in two splits",
            ),
        ]

    def load(self, data_dir: Path) -> WineData:
        x = {s: torch.from_numpy(np.load(Path(data_dir) / f"{s}_x.npy")) for s in SPLITS}
        y = {s: torch.from_numpy(np.load(Path(data_dir) / f"{s}_y.npy")) for s in SPLITS}
        return WineData(x, y, read_info(data_dir))

    # -- model --------------------------------------------------------------
    def build_model(self, cfg: WineConfig, info: dict[str, Any]) -> nn.Module:
        model = nn.Sequential(
            nn.Linear(len(info["features"]), cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, len(info["classes"]))
        )
        # normalisation travels with the weights: serving gets raw measurements
        model.register_buffer("mean", torch.tensor(info["mean"]))
        model.register_buffer("std", torch.tensor(info["std"]))
        return model

    @staticmethod
    @torch.no_grad()
    def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = x.to(model.mean.device)
        return model((x - model.mean) / model.std).cpu()

    def training(self, model: nn.Module, data: WineData, cfg: WineConfig) -> Recipe:
        return supervised(
            model,
            (data.x["train"] - model.mean) / model.std,
            data.y["train"],
            cfg,
            nn.CrossEntropyLoss(),
            validate=lambda: self.evaluate(model, data, "val"),
        )

    def evaluate(self, model: nn.Module, data: WineData, split: str = "test") -> dict[str, float]:
        pred = self._logits(model.eval(), data.x[split]).argmax(1)
        return {"accuracy": float((pred == data.y[split]).float().mean())}

    def baseline(self, data: WineData, split: str = "test") -> dict[str, float]:
        """The majority class of the training split."""
        majority = int(torch.bincount(data.y["train"]).argmax())
        return {"accuracy": float((data.y[split] == majority).float().mean())}

    # -- serving ------------------------------------------------------------
    def request_examples(self, data: WineData, n: int) -> list[Request]:
        return [{"array": row.tolist()} for row in data.x["test"][:n]]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [({"array": [1.0, 2.0]}, 422, "13 numbers"), ({"text": "a red"}, 422, "not used")]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        n = len(loaded.info["features"])
        try:
            row = np.asarray(request.get("array"), dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidInput(f"'array' must be {n} numbers", status=422) from None
        if row.shape != (n,):
            raise InvalidInput(f"'array' must be {n} numbers, got shape {list(row.shape)}", status=422)
        return [row]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        return torch.softmax(self._logits(loaded.module, torch.from_numpy(batch)), 1).numpy()

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        classes = loaded.info["classes"]
        return {
            "label": classes[int(output.argmax())],
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, output, strict=True)},
        }
