"""Image captioning (seed example 5): CNN encoder + Transformer decoder, beam search at inference.

Sources: generated scenes (default, offline; ``scenes.py``: one or two coloured shapes or
digits on real scikit-image textures with a compositional caption such as "a large red
circle left of a small blue square"; the test split holds (colour, kind) pairs never seen in
training, listed in ``held_out``), a COCO captions JSON with its images, or Flickr8k
(``readers.py``). Images are resized to a fixed square, so requests batch. The word
vocabulary is built from the training captions and kept in the model's ``info``, so a
served bundle decodes on its own.

Metrics (``metrics.py``): corpus BLEU-4 (sacrebleu, on a 0-1 scale; the primary metric),
BLEU-1 precision, CIDEr-D and exact match, beside a nearest-neighbour retrieval baseline
(the caption of the closest training image in 16x16 pixel space) on the same split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from torch import nn

from tasks_lib.core import expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes, split_sizes
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.images import image_from_request, png_bytes, to_model_array
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer, Options, StrictInt
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.core.text import build_vocab
from tasks_lib.tasks.image_captioning import scenes
from tasks_lib.tasks.image_captioning.metrics import caption_metrics, caption_tokens
from tasks_lib.tasks.image_captioning.model import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Captioner
from tasks_lib.tasks.image_captioning.readers import read_coco_captions, read_flickr8k

MAX_BEAM = 8  # served beam widths 1..MAX_BEAM
NN_SIDE = 16  # the retrieval baseline compares images downsampled to this side


class CaptionOptions(Options):
    beam_size: StrictInt | None = Field(None, ge=1, le=MAX_BEAM, description="beam width (default: the trained one)")


@dataclass(frozen=True)
class CaptionData(DataConfig):
    image_size: int = 64  # model input side; COCO / Flickr8k images are resized to it
    n_scenes: int = 6000  # generated scenes over all splits
    two_object_fraction: float = 0.85  # generated: share of scenes with two objects (the rest: one)
    small_min: float = 0.16  # generated object sides, fraction of image_size: small class ...
    small_max: float = 0.24
    large_min: float = 0.34  # ... and large class (disjoint ranges: the size word is visible)
    large_max: float = 0.44
    held_out: str = scenes.DEFAULT_HELD_OUT  # "colour kind" pairs only test scenes hold
    scene_seed: int = 0
    max_caption_words: int = 24  # longer captions (COCO / Flickr8k) are dropped at prepare
    vocab_min_freq: int = 1  # real captions: rarer words become <unk>


@dataclass(frozen=True)
class CaptionConfig(TaskConfig):
    epochs: int = 12
    lr: float = 2e-3
    weight_decay: float = 0.01
    width: int = 32  # encoder channels at full resolution; x2 and x4 deeper
    dim: int = 128  # decoder width (and encoder token width)
    layers: int = 3  # decoder layers
    heads: int = 4
    dropout: float = 0.1
    label_smoothing: float = 0.05
    beam_size: int = 3  # evaluation and serving default; 1 = greedy
    length_penalty: float = 0.0  # beam ranking: log p / length ** length_penalty
    val_images: int = 400  # validation images decoded (greedily) after each epoch


@dataclass
class CaptionSet:
    x: dict[str, np.ndarray]  # uint8 NxSxSx3 per split
    captions: dict[str, list[list[str]]]  # references per image
    info: dict[str, Any]


class Vocab:
    """Words <-> ids with the specials of ``model.py``; unknown words map to <unk>."""

    def __init__(self, words: list[str]):
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    def encode(self, text: str, max_len: int) -> np.ndarray:
        """<bos> words <eos> then <pad>, length max_len + 2 (longer captions are cut)."""
        ids = [self.index.get(w, UNK_ID) for w in caption_tokens(text)][:max_len]
        out = np.full(max_len + 2, PAD_ID, dtype=np.int64)
        out[: len(ids) + 2] = [BOS_ID, *ids, EOS_ID]
        return out

    def decode(self, ids) -> list[str]:
        words = []
        for i in ids:
            i = int(i)
            if i in (EOS_ID, PAD_ID):
                break
            if i != BOS_ID:
                words.append(self.words[i] if 0 <= i < len(self.words) else SPECIALS[UNK_ID])
        return words


class CaptionAnswer(Answer):
    caption: str
    tokens: list[str]
    log_prob: float


@register
class ImageCaptioning(Task):
    """One sentence describing an image (seed example 5)."""

    name = "image_captioning"
    seed_sections = (5,)
    metric = "bleu4"
    request_fields = ("image", "array", "options")
    answer_model = CaptionAnswer
    options_model = CaptionOptions
    batchable = True  # every request is resized to image_size; the beam width rides in the row
    config_cls = CaptionConfig
    data_config_cls = CaptionData
    default_source = "scenes"
    profiles = {
        "smoke": {
            "data": {"n_scenes": 90},
            "train": {"epochs": 2, "batch_size": 16, "width": 8, "dim": 32, "layers": 1, "heads": 2, "val_images": 20},
        },
        "quick": {"data": {"n_scenes": 6000}, "train": {"epochs": 8}},  # ~50 CPU s per epoch (1 thread)
        "full": {
            "data": {"n_scenes": 40000, "image_size": 96},
            "train": {"epochs": 40, "batch_size": 128, "width": 48, "dim": 256, "layers": 4, "heads": 8},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "scenes": DataSource(
                "scenes",
                "generated scenes of one or two coloured shapes/digits on scikit-image textures with compositional "
                "captions; test scenes hold held-out colour-kind pairs (offline)",
                "generator",
            ),
            "coco": DataSource(
                "coco",
                "COCO captions JSON (annotations/captions_*.json) and its images at --path (file or folder)",
                "folder",
                needs_path=True,
            ),
            "flickr8k": DataSource(
                "flickr8k",
                "Flickr8k folder at --path: Flickr8k.token.txt and Flicker8k_Dataset/ (or Images/)",
                "folder",
                needs_path=True,
            ),
        }

    # -- data -------------------------------------------------------------------
    def _generate(self, dcfg: CaptionData) -> tuple[np.ndarray, list[list[str]], np.ndarray, np.ndarray]:
        """(images, captions, split, held-out flag): test scenes each hold a held-out pair, train/val none."""
        held_out = scenes.parse_pairs(dcfg.held_out)
        if not held_out:
            raise ValueError("held_out names no colour-kind pair: the test split would not test composition")
        s = dcfg.image_size
        small = (max(4, round(dcfg.small_min * s)), max(4, round(dcfg.small_max * s)))
        large = (max(small[1] + 1, round(dcfg.large_min * s)), max(small[1] + 1, round(dcfg.large_max * s)))
        n_test = max(1, round(dcfg.n_scenes * dcfg.test_fraction))
        n_val = max(1, round(dcfg.n_scenes * dcfg.val_fraction))
        n_train = max(1, dcfg.n_scenes - n_test - n_val)
        parts = []
        # Each split is generated from its own seed (and test scenes from held-out pairs): no scene crosses
        # splits, and a split's first scenes stay the same when n_scenes grows, so no hash split is needed.
        for k, (sp, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
            rng = np.random.default_rng([dcfg.scene_seed, k])
            x, caps = scenes.generate(rng, n, s, held_out, sp == "test", dcfg.two_object_fraction, small, large)
            parts.append((x, caps, sp))
        x = np.concatenate([p[0] for p in parts])
        caps = [[c] for p in parts for c in p[1]]
        split = np.concatenate([np.full(len(p[1]), p[2], dtype=object) for p in parts])
        return x, caps, split, split == "test"

    def _read(self, dcfg: CaptionData) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
        if not dcfg.path:
            raise ValueError(f"source '{dcfg.source}' needs --path")
        if dcfg.source == "coco":
            x, caps, fixed, _ = read_coco_captions(Path(dcfg.path), dcfg.image_size)
        else:
            x, caps, fixed, _ = read_flickr8k(Path(dcfg.path), dcfg.image_size)
        caps = [[c for c in refs if 0 < len(caption_tokens(c)) <= dcfg.max_caption_words] for refs in caps]
        keep = np.array([bool(c) for c in caps], dtype=bool)
        x, caps = x[keep], [c for c, k in zip(caps, keep, strict=True) if k]
        fixed = fixed[keep] if fixed is not None else None
        split = np.empty(len(x), dtype=object)
        free = np.flatnonzero(fixed == "") if fixed is not None else np.arange(len(x))
        if fixed is not None:
            split[fixed != ""] = fixed[fixed != ""]
        # the upstream split wins; what it leaves free is split by image content hash (stable under growth)
        has_test = fixed is not None and (fixed == "test").any()
        has_val = fixed is not None and (fixed == "val").any()
        split[free] = hash_split(
            [sha1_bytes(x[i].tobytes()) for i in free],
            0.0 if has_val else dcfg.val_fraction,
            0.0 if has_test else dcfg.test_fraction,
            dcfg.split_seed,
        )
        return x, caps, split

    def prepare(self, dcfg: CaptionData, out: Path) -> Prepared:
        if dcfg.source == "scenes":
            x, caps, split, held = self._generate(dcfg)
        elif dcfg.source in ("coco", "flickr8k"):
            x, caps, split = self._read(dcfg)
            held = np.zeros(len(x), dtype=bool)
        else:
            raise ValueError(f"unknown source {dcfg.source}")
        hashes = np.array([sha1_bytes(img.tobytes()) for img in x])
        _, first = np.unique(hashes, return_index=True)
        keep = np.sort(first)  # the same image twice could sit in two splits: keep one copy
        if dcfg.max_samples:
            keep = keep[: dcfg.max_samples]
        words = build_vocab(
            (caption_tokens(c) for i in keep[split[keep] == "train"] for c in caps[i]), min_freq=dcfg.vocab_min_freq
        )[2:]  # build_vocab adds <pad>, <unk>: ours has four specials
        vocab = [*SPECIALS, *words]
        known = set(vocab)

        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for sp in SPLITS:
            idx = keep[split[keep] == sp]
            np.save(out / f"{sp}_x.npy", x[idx])
            refs = [caps[i] for i in idx]
            (out / f"{sp}_captions.json").write_text(json.dumps(refs, indent=0) + "\n")
            toks = [[caption_tokens(c) for c in r] for r in refs]
            rows.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{sp}/{i}" for i in range(len(idx))],
                        "split": sp,
                        "height": [int(x.shape[1])] * len(idx),
                        "width": [int(x.shape[2])] * len(idx),
                        "pixel_std": [float(x[i].std()) for i in idx],
                        "n_captions": [len(r) for r in refs],
                        "min_chars": [min(len(c.strip()) for c in r) for r in refs],
                        "min_words": [min(len(t) for t in ts) for ts in toks],
                        "max_words": [max(len(t) for t in ts) for ts in toks],
                        "oov_words": [sum(w not in known for t in ts for w in t) for ts in toks],
                        "held_out_pair": held[idx],
                        "caption": [r[0] for r in refs],
                        "sha1": hashes[idx],
                    }
                )
            )
        manifest = add_leak_column(pd.concat(rows, ignore_index=True))
        train_words = manifest.loc[manifest.split == "train", "max_words"]
        info = {
            "source": dcfg.source,
            "image_size": int(dcfg.image_size),
            "vocab": vocab,
            "max_len": int(train_words.max()) if len(train_words) else 1,
            "max_caption_words": dcfg.max_caption_words,
            "held_out": [f"{c} {k}" for c, k in scenes.parse_pairs(dcfg.held_out)] if dcfg.source == "scenes" else [],
            "n_samples": split_sizes(manifest.split),
            "duplicates_removed": int(len(x) - len(first)),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        s, generated = info["image_size"], info["source"] == "scenes"
        most = info["max_caption_words"]
        exp = [
            expect.min_rows(20, "too few images to train on"),
            expect.all_splits(),
            *expect.frame_size(s, s, "one input size"),
            expect.between(
                "pixel_std", 1.0, None, "images are not flat (a failed or truncated decode leaves a uniform image)"
            ),
            expect.between("n_captions", 1, None, "every image has a caption"),
            expect.between("min_chars", 1, None, "no empty caption"),
            expect.between("min_words", 1, most, "every caption has at least one word"),
            expect.between("max_words", 1, most, f"captions are at most {most} words (the decoder's length)"),
            expect.in_set(
                "oov_words",
                [0],
                "the vocabulary is built from the training captions: every training word is in it",
                {"split": "train"},
            ),
            expect.no_leak("no image in two splits (test leakage)"),
        ]
        if generated:
            exp += [
                expect.in_set(
                    "oov_words",
                    [0],
                    "generated test captions use only words seen in training (only their combination is new)",
                ),
                expect.in_set(
                    "held_out_pair",
                    [True],
                    "every test scene holds a held-out colour-kind pair (compositional test)",
                    {"split": "test"},
                ),
            ]
            for sp in ("train", "val"):
                exp.append(
                    expect.in_set(
                        "held_out_pair",
                        [False],
                        "held-out colour-kind pairs never appear in train or val",
                        {"split": sp},
                    )
                )
                for pair in info["held_out"]:
                    exp.append(
                        Expectation(
                            "expect_column_values_to_not_match_regex",
                            {"column": "caption", "regex": rf"\b{pair}\b"},
                            f"'{pair}' is held out for the test split",
                            where={"split": sp},
                        )
                    )
        return exp

    def load(self, data_dir: Path) -> CaptionSet:
        data_dir = Path(data_dir)
        x = {sp: np.load(data_dir / f"{sp}_x.npy") for sp in SPLITS}
        caps = {sp: json.loads((data_dir / f"{sp}_captions.json").read_text()) for sp in SPLITS}
        return CaptionSet(x, caps, read_info(data_dir))

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: CaptionConfig, info: dict[str, Any]) -> nn.Module:
        return Captioner(
            list(info["vocab"]),
            int(info["max_len"]),
            int(info["image_size"]),
            cfg.width,
            cfg.dim,
            cfg.layers,
            cfg.heads,
            cfg.dropout,
            beam_size=cfg.beam_size,
            length_penalty=cfg.length_penalty,
        )

    def training(self, model: nn.Module, data: CaptionSet, cfg: CaptionConfig) -> Recipe:
        vocab, max_len = Vocab(data.info["vocab"]), int(data.info["max_len"])
        x = torch.from_numpy(data.x["train"])
        refs = data.captions["train"]
        # every reference encoded once; each epoch draws one reference per image
        encoded = [torch.from_numpy(np.stack([vocab.encode(c, max_len) for c in r])) for r in refs]
        n = len(x)
        n_batches = max(1, n // cfg.batch_size) if n > cfg.batch_size else 1
        loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_ID, label_smoothing=cfg.label_smoothing)

        def batches(gen: torch.Generator):
            perm = torch.randperm(n, generator=gen)
            pick = torch.randint(0, 1 << 30, (n,), generator=gen)
            for i in range(n_batches):
                idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                tokens = torch.stack([encoded[j][pick[j] % len(encoded[j])] for j in idx.tolist()])
                yield x[idx], tokens

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            images, tokens = batch
            logits = model(images, tokens[:, :-1])
            return {"loss": loss_fn(logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))}

        def validate() -> dict[str, float]:
            k = min(cfg.val_images, len(data.x["val"]))
            if not k:
                return {}
            val = caption_metrics(self.captions(model, data.x["val"][:k], beam_size=1), data.captions["val"][:k])
            return {m: val[m] for m in ("bleu4", "cider", "exact_match")}

        return Recipe(batches, step, n_batches, validate=validate)

    @torch.no_grad()
    def _generate_ids(
        self, model: nn.Module, x: np.ndarray, beam_size: int, length_penalty: float = 0.0, batch: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (N x max_len+1) and log-probabilities (N) for uint8 images."""
        model.eval()
        device = next(model.parameters()).device
        ids, scores = [], []
        for start in range(0, len(x), batch):
            images = torch.from_numpy(np.ascontiguousarray(x[start : start + batch])).to(device)
            out, sc = model.generate(images, beam_size, length_penalty)
            ids.append(out.cpu().numpy())
            scores.append(sc.float().cpu().numpy())
        width = model.max_len + 1
        return (np.concatenate(ids) if ids else np.zeros((0, width), np.int64)), (
            np.concatenate(scores) if scores else np.zeros(0, np.float32)
        )

    def captions(self, model: nn.Module, x: np.ndarray, beam_size: int | None = None) -> list[str]:
        """Decoded captions of uint8 images; ``beam_size`` None = the model's configured width."""
        words = Vocab(model.vocab)
        ids, _ = self._generate_ids(model, x, beam_size or model.beam_size, model.length_penalty)
        return [" ".join(words.decode(r)) for r in ids]

    def evaluate(self, model: nn.Module, data: CaptionSet, split: str = "test", beam_size: int | None = None) -> dict:
        return caption_metrics(self.captions(model, data.x[split], beam_size), data.captions[split])

    def baseline(self, data: CaptionSet, split: str = "test") -> dict[str, float]:
        """Nearest-neighbour retrieval: the first caption of the closest training image (16x16 pixels, L2)."""
        return caption_metrics(nearest_captions(data, split), data.captions[split])

    def examples(self, model: nn.Module, data: CaptionSet) -> dict[str, Any]:
        from tasks_lib.tasks.image_captioning.figures import captions_figure

        k = min(16, len(data.x["test"]))
        hyps = self.captions(model, data.x["test"][:k])
        nn_caps = nearest_captions(data, "test")[:k]
        refs = data.captions["test"][:k]
        fig = captions_figure(data.x["test"][:k], hyps, refs)
        m, b = self.evaluate(model, data, "test"), self.baseline(data, "test")
        lines = ["| # | reference | model | nearest neighbour |", "|---|---|---|---|"]
        lines += [f"| {i} | {r[0]} | {h} | {c} |" for i, (r, h, c) in enumerate(zip(refs, hyps, nn_caps, strict=True))]
        lines += ["", "| metric | model | nearest neighbour |", "|---|---|---|"]
        lines += [f"| {key} | {m[key]:.4f} | {b[key]:.4f} |" for key in m]
        if data.info.get("held_out"):
            lines += ["", f"Held out of train/val (every test scene holds one): {', '.join(data.info['held_out'])}."]
        return {"test_captions.png": fig, "test_captions.md": "\n".join(lines) + "\n"}

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: CaptionSet, n: int) -> list[Request]:
        out: list[Request] = [{"image": png_bytes(img)} for img in data.x["test"][:n]]
        if n > 1:
            out[-1] = {"array": data.x["test"][n - 1].tolist(), "options": {"beam_size": 1}}
        return out

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        broken = png_bytes(noise)[:1500]  # a PNG cut short
        pixels = noise.tolist()
        return [
            ({"image": b"just some text"}, 415, "not an image"),
            ({"image": broken}, 400, "could not be decoded"),
            ({"array": [[0, 999]] * 4}, 422, "0-255"),
            ({"text": "a cat"}, 422, "not used"),
            ({"options": {"beam_size": 2}}, 422, "exactly one of"),
            ({"array": pixels, "options": {"beam_size": 0}}, 422, "beam_size must be"),
            ({"array": pixels, "options": {"beam_size": MAX_BEAM + 1}}, 422, "beam_size must be"),
            ({"array": pixels, "options": {"beam": 3}}, 422, "unknown option"),
            # options that are not a JSON object are refused by BentoML's schema (400) before the task sees them
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        """One flat float32 row: the resized pixels, then the beam width."""
        beam = parse_beam(request.get("options"), loaded.cfg.beam_size)
        img = image_from_request(request)
        s = loaded.info["image_size"]
        pixels = to_model_array(img, (s, s), 3).astype(np.float32).ravel()
        return [np.concatenate([pixels, np.array([beam], dtype=np.float32)])]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        """Per image [token ids (max_len + 1, <eos> then <pad>), log-probability] as float32."""
        s = loaded.info["image_size"]
        batch = np.asarray(batch, dtype=np.float32)
        x = batch[:, :-1].reshape(-1, s, s, 3).round().astype(np.uint8)
        beams = batch[:, -1].round().astype(int)
        out = np.zeros((len(batch), loaded.module.max_len + 2), dtype=np.float32)
        for beam in np.unique(beams):
            rows = np.flatnonzero(beams == beam)
            ids, scores = self._generate_ids(loaded.module, x[rows], int(beam), loaded.module.length_penalty)
            out[rows, :-1] = ids
            out[rows, -1] = scores
        return out

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        words = Vocab(loaded.info["vocab"]).decode(np.asarray(output[:-1]).round().astype(int))
        return {"caption": " ".join(words), "tokens": words, "log_prob": round(float(output[-1]), 4)}


def parse_beam(options: Any, default: int) -> int:
    """The beam width from ``{"beam_size": k}`` (1..MAX_BEAM), or InvalidInput(422) naming the problem."""
    if options is None:
        return default
    if not isinstance(options, dict):
        raise InvalidInput('options must be a JSON object such as {"beam_size": 3}', status=422)
    unknown = sorted(set(options) - {"beam_size"})
    if unknown:
        raise InvalidInput(f"unknown option(s) {unknown}: only beam_size is taken", status=422)
    k = options.get("beam_size", default)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_BEAM:
        raise InvalidInput(f"beam_size must be an integer from 1 to {MAX_BEAM}, got {k!r}", status=422)
    return k


def nearest_captions(data: CaptionSet, split: str) -> list[str]:
    """For each image of ``split``, the first caption of the nearest training image (16x16 pixels, L2)."""

    def small(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
        return nn.functional.adaptive_avg_pool2d(t, NN_SIDE).flatten(1)

    train = small(data.x["train"])
    out = []
    for start in range(0, len(data.x[split]), 512):
        q = small(data.x[split][start : start + 512])
        nearest = torch.cdist(q, train).argmin(1).tolist()
        out += [data.captions["train"][j][0] for j in nearest]
    return out
