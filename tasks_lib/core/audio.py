"""Audio shared by the audio tasks: WAV decoding with checks, encoding, log-mel front end,
SI-SDR, noise mixing, espeak-ng synthesis, FSDD layout, DTW/MCD and review figures.

Every decode error is an :class:`InvalidInput` whose message names the problem and whose
status serving answers with (415 not a WAV, 422 unusable, 413 too large or too long).
Heavy imports (librosa, soundfile, matplotlib) happen inside the functions that need them.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks_lib.core import expect
from tasks_lib.core.data import subsample
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.task import DataSource

MAX_WAV_BYTES = 5 * 1024 * 1024
CLIP_LEVEL = 0.999  # |sample| at or above this (full scale = 1) counts as clipped
MAX_CLIPPED_FRACTION = 0.01  # more clipped samples than this: the recording is distorted
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# -- WAV in and out ------------------------------------------------------------------


COMMON_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)


def decode_wav(
    data: bytes,
    sample_rate: int,
    min_seconds: float = 0.1,
    max_seconds: float = 10.0,
    max_bytes: int = MAX_WAV_BYTES,
    max_clipped: float = MAX_CLIPPED_FRACTION,
) -> np.ndarray:
    """Decode WAV bytes into mono float32 in [-1, 1] at ``sample_rate``, or raise InvalidInput.

    A WAV at any of :data:`COMMON_SAMPLE_RATES` is resampled to ``sample_rate`` (soxr, high
    quality); the duration limit is checked from the header, before any sample is decoded.
    """
    import soundfile as sf

    if not data:
        raise InvalidInput("audio is empty (0 bytes): send a WAV file", status=422)
    if len(data) > max_bytes:
        raise InvalidInput(f"audio is too large: {len(data)} bytes, the limit is {max_bytes}", status=413)
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise InvalidInput("not a WAV file: expected RIFF/WAVE bytes (audio/wav)", status=415)
    try:
        with sf.SoundFile(io.BytesIO(data)) as f:
            if f.format != "WAV" and f.format != "RF64":
                raise InvalidInput(f"not a WAV file: the bytes hold {f.format}", status=415)
            sr, frames = f.samplerate, f.frames
            if sr not in COMMON_SAMPLE_RATES and sr != sample_rate:
                raise InvalidInput(
                    f"unsupported sample rate {sr} Hz: send one of {', '.join(map(str, COMMON_SAMPLE_RATES))} Hz "
                    f"(the model runs at {sample_rate} Hz)",
                    status=422,
                )
            if frames / sr > max_seconds:
                raise InvalidInput(f"audio is too long: {frames / sr:.2f} s, the limit is {max_seconds} s", status=413)
            x = f.read(dtype="float32", always_2d=True)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001  (soundfile raises its own error types)
        raise InvalidInput(f"WAV could not be decoded (truncated or corrupt?): {exc}", status=400) from None
    x = x.mean(axis=1)  # mono
    if len(x) == 0:
        raise InvalidInput("audio is empty: the WAV holds no samples", status=422)
    if not np.isfinite(x).all():
        raise InvalidInput("audio contains NaN or infinite samples", status=422)
    seconds = len(x) / sr
    if seconds < min_seconds:
        raise InvalidInput(f"audio is too short: {seconds:.3f} s, at least {min_seconds} s is needed", status=422)
    if seconds > max_seconds:
        raise InvalidInput(f"audio is too long: {seconds:.2f} s, the limit is {max_seconds} s", status=413)
    clipped = clipping_fraction(x)
    if clipped > max_clipped:
        raise InvalidInput(
            f"audio is clipped: {clipped:.1%} of samples at full scale (limit {max_clipped:.0%}); lower the gain",
            status=422,
        )
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate, quality="HQ")
    return x.astype(np.float32)


def wav_bytes(x: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float audio (clipped to [-1, 1]) as 16-bit PCM WAV bytes."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(x, dtype=np.float32), -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def wav_bad_requests(sample_rate: int, max_seconds: float, other: dict) -> list:
    """What an endpoint taking WAVs at ``sample_rate`` (at most ``max_seconds`` long) must refuse, as
    ``Task.bad_requests`` lists it: not a WAV, a rate no recorder uses (common rates are
    resampled), empty, too short, too long, clipped, and ``other``, a request of a field it
    does not take."""
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(sample_rate) / sample_rate)  # one second
    return [
        ({"audio": b"RIFF....not really a wav"}, 415, "not a WAV"),
        ({"audio": wav_bytes(tone, 12345)}, 422, "unsupported sample rate 12345 Hz"),
        ({"audio": wav_bytes(np.zeros(0), sample_rate)}, 422, "empty"),
        ({"audio": wav_bytes(tone[:100], sample_rate)}, 422, "too short"),
        ({"audio": wav_bytes(np.tile(tone, int(max_seconds) + 1), sample_rate)}, 413, "too long"),
        ({"audio": wav_bytes(np.sign(tone), sample_rate)}, 422, "clipped"),
        (other, 422, "not used"),
    ]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file as mono float32 and its sample rate."""
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def clipping_fraction(x: np.ndarray) -> float:
    return float(np.mean(np.abs(x) >= CLIP_LEVEL)) if len(x) else 0.0


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS (silence is about -100)."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-5)) if len(x) else -100.0


