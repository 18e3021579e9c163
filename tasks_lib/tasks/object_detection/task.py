"""Object detection (seed example 4): FCOS on a small residual pyramid, trained from scratch.

Sources: generated scenes (default, offline: shapes and digit glyphs in saturated colours,
overlapping and at several scales, on real scikit-image textures; see core/synthetic.py)
or any COCO instances JSON with its images (``--path``: the JSON file, or a folder holding
``annotations.json`` / ``instances*.json`` and the images). Images are resized to a fixed
square, so requests batch; boxes are scaled back to each request's own image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect, synthetic
from tasks_lib.core.coco import coco_map
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes, split_sizes
from tasks_lib.core.detector import build_fcos, detect, to_tensors
from tasks_lib.core.images import image_from_request, png_bytes, to_model_array
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.object_detection.baseline import BlobDetector
from tasks_lib.tasks.object_detection.coco import read_coco

MAX_DETECTIONS = 50  # rows per image in forward's fixed-shape output


@dataclass(frozen=True)
class DetectionData(DataConfig):
    image_size: int = 128  # model input side; COCO images are resized to it
    n_scenes: int = 2400  # generated scenes over all splits
    max_objects: int = 6  # generated: 1..max_objects per scene
    min_object: float = 0.09  # generated object side, fraction of image_size (log-uniform)
    max_object: float = 0.34
    min_visible: float = 0.5  # generated: objects hidden more than this are placed elsewhere
    scene_seed: int = 0


@dataclass(frozen=True)
class DetectionConfig(TaskConfig):
    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16  # backbone channels at stride 2; doubled per stage up to 8x
    fpn_channels: int = 32  # a multiple of 32 (the head's GroupNorm)
    head_convs: int = 1
    serve_score: float = 0.3  # served answers keep detections scoring at least this
    weights: str = ""  # optional path to pretrained weights (safetensors or torch state dict) to start from


@dataclass
class DetectionSet:
    x: dict[str, np.ndarray]  # uint8 NxSxSx3
    boxes: dict[str, list[np.ndarray]]  # per image Kx4 x1y1x2y2 float32
    labels: dict[str, list[np.ndarray]]  # per image K int64, 0-based class index
    info: dict[str, Any]
    # COCO crowd regions per split and image (boxes, labels): ignored when scoring, never trained on
    crowd: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)

    def targets(self, split: str) -> list[tuple]:
        """COCOeval's ground truth of ``split``: per image (boxes, labels) or (boxes, labels, iscrowd)."""
        plain = list(zip(self.boxes[split], self.labels[split], strict=True))
        if split not in self.crowd:
            return plain
        return [
            (np.r_[b, cb], np.r_[lab, cl], np.r_[np.zeros(len(b), bool), np.ones(len(cb), bool)])
            for (b, lab), (cb, cl) in zip(plain, self.crowd[split], strict=True)
        ]


