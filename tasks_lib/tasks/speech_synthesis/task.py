"""The speech synthesis task: espeak-ng corpus with word timings, text-to-mel training, MCD, intelligibility."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core import distributed, engine, expect, refs
from tasks_lib.core.audio import (
    DIGIT_WORDS,
    audio_columns,
    audio_expectations,
    espeak_many,
    load_clips,
    mel_cepstral_distortion,
    save_clips,
    spectrogram_figure,
    to_int16,
    trim_silence,
    wav_bytes,
)
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, read_info, read_manifest, sha1_bytes, split_sizes
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.registry import register
from tasks_lib.core.schema import AudioAnswer
from tasks_lib.core.speech_corpus import VOCAB, draw_texts
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.core.text_metrics import error_rates
from tasks_lib.tasks.speech_synthesis.model import TextToMel, griffin_lim

SAMPLE_RATE = 8000
N_FFT, HOP, N_MELS = 256, 80, 64  # 32 ms windows, 10 ms hop at 8 kHz
MAX_TEXT_CHARS = 200


def mel_filterbank() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=40.0, fmax=SAMPLE_RATE / 2)


def log_mel(x: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """(n_mels, frames) natural-log mel power; frames = len(x) // HOP + 1."""
    spec = torch.stft(
        torch.from_numpy(np.asarray(x, dtype=np.float32)), N_FFT, HOP, window=torch.hann_window(N_FFT),
        return_complex=True,
    ).abs().pow(2).numpy()  # fmt: skip
    return np.log(fb @ spec + 1e-5).astype(np.float32)


def word_durations(text: str, n_frames: int, word_frames: dict[str, int]) -> list[int]:
    """Frames per character: words share ``n_frames`` in proportion to their spoken-alone lengths,
    characters share their word's frames evenly, spaces get none."""
    words = text.split(" ")
    alone = np.array([word_frames[w] for w in words], dtype=np.float64)
    bounds = np.round(np.concatenate([[0], np.cumsum(alone)]) / alone.sum() * n_frames).astype(int)
    durs: list[int] = []
    for k, w in enumerate(words):
        if k:
            durs.append(0)  # the space
        f = bounds[k + 1] - bounds[k]
        share = np.diff(np.round(np.linspace(0, f, len(w) + 1)).astype(int))
        durs += share.tolist()
    return durs


