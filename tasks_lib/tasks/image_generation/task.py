"""The image generation task: 32x32 digits, a conditional DCGAN, Frechet distance in a judge's features."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect, refs
from tasks_lib.core.backbones import ResidualCNN
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import (
    SplitTensors,
    first_copies,
    hash_split,
    split_sizes,
    subsample,
    write_labelled_images,
)
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.figures import _pyplot
from tasks_lib.core.images import png_bytes
from tasks_lib.core.registry import register
from tasks_lib.core.schema import MEDIA, Answer, Options, StrictInt
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.image_generation.model import DCGAN, JUDGE_SIZE, frechet_distance

MAX_N = 64
JUDGE_TASK = "image_classification"


class GenerationOptions(Options):
    """What to draw: ``n`` digits (a grid), from ``seed``; one class, or one of each class in turn."""

    n: StrictInt = Field(16, ge=1, le=MAX_N, description="how many images (one grid)")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="random seed: the same seed draws the same images")
    label: StrictInt | None = Field(None, ge=0, description="the class to draw (default: each class in turn)")


@dataclass(frozen=True)
class ImageGenerationData(DataConfig):
    image_size: int = 32  # digits are upsampled (bilinear) from 8x8 to this size


@dataclass(frozen=True)
class ImageGenerationConfig(TaskConfig):
    epochs: int = 40
    batch_size: int = 32
    lr: float = 2e-4
    grad_clip: float = 0.0
    z_dim: int = 64
    g_width: int = 32  # generator channels at 16x16 (x2, x4 towards 4x4)
    d_width: int = 32
    # the judge of the Frechet distance: the image_classification champion (its quick profile's
    # architecture: width 32, 1 block per stage, 8x8x1 input); "" = a fallback classifier trained in fit
    judge: str = ""
    judge_width: int = 32
    judge_blocks: int = 1
    judge_fallback_steps: int = 300
    n_snapshots: int = 8  # fixed-noise sample grids kept over training (review artifacts)


@dataclass
class GenData(SplitTensors):
    """Prepared arrays in memory: uint8 N x 32 x 32 x 1 per split."""

    judged_by: DCGAN | None = field(default=None, repr=False)  # set by evaluate: baseline uses the same judge


class GenerationAnswer(Answer):
    n: int
    seed: int
    labels: list[str] = Field(description="the class of each image, in grid order")
    media_base64: str = MEDIA


@register
class ImageGeneration(Task):
    """Image generation: class-conditional DCGAN on 32x32 digits (seed example 3)."""

    name = "image_generation"
    seed_sections = (3,)
    metric = "frechet_distance"
    greater_is_better = False
    request_fields = ("options",)
    answer_model = GenerationAnswer
    options_model = GenerationOptions
    output_media = "image/png"
    batchable = False
    config_cls = ImageGenerationConfig
    data_config_cls = ImageGenerationData
    default_source = "digits"
    single_process_reason = (
        "the GAN updates its generator and discriminator itself (manual=True, two optimisers through "
        "the engine's Stepper, calling the sub-networks rather than the model's forward), which "
        "DistributedDataParallel cannot average"
    )
    profiles = {
        "smoke": {
            "data": {"max_samples": 600},
            "train": {"epochs": 2, "g_width": 16, "d_width": 16, "judge_width": 16, "judge_fallback_steps": 60},
        },
        "quick": {"train": {"epochs": 40, "judge": f"models:/{JUDGE_TASK}@champion"}},
        "full": {"train": {"epochs": 300, "g_width": 64, "d_width": 64, "judge": f"models:/{JUDGE_TASK}@champion"}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {"digits": DataSource("digits", "scikit-learn's 1,797 8x8 digits, upsampled to 32x32", "package")}

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: ImageGenerationData, out: Path) -> Prepared:
        from sklearn.datasets import load_digits

        digits = load_digits()
        small = torch.from_numpy(digits.images / 16.0).float()[:, None]  # N x 1 x 8 x 8 in 0-1
        big = F.interpolate(small, size=(dcfg.image_size, dcfg.image_size), mode="bilinear", align_corners=False)
        x = (big.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        y = digits.target.astype(np.int64)
        hashes, keep = first_copies(x)
        n_dup = len(x) - len(keep)
        x, y, hashes = x[keep], y[keep], hashes[keep]
        pick = subsample(len(x), dcfg.max_samples, dcfg.split_seed)
        if pick is not None:
            x, y, hashes = x[pick], y[pick], hashes[pick]
        split = hash_split(hashes, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)  # stable under growth

        def ink(xs: np.ndarray, _idx: np.ndarray) -> dict[str, Any]:
            # a blank or saturated image is broken
            return {"ink_fraction": (xs.reshape(len(xs), -1) > 127).mean(axis=1).round(4)}

        manifest = write_labelled_images(out, x, y, split, hashes, ink)
        info = {
            "source": dcfg.source,
            "classes": [str(c) for c in range(10)],
            "image_shape": list(x.shape[1:]),
            "n_samples": split_sizes(split),
            "duplicates_removed": int(n_dup),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        n = len(info["classes"])
        return [
            expect.min_rows(10 * n, "too few samples to train on"),
            *expect.labels_index(n, f"labels index the {n} classes (conditioning)"),
            *expect.image_layout(h, w, c, "one size", "grey", "8 bit"),
            expect.between(
                "ink_fraction", 0.02, 0.7, "a digit covers part of the frame: blank or saturated images are broken"
            ),
            expect.no_leak("no image in two splits (the real-vs-real floor would be optimistic)"),
            *expect.labels_per_split(
                list(range(n)), "every class in {split}: the Frechet distance compares class mixtures", exact=False
            ),
        ]

    def load(self, data_dir: Path) -> GenData:
        return GenData.load(data_dir)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: ImageGenerationConfig, info: dict[str, Any]) -> nn.Module:
        return DCGAN(
            len(info["classes"]),
            info["image_shape"][2],
            cfg.z_dim,
            cfg.g_width,
            cfg.d_width,
            cfg.judge_width,
            cfg.judge_blocks,
            cfg.n_snapshots,
        )

    def _install_judge(self, model: DCGAN, data: GenData, cfg: ImageGenerationConfig) -> str:
        """Copy the judge's weights into ``model.judge``: upstream champion or fallback classifier."""
        if cfg.judge:
            up = refs.load(cfg.judge)
            if up.task.name != JUDGE_TASK:
                raise ValueError(f"judge '{cfg.judge}' is a '{up.task.name}' model; expected '{JUDGE_TASK}'")
            want = [JUDGE_SIZE, JUDGE_SIZE, model.channels]
            if list(up.info["image_shape"]) != want or len(up.info["classes"]) != model.n_classes:
                raise ValueError(
                    f"judge '{cfg.judge}' takes images {up.info['image_shape']} with {len(up.info['classes'])} "
                    f"classes; this task needs {want} and {model.n_classes} (image_classification on digits)"
                )
            try:
                model.judge.load_state_dict(up.module.state_dict())
            except RuntimeError as exc:
                raise ValueError(
                    f"judge '{cfg.judge}' does not fit judge_width={cfg.judge_width}, judge_blocks={cfg.judge_blocks}"
                    f" (set them to the upstream's width / blocks_per_stage): {str(exc)[:300]}"
                ) from None
            model.judge_mean.copy_(torch.tensor(up.info["mean"]))
            model.judge_std.copy_(torch.tensor(up.info["std"]))
            return cfg.judge
        judge = fallback_judge(data, cfg.judge_width, cfg.judge_blocks, cfg.judge_fallback_steps, cfg.seed)
        model.judge.load_state_dict(judge.state_dict())
        model.judge_mean.fill_(0.5)
        model.judge_std.fill_(0.5)
        return "fallback"

    def training(self, model: DCGAN, data: GenData, cfg: ImageGenerationConfig) -> Recipe:
        """Non-saturating GAN loss, Adam(0.5, 0.999); one step = one D and then one G update."""
        self._install_judge(model, data, cfg)
        device = engine.pick_device()
        G, D = model.generator, model.discriminator
        x_all = data.x["train"].permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)
        y_all = data.y["train"].to(device)
        n = len(x_all)
        bs = min(cfg.batch_size, n)
        snap_at = sorted(set(np.linspace(0, cfg.epochs - 1, cfg.n_snapshots).round().astype(int).tolist()))
        fixed_labels = torch.arange(model.n_classes)

        def batches(gen: torch.Generator):
            order = torch.randperm(n, generator=gen)
            for i in range(max(n // bs, 1)):
                idx = order[i * bs : (i + 1) * bs].to(device)
                yield x_all[idx], y_all[idx], torch.randn(len(idx), cfg.z_dim, generator=gen)

        def step(batch, stepper: engine.Stepper) -> dict[str, torch.Tensor]:
            real, y, z = batch
            fake = G(z, y)
            d_real, d_fake = D(real, y), D(fake.detach(), y)
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            stepper.update(d_loss, "d")
            g_loss = F.softplus(-D(fake, y)).mean()  # through the just-updated discriminator
            stepper.update(g_loss, "g")
            return {
                "loss": (d_loss + g_loss).detach(),
                "d_loss": d_loss,
                "g_loss": g_loss,
                "d_real_accuracy": (d_real.detach() > 0).float().mean(),
            }

        def snapshot(epoch: int, metrics: dict[str, float]) -> None:
            """Fixed-noise samples at ``n_snapshots`` epochs: the review artifacts' training strip."""
            if epoch in snap_at:
                slot = snap_at.index(epoch)
                model.snapshots[slot] = model.sample(
                    len(fixed_labels), fixed_labels, torch.Generator().manual_seed(1234)
                )[..., 0].to(model.snapshots.device)
                model.snapshot_epochs[slot] = epoch

        return Recipe(
            batches,
            step,
            max(n // bs, 1),
            optimizers=lambda m: {
                "d": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
                "g": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(0.5, 0.999)),
            },
            schedule=None,
            validate=lambda: self._fd(model, data, "val"),
            end_epoch=snapshot,
            manual=True,
        )

    # -- metrics ----------------------------------------------------------------
    def _fd(self, model: DCGAN, data: GenData, split: str, seed: int = 0) -> dict[str, float]:
        """FD of samples conditioned on the split's own labels vs the split's real images."""
        labels = data.y[split]
        fake = model.sample(len(labels), labels, torch.Generator().manual_seed(seed))
        f_fake, f_real = model.judge_features(fake), model.judge_features(data.x[split])
        pred = self._judge_predict(model, fake)
        return {
            "frechet_distance": frechet_distance(f_fake, f_real),
            "judge_accuracy_on_samples": float((pred == labels.numpy()).mean()),
        }

    @staticmethod
    @torch.no_grad()
    def _judge_predict(model: DCGAN, images: torch.Tensor) -> np.ndarray:
        device = next(model.judge.parameters()).device
        x = F.avg_pool2d(images.to(device).permute(0, 3, 1, 2).float() / 255, 32 // JUDGE_SIZE)
        x = (x - model.judge_mean.view(1, -1, 1, 1)) / model.judge_std.view(1, -1, 1, 1)
        return model.judge(x).argmax(1).cpu().numpy()

    def _floor(self, model: DCGAN, data: GenData, split: str) -> float:
        """Real-vs-real: as many training images as the split has, against the split (the floor)."""
        n = len(data.x[split])
        pick = torch.from_numpy(np.random.default_rng(0).choice(len(data.x["train"]), n, replace=False))
        return frechet_distance(model.judge_features(data.x["train"][pick]), model.judge_features(data.x[split]))

    def evaluate(self, model: nn.Module, data: GenData, split: str = "test") -> dict[str, float]:
        model.eval()
        data.judged_by = model
        out = self._fd(model, data, split)
        out["fd_real_floor"] = self._floor(model, data, split)
        real_pred = self._judge_predict(model, data.x[split])
        out["judge_accuracy_on_real"] = float((real_pred == data.y[split].numpy()).mean())
        return out

    def baseline(self, data: GenData, split: str = "test") -> dict[str, float]:
        """Per-pixel independent Gaussian fitted to the training images, scored by the same judge.

        The judge: the one of the model last evaluated on ``data`` (so model and baseline share
        it), else a resolved image_classification model, else the fallback classifier.
        """
        judge = data.judged_by or self._standalone_judge(data)
        train = data.x["train"].double()
        mu, sd = train.mean(0), train.std(0)
        rng = np.random.default_rng(0)
        n = len(data.x[split])
        samples = rng.normal(mu.numpy(), sd.numpy(), size=(n, *mu.shape))
        fake = torch.from_numpy(np.clip(np.round(samples), 0, 255).astype(np.uint8))
        f_fake, f_real = judge.judge_features(fake), judge.judge_features(data.x[split])
        return {
            "frechet_distance": frechet_distance(f_fake, f_real),
            "fd_real_floor": self._floor(judge, data, split),
        }

    def _standalone_judge(self, data: GenData) -> DCGAN:
        cfg = ImageGenerationConfig()
        up = refs.find(JUDGE_TASK)
        if up is None:
            cfg = cfg.replace(**self.profiles["smoke"]["train"])
        holder = self.build_model(cfg, data.info)
        if up is not None:
            holder.judge.load_state_dict(up.module.state_dict())
            holder.judge_mean.copy_(torch.tensor(up.info["mean"]))
            holder.judge_std.copy_(torch.tensor(up.info["std"]))
        else:
            self._install_judge(holder, data, cfg)
        return holder

    def examples(self, model: nn.Module, data: GenData) -> dict[str, Any]:
        plt = _pyplot()
        files: dict[str, Any] = {}
        n_cls = model.n_classes
        epochs = model.snapshot_epochs.tolist()
        rows = [i for i, e in enumerate(epochs) if e >= 0]
        if rows:
            fig, axes = plt.subplots(len(rows), 1, figsize=(n_cls * 0.6, len(rows) * 0.75), squeeze=False)
            for ax, i in zip(axes[:, 0], rows, strict=True):
                ax.imshow(np.concatenate(list(model.snapshots[i].cpu().numpy()), axis=1), cmap="gray", vmin=0, vmax=255)
                ax.set_ylabel(f"ep {epochs[i]}", fontsize=7, rotation=0, labelpad=18)
                ax.set_xticks([])
                ax.set_yticks([])
            fig.suptitle("fixed noise, classes 0-9, over training", fontsize=8)
            fig.tight_layout()
            files["samples_over_training.png"] = fig
        gen = torch.Generator().manual_seed(0)
        labels = torch.arange(n_cls).repeat_interleave(8)
        fake = model.sample(len(labels), labels, gen)[..., 0].numpy()
        real = np.stack([data.x["test"][data.y["test"] == c][:8, ..., 0].numpy() for c in range(n_cls)]).reshape(
            -1, 32, 32
        )
        fig, axes = plt.subplots(1, 2, figsize=(9, 5))
        for ax, imgs, title in ((axes[0], real, "real (test split)"), (axes[1], fake, "generated (same classes)")):
            ax.imshow(grid(imgs, 8), cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        files["real_vs_fake.png"] = fig
        ev = self.evaluate(model, data, "test")
        base = self.baseline(data, "test")
        files["frechet_distance.md"] = (
            "| samples | Frechet distance (judge features) |\n|---|---|\n"
            f"| real train vs real test (floor) | {ev['fd_real_floor']:.3f} |\n"
            f"| DCGAN | {ev['frechet_distance']:.3f} |\n"
            f"| per-pixel Gaussian (baseline) | {base['frechet_distance']:.3f} |\n\n"
            f"Judge accuracy on generated samples (label = conditioning class): "
            f"{ev['judge_accuracy_on_samples']:.3f}; on real test images {ev['judge_accuracy_on_real']:.3f}.\n"
        )
        return files

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: GenData, n: int) -> list[Request]:
        out = [{"options": {"n": 4 + i, "seed": i, "label": i % 10}} for i in range(n)]
        if n > 1:
            out[-1] = {"options": {"n": 10, "seed": 7}}  # no label: one of each class
        return out

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"options": {"n": 0, "seed": 0}}, 422, "n must"),
            ({"options": {"n": MAX_N + 1, "seed": 0}}, 422, "n must"),
            ({"options": {"n": 4, "seed": 0, "label": 10}}, 422, "label must"),
            ({"options": {"n": 4, "seed": "x"}}, 422, "seed must"),
            ({"options": {"n": 4, "style": "bold"}}, 422, "unknown option"),
            ({"array": [1, 2]}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[dict[str, Any]]:
        return [parse_options(request.get("options"), len(loaded.info["classes"]))]

    def forward(self, loaded: LoadedModel, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for opts in batch:
            n, n_cls = opts["n"], len(loaded.info["classes"])
            labels = torch.full((n,), opts["label"]) if opts["label"] is not None else torch.arange(n) % n_cls
            imgs = loaded.module.sample(n, labels, torch.Generator().manual_seed(opts["seed"]))
            out.append({**opts, "labels": labels.tolist(), "images": imgs[..., 0].numpy()})
        return out

    def postprocess(self, loaded: LoadedModel, output: dict[str, Any]) -> dict[str, Any]:
        classes = loaded.info["classes"]
        cols = math.ceil(math.sqrt(output["n"]))
        return {
            "n": output["n"],
            "seed": output["seed"],
            "labels": [classes[i] for i in output["labels"]],
            "media": png_bytes(grid(output["images"], cols)),
        }


def parse_options(opts: Any, n_classes: int) -> dict[str, Any]:
    """{n, seed[, label]} -> checked options, or InvalidInput(422) naming the problem."""
    if not isinstance(opts, dict):
        raise InvalidInput("options must be a JSON object {n, seed[, label]}", status=422)
    unknown = sorted(set(opts) - {"n", "seed", "label"})
    if unknown:
        raise InvalidInput(f"unknown option(s) {unknown}: send {{n, seed[, label]}}", status=422)

    def integer(key: str, lo: int, hi: int, default: int | None) -> int | None:
        v = opts.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) or not lo <= v <= hi:
            raise InvalidInput(f"{key} must be an integer in {lo}..{hi}, got {v!r}", status=422)
        return int(v)

    return {
        "n": integer("n", 1, MAX_N, 16),
        "seed": integer("seed", 0, 2**31 - 1, 0),
        "label": integer("label", 0, n_classes - 1, None),
    }


def grid(images: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """uint8 N x H x W -> one uint8 image, ``cols`` per row, ``pad`` black pixels between."""
    n, h, w = images.shape
    rows = math.ceil(n / cols)
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad), dtype=np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return out


def fallback_judge(data: GenData, width: int, blocks: int, steps: int, seed: int) -> ResidualCNN:
    """A ResidualCNN classifier trained on the training split at 8x8 (when no registry judge is given)."""
    engine.seed_everything(seed + 17)  # the judge's initial weights
    net = ResidualCNN(data.info["image_shape"][2], len(data.info["classes"]), JUDGE_SIZE, width, blocks, 0.0)
    x = F.avg_pool2d(data.x["train"].permute(0, 3, 1, 2).float() / 255, 32 // JUDGE_SIZE)
    x = (x - 0.5) / 0.5
    y = data.y["train"]

    def batches(gen: torch.Generator):
        while True:
            idx = torch.randint(0, len(x), (64,), generator=gen)
            yield x[idx], y[idx]

    recipe = Recipe(
        batches,
        lambda b: {"loss": F.cross_entropy(net(b[0]), b[1])},
        steps,
        optimizers=lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3),
        schedule=None,
    )
    engine.train(net, recipe, TaskConfig(epochs=1, batch_size=64, grad_clip=0.0, seed=seed + 17), lambda m, s: None)
    return net.requires_grad_(False)