def _split_lists(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return list(np.split(flat, np.cumsum(counts)[:-1])) if len(counts) else []


class DetectionAnswer(Answer):
    boxes: list[list[float]] = Field(description="x1, y1, x2, y2 in the request's pixels")
    labels: list[str]
    scores: list[float]


@register
class ObjectDetection(Task):
    """Boxes, labels and scores for every object in an image (seed example 4)."""

    name = "object_detection"
    seed_sections = (4,)
    metric = "map"
    request_fields = ("image", "array")
    answer_model = DetectionAnswer
    batchable = True  # every request is resized to image_size (boxes scaled back), so items stack
    config_cls = DetectionConfig
    data_config_cls = DetectionData
    default_source = "scenes"
    profiles = {
        "smoke": {
            "data": {"n_scenes": 60, "image_size": 64, "max_objects": 3},
            "train": {"epochs": 2, "batch_size": 8, "width": 8, "fpn_channels": 32, "head_convs": 1},
        },
        "quick": {"data": {"n_scenes": 2400}, "train": {"epochs": 24}},  # ~15 s per epoch on 2 idle cores
        "full": {
            "data": {"n_scenes": 20000},
            "train": {"epochs": 40, "batch_size": 32, "width": 32, "fpn_channels": 128, "head_convs": 4},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "scenes": DataSource(
                "scenes",
                f"generated scenes of {', '.join(synthetic.KINDS)} on scikit-image textures (offline)",
                "generator",
            ),
            "coco": DataSource(
                "coco", "a COCO instances JSON and its images at --path (file or folder)", "folder", needs_path=True
            ),
        }

    # -- data -------------------------------------------------------------------
    def _generate(self, dcfg: DetectionData) -> tuple:
        rng = np.random.default_rng(dcfg.scene_seed)
        s = dcfg.image_size
        lo, hi = max(4, round(dcfg.min_object * s)), max(5, round(dcfg.max_object * s))
        images, boxes, labels = [], [], []
        for _ in range(dcfg.n_scenes):
            bg = synthetic.background(rng, s)
            objects: list[synthetic.SceneObject] = []
            for _o in range(int(rng.integers(1, dcfg.max_objects + 1))):
                for _try in range(6):
                    cand = objects + synthetic.random_objects(rng, s, 1, min_size=lo, max_size=hi)
                    if (synthetic.render(bg, cand)[2] >= dcfg.min_visible).all():
                        objects = cand
                        break
            img, b, _ = synthetic.render(bg, objects, rng)
            images.append(img)
            boxes.append(b.reshape(-1, 4))
            labels.append(np.array([synthetic.KINDS.index(o.kind) for o in objects], dtype=np.int64))
        return np.stack(images), boxes, labels, list(synthetic.KINDS)

    def _locate_coco(self, path: str) -> Path:
        if not path:
            raise ValueError("source 'coco' needs --path: a COCO instances JSON or the folder holding it")
        p = Path(path)
        if p.is_file():
            return p
        for name in ("annotations.json", "instances.json"):
            if (p / name).is_file():
                return p / name
        found = sorted(p.glob("instances*.json")) + sorted(p.glob("annotations/instances*.json"))
        if not found:
            raise ValueError(f"no COCO instances JSON in {p} (annotations.json, instances*.json)")
        return found[0]

    def prepare(self, dcfg: DetectionData, out: Path) -> Prepared:
        crowd_boxes: list[np.ndarray] = []
        crowd_labels: list[np.ndarray] = []
        if dcfg.source == "scenes":
            x, boxes, labels, classes = self._generate(dcfg)
        elif dcfg.source == "coco":
            read = read_coco(self._locate_coco(dcfg.path), None, dcfg.image_size)
            x, boxes, labels, classes = read.images, read.boxes, read.labels, read.classes
            if any(len(c) for c in read.crowd_labels):
                crowd_boxes, crowd_labels = read.crowd_boxes, read.crowd_labels
        else:
            raise ValueError(f"unknown source {dcfg.source}")
        hashes = np.array([sha1_bytes(img.tobytes()) for img in x])
        _, first = np.unique(hashes, return_index=True)
        keep = np.sort(first)  # exact duplicate images would sit in two splits: keep one copy
        if dcfg.max_samples:
            keep = keep[: dcfg.max_samples]
        # Split by image content hash: a sample keeps its split however many scenes are generated.
        split = hash_split(hashes[keep], dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)

        out.mkdir(parents=True, exist_ok=True)
        rows = []
        s = dcfg.image_size
        for sp in SPLITS:
            idx = keep[split == sp]
            b = [boxes[i] for i in idx]
            lab = [labels[i] for i in idx]
            counts = np.array([len(v) for v in lab], dtype=np.int64)
            np.save(out / f"{sp}_x.npy", x[idx])
            np.save(out / f"{sp}_boxes.npy", np.concatenate(b).astype(np.float32) if b else np.zeros((0, 4)))
            np.save(out / f"{sp}_labels.npy", np.concatenate(lab).astype(np.int64) if lab else np.zeros(0))
            np.save(out / f"{sp}_counts.npy", counts)
            if crowd_labels:  # only COCO data with crowd regions has these files
                cb, cl = [crowd_boxes[i] for i in idx], [crowd_labels[i] for i in idx]
                np.save(out / f"{sp}_crowd_boxes.npy", np.concatenate(cb or [np.zeros((0, 4))]).astype(np.float32))
                np.save(out / f"{sp}_crowd_labels.npy", np.concatenate(cl or [np.zeros(0)]).astype(np.int64))
                np.save(out / f"{sp}_crowd_counts.npy", np.array([len(v) for v in cl], dtype=np.int64))

            def stat(fn, values, default=np.nan):
                return [float(fn(v)) if len(v) else default for v in values]

            rows.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{sp}/{i}" for i in range(len(idx))],
                        "split": sp,
                        "height": s,
                        "width": s,
                        "n_objects": counts,
                        "min_label": stat(np.min, lab),
                        "max_label": stat(np.max, lab),
                        "box_x_min": stat(lambda v: v[:, 0].min(), b),
                        "box_y_min": stat(lambda v: v[:, 1].min(), b),
                        "box_x_max": stat(lambda v: v[:, 2].max(), b),
                        "box_y_max": stat(lambda v: v[:, 3].max(), b),
                        "min_box_width": stat(lambda v: (v[:, 2] - v[:, 0]).min(), b),
                        "min_box_height": stat(lambda v: (v[:, 3] - v[:, 1]).min(), b),
                        "sha1": hashes[idx],
                    }
                )
            )
        manifest = add_leak_column(pd.concat(rows, ignore_index=True))
        train_labels = np.concatenate([labels[i] for i in keep[split == "train"]] or [np.zeros(0, np.int64)])
        info = {
            "source": dcfg.source,
            "classes": classes,
            "image_size": s,
            "max_objects": int(manifest["n_objects"].max()),
            "objects_per_class_train": np.bincount(train_labels, minlength=len(classes)).tolist(),
            "n_samples": split_sizes(split),
            "duplicates_removed": int(len(x) - len(first)),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        s, n = info["image_size"], len(info["classes"])
        generated = info["source"] == "scenes"
        exp = [
            expect.min_rows(20, "too few images to train on"),
            expect.all_splits(),
            *expect.frame_size(s, s, "one input size"),
            expect.between(
                "n_objects",
                1 if generated else 0,
                100,
                "every generated scene holds an object; at most 100 (COCO's maxDets)",
            ),
            expect.between("min_label", 0, n - 1, f"labels index the {n} classes"),
            expect.between("max_label", 0, n - 1, f"labels index the {n} classes"),
            expect.no_leak("no image in two splits (test leakage)"),
        ]
        for col, hi in (("box_x_min", s), ("box_y_min", s), ("box_x_max", s), ("box_y_max", s)):
            exp.append(expect.between(col, 0, hi, "boxes lie inside the image"))
        for col in ("min_box_width", "min_box_height"):
            exp.append(
                Expectation(
                    "expect_column_values_to_be_between",
                    {"column": col, "min_value": 0, "max_value": s, "strict_min": True},
                    "every box has a positive area",
                )
            )
        return exp

    def load(self, data_dir: Path) -> DetectionSet:
        data_dir = Path(data_dir)
        x, boxes, labels, crowd = {}, {}, {}, {}
        for sp in SPLITS:
            x[sp] = np.load(data_dir / f"{sp}_x.npy")
            counts = np.load(data_dir / f"{sp}_counts.npy")
            boxes[sp] = _split_lists(np.load(data_dir / f"{sp}_boxes.npy").astype(np.float32).reshape(-1, 4), counts)
            labels[sp] = _split_lists(np.load(data_dir / f"{sp}_labels.npy").astype(np.int64), counts)
            if (data_dir / f"{sp}_crowd_counts.npy").exists():
                cc = np.load(data_dir / f"{sp}_crowd_counts.npy")
                cb = _split_lists(np.load(data_dir / f"{sp}_crowd_boxes.npy").astype(np.float32).reshape(-1, 4), cc)
                crowd[sp] = list(zip(cb, _split_lists(np.load(data_dir / f"{sp}_crowd_labels.npy"), cc), strict=True))
        return DetectionSet(x, boxes, labels, read_info(data_dir), crowd)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: DetectionConfig, info: dict[str, Any]) -> nn.Module:
        s = info["image_size"]
        # level ranges follow the image: objects of 12-44 px at 128 px fall in the first two levels
        return build_fcos(
            len(info["classes"]),
            s,
            cfg.width,
            cfg.fpn_channels,
            cfg.head_convs,
            3.0 * s / 128,
            detections=MAX_DETECTIONS,
        )

    @staticmethod
    def _load_weights(model: nn.Module, path: str) -> None:
        """Start from pretrained weights: every tensor whose name and shape match is taken."""
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("model", state) if isinstance(state, dict) else state
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not usable:
            raise ValueError(f"no tensor in {path} fits this detector (names/shapes differ)")
        model.load_state_dict(usable, strict=False)

    def training(self, model: nn.Module, data: DetectionSet, cfg: DetectionConfig) -> Recipe:
        if cfg.weights:
            self._load_weights(model, cfg.weights)
        device = engine.pick_device()
        x, boxes, labels = data.x["train"], data.boxes["train"], data.labels["train"]
        n = len(x)

        def batches(gen: torch.Generator):
            perm = torch.randperm(n, generator=gen).numpy()
            for i in range(n_batches):
                idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                targets = [
                    {"boxes": torch.from_numpy(boxes[j]), "labels": torch.from_numpy(labels[j] + 1)} for j in idx
                ]
                yield to_tensors(x[idx], device), targets

        def step(batch) -> dict[str, torch.Tensor]:
            losses = model(*batch)  # the torchvision detector's own loss terms
            return {"loss": sum(losses.values()), **losses}

        n_batches = max(1, n // cfg.batch_size) if n > cfg.batch_size else 1
        return Recipe(
            batches,
            step,
            n_batches,
            schedule=engine.one_cycle(0.2),
            validate=lambda: self.evaluate(model, data, "val", per_class=False),
        )

    def evaluate(self, model: nn.Module, data: DetectionSet, split: str = "test", per_class: bool = True) -> dict:
        preds = detect(model, data.x[split])
        m = coco_map(preds, data.targets(split), len(data.info["classes"]))
        return m if per_class else {k: v for k, v in m.items() if not k.startswith("ap_class_")}

    def baseline(self, data: DetectionSet, split: str = "test") -> dict[str, float]:
        """Colour-blob detector: saturated connected components, shape by nearest train blob (k-NN)."""
        det = BlobDetector().fit(data.x["train"][:1000], data.boxes["train"][:1000], data.labels["train"][:1000])
        preds = [det.detect(img) for img in data.x[split]]
        return coco_map(preds, data.targets(split), len(data.info["classes"]))

    def examples(self, model: nn.Module, data: DetectionSet) -> dict[str, Any]:
        from tasks_lib.tasks.object_detection.figures import detections_figure

        k = min(12, len(data.x["test"]))
        preds = detect(model, data.x["test"][:k])
        classes = data.info["classes"]
        fig = detections_figure(
            data.x["test"][:k], preds, data.boxes["test"][:k], data.labels["test"][:k], classes, score_min=0.3
        )
        m = self.evaluate(model, data, "test")
        b = self.baseline(data, "test")
        lines = ["| class | AP@[.5:.95] model | baseline |", "|---|---|---|"]
        lines += [f"| {c} | {m[f'ap_class_{i}']:.3f} | {b[f'ap_class_{i}']:.3f} |" for i, c in enumerate(classes)]
        lines += [
            f"| **all (mAP)** | {m['map']:.3f} | {b['map']:.3f} |",
            f"| mAP@.5 | {m['map_50']:.3f} | {b['map_50']:.3f} |",
        ]
        return {"test_detections.png": fig, "per_class_ap.md": "\n".join(lines) + "\n"}

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: DetectionSet, n: int) -> list[Request]:
        return [{"image": png_bytes(img)} for img in data.x["test"][:n]]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        broken = png_bytes(noise)[:1500]  # a PNG cut short
        return [
            ({"image": b"just some text"}, 415, "not an image"),
            ({"image": broken}, 400, "could not be decoded"),
            ({"array": [[0, 999]] * 4}, 422, "0-255"),
            ({"text": "a cat"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        """One flat float32 row: the resized pixels, then the original height and width."""
        img = image_from_request(request)
        s = loaded.info["image_size"]
        pixels = to_model_array(img, (s, s), 3).astype(np.float32).ravel()
        return [np.concatenate([pixels, np.array([img.height, img.width], dtype=np.float32)])]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        """Per image ``MAX_DETECTIONS`` rows [x1, y1, x2, y2, score, label] in its own pixels (score -1: none)."""
        s = loaded.info["image_size"]
        batch = np.asarray(batch, dtype=np.float32)
        x = batch[:, :-2].reshape(-1, s, s, 3).round().astype(np.uint8)
        out = np.full((len(batch), MAX_DETECTIONS, 6), -1.0, dtype=np.float32)
        for i, (b, sc, lab) in enumerate(detect(loaded.module, x)):
            h, w = batch[i, -2], batch[i, -1]
            k = min(len(sc), MAX_DETECTIONS)
            out[i, :k, :4] = b[:k] * np.array([w / s, h / s, w / s, h / s], dtype=np.float32)
            out[i, :k, 4] = sc[:k]
            out[i, :k, 5] = lab[:k]
        return out

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        keep = output[:, 4] >= loaded.cfg.serve_score
        rows = output[keep]
        classes = loaded.info["classes"]
        return {
            "boxes": [[round(float(v), 2) for v in r[:4]] for r in rows],
            "labels": [classes[int(r[5])] for r in rows],
            "scores": [round(float(r[4]), 4) for r in rows],
        }
