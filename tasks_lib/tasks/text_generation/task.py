"""The text generation task: Tiny Shakespeare, a character-level GPT, n-gram baselines."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tasks_lib.core import expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, read_info, sha1_bytes, split_sizes
from tasks_lib.core.engine import lambda_schedule
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer, Options, StrictInt
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.core.text import check_text, text_expectations, utf8_valid
from tasks_lib.tasks.text_generation.model import CharGPT
from tasks_lib.tasks.text_generation.readers import (
    TS_DIR,
    TS_URL,
    CharNgram,
    locate_tiny_shakespeare,
    loss_metrics,
    read_tiny_shakespeare,
    split_speeches,
)

UNK_CHAR = "\x00"  # id 0: characters never seen in training
MAX_PROMPT_CHARS = 2000
MAX_NEW_TOKENS = 1000
OPTION_KEYS = ("max_new_tokens", "temperature", "top_k", "seed")


class GenerationOptions(Options):
    """How to continue the prompt."""

    max_new_tokens: StrictInt = Field(200, ge=1, le=MAX_NEW_TOKENS, description="characters to generate")
    temperature: float = Field(0.8, gt=0, le=5, description="sampling temperature")
    top_k: StrictInt = Field(0, ge=0, description="sample from the k likeliest characters (0: all)")
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="random seed")


@dataclass(frozen=True)
class TextGenerationData(DataConfig):
    train_fraction: float = 0.9  # first 90 % of the corpus trains (the usual char-rnn split)
    val_fraction: float = 0.05  # the next 5 % validates; the last 5 % is the test split
    test_fraction: float = 0.05
    max_chars: int = 0  # 0 = the whole corpus; smoke uses a prefix


@dataclass(frozen=True)
class TextGenerationConfig(TaskConfig):
    epochs: int = 4
    steps_per_epoch: int = 250  # an "epoch" is this many random windows batches (the corpus is one stream)
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_fraction: float = 0.1  # cosine decay to lr * this
    warmup_steps: int = 100
    weight_decay: float = 0.1
    block_size: int = 64  # context length in characters
    dim: int = 128
    layers: int = 4
    heads: int = 4
    dropout: float = 0.0
    eval_windows: int = 0  # val windows for the per-epoch estimate; 0 = the whole split


@dataclass
class CharData:
    ids: dict[str, torch.Tensor]  # int64 character ids per split, one stream each
    info: dict[str, Any]


class GenerationAnswer(Answer):
    prompt: str
    generated: str
    text: str = Field(description="prompt + generated")
    unknown_prompt_characters: int
    options: dict[str, float] = Field(description="the options used")


@register
class TextGeneration(Task):
    """Character-level language model and sampler (seed examples 16, 23)."""

    name = "text_generation"
    seed_sections = (16, 23)
    metric = "loss"  # nats per character on the split, lower is better
    greater_is_better = False
    request_fields = ("text", "options")
    answer_model = GenerationAnswer
    options_model = GenerationOptions
    batchable = False  # options (length, temperature, seed) differ per request
    config_cls = TextGenerationConfig
    data_config_cls = TextGenerationData
    default_source = "tinyshakespeare"
    profiles = {
        "smoke": {
            "data": {"max_chars": 60_000},
            "train": {"epochs": 2, "steps_per_epoch": 20, "dim": 32, "layers": 1, "heads": 2, "block_size": 32},
        },
        "quick": {"train": {"epochs": 4, "steps_per_epoch": 250, "eval_windows": 200}},  # test loss 1.82
        "full": {
            "train": {
                "epochs": 25,
                "steps_per_epoch": 200,
                "batch_size": 64,
                "block_size": 256,
                "dim": 384,
                "layers": 6,
                "heads": 6,
                "dropout": 0.2,
                "lr": 1e-3,
                "warmup_steps": 200,
                "compile": True,
            }
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "tinyshakespeare": DataSource(
                "tinyshakespeare",
                f"Tiny Shakespeare input.txt from --path (file, folder or URL), the mirror's {TS_DIR}/, or {TS_URL}",
                "url",
            )
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: TextGenerationData, out: Path) -> Prepared:
        if abs(dcfg.train_fraction + dcfg.val_fraction + dcfg.test_fraction - 1) > 1e-9:
            raise ValueError("train_fraction + val_fraction + test_fraction must be 1")
        with tempfile.TemporaryDirectory() as tmp:
            text = read_tiny_shakespeare(locate_tiny_shakespeare(dcfg.path, Path(tmp)))
        if dcfg.max_chars:
            text = text[: dcfg.max_chars]
        # Contiguous split by character position of each speech's start (no shuffling: a
        # language model is judged on text that follows its training text).
        speeches, starts, pos = split_speeches(text), [], 0
        for s in speeches:
            pos = text.index(s, pos)
            starts.append(pos)
            pos += len(s)
        cut1, cut2 = dcfg.train_fraction * len(text), (dcfg.train_fraction + dcfg.val_fraction) * len(text)
        split = np.array(["train" if p < cut1 else "val" if p < cut2 else "test" for p in starts], dtype=object)
        # Exact duplicate speeches ("Ay.", "Exeunt") would sit in several splits: keep the first.
        hashes = [sha1_bytes(s.encode("utf-8", errors="replace")) for s in speeches]
        first: dict[str, int] = {}
        keep = [i for i, h in enumerate(hashes) if first.setdefault(h, i) == i]
        n_removed = len(speeches) - len(keep)
        speeches = [speeches[i] for i in keep]
        hashes = [hashes[i] for i in keep]
        split = split[keep]

        streams = {s: "".join(sp + "\n\n" for sp, sx in zip(speeches, split, strict=True) if sx == s) for s in SPLITS}
        chars = [UNK_CHAR, *sorted(set(streams["train"]))]
        index = {c: i for i, c in enumerate(chars)}
        out.mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            (out / f"{s}.txt").write_text(streams[s], encoding="utf-8")
            np.save(out / f"{s}_ids.npy", np.array([index.get(c, 0) for c in streams[s]], dtype=np.uint8))
        manifest = pd.DataFrame(
            {
                "sample_id": [f"speech/{i}" for i in range(len(speeches))],
                "split": split,
                "text": speeches,
                "n_chars": [len(s) for s in speeches],
                "n_tokens": [len(s) for s in speeches],  # characters are the tokens
                "n_lines": [s.count("\n") + 1 for s in speeches],
                "n_unknown_chars": [sum(c not in index for c in s) for s in speeches],
                "utf8_valid": [utf8_valid(s) for s in speeches],
                "sha1": hashes,
            }
        )
        manifest = add_leak_column(manifest)
        info = {
            "source": dcfg.source,
            "chars": chars,
            "n_chars": {s: len(streams[s]) for s in SPLITS},
            "n_speeches": split_sizes(split),
            "duplicates_removed": n_removed,
            "split": "contiguous: first train_fraction train, then val, then test (by speech start)",
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        exp = text_expectations(info, 1, 20_000, 30)
        exp += [
            expect.in_set("n_unknown_chars", [0], "every training character is in the vocabulary", {"split": "train"}),
            expect.between("n_unknown_chars", 0, 5, "val/test use (almost) only characters seen in training"),
            expect.between("n_lines", 1, 400, "speeches are blocks of lines"),
        ]
        return exp

    def load(self, data_dir: Path) -> CharData:
        data_dir = Path(data_dir)
        ids = {s: torch.from_numpy(np.load(data_dir / f"{s}_ids.npy").astype(np.int64)) for s in SPLITS}
        return CharData(ids=ids, info=read_info(data_dir))

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: TextGenerationConfig, info: dict[str, Any]) -> nn.Module:
        return CharGPT(len(info["chars"]), cfg.block_size, cfg.dim, cfg.layers, cfg.heads, cfg.dropout)

    @staticmethod
    def _lr_factor(cfg: TextGenerationConfig, step: int, total: int) -> float:
        """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_fraction`` of the peak."""
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(total - cfg.warmup_steps, 1)
        floor = cfg.min_lr_fraction
        return floor + 0.5 * (1 - floor) * (1 + math.cos(math.pi * min(frac, 1.0)))

    def training(self, model: CharGPT, data: CharData, cfg: TextGenerationConfig) -> Recipe:
        """Random windows of the training stream; an epoch is ``steps_per_epoch`` batches."""
        train = data.ids["train"]
        t = min(cfg.block_size, len(train) - 1)
        offsets = torch.arange(t + 1)

        def batches(gen: torch.Generator):
            while True:
                starts = torch.randint(0, len(train) - t, (cfg.batch_size,), generator=gen)
                chunk = train[starts[:, None] + offsets]
                yield chunk[:, :-1], chunk[:, 1:]

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            x, y = batch
            logits = model(x)
            return {"loss": F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))}

        return Recipe(
            batches,
            step,
            cfg.steps_per_epoch,
            schedule=lambda_schedule(lambda s, total: self._lr_factor(cfg, s, total)),
            validate=lambda: self._losses(model, data.ids["val"], cfg.eval_windows),
            samples=lambda b: b[0].numel(),  # characters
        )

    @torch.no_grad()
    def _losses(self, model: CharGPT, ids: torch.Tensor, max_windows: int = 0) -> dict[str, float]:
        """Mean next-character NLL over non-overlapping windows of ``block_size`` covering the split."""
        model.eval()
        t = model.block_size
        n = (len(ids) - 1) // t
        if max_windows:
            n = min(n, max_windows)
        if n == 0:
            return loss_metrics(float("nan"))
        x = ids[: n * t].view(n, t)
        y = ids[1 : n * t + 1].view(n, t)
        total = 0.0
        device = next(model.parameters()).device
        for s in range(0, n, 256):
            logits = model(x[s : s + 256].to(device)).float()
            total += float(
                F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), y[s : s + 256].reshape(-1).to(device), reduction="sum"
                )
            )
        return loss_metrics(total / (n * t))

    def evaluate(self, model: nn.Module, data: CharData, split: str = "test") -> dict[str, float]:
        return self._losses(model, data.ids[split])

    def baseline(self, data: CharData, split: str = "test") -> dict[str, float]:
        """Bigram character model (add-0.1), with the unigram model beside it; fitted on train."""
        v = len(data.info["chars"])
        train, target = data.ids["train"].numpy(), data.ids[split].numpy()
        uni = CharNgram(1, v).fit(train).loss(target)
        bi = CharNgram(2, v).fit(train).loss(target)
        return {**loss_metrics(bi), "unigram_loss": uni, "bigram_loss": bi}

    def examples(self, model: nn.Module, data: CharData) -> dict[str, Any]:
        chars = data.info["chars"]
        test = "".join(chars[i] for i in data.ids["test"][:4000].tolist())
        blocks = [b for b in test.split("\n\n") if len(b) > 60][:4]
        lines = ["# Generated samples (test-split prompts)", ""]
        for i, block in enumerate(blocks):
            prompt, actual = block[:40], block[40:240]
            for temp in (0.8, 1.0):
                gen = self._generate(model, data.info, prompt, 200, temp, 20, seed=i)
                lines += [f"## prompt {i}, temperature {temp}, top_k 20", "", "```", prompt + gen, "```", ""]
            lines += [f"## prompt {i}: actual continuation", "", "```", prompt + actual, "```", ""]
        free = self._generate(model, data.info, "\n", 500, 0.8, 0, seed=0)
        lines += ["## unprompted (a newline), temperature 0.8", "", "```", free, "```"]
        return {"generated_samples.md": "\n".join(lines)}

    # -- serving ----------------------------------------------------------------
    @staticmethod
    def _generate(
        model: CharGPT, info: dict[str, Any], prompt: str, n: int, temperature: float, top_k: int, seed: int
    ) -> str:
        chars = info["chars"]
        index = {c: i for i, c in enumerate(chars)}
        device = next(model.parameters()).device
        ids = torch.tensor([[index.get(c, index.get(" ", 0)) for c in prompt]], device=device)
        gen = torch.Generator(device=device).manual_seed(seed)
        model.eval()
        out = model.generate(ids, n, temperature, top_k, gen)[0, ids.shape[1] :].tolist()
        return "".join(chars[i] for i in out)

    def request_examples(self, data: CharData, n: int) -> list[Request]:
        chars = data.info["chars"]
        test = "".join(chars[i] for i in data.ids["test"][:20000].tolist())
        prompts = [b[:30] for b in test.split("\n\n") if len(b) > 30][:n]
        return [
            {"text": p, "options": {"max_new_tokens": 40, "temperature": 0.8, "top_k": 20, "seed": i}}
            for i, p in enumerate(prompts)
        ]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"text": "   "}, 422, "empty"),
            ({"text": "x" * (MAX_PROMPT_CHARS + 1)}, 413, "too long"),
            ({"text": "ROMEO:", "options": {"temperature": 0}}, 422, "temperature"),
            ({"text": "ROMEO:", "options": {"max_new_tokens": MAX_NEW_TOKENS + 1}}, 422, "max_new_tokens"),
            ({"text": "ROMEO:", "options": {"top_k": -1}}, 422, "top_k"),
            ({"text": "ROMEO:", "options": {"seed": "x"}}, 422, "seed"),
            ({"text": "ROMEO:", "options": {"beams": 4}}, 422, "beams"),
            ({"options": {"max_new_tokens": 5}}, 422, "'text'"),
        ]

    @staticmethod
    def _options(raw: Any, vocab_size: int) -> dict[str, Any]:
        raw = raw or {}
        if not isinstance(raw, dict):
            raise InvalidInput("'options' must be a JSON object", status=422)
        unknown = sorted(set(raw) - set(OPTION_KEYS))
        if unknown:
            raise InvalidInput(f"unknown option(s) {unknown}: use {', '.join(OPTION_KEYS)}", status=422)
        opt = {"max_new_tokens": 200, "temperature": 0.8, "top_k": 0, "seed": 0} | raw

        def integer(key: str, lo: int, hi: int) -> int:
            v = opt[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InvalidInput(f"option {key} must be an integer in [{lo}, {hi}], got {v!r}", status=422)
            return v

        t = opt["temperature"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 5:
            raise InvalidInput(f"option temperature must be a number in (0, 5], got {t!r}", status=422)
        return {
            "max_new_tokens": integer("max_new_tokens", 1, MAX_NEW_TOKENS),
            "temperature": float(t),
            "top_k": integer("top_k", 0, vocab_size),
            "seed": integer("seed", 0, 2**31 - 1),
        }

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[dict[str, Any]]:
        if "text" not in request:
            raise InvalidInput("the prompt 'text' is missing", status=422)
        prompt = check_text(request["text"], "text", MAX_PROMPT_CHARS)
        return [{"prompt": prompt, **self._options(request.get("options"), len(loaded.info["chars"]))}]

    def forward(self, loaded: LoadedModel, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        outs = []
        for item in batch:
            text = self._generate(
                loaded.module,
                loaded.info,
                item["prompt"],
                item["max_new_tokens"],
                item["temperature"],
                item["top_k"],
                item["seed"],
            )
            outs.append({**item, "generated": text})
        return outs

    def postprocess(self, loaded: LoadedModel, output: dict[str, Any]) -> dict[str, Any]:
        known = set(loaded.info["chars"][1:])
        return {
            "prompt": output["prompt"],
            "generated": output["generated"],
            "text": output["prompt"] + output["generated"],
            "unknown_prompt_characters": sum(c not in known for c in output["prompt"]),
            "options": {k: output[k] for k in OPTION_KEYS},
        }
