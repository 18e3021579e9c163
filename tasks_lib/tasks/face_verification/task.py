"""Face verification on identities never seen in training (seed example 9).

An embedding network trained with ArcFace on the training identities; two faces are
the same person when the cosine of their embeddings reaches the threshold chosen on
validation pairs. Train, validation and test identities are disjoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, hash_split, read_info, sha1_bytes
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.images import decode_image, normalise_nhwc, png_bytes, to_model_array
from tasks_lib.core.recipes import supervised
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.face_verification.faces import render_identities
from tasks_lib.tasks.face_verification.metrics import (
    best_threshold,
    equal_error_rate,
    pair_accuracy,
    roc_auc,
    roc_curve,
)
from tasks_lib.tasks.face_verification.model import FaceEmbedder, arcface_loss
from tasks_lib.tasks.face_verification.readers import read_lfw


@dataclass(frozen=True)
class FaceData(DataConfig):
    image_size: int = 32
    n_train_ids: int = 300  # rendered identities per split
    n_val_ids: int = 40
    n_test_ids: int = 80
    per_id: int = 6  # rendered photos per identity
    noise: float = 0.04  # rendered: sensor noise std (0-1 scale)
    render_seed: int = 0
    n_val_pairs: int = 600  # pairs drawn per split (half same, half different); LFW test uses pairs.txt
    n_test_pairs: int = 2000
    lfw_crop: float = 0.5  # LFW: central share of the 250x250 photo kept (the face)


@dataclass(frozen=True)
class FaceConfig(TaskConfig):
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 5e-4
    width: int = 24
    dim: int = 128
    arc_scale: float = 16.0  # ArcFace s
    arc_margin: float = 0.3  # ArcFace m (radians)


@dataclass
class FaceArrays:
    x: dict[str, torch.Tensor]  # uint8 NHWC per split
    ids: dict[str, np.ndarray]  # identity index per image (indexes info["identities"])
    pairs: dict[str, np.ndarray]  # (k, 3): image index a, image index b, same (val, test)
    info: dict[str, Any]


def sample_pairs(ids: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` pairs of distinct images, half of one identity, half of two different ones."""
    by_id = {i: np.flatnonzero(ids == i) for i in np.unique(ids)}
    multi = [i for i, v in by_id.items() if len(v) >= 2]
    keys = list(by_id)
    out = []
    for k in range(n):
        if k % 2 == 0 and multi:
            a, b = rng.choice(by_id[multi[rng.integers(len(multi))]], 2, replace=False)
            out.append((a, b, 1))
        else:
            p, q = rng.choice(len(keys), 2, replace=False)
            out.append((rng.choice(by_id[keys[p]]), rng.choice(by_id[keys[q]]), 0))
    return np.array(out, np.int64).reshape(-1, 3)


class VerificationAnswer(Answer):
    """One image: its embedding; two images (``image2``): same person or not."""

    embedding: list[float] | None = None
    same: bool | None = None
    similarity: float | None = Field(None, description="cosine similarity of the two embeddings")
    threshold: float | None = Field(None, description="similarity at or above which two faces are the same person")