def normalise_text(text: str) -> str:
    """Lower case, digits spoken as words, punctuation to spaces, single spaces."""
    text = text.lower()
    text = re.sub(r"\d", lambda m: f" {DIGIT_WORDS[int(m.group())]} ", text)
    text = re.sub(r"[.,;:!?\-\"]", " ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[int]:
    return [VOCAB.index(c) + 1 for c in text]


@dataclass(frozen=True)
class SpeechSynthesisData(DataConfig):
    n_train: int = 600
    n_val: int = 30
    n_test: int = 60
    voice: str = "en-us"  # one speaker: the model learns one voice
    speed: int = 150
    pitch: int = 50
    corpus_seed: int = 0


@dataclass(frozen=True)
class SpeechSynthesisConfig(TaskConfig):
    epochs: int = 15
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 96
    enc_layers: int = 3
    dec_layers: int = 4
    dropout: float = 0.1
    duration_weight: float = 0.5
    griffin_lim_iters: int = 32
    # the ASR model that scores intelligibility (CER on synthesised test sentences); "" skips it
    asr_model: str = ""


@dataclass
class SynthesisData:
    clips: dict[str, list[np.ndarray]]
    mels: dict[str, list[np.ndarray]]
    durations: dict[str, list[list[int]]]
    rows: dict[str, pd.DataFrame]
    info: dict[str, Any]


@register
class SpeechSynthesis(Task):
    """Text to speech: non-autoregressive conv text-to-mel with durations + Griffin-Lim (seed examples 15, 27)."""

    name = "speech_synthesis"
    seed_sections = (15, 27)
    metric = "mcd"
    greater_is_better = False
    request_fields = ("text",)
    answer_model = AudioAnswer
    output_media = "audio/wav"
    batchable = False
    config_cls = SpeechSynthesisConfig
    data_config_cls = SpeechSynthesisData
    default_source = "espeak"
    profiles = {
        "smoke": {
            "data": {"n_train": 24, "n_val": 3, "n_test": 4},
            "train": {"epochs": 2, "width": 32, "griffin_lim_iters": 4},
        },  # fmt: skip
        "quick": {"train": {"epochs": 40, "asr_model": "models:/speech_recognition@champion"}},
        "full": {
            "data": {"n_train": 5000, "n_val": 100, "n_test": 200},
            "train": {"epochs": 100, "width": 256, "dec_layers": 6, "asr_model": "models:/speech_recognition@champion"},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "espeak": DataSource(
                "espeak",
                "sentences and digit strings spoken by espeak-ng (one voice), made by the data step",
                "generator",
            )
        }

    # -- data -------------------------------------------------------------------------
    def prepare(self, dcfg: SpeechSynthesisData, out: Path) -> Prepared:
        texts = draw_texts({"train": dcfg.n_train, "val": dcfg.n_val, "test": dcfg.n_test}, dcfg.corpus_seed)
        words = sorted({w for _, _, t in texts for w in t.split(" ")})
        settings = (dcfg.voice, dcfg.speed, dcfg.pitch)
        alone = espeak_many([(w, *settings) for w in words], SAMPLE_RATE)
        word_frames = {w: max(1, len(trim_silence(x, pad=0)) // HOP) for w, x in zip(words, alone, strict=True)}
        clips = espeak_many([(t, *settings) for _, _, t in texts], SAMPLE_RATE)
        clips = [trim_silence(x, pad=0) for x in clips]
        clips = [(0.7 * x / (np.abs(x).max() + 1e-8)).astype(np.float32) for x in clips]
        out.mkdir(parents=True, exist_ok=True)
        frames = []
        for s in SPLITS:
            idx = [i for i, (split, _, _) in enumerate(texts) if split == s]
            audio = [to_int16(clips[i]).astype(np.float32) / 32767 for i in idx]
            save_clips(out, s, audio)
            durs = [
                word_durations(texts[i][2], len(a) // HOP + 1, word_frames) for i, a in zip(idx, audio, strict=True)
            ]
            (out / f"{s}_durations.json").write_text(json.dumps(durs) + "\n")
            frames.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{s}/{k}" for k in range(len(idx))],
                        "split": s,
                        "kind": [texts[i][1] for i in idx],
                        "text": [texts[i][2] for i in idx],
                        "n_chars": [len(texts[i][2]) for i in idx],
                        **audio_columns(audio, SAMPLE_RATE),
                        "frames_per_char": [
                            round((len(a) // HOP + 1) / len(texts[i][2]), 3) for i, a in zip(idx, audio, strict=True)
                        ],
                        "duration_frames_match": [
                            sum(d) == len(a) // HOP + 1 for d, a in zip(durs, audio, strict=True)
                        ],
                        "sha1": [sha1_bytes(texts[i][2].encode()) for i in idx],  # a text in two splits is the leak
                    }
                )
            )
        manifest = add_leak_column(pd.concat(frames, ignore_index=True))
        fb = mel_filterbank()
        train_mels = [log_mel(clips[i], fb) for i, (split, _, _) in enumerate(texts) if split == "train"]
        info = {
            "mel_mean": round(float(np.mean(np.concatenate(train_mels, axis=1))), 4),
            "source": dcfg.source,
            "sample_rate": SAMPLE_RATE,
            "vocab": VOCAB,
            "voice": f"{dcfg.voice} speed {dcfg.speed} pitch {dcfg.pitch}",
            "n_fft": N_FFT,
            "hop": HOP,
            "n_mels": N_MELS,
            "word_frames": word_frames,
            "n_samples": split_sizes(manifest.split),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        chars = "".join(sorted(set(info["vocab"]) - {" "}))
        return [
            *audio_expectations(info["sample_rate"], 0.2, 8.0, min_rms_db=-40.0),
            Expectation(
                "expect_column_values_to_match_regex",
                {"column": "text", "regex": rf"^[{chars}]+( [{chars}]+)*$"},
                "texts use the model's characters only",
            ),
            expect.between(
                "frames_per_char",
                2.0,
                30.0,
                "speech rate sane: espeak spoke the whole text, not a fragment or a long silence",
            ),
            expect.in_set("duration_frames_match", [True], "character durations cover every mel frame"),
        ]

    def load(self, data_dir: Path) -> SynthesisData:
        manifest = read_manifest(data_dir)
        fb = mel_filterbank()
        clips = {s: load_clips(data_dir, s) for s in SPLITS}
        return SynthesisData(
            clips=clips,
            mels={s: [log_mel(x, fb) for x in clips[s]] for s in SPLITS},
            durations={s: json.loads((data_dir / f"{s}_durations.json").read_text()) for s in SPLITS},
            rows={s: manifest[manifest.split == s].reset_index(drop=True) for s in SPLITS},
            info=read_info(data_dir),
        )

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: SpeechSynthesisConfig, info: dict[str, Any]) -> nn.Module:
        return TextToMel(len(info["vocab"]), info["n_mels"], cfg.width, cfg.enc_layers, cfg.dec_layers, cfg.dropout)

    @staticmethod
    def _batch(data: SynthesisData, split: str, idx, device):
        texts = [data.rows[split].text[i] for i in idx]
        n = max(len(t) for t in texts)
        tok = torch.zeros(len(idx), n, dtype=torch.long)
        dur = torch.zeros(len(idx), n, dtype=torch.long)
        for j, (i, t) in enumerate(zip(idx, texts, strict=True)):
            tok[j, : len(t)] = torch.tensor(tokens(t))
            dur[j, : len(t)] = torch.tensor(data.durations[split][i])
        m = max(data.mels[split][i].shape[1] for i in idx)
        mel = torch.zeros(len(idx), data.info["n_mels"], m)
        for j, i in enumerate(idx):
            mel[j, :, : data.mels[split][i].shape[1]] = torch.from_numpy(data.mels[split][i])
        return tok.to(device), dur.to(device), mel.to(device)

    @staticmethod
    def _loss(
        model: nn.Module, batch: tuple[torch.Tensor, ...], mean: float, cfg: SpeechSynthesisConfig
    ) -> torch.Tensor:
        """L1 on the masked, mean-removed log-mels + ``duration_weight`` x MSE of the log durations."""
        tok, dur, mel = batch
        pred, lens, log_dur = model(tok, dur)
        target = (mel - mean) * (pred != 0)  # the model predicts mean-removed log-mels
        mask = (torch.arange(pred.shape[-1], device=pred.device)[None, :] < lens[:, None]).float()[:, None, :]
        mel_loss = (F.l1_loss(pred, target[..., : pred.shape[-1]] * mask, reduction="sum")) / (
            mask.sum() * pred.shape[1]
        )
        tmask = (tok > 0).float()
        dur_loss = ((log_dur - torch.log1p(dur.float())) ** 2 * tmask).sum() / tmask.sum()
        return mel_loss + cfg.duration_weight * dur_loss

    def training(self, model: nn.Module, data: SynthesisData, cfg: SpeechSynthesisConfig) -> Recipe:
        device = engine.pick_device()
        mean = data.info.get("mel_mean", 0.0)
        n = len(data.rows["train"])
        n_batches = max(1, int(np.ceil(n / cfg.batch_size)))

        def batches(gen: torch.Generator):
            perm = torch.randperm(n, generator=gen).numpy()
            for b in range(n_batches):
                yield self._batch(data, "train", perm[b * cfg.batch_size : (b + 1) * cfg.batch_size], device)

        def validate() -> dict[str, float]:
            if not len(data.rows["val"]):
                return {}
            val = self._batch(data, "val", np.arange(len(data.rows["val"])), device)
            return {"loss": float(self._loss(model, val, mean, cfg))}

        def shard(batch, rank: int, world: int):
            """A rank's utterances, their mels cropped to the longest of them (the model's output length)."""
            tok, dur, mel = distributed.split_batch(batch, rank, world)
            return tok, dur, mel[..., : int(dur.sum(1).max())]

        return Recipe(
            batches,
            lambda batch: {"loss": self._loss(model, batch, mean, cfg)},
            n_batches,
            schedule=engine.one_cycle(0.15),
            validate=validate,
            shard=shard,
        )

    # -- synthesis ----------------------------------------------------------------------
    @torch.no_grad()
    def synthesise(
        self, model: TextToMel, info: dict[str, Any], texts: list[str], gl_iters: int = 32
    ) -> list[np.ndarray]:
        model.eval()
        device = next(model.parameters()).device
        fb_pinv = np.linalg.pinv(mel_filterbank())
        out = []
        for t in texts:
            tok = torch.tensor([tokens(t)], device=device)
            mel, lens, _ = model(tok)
            m = mel[0, :, : int(lens[0])].float().cpu().numpy() + info.get("mel_mean", 0.0)
            if m.shape[1] < 8:  # Griffin-Lim needs a few frames: pad with silence
                m = np.pad(m, ((0, 0), (0, 8 - m.shape[1])), constant_values=np.log(1e-5))
            out.append(griffin_lim(m, fb_pinv, N_FFT, HOP, gl_iters))
        return out

    def _intelligibility(self, audio: list[np.ndarray], texts: list[str]) -> dict[str, float]:
        """CER/WER of the speech_recognition champion on ``audio`` (empty when no champion is resolved)."""
        asr = refs.find("speech_recognition")
        if asr is None:
            return {}
        hyps = asr.task.transcribe(asr, [a / (np.abs(a).max() + 1e-8) * 0.5 for a in audio])
        wer, cer = error_rates(texts, hyps)
        return {"asr_cer": cer, "asr_wer": wer}

    def evaluate(self, model: nn.Module, data: SynthesisData, split: str = "test") -> dict[str, float]:
        """MCD (dB, DTW-aligned, 13 MFCCs) of synthesised vs espeak audio; ASR CER when a champion is known."""
        texts = list(data.rows[split].text)
        audio = self.synthesise(model, data.info, texts, 32)
        ref = data.clips[split]
        mcd = [mel_cepstral_distortion(a, r, SAMPLE_RATE) for a, r in zip(audio, ref, strict=True)]
        out = {"mcd": float(np.mean(mcd))}
        # the floor a perfect text-to-mel model would reach: Griffin-Lim on each reference's own mel
        fb_pinv = np.linalg.pinv(mel_filterbank())
        vocoded = [griffin_lim(m, fb_pinv, N_FFT, HOP, 32) for m in data.mels[split]]
        out["mcd_vocoder_floor"] = float(
            np.mean([mel_cepstral_distortion(a, r, SAMPLE_RATE) for a, r in zip(vocoded, ref, strict=True)])
        )
        out["length_ratio"] = float(np.mean([len(a) / len(r) for a, r in zip(audio, ref, strict=True)]))
        out.update(self._intelligibility(audio, texts))
        if "asr_cer" in out:  # the ceiling: the same recogniser on the espeak references
            ceiling = self._intelligibility(list(ref), texts)
            out["asr_cer_reference"] = ceiling["asr_cer"]
        return out

    def _units(self, data: SynthesisData) -> dict[str, np.ndarray]:
        """Word units cut from training utterances at their timing (first occurrence of each word)."""
        units: dict[str, np.ndarray] = {}
        for i, t in enumerate(data.rows["train"].text):
            bounds = np.concatenate([[0], np.cumsum(data.durations["train"][i])])
            pos = 0
            for w in t.split(" "):
                if w not in units:
                    a, b = bounds[pos] * HOP, bounds[pos + len(w)] * HOP
                    units[w] = data.clips["train"][i][a:b]
                pos += len(w) + 1
        return units

    def baseline(self, data: SynthesisData, split: str = "test") -> dict[str, float]:
        """Unit concatenation: each word's recording cut from a training sentence, joined with 5 ms
        cross-fades; an unknown word is spelled by its letters' units. No learning: classic concatenative TTS."""
        units = self._units(data)
        texts = list(data.rows[split].text)
        audio = [self._concatenate(units, t) for t in texts]
        ref = data.clips[split]
        out = {
            "mcd": float(np.mean([mel_cepstral_distortion(a, r, SAMPLE_RATE) for a, r in zip(audio, ref, strict=True)]))
        }
        out["length_ratio"] = float(np.mean([len(a) / len(r) for a, r in zip(audio, ref, strict=True)]))
        out.update(self._intelligibility(audio, texts))
        return out

    @staticmethod
    def _concatenate(units: dict[str, np.ndarray], text: str) -> np.ndarray:
        fade = 40
        out = np.zeros(0, dtype=np.float32)
        for w in text.split(" "):
            u = units.get(w, np.zeros(800, dtype=np.float32)).astype(np.float32)
            if len(out) >= fade and len(u) >= fade:
                ramp = np.linspace(0, 1, fade, dtype=np.float32)
                out[-fade:] = out[-fade:] * (1 - ramp) + u[:fade] * ramp
                u = u[fade:]
            out = np.concatenate([out, u])
        return out if len(out) else np.zeros(800, dtype=np.float32)

    def examples(self, model: nn.Module, data: SynthesisData) -> dict[str, Any]:
        rows = data.rows["test"]
        picks = list(range(min(3, len(rows))))
        texts = [rows.text[i] for i in picks]
        audio = self.synthesise(model, data.info, texts)
        units = self._units(data)
        files: dict[str, Any] = {}
        panels = []
        for k, (i, a) in enumerate(zip(picks, audio, strict=True)):
            concat = self._concatenate(units, rows.text[i])
            panels += [(f"'{rows.text[i]}': synthesised", a), ("unit concatenation (baseline)", concat),
                       ("espeak-ng reference", data.clips["test"][i])]  # fmt: skip
            files[f"{k}_input.md"] = rows.text[i] + "\n"
            files[f"{k}_output_synthesised.wav"] = wav_bytes(a / (np.abs(a).max() + 1e-8) * 0.7, SAMPLE_RATE)
            files[f"{k}_baseline_concatenation.wav"] = wav_bytes(concat, SAMPLE_RATE)
            files[f"{k}_reference_espeak.wav"] = wav_bytes(data.clips["test"][i], SAMPLE_RATE)
        files["spectrograms.png"] = spectrogram_figure(panels, SAMPLE_RATE, "held-out sentences")
        return files

    # -- serving ----------------------------------------------------------------------
    def request_examples(self, data: SynthesisData, n: int) -> list[Request]:
        return [{"text": t} for t in list(data.rows["test"].text)[:n]]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"text": "   "}, 422, "empty"),
            ({"text": "a" * (MAX_TEXT_CHARS + 1)}, 413, "too long"),
            ({"text": "naïve café ☃"}, 422, "cannot be spoken"),
            ({"audio": b"RIFF"}, 422, "not used"),  # (a non-string text gets 400 from BentoML's schema)
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[str]:
        text = request["text"]
        if not isinstance(text, str):
            raise InvalidInput(f"'text' must be a string, got {type(text).__name__}", status=422)
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidInput(f"text is too long: {len(text)} characters, the limit is {MAX_TEXT_CHARS}", status=413)
        norm = normalise_text(text)
        if not norm:
            raise InvalidInput("text is empty: send some words to speak", status=422)
        bad = sorted(set(norm) - set(loaded.info["vocab"]))
        if bad:
            raise InvalidInput(
                f"text has characters that cannot be spoken: {''.join(bad)!r}; use English letters, digits, "
                "spaces and apostrophes",
                status=422,
            )
        return [norm]

    def forward(self, loaded: LoadedModel, batch: list[str]) -> list[np.ndarray]:
        return self.synthesise(loaded.module, loaded.info, batch, loaded.cfg.griffin_lim_iters)

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        sr = loaded.info["sample_rate"]
        x = output / (np.abs(output).max() + 1e-8) * 0.7
        return {"media": wav_bytes(x, sr), "sample_rate": sr, "seconds": round(len(x) / sr, 4)}
