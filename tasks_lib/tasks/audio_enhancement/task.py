"""The audio enhancement task: noisy FSDD mixtures, mask U-Net trained on negative SI-SDR, Wiener baseline."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.audio import (
    audio_columns,
    audio_expectations,
    babble_noise,
    decode_wav,
    fsdd_recordings,
    fsdd_source,
    fsdd_split,
    hum_noise,
    load_clips,
    mix_at_snr,
    pink_noise,
    save_clips,
    si_sdr,
    si_sdr_torch,
    spectrogram_figure,
    to_int16,
    wav_bad_requests,
    wav_bytes,
    white_noise,
)
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, read_info, read_manifest, sha1_bytes, split_sizes
from tasks_lib.core.registry import register
from tasks_lib.core.schema import AudioAnswer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.audio_enhancement.model import MaskUNet, wiener_filter

SAMPLE_RATE = 8000
MAX_REQUEST_SECONDS = 30.0  # the longest audio /predict takes
NOISES = ("white", "pink", "babble", "hum")


@dataclass(frozen=True)
class AudioEnhancementData(DataConfig):
    snr_min: float = -5.0
    snr_max: float = 10.0
    train_mixtures: int = 2  # noisy versions of each training clip (test and validation: one)
    val_indices: int = 3  # FSDD indices 5..5+val_indices-1 go to validation; 0-4 are FSDD's test split
    mix_seed: int = 0


@dataclass(frozen=True)
class AudioEnhancementConfig(TaskConfig):
    epochs: int = 5
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    n_fft: int = 256  # 32 ms at 8 kHz
    hop: int = 64
    width: int = 48
    bottleneck_blocks: int = 3
    segment_seconds: float = 0.6  # training crops (FSDD's median clip is 0.4 s); evaluation uses whole clips


@dataclass
class EnhancementData:
    noisy: dict[str, list[np.ndarray]]
    clean: dict[str, list[np.ndarray]]
    rows: dict[str, pd.DataFrame]
    info: dict[str, Any]


def make_noise(kind: str, n: int, rng: np.random.Generator, talkers: list[np.ndarray]) -> np.ndarray:
    if kind == "white":
        return white_noise(n, rng)
    if kind == "pink":
        return pink_noise(n, rng)
    if kind == "hum":
        return hum_noise(n, rng, SAMPLE_RATE)
    picks = rng.choice(len(talkers), size=int(rng.integers(3, 6)), replace=False)
    return babble_noise(n, rng, [talkers[i] for i in picks])


@torch.no_grad()
def enhance(model: MaskUNet, clips: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
    """Enhanced clips (same lengths), batched by similar length with zero padding."""
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(c) for c in clips])
    out: list[np.ndarray] = [np.zeros(0)] * len(clips)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        n = max(len(clips[i]) for i in idx)
        wav = torch.zeros(len(idx), n)
        for j, i in enumerate(idx):
            wav[j, : len(clips[i])] = torch.from_numpy(np.asarray(clips[i], dtype=np.float32))
        est = model(wav.to(device)).float().cpu().numpy()
        for j, i in enumerate(idx):
            out[i] = est[j, : len(clips[i])]
    return out


def stoi(clean: np.ndarray, est: np.ndarray) -> float:
    from pystoi import stoi as _stoi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # very short clips: pystoi warns and still answers
        return float(_stoi(clean, est, SAMPLE_RATE, extended=False))


def pesq_nb(clean: np.ndarray, est: np.ndarray) -> float:
    """Narrow-band PESQ (ITU-T P.862, MOS-LQO from about 1 to 4.5) at 8 kHz, from the ``pesq`` package."""
    from pesq import pesq

    return float(pesq(SAMPLE_RATE, clean.astype(np.float32), est.astype(np.float32), "nb"))


def enhancement_metrics(clean: list, noisy: list, est: list, noise: list[str], perceptual: bool = True) -> dict:
    """Mean SI-SDR in/out/improvement (dB) overall and per noise type; STOI and PESQ in/out."""
    sdr_in = np.array([si_sdr(n, c) for n, c in zip(noisy, clean, strict=True)])
    sdr_out = np.array([si_sdr(e, c) for e, c in zip(est, clean, strict=True)])
    out = {
        "si_sdr_improvement": float(np.mean(sdr_out - sdr_in)),
        "si_sdr_in": float(sdr_in.mean()),
        "si_sdr_out": float(sdr_out.mean()),
    }
    kinds = np.array(noise)
    for k in NOISES:
        if (kinds == k).any():
            out[f"si_sdr_improvement_{k}"] = float(np.mean((sdr_out - sdr_in)[kinds == k]))
    if perceptual:
        # STOI needs >= 30 speech frames of 384 ms and PESQ is specified for utterances of several
        # seconds: FSDD clips are shorter, so each noise type's clips are scored as one concatenated
        # signal (both average over short-time segments anyway); the mean over noise types is reported.
        for metric, fn in (("stoi", stoi), ("pesq", pesq_nb)):
            for name, sig in (("in", noisy), ("out", est)):
                out[f"{metric}_{name}"] = float(
                    np.mean([
                        fn(np.concatenate([c for c, k in zip(clean, kinds, strict=True) if k == kind]),
                           np.concatenate([x for x, k in zip(sig, kinds, strict=True) if k == kind]))
                        for kind in sorted(set(noise))
                    ])
                )  # fmt: skip
            out[f"{metric}_improvement"] = out[f"{metric}_out"] - out[f"{metric}_in"]
    return out


@register
class AudioEnhancement(Task):
    """Speech enhancement: a U-Net predicting an STFT magnitude mask, trained on -SI-SDR (seed example 18)."""

    name = "audio_enhancement"
    seed_sections = (18,)
    metric = "si_sdr_improvement"
    request_fields = ("audio",)
    answer_model = AudioAnswer
    output_media = "audio/wav"
    batchable = False
    config_cls = AudioEnhancementConfig
    data_config_cls = AudioEnhancementData
    default_source = "fsdd_noise"
    profiles = {
        "smoke": {"data": {"max_samples": 120, "train_mixtures": 1}, "train": {"epochs": 2, "width": 16}},
        "quick": {"train": {"epochs": 20}},
        "full": {
            "data": {"train_mixtures": 6},
            "train": {"epochs": 40, "width": 128, "bottleneck_blocks": 6, "segment_seconds": 1.0},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {"fsdd_noise": fsdd_source("fsdd_noise", "mixed with white, pink, babble and hum noise")}

    # -- data -------------------------------------------------------------------------
    def prepare(self, dcfg: AudioEnhancementData, out: Path) -> Prepared:
        recordings = fsdd_recordings(dcfg.path, SAMPLE_RATE, dcfg.max_samples, dcfg.split_seed)
        for r in recordings:
            r["split"] = fsdd_split(r["index"], dcfg.val_indices)
        rng = np.random.default_rng(dcfg.mix_seed)
        out.mkdir(parents=True, exist_ok=True)
        frames = []
        for s in SPLITS:
            part = [r for r in recordings if r["split"] == s]
            talkers = [r["audio"] for r in part]  # babble comes from the same split only: no leak
            clean, noisy, meta = [], [], []
            for r in part:
                for m in range(dcfg.train_mixtures if s == "train" else 1):
                    kind = NOISES[int(rng.integers(len(NOISES)))]
                    snr = float(rng.uniform(dcfg.snr_min, dcfg.snr_max))
                    others = [t for t in talkers if t is not r["audio"]] or talkers
                    mix = mix_at_snr(r["audio"], make_noise(kind, len(r["audio"]), rng, others), snr)
                    scale = min(1.0, 0.9 / (np.abs(mix).max() + 1e-8))  # never clip; same gain on the target
                    clean.append(r["audio"] * scale)
                    noisy.append(mix * scale)
                    meta.append({**{k: r[k] for k in ("digit", "speaker", "index", "file")}, "noise": kind,
                                 "snr_db": round(snr, 3), "mixture": m})  # fmt: skip
            save_clips(out, f"{s}_clean", clean)
            save_clips(out, f"{s}_noisy", noisy)
            frames.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{s}/{i}" for i in range(len(meta))],
                        "split": s,
                        **{k: [m[k] for m in meta] for k in ("file", "speaker", "digit", "noise", "snr_db", "mixture")},
                        **audio_columns(noisy, SAMPLE_RATE),
                        "clean_rms_db": audio_columns(clean, SAMPLE_RATE)["rms_db"],
                        # the leak check is on the clean speech: one recording, one split
                        "sha1": [
                            sha1_bytes(to_int16(r["audio"]).tobytes())
                            for r in part
                            for _ in range(dcfg.train_mixtures if s == "train" else 1)
                        ],
                    }  # fmt: skip
                )
            )
        manifest = add_leak_column(pd.concat(frames, ignore_index=True))
        info = {
            "source": dcfg.source,
            "sample_rate": SAMPLE_RATE,
            "noises": list(NOISES),
            "snr_range": [dcfg.snr_min, dcfg.snr_max],
            "n_samples": split_sizes(manifest.split),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        lo, hi = info["snr_range"]
        return [
            *audio_expectations(info["sample_rate"], 0.1, 5.0, min_rms_db=-60.0),
            expect.min_rows(50, "too few mixtures to train"),
            expect.in_set("noise", info["noises"], "known noise types only"),
            expect.between("snr_db", lo, hi, "mixtures stay in the configured SNR range"),
            expect.between("clean_rms_db", -60.0, 0.0, "the target speech is not silent"),
            Expectation(
                "expect_column_distinct_values_to_contain_set",
                {"column": "noise", "value_set": info["noises"]},
                "every noise type is tested",
                where={"split": "test"},
            ),
        ]

    def load(self, data_dir: Path) -> EnhancementData:
        manifest = read_manifest(data_dir)
        return EnhancementData(
            noisy={s: load_clips(data_dir, f"{s}_noisy") for s in SPLITS},
            clean={s: load_clips(data_dir, f"{s}_clean") for s in SPLITS},
            rows={s: manifest[manifest.split == s].reset_index(drop=True) for s in SPLITS},
            info=read_info(data_dir),
        )

    # -- model ------------------------------------------------------------------------
    def build_model(self, cfg: AudioEnhancementConfig, info: dict[str, Any]) -> nn.Module:
        return MaskUNet(cfg.n_fft, cfg.hop, cfg.width, cfg.bottleneck_blocks)

    @staticmethod
    def _crops(noisy, clean, idx, seg: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random ``seg``-sample crops (zero padded when shorter) of the clips ``idx``."""
        x, y = torch.zeros(len(idx), seg), torch.zeros(len(idx), seg)
        for j, i in enumerate(idx):
            n = len(noisy[i])
            start = int(torch.randint(0, n - seg + 1, (1,), generator=gen)) if n > seg else 0
            x[j, : min(n, seg)] = torch.from_numpy(noisy[i][start : start + seg])
            y[j, : min(n, seg)] = torch.from_numpy(clean[i][start : start + seg])
        return x, y

    def training(self, model: nn.Module, data: EnhancementData, cfg: AudioEnhancementConfig) -> Recipe:
        """Negative SI-SDR on random crops of the noisy / clean training pairs."""
        noisy, clean = data.noisy["train"], data.clean["train"]
        seg = int(cfg.segment_seconds * data.info["sample_rate"])
        n_batches = max(1, len(noisy) // cfg.batch_size)

        def batches(gen: torch.Generator):
            perm = torch.randperm(len(noisy), generator=gen).numpy()
            for b in range(n_batches):
                yield self._crops(noisy, clean, perm[b * cfg.batch_size : (b + 1) * cfg.batch_size], seg, gen)

        def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
            x, y = batch
            est = model(x)
            # clips that are silent in the crop carry no signal: excluded from the loss
            active = y.pow(2).sum(-1) > 1e-6
            return {"loss": -si_sdr_torch(est.float()[active], y[active]).mean()}

        def validate() -> dict[str, float]:
            if not len(data.noisy["val"]):
                return {}
            val = enhance(model, data.noisy["val"])
            m = enhancement_metrics(data.clean["val"], data.noisy["val"], val, list(data.rows["val"].noise), False)
            return {"si_sdr_improvement": m["si_sdr_improvement"]}

        return Recipe(batches, step, n_batches, schedule=engine.one_cycle(0.15), validate=validate)

    # -- metrics ----------------------------------------------------------------------
    def evaluate(self, model: nn.Module, data: EnhancementData, split: str = "test") -> dict[str, float]:
        est = enhance(model, data.noisy[split])
        return enhancement_metrics(data.clean[split], data.noisy[split], est, list(data.rows[split].noise))

    def baseline(self, data: EnhancementData, split: str = "test") -> dict[str, float]:
        """Wiener filter with the noise spectrum taken from the quietest 10 % of frames (no learning)."""
        est = [wiener_filter(x) for x in data.noisy[split]]
        return enhancement_metrics(data.clean[split], data.noisy[split], est, list(data.rows[split].noise))

    def examples(self, model: nn.Module, data: EnhancementData) -> dict[str, Any]:
        rows = data.rows["test"]
        files: dict[str, Any] = {}
        picks = [int(np.flatnonzero((rows.noise == k).to_numpy())[0]) for k in NOISES if (rows.noise == k).any()]
        est = enhance(model, [data.noisy["test"][i] for i in picks])
        panels = []
        for i, e in zip(picks, est, strict=True):
            noisy, clean, kind = data.noisy["test"][i], data.clean["test"][i], rows.noise[i]
            gain = si_sdr(e, clean) - si_sdr(noisy, clean)
            panels += [
                (f"{kind} noise, input SNR {rows.snr_db[i]:.1f} dB: noisy", noisy),
                (f"enhanced (SI-SDR {gain:+.1f} dB)", e),
                ("clean reference", clean),
            ]
            files[f"{kind}_input_noisy.wav"] = wav_bytes(noisy, SAMPLE_RATE)
            files[f"{kind}_output_enhanced.wav"] = wav_bytes(e, SAMPLE_RATE)
            files[f"{kind}_reference_clean.wav"] = wav_bytes(clean, SAMPLE_RATE)
        files["spectrograms.png"] = spectrogram_figure(panels, SAMPLE_RATE, "test clips: noisy / enhanced / clean")
        return files

    # -- serving ----------------------------------------------------------------------
    def request_examples(self, data: EnhancementData, n: int) -> list[Request]:
        return [{"audio": wav_bytes(x, SAMPLE_RATE)} for x in data.noisy["test"][:n]]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return wav_bad_requests(SAMPLE_RATE, MAX_REQUEST_SECONDS, {"text": "hello"})

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [
            decode_wav(request["audio"], loaded.info["sample_rate"], min_seconds=0.05, max_seconds=MAX_REQUEST_SECONDS)
        ]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[np.ndarray]:
        return enhance(loaded.module, batch)

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        sr = loaded.info["sample_rate"]
        return {"media": wav_bytes(output, sr), "sample_rate": sr, "seconds": round(len(output) / sr, 4)}