@register
class FaceVerification(Task):
    """Same person or not, from an ArcFace embedding (seed example 9)."""

    name = "face_verification"
    seed_sections = (9,)
    metric = "roc_auc"
    request_fields = ("image", "image2")
    answer_model = VerificationAnswer
    batchable = False  # a request is one image (-> embedding) or a pair (-> same?): items differ in kind
    config_cls = FaceConfig
    data_config_cls = FaceData
    default_source = "rendered"
    profiles = {
        "smoke": {
            "data": {
                "n_train_ids": 20,
                "n_val_ids": 6,
                "n_test_ids": 6,
                "per_id": 4,
                "n_val_pairs": 40,
                "n_test_pairs": 40,
            },
            "train": {"epochs": 2, "width": 8, "dim": 32, "batch_size": 32},
        },  # fmt: skip
        "quick": {"train": {"epochs": 12}},
        "full": {
            "data": {"n_train_ids": 3000, "n_val_ids": 200, "n_test_ids": 500, "per_id": 10, "n_test_pairs": 6000},
            "train": {"epochs": 40, "width": 48, "dim": 256},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "rendered": DataSource(
                "rendered", "procedurally rendered identities (fixed face geometry and colours; pose, light, "
                "expression, background and noise vary), deterministic from render_seed", "generator",
            ),
            "lfw": DataSource(
                "lfw", "an LFW folder at --path: person_name/person_name_0001.jpg + pairs.txt; the persons in "
                "pairs.txt are the test identities and its pairs the test pairs", "folder", needs_path=True,
            ),
        }  # fmt: skip

    # -- data -------------------------------------------------------------------
    def _rendered(self, dcfg: FaceData):
        parts, names, offset = {}, [], 0
        counts = {"train": dcfg.n_train_ids, "val": dcfg.n_val_ids, "test": dcfg.n_test_ids}
        # Each split renders its own, new identities from its own seed: no content crosses splits, and a
        # split's identities do not depend on how many the other splits render, so no hash split is needed.
        for k, s in enumerate(SPLITS):
            x, local = render_identities(counts[s], dcfg.per_id, dcfg.image_size, dcfg.render_seed * 3 + k, dcfg.noise)
            names += [f"{s}_person_{i:04d}" for i in range(counts[s])]
            parts[s] = (x, local + offset, np.ones(len(x), bool), None)
            offset += counts[s]
        return parts, names

    def _lfw(self, dcfg: FaceData):
        if not dcfg.path:
            raise ValueError("source 'lfw' needs --path pointing at an LFW folder with pairs.txt")
        persons, pairs = read_lfw(Path(dcfg.path), dcfg.image_size, dcfg.lfw_crop)
        test_names = sorted({p[0] for p in pairs} | {p[2] for p in pairs})
        rest = [n for n in persons if n not in test_names and len(persons[n]) >= 2]
        # pairs.txt fixes the test identities; validation identities are carved out of the rest by the hash
        # of the person's name, so a person keeps their split whoever else is added to the folder
        rest_split = hash_split(rest, dcfg.val_fraction, 0.0, dcfg.split_seed)
        split_names = {
            "val": sorted(n for n, sp in zip(rest, rest_split, strict=True) if sp == "val"),
            "train": sorted(n for n, sp in zip(rest, rest_split, strict=True) if sp == "train"),
            "test": test_names,
        }
        names = [n for s in SPLITS for n in split_names[s]]
        index = {n: i for i, n in enumerate(names)}
        size = dcfg.image_size
        parts = {}
        for s in SPLITS:
            x, ids, ok, where = [], [], [], {}
            for n in split_names[s]:
                for number, img in persons.get(n, []):
                    where[(n, number)] = len(x)
                    x.append(img if img is not None else np.zeros((size, size, 3), np.uint8))
                    ids.append(index[n])
                    ok.append(img is not None)
            file_pairs = None
            if s == "test":  # pairs.txt, by position in this split; -1 = a file that does not exist
                file_pairs = [(where.get((a, i), -1), where.get((b, j), -1), int(a == b)) for a, i, b, j in pairs]
            x = np.stack(x) if x else np.zeros((0, size, size, 3), np.uint8)
            parts[s] = (x, np.array(ids, np.int64), np.array(ok, bool), file_pairs)
        return parts, names

    def prepare(self, dcfg: FaceData, out: Path) -> Prepared:
        parts, names = self._rendered(dcfg) if dcfg.source == "rendered" else self._lfw(dcfg)
        out.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(dcfg.split_seed)
        rows, pair_rows = [], []
        for s in SPLITS:
            x, ids, ok, given_pairs = parts[s]
            np.save(out / f"{s}_x.npy", x)
            np.save(out / f"{s}_id.npy", ids)
            if s == "train":
                pairs = np.zeros((0, 3), np.int64)
            elif given_pairs is not None:
                pairs = np.array(given_pairs, np.int64).reshape(-1, 3)
            else:
                pairs = sample_pairs(ids, dcfg.n_val_pairs if s == "val" else dcfg.n_test_pairs, rng)
            np.save(out / f"{s}_pairs.npy", pairs)
            rows.append(
                pd.DataFrame(
                    {
                        "kind": "image",
                        "sample_id": [f"{s}/{i}" for i in range(len(x))],
                        "split": s,
                        "identity": [names[i] for i in ids],
                        "decoded": ok,
                        "height": x.shape[1],
                        "width": x.shape[2],
                        "channels": x.shape[3],
                        "sha1": [sha1_bytes(img.tobytes()) for img in x],
                    }
                )
            )
            # a pair index outside this split's images is a file that does not exist (-1 from pairs.txt)
            valid_a = (pairs[:, 0] >= 0) & (pairs[:, 0] < len(x))
            valid_b = (pairs[:, 1] >= 0) & (pairs[:, 1] < len(x))
            padded = np.r_[ids, -1]  # index -1 and invalid indices map to identity -1
            id_a = padded[np.where(valid_a, pairs[:, 0], -1)]
            id_b = padded[np.where(valid_b, pairs[:, 1], -1)]
            pair_rows.append(
                pd.DataFrame(
                    {
                        "kind": "pair",
                        "sample_id": [f"{s}/pair/{k}" for k in range(len(pairs))],
                        "split": s,
                        "file_exists": valid_a,
                        "file2_exists": valid_b,
                        "same": pairs[:, 2].astype(bool),
                        "same_consistent": (pairs[:, 2] == 1) == ((id_a == id_b) & valid_a & valid_b),
                        "distinct_files": pairs[:, 0] != pairs[:, 1],
                    }
                )
            )
        images = pd.concat(rows, ignore_index=True)
        images["splits_with_same_content"] = images.groupby("sha1")["split"].transform("nunique").astype(int)
        images["splits_with_same_identity"] = images.groupby("identity")["split"].transform("nunique").astype(int)
        manifest = pd.concat([images, *pair_rows], ignore_index=True)
        tx = torch.from_numpy(parts["train"][0]).float() / 255
        n_train_ids = len(np.unique(parts["train"][1]))
        info = {
            "source": dcfg.source,
            "identities": names,
            "n_train_ids": n_train_ids,
            "image_shape": [dcfg.image_size, dcfg.image_size, 3],
            "mean": tx.mean(dim=(0, 1, 2)).tolist() if len(tx) else [0.5] * 3,
            "std": tx.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist() if len(tx) > 1 else [0.25] * 3,
            "n_images": {s: int(len(parts[s][0])) for s in SPLITS},
            "n_pairs": {s: int((manifest["kind"].eq("pair") & manifest["split"].eq(s)).sum()) for s in SPLITS},
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        img, pair = {"kind": "image"}, {"kind": "pair"}
        return [
            expect.in_set("kind", ["image", "pair"]),
            expect.in_set("decoded", [True], "every image decodes", img),
            *expect.frame_size(h, w, "", img),
            expect.in_set("channels", [c], "", img),
            Expectation("expect_column_values_to_not_be_null", {"column": "identity"}, where=img),
            expect.in_set(
                "splits_with_same_identity",
                [1],
                "no identity in two splits: verification is tested on people never seen in training",
                img,
            ),
            expect.in_set("splits_with_same_content", [1], "no image in two splits (test leakage)", img),
            Expectation(
                "expect_column_distinct_values_to_equal_set",
                {"column": "split", "value_set": list(SPLITS)},
                "train, val and test images all present",
                where=img,
            ),
            Expectation(
                "expect_column_distinct_values_to_equal_set",
                {"column": "split", "value_set": ["val", "test"]},
                "validation pairs (threshold) and test pairs (metrics) present",
                where=pair,
            ),
            expect.in_set("file_exists", [True], "the first image of every pair exists", pair),
            expect.in_set("file2_exists", [True], "the second image of every pair exists", pair),
            expect.in_set("same_consistent", [True], "a 'same' pair shows one identity, a 'different' pair two", pair),
            expect.in_set("distinct_files", [True], "a pair compares two different photos", pair),
            Expectation(
                "expect_column_distinct_values_to_equal_set",
                {"column": "same", "value_set": [False, True]},
                "both same and different pairs",
                where=pair,
            ),
        ]

    def load(self, data_dir: Path) -> FaceArrays:
        d = Path(data_dir)
        return FaceArrays(
            x={s: torch.from_numpy(np.load(d / f"{s}_x.npy")) for s in SPLITS},
            ids={s: np.load(d / f"{s}_id.npy") for s in SPLITS},
            pairs={s: np.load(d / f"{s}_pairs.npy") for s in SPLITS},
            info=read_info(d),
        )

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: FaceConfig, info: dict[str, Any]) -> nn.Module:
        return FaceEmbedder(info["image_shape"][2], max(info["n_train_ids"], 1), cfg.width, cfg.dim)

    def training(self, model: nn.Module, data: FaceArrays, cfg: FaceConfig) -> Recipe:
        info = data.info
        train_ids = data.ids["train"]
        labels = torch.from_numpy(np.searchsorted(np.unique(train_ids), train_ids)).long()  # 0..n_train_ids-1

        def prepare_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            x = normalise_nhwc(x, info)
            flip = torch.rand(len(x), generator=gen, device=x.device) < 0.5  # a mirrored face is the same person
            return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)

        def pick_threshold() -> None:
            same, score = self._similarities(model, data, "val")
            model.threshold.fill_(best_threshold(same, score) if len(same) else 0.5)

        recipe = supervised(
            model,
            data.x["train"],
            labels,
            cfg,
            lambda emb, y: arcface_loss(emb, y, model.arc_weight, cfg.arc_scale, cfg.arc_margin),
            prepare_batch=prepare_batch,
            validate=lambda: self._pair_scores(model, data, "val", threshold=None),
        )
        recipe.finish = pick_threshold  # the decision threshold of the trained embedding, on val pairs
        return recipe

    def _embed(self, model: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> np.ndarray:
        return engine.predict_batches(model, x, batch_size=256, prepare=lambda b: normalise_nhwc(b, info)).numpy()

    def _similarities(self, model: nn.Module, data: FaceArrays, split: str) -> tuple[np.ndarray, np.ndarray]:
        emb = self._embed(model, data.x[split], data.info)
        p = data.pairs[split]
        return p[:, 2].astype(bool), (emb[p[:, 0]] * emb[p[:, 1]]).sum(1)

    @staticmethod
    def _scores(same: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
        return {
            "roc_auc": roc_auc(same, score),
            "eer": equal_error_rate(same, score),
            "accuracy": pair_accuracy(same, score, threshold),
            "threshold": float(threshold),
        }

    def _pair_scores(self, model, data: FaceArrays, split: str, threshold: float | None) -> dict[str, float]:
        same, score = self._similarities(model, data, split)
        return self._scores(same, score, best_threshold(same, score) if threshold is None else threshold)

    def evaluate(self, model: nn.Module, data: FaceArrays, split: str = "test") -> dict[str, float]:
        """ROC AUC and EER on the split's pairs; accuracy at the threshold chosen on validation pairs."""
        same, score = self._similarities(model, data, "val")
        return self._pair_scores(model, data, split, best_threshold(same, score))

    def _pixel_similarities(self, data: FaceArrays, split: str) -> tuple[np.ndarray, np.ndarray]:
        flat = data.x[split].reshape(len(data.x[split]), -1).float().numpy() / 255
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-8)
        p = data.pairs[split]
        return p[:, 2].astype(bool), (flat[p[:, 0]] * flat[p[:, 1]]).sum(1)

    def baseline(self, data: FaceArrays, split: str = "test") -> dict[str, float]:
        """Cosine similarity of raw pixels; threshold chosen on validation pairs likewise."""
        same_v, score_v = self._pixel_similarities(data, "val")
        same, score = self._pixel_similarities(data, split)
        return self._scores(same, score, best_threshold(same_v, score_v))

    def examples(self, model: nn.Module, data: FaceArrays) -> dict[str, Any]:
        from tasks_lib.core.figures import _pyplot

        plt = _pyplot()
        same, score = self._similarities(model, data, "test")
        bsame, bscore = self._pixel_similarities(data, "test")
        thr = float(model.threshold)
        fig, ax = plt.subplots(figsize=(4.2, 4))
        for s, sc, label in ((same, score, "embedding (ArcFace)"), (bsame, bscore, "raw-pixel cosine")):
            fpr, tpr, _ = roc_curve(s, sc)
            ax.plot(fpr, tpr, label=f"{label}: AUC {roc_auc(s, sc):.3f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="false accept rate", ylabel="true accept rate", title="ROC, test pairs (unseen identities)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        pairs = data.pairs["test"]
        k = min(12, len(pairs))
        x = data.x["test"].numpy()
        fig2, axes = plt.subplots(2, k, figsize=(1.1 * k, 2.8), squeeze=False)
        for j in range(k):
            a, b, s = pairs[j]
            ok = (score[j] >= thr) == bool(s)
            for i, idx in enumerate((a, b)):
                axes[i, j].imshow(x[idx])
                axes[i, j].axis("off")
            axes[0, j].set_title(f"{'same' if s else 'diff'}\ncos {score[j]:.2f}", fontsize=7,
                                 color="green" if ok else "red")  # fmt: skip
        fig2.suptitle(f"test pairs: truth, cosine (same if >= {thr:.2f}; green = right)", fontsize=8)
        fig2.tight_layout()
        return {"roc_curve.png": fig, "pair_examples.png": fig2}

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: FaceArrays, n: int) -> list[Request]:
        x, pairs = data.x["test"].numpy(), data.pairs["test"]
        out: list[Request] = []
        for k in range(n):
            a, b, _ = pairs[k % len(pairs)]
            out.append(
                {"image": png_bytes(x[a])} if k == n - 1 else {"image": png_bytes(x[a]), "image2": png_bytes(x[b])}
            )
        return out

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        ok = png_bytes(np.full((32, 32, 3), 128, np.uint8))
        return [
            ({"image2": ok}, 422, "'image' is missing"),
            ({"image": b"just some text"}, 415, "not an image"),
            ({"image": ok, "image2": b"\x89PNG\r\n\x1a\n broken"}, 415, "image2"),
            ({"image": png_bytes(np.zeros((2, 2), np.uint8))}, 422, "too small"),
            ({"text": "two faces"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """One item: (image, image2 or None), each resized to the model input."""
        h, w, c = loaded.info["image_shape"]
        if request.get("image") is None:
            raise InvalidInput("field 'image' is missing: send 'image' alone (-> embedding) or with 'image2'", 422)
        arrays = []
        for field in ("image", "image2"):
            if request.get(field) is None:
                arrays.append(None)
                continue
            try:
                arrays.append(to_model_array(decode_image(request[field]), (h, w), c))
            except InvalidInput as exc:
                raise InvalidInput(f"{field}: {exc}", exc.status) from None
        return [(arrays[0], arrays[1])]

    def forward(self, loaded: LoadedModel, batch: list[tuple[np.ndarray, np.ndarray | None]]) -> list[dict]:
        imgs = [img for pair in batch for img in pair if img is not None]
        emb = self._embed(loaded.module, torch.from_numpy(np.stack(imgs)), loaded.info)
        out, k = [], 0
        for _, second in batch:
            if second is None:
                out.append({"embedding": emb[k]})
                k += 1
            else:
                out.append({"similarity": float(emb[k] @ emb[k + 1])})
                k += 2
        return out

    def postprocess(self, loaded: LoadedModel, output: dict) -> dict[str, Any]:
        if "embedding" in output:
            return {"embedding": [round(float(v), 6) for v in output["embedding"]]}
        thr = float(loaded.module.threshold)
        sim = output["similarity"]
        return {"same": bool(sim >= thr), "similarity": round(sim, 6), "threshold": round(thr, 6)}