def audio_columns(clips: Sequence[np.ndarray], sample_rate: int) -> dict[str, list]:
    """Per-clip manifest columns that the audio expectations check."""
    return {
        "sample_rate": [sample_rate] * len(clips),
        "duration_s": [round(len(c) / sample_rate, 4) for c in clips],
        "clipped_fraction": [round(clipping_fraction(c), 5) for c in clips],
        "rms_db": [round(rms_db(c), 2) for c in clips],
    }


def audio_expectations(sample_rate: int, min_s: float, max_s: float, min_rms_db: float = -50.0) -> list:
    """Expectations every audio manifest built with :func:`audio_columns` must meet."""

    return [
        expect.in_set("sample_rate", [sample_rate], f"the model takes {sample_rate} Hz audio only"),
        expect.between("duration_s", min_s, max_s, "clips too short carry no word, too long ones blow memory"),
        expect.between("clipped_fraction", 0.0, MAX_CLIPPED_FRACTION, "clipped recordings are distorted"),
        expect.between("rms_db", min_rms_db, 0.0, "a silent clip (or a broken file) has nothing to learn from"),
        expect.no_leak("a clip in two splits leaks test data into training"),
    ]


def save_clips(out: Path, name: str, clips: Sequence[np.ndarray]) -> None:
    """Clips as one int16 array plus offsets (two files instead of thousands of WAVs)."""
    lengths = np.array([len(c) for c in clips], dtype=np.int64)
    np.save(out / f"{name}_audio.npy", np.concatenate([to_int16(c) for c in clips]) if len(clips) else np.zeros(0))
    np.save(out / f"{name}_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]))


def load_clips(folder: Path, name: str) -> list[np.ndarray]:
    audio = np.load(folder / f"{name}_audio.npy").astype(np.float32) / 32767
    offsets = np.load(folder / f"{name}_offsets.npy")
    return [audio[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


# -- FSDD ------------------------------------------------------------------------------


def parse_fsdd_name(name: str) -> tuple[int, str, int] | None:
    """``{digit}_{speaker}_{index}.wav`` -> (digit, speaker, index), or None."""
    m = FSDD_NAME.match(name)
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def locate_fsdd(path: str) -> Path:
    """The folder holding FSDD's ``{digit}_{speaker}_{index}.wav``: --path, its recordings/, or the mirror."""
    from tasks_lib.core.data import datasets_mirror

    if path:
        root = Path(path)
    else:
        mirror = datasets_mirror()
        if mirror is None:
            raise FileNotFoundError(
                "FSDD not found: set MLZOO_DATASETS to the dataset mirror or give --path to the recordings folder "
                "(github.com/Jakobovski/free-spoken-digit-dataset)"
            )
        root = mirror / "fsdd"
    for cand in (root, root / "recordings"):
        if cand.is_dir() and any(parse_fsdd_name(p.name) for p in cand.iterdir()):
            return cand
    raise FileNotFoundError(f"{root} holds no FSDD recordings named {{digit}}_{{speaker}}_{{index}}.wav")


def read_fsdd(folder: Path, sample_rate: int = 8000) -> list[dict]:
    """Every FSDD recording in ``folder``: dicts of digit, speaker, index, audio (sorted by name)."""
    rows = []
    for p in sorted(folder.iterdir()):
        key = parse_fsdd_name(p.name)
        if key is None:
            continue
        x, sr = read_wav(p)
        if sr != sample_rate:
            raise ValueError(f"{p}: expected {sample_rate} Hz like FSDD, got {sr} Hz")
        rows.append({"digit": key[0], "speaker": key[1], "index": key[2], "audio": x, "file": p.name})
    if not rows:
        raise FileNotFoundError(f"{folder} holds no FSDD recordings")
    return rows


FSDD_LAYOUT = "FSDD recordings ({digit}_{speaker}_{index}.wav, 8 kHz) from --path or the dataset mirror"


def fsdd_source(name: str, extra: str) -> DataSource:
    """A task's source that reads FSDD (from --path or the mirror) and adds ``extra`` (how, in words)."""
    return DataSource(name, f"{FSDD_LAYOUT}, {extra}", "mirror")


def fsdd_recordings(path: str, sample_rate: int, max_samples: int, seed: int, max_index: int = 0) -> list[dict]:
    """The FSDD recordings (:func:`read_fsdd`) of index below ``max_index`` (0: all), then a seeded
    random ``max_samples`` of them (0: all), in name order."""
    recordings = read_fsdd(locate_fsdd(path), sample_rate)
    if max_index:
        recordings = [r for r in recordings if r["index"] < max_index]
    keep = subsample(len(recordings), max_samples, seed)
    return recordings if keep is None else [recordings[i] for i in keep]


def fsdd_split(index: int, val_indices: int) -> str:
    """FSDD's own split by recording index: 0-4 test, the next ``val_indices`` validation, the rest train."""
    return "test" if index < 5 else "val" if index < 5 + val_indices else "train"


# -- espeak-ng -------------------------------------------------------------------------


def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(
            "espeak-ng is not installed, but this data step synthesises speech with it: install it "
            "(`make setup`, or `apt-get install espeak-ng` / `brew install espeak-ng`) and run again"
        )
    return exe


def espeak(text: str, voice: str, speed: int, pitch: int, sample_rate: int) -> np.ndarray:
    """``text`` spoken by espeak-ng, resampled to ``sample_rate``, mono float32 (deterministic)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    exe = require_espeak()
    proc = subprocess.run(  # noqa: S603 (fixed executable, text passed as one argument)
        [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        capture_output=True,
        check=True,
    )
    x, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != sample_rate:
        g = np.gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g).astype(np.float32)
    return x


def espeak_many(jobs: Sequence[tuple[str, str, int, int]], sample_rate: int, workers: int = 4) -> list[np.ndarray]:
    """:func:`espeak` over (text, voice, speed, pitch) jobs, several processes at once; order kept."""
    if not jobs:
        return []
    require_espeak()
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: espeak(*j, sample_rate=sample_rate), jobs))


def trim_silence(x: np.ndarray, top_db: float = 40.0, pad: int = 160) -> np.ndarray:
    """Cut leading/trailing silence (below peak - top_db in 20 ms frames), keeping ``pad`` samples."""
    frame = 160
    n = len(x) // frame
    if n == 0:
        return x
    e = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-10)
    loud = np.flatnonzero(e > e.max() - top_db)
    a, b = loud[0] * frame, (loud[-1] + 1) * frame
    return x[max(0, a - pad) : min(len(x), b + pad)]


# -- noise ---------------------------------------------------------------------------


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def hum_noise(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and decaying harmonics with random phases."""
    base = rng.choice([50.0, 60.0])
    t = np.arange(n) / sample_rate
    x = sum((0.7**k) * np.sin(2 * np.pi * base * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(8))
    return np.asarray(x, dtype=np.float32)


def babble_noise(n: int, rng: np.random.Generator, talkers: Sequence[np.ndarray]) -> np.ndarray:
    """Several other utterances summed at random offsets (looped to length ``n``)."""
    out = np.zeros(n, dtype=np.float32)
    for clip in talkers:
        clip = clip / (np.std(clip) + 1e-8)
        reps = int(np.ceil((n + len(clip)) / max(len(clip), 1))) + 1
        looped = np.tile(clip, reps)
        start = int(rng.integers(0, len(clip)))
        out += looped[start : start + n]
    return out


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + g * noise`` with ``g`` giving the requested SNR (powers over the whole clip)."""
    p_clean = np.mean(clean.astype(np.float64) ** 2) + 1e-12
    p_noise = np.mean(noise.astype(np.float64) ** 2) + 1e-12
    g = np.sqrt(p_clean / (p_noise * 10 ** (snr_db / 10)))
    return (clean + g * noise).astype(np.float32)


# -- metrics ---------------------------------------------------------------------------


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), zero-mean signals."""
    est = np.asarray(estimate, dtype=np.float64) - np.mean(estimate)
    ref = np.asarray(reference, dtype=np.float64) - np.mean(reference)
    target = (np.dot(est, ref) / (np.dot(ref, ref) + eps)) * ref
    noise = est - target
    return float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def si_sdr_torch(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Batched SI-SDR (dB) over the last axis, differentiable (for a negative-SI-SDR loss)."""
    est = estimate - estimate.mean(-1, keepdim=True)
    ref = reference - reference.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def mfcc(x: np.ndarray, sample_rate: int, n_mfcc: int = 13, hop: int = 80, n_mels: int = 40) -> np.ndarray:
    """MFCCs, frames x coefficients (librosa, 25 ms windows)."""
    import librosa

    m = librosa.feature.mfcc(
        y=np.asarray(x, dtype=np.float32),
        sr=sample_rate,
        n_mfcc=n_mfcc,
        n_fft=int(0.032 * sample_rate),
        win_length=int(0.025 * sample_rate),
        hop_length=hop,
        n_mels=n_mels,
    )
    return m.T.astype(np.float32)


def dtw_costs(query: np.ndarray, templates: Sequence[np.ndarray]) -> np.ndarray:
    """Length-normalised DTW cost (Euclidean frames, steps (1,0),(0,1),(1,1)) of ``query`` to each template.

    All templates are aligned at once: the dynamic programme runs over a padded
    (templates, query, template) cost tensor, reading each template's own end cell.
    """
    k, n = len(templates), len(query)
    m = max(len(t) for t in templates)
    dim = query.shape[1]
    pad = np.zeros((k, m, dim), dtype=np.float32)
    lens = np.array([len(t) for t in templates])
    for i, t in enumerate(templates):
        pad[i, : len(t)] = t
    cost = np.sqrt(((query[None, :, None, :] - pad[:, None, :, :]) ** 2).sum(-1))  # k, n, m
    acc = np.full((k, n + 1, m + 1), np.inf)
    acc[:, 0, 0] = 0.0
    for i in range(1, n + 1):
        row = cost[:, i - 1, :]
        diag_up = np.minimum(acc[:, i - 1, :-1], acc[:, i - 1, 1:])  # (i-1, j-1) and (i-1, j)
        cur = acc[:, i, :]
        for j in range(1, m + 1):
            cur[:, j] = row[:, j - 1] + np.minimum(diag_up[:, j - 1], cur[:, j - 1])
    return acc[np.arange(k), n, lens] / (n + lens)


def mel_cepstrum(x: np.ndarray, sample_rate: int, n_coeffs: int = 13, n_mels: int = 40) -> np.ndarray:
    """Mel cepstra c1..c_n (frames x n): DCT-II (orthonormal) of the natural-log mel power, floored at 1e-5.

    The floor keeps digital silence from dominating distances (waveforms are expected at
    normal levels, peaks around 0.5-1).
    """
    import librosa
    from scipy.fft import dct

    n_fft, hop = int(0.032 * sample_rate), int(0.010 * sample_rate)
    x = np.asarray(x, dtype=np.float32)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    log_mel = np.log(fb @ (spec.abs() ** 2).numpy() + 1e-5)
    return dct(log_mel, type=2, norm="ortho", axis=0)[1 : n_coeffs + 1].T


def mel_cepstral_distortion(synth: np.ndarray, reference: np.ndarray, sample_rate: int) -> float:
    """MCD in dB between two utterances, frames aligned by DTW (lower is better).

    MCD = (10 / ln 10) * sqrt(2 * sum_{d=1..13} (c_d - c'_d)^2), averaged over the DTW path
    (c0, the energy, excluded as usual).
    """
    import librosa

    a, b = mel_cepstrum(synth, sample_rate), mel_cepstrum(reference, sample_rate)
    dist = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    _, path = librosa.sequence.dtw(C=dist, backtrack=True)
    diffs = a[path[:, 0]] - b[path[:, 1]]
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * (diffs**2).sum(-1))))


# -- front end -------------------------------------------------------------------------


class LogMel(nn.Module):
    """Waveform (batch, samples) -> log-mel (batch, n_mels, frames) with torch.stft and a librosa filterbank."""

    def __init__(self, sample_rate: int, n_fft: int, hop: int, n_mels: int):
        super().__init__()
        import librosa

        self.n_fft, self.hop = n_fft, hop
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=20.0, fmax=sample_rate / 2)
        self.register_buffer("fb", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, self.n_fft, self.hop, window=self.window, return_complex=True, center=True)
        power = spec.real.pow(2) + spec.imag.pow(2)
        return torch.log(torch.matmul(self.fb, power) + 1e-6)

    def frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1


# -- review figures --------------------------------------------------------------------


def spectrogram_figure(rows: Sequence[tuple[str, np.ndarray]], sample_rate: int, suptitle: str = ""):
    """Log spectrograms, one row per (title, waveform), on a shared dB scale."""
    from tasks_lib.core.figures import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(7, 1.8 * len(rows)), squeeze=False)
    for ax, (title, x) in zip(axes[:, 0], rows, strict=True):
        x = np.asarray(x, dtype=np.float32)
        if len(x) < 256:
            x = np.pad(x, (0, 256 - len(x)))
        spec = np.abs(
            torch.stft(torch.from_numpy(x), 256, 64, window=torch.hann_window(256), return_complex=True).numpy()
        )
        db = 20 * np.log10(spec + 1e-5)
        ax.imshow(
            db,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-80,
            vmax=db.max(),
            extent=(0, len(x) / sample_rate, 0, sample_rate / 2),
        )
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("Hz", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("seconds", fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig
