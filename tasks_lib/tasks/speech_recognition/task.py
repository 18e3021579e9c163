"""The speech recognition task: data, expectations, CTC training, WER/CER, DTW baseline, serving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from tasks_lib.core import distributed, engine, expect
from tasks_lib.core.audio import (
    DIGIT_WORDS,
    audio_columns,
    audio_expectations,
    decode_wav,
    dtw_costs,
    espeak_many,
    fsdd_recordings,
    fsdd_source,
    fsdd_split,
    load_clips,
    mfcc,
    mix_at_snr,
    pink_noise,
    save_clips,
    spectrogram_figure,
    to_int16,
    trim_silence,
    wav_bad_requests,
    wav_bytes,
    white_noise,
)
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, read_info, read_manifest, sha1_bytes, split_sizes
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.speech_corpus import VOCAB, draw_texts, synth_jobs
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.core.text_metrics import error_rates
from tasks_lib.tasks.speech_recognition.model import CTCSpeechModel, beam_decode, greedy_decode, snap_to_lexicon

SAMPLE_RATE = 8000
MAX_REQUEST_SECONDS = 10.0  # the longest audio /predict takes
MAX_SECONDS = 8.0


@dataclass(frozen=True)
class SpeechRecognitionData(DataConfig):
    heldout_speaker: str = "theo"  # never in training: its recordings measure generalisation to a new voice
    fsdd_max_index: int = 0  # keep recordings with index < this (0 = all 50 per digit and speaker)
    val_indices: int = 3  # FSDD indices 5..5+val_indices-1 of training speakers go to validation
    synth_train: int = 600
    synth_val: int = 60
    synth_test: int = 150
    synth_seed: int = 0
    synth_snr_min: float = 10.0  # dB of white/pink noise added to the synthetic speech
    synth_snr_max: float = 30.0


@dataclass(frozen=True)
class SpeechRecognitionConfig(TaskConfig):
    epochs: int = 14
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    n_mels: int = 64
    width: int = 96
    blocks: int = 5
    kernel: int = 9
    dropout: float = 0.1
    spec_augment: bool = True  # mask random frequency bands and time spans while training
    speed_perturb: float = 0.1  # resample each batch by a factor in [1 - x, 1 + x] (tempo and pitch, as sox speed)
    fsdd_repeats: int = 2  # each FSDD recording appears this many times per epoch (the espeak corpus once)
    beam: int = 8  # prefix beam width for the "wer_beam" figure and serving


@dataclass
class SpeechData:
    clips: dict[str, list[np.ndarray]]
    rows: dict[str, pd.DataFrame]  # the manifest rows per split (text, group, speaker ...)
    info: dict[str, Any]


def encode_text(text: str) -> list[int]:
    return [VOCAB.index(c) + 1 for c in text]


def collate_audio(clips: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(c) for c in clips])
    wav = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        wav[i, : len(c)] = torch.from_numpy(np.asarray(c, dtype=np.float32))
    return wav, lengths


@torch.no_grad()
def log_probs(model: CTCSpeechModel, clips: list[np.ndarray], batch_size: int = 32) -> list[np.ndarray]:
    """Per-utterance (frames, vocab) log-probabilities; utterances batched by similar length."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(c) for c in clips])
    out: list[np.ndarray] = [np.zeros(0)] * len(clips)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        wav, lengths = collate_audio([clips[i] for i in idx])
        lp = model(wav.to(device), lengths.to(device)).float().cpu().numpy()
        n_out = model.output_lengths(lengths).numpy()
        for j, i in enumerate(idx):
            out[i] = lp[j, : n_out[j]]
    return out


def transcribe(model: CTCSpeechModel, clips: list[np.ndarray], beam: int = 0) -> list[str]:
    """Transcripts of 8 kHz mono clips: greedy (beam=0) or prefix beam search."""
    lps = log_probs(model, clips)
    return [beam_decode(lp, VOCAB, beam) if beam else greedy_decode(lp, VOCAB) for lp in lps]


class TranscriptAnswer(Answer):
    transcript: str = Field(description="beam search snapped to the lexicon")
    open_vocabulary: str = Field(description="beam search, no lexicon")
    greedy: str


@register
class SpeechRecognition(Task):
    """Speech to text: CTC over characters with a conformer-style conv encoder (seed examples 14, 26)."""

    name = "speech_recognition"
    seed_sections = (14, 26)
    metric = "wer"
    greater_is_better = False
    request_fields = ("audio",)
    answer_model = TranscriptAnswer
    batchable = False
    config_cls = SpeechRecognitionConfig
    data_config_cls = SpeechRecognitionData
    default_source = "fsdd_espeak"
    profiles = {
        "smoke": {
            "data": {
                "fsdd_max_index": 8,
                "max_samples": 100,
                "val_indices": 1,
                "synth_train": 16,
                "synth_val": 4,
                "synth_test": 6,
            },
            "train": {"epochs": 2, "width": 32, "blocks": 2, "n_mels": 32},
        },
        "quick": {"data": {"synth_train": 1200}, "train": {"epochs": 36}},
        "full": {
            "data": {"synth_train": 6000, "synth_val": 300, "synth_test": 500},
            "train": {"epochs": 60, "width": 256, "blocks": 12},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {"fsdd_espeak": fsdd_source("fsdd_espeak", "plus digit strings and sentences spoken by espeak-ng")}

    # -- data -------------------------------------------------------------------------
    def prepare(self, dcfg: SpeechRecognitionData, out: Path) -> Prepared:
        # smoke: a fixed random subset (max_samples)
        recordings = fsdd_recordings(dcfg.path, SAMPLE_RATE, dcfg.max_samples, dcfg.split_seed, dcfg.fsdd_max_index)
        speakers = sorted({r["speaker"] for r in recordings})
        if dcfg.heldout_speaker and dcfg.heldout_speaker not in speakers:
            raise ValueError(f"heldout_speaker '{dcfg.heldout_speaker}' is not among the FSDD speakers {speakers}")
        samples: list[dict] = []
        for r in recordings:
            if r["speaker"] == dcfg.heldout_speaker:
                split, group = "test", "unseen_speaker"
            else:
                split, group = fsdd_split(r["index"], dcfg.val_indices), "fsdd"
            samples.append(
                {"split": split, "group": group, "source": "fsdd", "speaker": r["speaker"], "voice": "",
                 "text": DIGIT_WORDS[r["digit"]], "audio": r["audio"], "origin": r["file"]}
            )  # fmt: skip

        counts = {"train": dcfg.synth_train, "val": dcfg.synth_val, "test": dcfg.synth_test}
        texts = draw_texts({k: v for k, v in counts.items() if v > 0}, dcfg.synth_seed)
        jobs = synth_jobs([t for _, _, t in texts], dcfg.synth_seed + 1)
        clips = espeak_many(jobs, SAMPLE_RATE)
        rng = np.random.default_rng(dcfg.synth_seed + 2)
        for (split, kind, text), (_, voice, speed, pitch), clip in zip(texts, jobs, clips, strict=True):
            clip = trim_silence(clip, pad=400)
            clip = 0.5 * clip / (np.abs(clip).max() + 1e-8)
            noise = white_noise(len(clip), rng) if rng.random() < 0.5 else pink_noise(len(clip), rng)
            clip = mix_at_snr(clip, noise, rng.uniform(dcfg.synth_snr_min, dcfg.synth_snr_max))
            clip = clip * (0.9 / max(np.abs(clip).max(), 0.9))  # never clip
            samples.append(
                {"split": split, "group": f"synth_{kind}", "source": "espeak", "speaker": voice.replace("+", "_"),
                 "voice": f"{voice} s{speed} p{pitch}", "text": text, "audio": clip, "origin": ""}
            )  # fmt: skip

        out.mkdir(parents=True, exist_ok=True)
        frames = []
        for s in SPLITS:
            part = [x for x in samples if x["split"] == s]
            audio = [to_int16(x["audio"]).astype(np.float32) / 32767 for x in part]
            save_clips(out, s, audio)
            frame = pd.DataFrame(
                {
                    "sample_id": [f"{s}/{i}" for i in range(len(part))],
                    "split": s,
                    **{k: [x[k] for x in part] for k in ("group", "source", "speaker", "voice", "text", "origin")},
                    "n_chars": [len(x["text"]) for x in part],
                    **audio_columns(audio, SAMPLE_RATE),
                    "sha1": [sha1_bytes(to_int16(a).tobytes()) for a in audio],
                }
            )
            frames.append(frame)
        manifest = add_leak_column(pd.concat(frames, ignore_index=True))
        info = {
            "source": dcfg.source,
            "sample_rate": SAMPLE_RATE,
            "vocab": VOCAB,
            # the words of the training transcripts: decoding snaps each word to the nearest of them
            "lexicon": sorted({w for x in samples if x["split"] == "train" for w in x["text"].split()}),
            "heldout_speaker": dcfg.heldout_speaker,
            "train_speakers": sorted({x["speaker"] for x in samples if x["split"] == "train"}),
            "n_samples": split_sizes(manifest.split),
            "max_seconds": MAX_SECONDS,
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        chars = "".join(sorted(set(info["vocab"]) - {" "}))
        return [
            *audio_expectations(info["sample_rate"], 0.1, info["max_seconds"], min_rms_db=-60.0),
            expect.min_rows(100, "too few utterances to train"),
            Expectation("expect_column_values_to_not_be_null", {"column": "text"}, "every clip needs a transcript"),
            Expectation(
                "expect_column_values_to_match_regex",
                {"column": "text", "regex": rf"^[{chars}]+( [{chars}]+)*$"},
                "transcripts use the model's characters only, single spaces, no padding",
            ),
            expect.between("n_chars", 3, 80, "CTC needs fewer characters than output frames"),
            Expectation(
                "expect_column_values_to_not_be_in_set",
                {"column": "speaker", "value_set": [info["heldout_speaker"]]},
                "the held-out speaker must never be trained on",
                where={"split": "train"},
            ),
            Expectation(
                "expect_column_distinct_values_to_contain_set",
                {"column": "group", "value_set": ["fsdd", "unseen_speaker", "synth_digits", "synth_sentence"]},
                "every test group is present",
                where={"split": "test"},
            ),
        ]

    def load(self, data_dir: Path) -> SpeechData:
        manifest = read_manifest(data_dir)
        manifest["text"] = manifest["text"].astype(str)
        return SpeechData(
            clips={s: load_clips(data_dir, s) for s in SPLITS},
            rows={s: manifest[manifest.split == s].reset_index(drop=True) for s in SPLITS},
            info=read_info(data_dir),
        )

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: SpeechRecognitionConfig, info: dict[str, Any]) -> nn.Module:
        return CTCSpeechModel(
            info["sample_rate"], len(info["vocab"]) + 1, cfg.n_mels, cfg.width, cfg.blocks, cfg.kernel, cfg.dropout
        )

    @staticmethod
    def _batches(lengths: np.ndarray, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
        """Shuffled batches of similar-length clips (less padding): sort within chunks of 20 batches."""
        perm = torch.randperm(len(lengths), generator=gen).numpy()
        chunk = 20 * batch_size
        batches = []
        for start in range(0, len(perm), chunk):
            part = perm[start : start + chunk]
            part = part[np.argsort(lengths[part], kind="stable")]
            batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
        order = torch.randperm(len(batches), generator=gen).numpy()
        return [batches[i] for i in order]

    @staticmethod
    def _spec_augment(feats: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Two frequency masks (up to 8 bands) and two time masks (up to 8 % of frames) per clip."""
        b, m, t = feats.shape
        r = torch.rand(b, 8, generator=gen).to(feats.device)  # masks built where the features are: no sync
        f_idx, t_idx = torch.arange(m, device=feats.device)[None, :], torch.arange(t, device=feats.device)[None, :]
        keep = torch.ones(b, m, t, dtype=torch.bool, device=feats.device)
        for k in range(2):
            w = (r[:, 2 * k] * 8).long()[:, None]
            f0 = (r[:, 2 * k + 1] * (m - 8)).long()[:, None]
            keep &= ~((f_idx >= f0) & (f_idx < f0 + w))[:, :, None]
            tw = (r[:, 4 + 2 * k] * 0.08 * t).long()[:, None]
            t0 = (r[:, 5 + 2 * k] * t).long()[:, None]
            keep &= ~((t_idx >= t0) & (t_idx < t0 + tw))[:, None, :]
        return feats * keep

    def training(self, model: nn.Module, data: SpeechData, cfg: SpeechRecognitionConfig) -> Recipe:
        """CTC on batches of similar-length clips; gain, speed and SpecAugment perturbations."""
        device = engine.pick_device()
        rows = data.rows["train"]
        order = np.concatenate([np.flatnonzero((rows.source == "fsdd").to_numpy())] * (cfg.fsdd_repeats - 1)
                               + [np.arange(len(rows))]).astype(int)  # fmt: skip
        clips = [data.clips["train"][i] for i in order]
        targets = [torch.tensor(encode_text(rows.text[i])) for i in order]
        lengths = np.array([len(c) for c in clips])

        def batches(gen: torch.Generator):
            for idx in self._batches(lengths, cfg.batch_size, gen):
                wav, lens = collate_audio([clips[i] for i in idx])
                gain = 10 ** ((torch.rand(len(idx), 1, generator=gen) - 0.5) * 0.6)  # +-3 dB
                wav = wav * gain
                if cfg.speed_perturb > 0:
                    rate = 1 + (float(torch.rand((), generator=gen)) * 2 - 1) * cfg.speed_perturb
                    wav = F.interpolate(wav[:, None], scale_factor=1 / rate, mode="linear")[:, 0]
                    lens = (lens / rate).long().clamp_max(wav.shape[1])
                wav, lens = wav.to(device), lens.to(device)
                with torch.no_grad():  # log-mel features: no weights to learn
                    feats = model.features(wav, lens)
                if cfg.spec_augment:
                    feats = self._spec_augment(feats, gen)
                tgt = [targets[i] for i in idx]
                yield wav, lens, feats, torch.cat(tgt), torch.tensor([len(t) for t in tgt])

        def step(batch) -> dict[str, torch.Tensor]:
            wav, lens, feats, tgt, tgt_lens = batch
            lp = model(wav, lens, feats=feats)
            loss = F.ctc_loss(
                lp.transpose(0, 1), tgt, model.output_lengths(lens), tgt_lens, blank=0, zero_infinity=True
            )
            return {"loss": loss}

        def shard(batch, rank: int, world: int):
            """A rank's clips and their targets (concatenated, so not split along the clips)."""
            wav, lens, feats, tgt, tgt_lens = batch
            lo, hi = distributed.share(len(wav), rank, world)
            ends = [0, *tgt_lens.cumsum(0).tolist()]
            return wav[lo:hi], lens[lo:hi], feats[lo:hi], tgt[ends[lo] : ends[hi]], tgt_lens[lo:hi]

        return Recipe(
            batches,
            step,
            int(np.ceil(len(clips) / cfg.batch_size)),
            schedule=engine.one_cycle(0.15),
            validate=lambda: self._rates(model, data, "val"),
            shard=shard,
        )

    # -- metrics ----------------------------------------------------------------------
    def _rates(self, model: nn.Module, data: SpeechData, split: str, beam: int = 0) -> dict[str, float]:
        rows = data.rows[split]
        if not len(rows):
            return {}
        hyps = transcribe(model, data.clips[split], beam)
        refs = list(rows["text"])
        wer, cer = error_rates(refs, hyps)
        return {"wer": wer, "cer": cer}

    def transcribe(self, loaded: LoadedModel, clips: list[np.ndarray]) -> list[str]:
        """Greedy transcripts of 8 kHz mono clips by a loaded model of this task.

        Other tasks that build on this task's champion (speech_synthesis scores its audio with it)
        call this through ``refs.find("speech_recognition").task``, never by importing this package.
        """
        return transcribe(loaded.module, clips)

    def evaluate(self, model: nn.Module, data: SpeechData, split: str = "test") -> dict[str, float]:
        """WER/CER per group: FSDD's own test split (primary ``wer``), the unseen speaker, synthetic speech.

        ``wer``: greedy decoding with each word snapped to the training lexicon (closed vocabulary,
        as the DTW baseline is); ``wer_open``: greedy, open vocabulary; ``wer_beam``: prefix beam search.
        """
        rows, clips = data.rows[split], data.clips[split]
        lps = log_probs(model, clips)
        greedy = [greedy_decode(lp, VOCAB) for lp in lps]
        lexicon = data.info.get("lexicon", [])
        closed = [snap_to_lexicon(g, lexicon) for g in greedy]
        out: dict[str, float] = {}
        groups = {
            "": rows.group == "fsdd",
            "_unseen_speaker": rows.group == "unseen_speaker",
            "_synth": rows.group.str.startswith("synth"),
            "_synth_digits": rows.group == "synth_digits",
            "_synth_sentence": rows.group == "synth_sentence",
        }
        for suffix, mask in groups.items():
            idx = np.flatnonzero(mask.to_numpy())
            if len(idx) == 0:
                continue
            refs = [rows.text[i] for i in idx]
            out[f"wer{suffix}"], out[f"cer{suffix}"] = error_rates(refs, [closed[i] for i in idx])
            out[f"wer_open{suffix}"], out[f"cer_open{suffix}"] = error_rates(refs, [greedy[i] for i in idx])
            if suffix in ("", "_synth"):
                beams = [beam_decode(lps[i], VOCAB, 8) for i in idx]
                out[f"wer_beam{suffix}"], out[f"cer_beam{suffix}"] = error_rates(refs, beams)
        if "wer" not in out:  # a split without FSDD clips: the primary metric over everything
            out["wer"], out["cer"] = error_rates(list(rows.text), closed)
        return out

    def baseline(self, data: SpeechData, split: str = "test") -> dict[str, float]:
        """MFCC + DTW nearest neighbour: each clip takes the digit of its closest FSDD training recording.

        Templates: up to 12 silence-trimmed training recordings per (digit, speaker). Single
        words only, so only FSDD groups are scored.
        """
        train = data.rows["train"]
        pick = [i for _, g in train[train.source == "fsdd"].groupby(["text", "speaker"]) for i in g.index[:12]]
        feats = lambda x: mfcc(trim_silence(x), SAMPLE_RATE, hop=160)  # noqa: E731
        templates = [feats(data.clips["train"][i]) for i in pick]
        mu = np.concatenate(templates).mean(0)
        sd = np.concatenate(templates).std(0) + 1e-6
        templates = [(t - mu) / sd for t in templates]
        labels = [train.text[i] for i in pick]
        rows, out = data.rows[split], {}
        for key, group in (("wer", "fsdd"), ("wer_unseen_speaker", "unseen_speaker")):
            idx = np.flatnonzero((rows.group == group).to_numpy())
            if len(idx) == 0:
                continue
            hyps = [labels[int(np.argmin(dtw_costs((feats(data.clips[split][i]) - mu) / sd, templates)))] for i in idx]
            refs = [rows.text[i] for i in idx]
            out[key], out[key.replace("wer", "cer")] = error_rates(refs, hyps)
        if "wer" not in out:
            out["wer"], out["cer"] = 1.0, 1.0
        return out

    def examples(self, model: nn.Module, data: SpeechData) -> dict[str, Any]:
        rows, clips = data.rows["test"], data.clips["test"]
        picks = [int(np.flatnonzero((rows.group == g).to_numpy())[0]) for g in
                 ("fsdd", "unseen_speaker", "synth_digits", "synth_sentence") if (rows.group == g).any()]  # fmt: skip
        hyps = transcribe(model, [clips[i] for i in picks])
        files: dict[str, Any] = {
            "spectrograms.png": spectrogram_figure(
                [
                    (f"{rows.group[i]}: ref '{rows.text[i]}' / hyp '{h}'", clips[i])
                    for i, h in zip(picks, hyps, strict=True)
                ],
                SAMPLE_RATE,
                "test clips: reference vs greedy transcript",
            )
        }
        for i in picks:
            files[f"input_{rows.group[i]}.wav"] = wav_bytes(clips[i], SAMPLE_RATE)
        n = min(40, len(rows))
        sel = np.linspace(0, len(rows) - 1, n).astype(int)
        hyp_all = transcribe(model, [clips[i] for i in sel])
        table = "\n".join(
            f"| {rows.group[i]} | {rows.speaker[i]} | {rows.text[i]} | {h} |" for i, h in zip(sel, hyp_all, strict=True)
        )
        head = "| group | speaker/voice | reference | greedy transcript |\n|---|---|---|---|\n"
        files["transcripts.md"] = head + table + "\n"
        return files

    # -- serving ----------------------------------------------------------------------
    def request_examples(self, data: SpeechData, n: int) -> list[Request]:
        return [{"audio": wav_bytes(clip, SAMPLE_RATE)} for clip in data.clips["test"][:n]]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return wav_bad_requests(SAMPLE_RATE, MAX_REQUEST_SECONDS, {"text": "three"})

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [
            decode_wav(request["audio"], loaded.info["sample_rate"], min_seconds=0.1, max_seconds=MAX_REQUEST_SECONDS)
        ]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[dict[str, str]]:
        lps = log_probs(loaded.module, batch)
        vocab, lexicon = loaded.info["vocab"], loaded.info.get("lexicon", [])
        out = []
        for lp in lps:
            beam = beam_decode(lp, vocab, loaded.cfg.beam)
            out.append(
                {
                    "transcript": snap_to_lexicon(beam, lexicon),
                    "open_vocabulary": beam,
                    "greedy": greedy_decode(lp, vocab),
                }
            )
        return out

    def postprocess(self, loaded: LoadedModel, output: dict[str, str]) -> dict[str, Any]:
        return dict(output)
