"""Shared audio code: WAV checks, SI-SDR, SNR mixing, DTW, MCD, CTC decoding, FSDD layout, durations."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from tasks_lib.core import audio
from tasks_lib.core.audio import (
    decode_wav,
    dtw_costs,
    mel_cepstral_distortion,
    mix_at_snr,
    read_fsdd,
    si_sdr,
    si_sdr_torch,
    wav_bytes,
)
from tasks_lib.core.errors import InvalidInput

SR = 8000
TONE = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 422, "empty"),
        (b"GIF89a not audio at all", 415, "not a WAV"),
        (wav_bytes(TONE, 12345), 422, "unsupported sample rate 12345 Hz"),
        (wav_bytes(np.tile(TONE, 44), 4 * SR), 413, "too long"),  # 11 s at 32 kHz, from the header
        (wav_bytes(np.zeros(0), SR), 422, "empty"),
        (wav_bytes(TONE[:400], SR), 422, "too short"),
        (wav_bytes(np.tile(TONE, 11), SR), 413, "too long"),
        (wav_bytes(np.sign(TONE), SR), 422, "clipped"),
        (wav_bytes(TONE, SR)[:30], 400, "could not be decoded"),
    ],
)
def test_decode_wav_refuses_with_a_named_problem(data, status, message):
    with pytest.raises(InvalidInput, match=message) as err:
        decode_wav(data, SR, min_seconds=0.1, max_seconds=10.0)
    assert err.value.status == status


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_a_wav_at_a_common_rate_is_resampled_to_the_models(rate):
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)
    back = decode_wav(wav_bytes(tone, rate), SR)
    assert len(back) == SR and np.abs(back[100:-100] - TONE[100:-100]).max() < 0.01


def test_wav_round_trip_and_stereo_is_mixed_to_mono():
    back = decode_wav(wav_bytes(TONE, SR), SR)
    assert back.dtype == np.float32 and len(back) == SR
    assert np.abs(back - TONE).max() < 1 / 32767 + 1e-6
    buf = io.BytesIO()
    sf.write(buf, np.stack([TONE, -TONE * 0 + 0.1], 1), SR, format="WAV", subtype="PCM_16")
    mono = decode_wav(buf.getvalue(), SR)
    assert mono.ndim == 1 and np.allclose(mono, (TONE + 0.1) / 2, atol=1e-4)


def test_si_sdr_hand_computed_cases():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4000)
    noise = rng.standard_normal(4000)
    noise -= noise.mean()
    noise -= (noise @ (ref - ref.mean())) / ((ref - ref.mean()) @ (ref - ref.mean())) * (ref - ref.mean())
    ref_c = ref - ref.mean()
    # orthogonal noise at 1/10 of the reference power: exactly 10 dB
    scaled = noise * np.sqrt((ref_c @ ref_c) / (noise @ noise) / 10)
    assert si_sdr(ref + scaled, ref) == pytest.approx(10.0, abs=1e-6)
    # equal power: 0 dB; scale invariance: 3 x the estimate changes nothing
    equal = noise * np.sqrt((ref_c @ ref_c) / (noise @ noise))
    assert si_sdr(ref + equal, ref) == pytest.approx(0.0, abs=1e-6)
    assert si_sdr(3 * (ref + scaled), ref) == pytest.approx(10.0, abs=1e-6)
    assert si_sdr(ref, ref) > 70
    batch = torch.tensor(np.stack([ref + scaled, ref + equal]))
    got = si_sdr_torch(batch, torch.tensor(np.stack([ref, ref]))).numpy()
    assert np.allclose(got, [10.0, 0.0], atol=1e-5)


def test_mix_at_snr_gives_the_requested_snr():
    rng = np.random.default_rng(1)
    clean = TONE.astype(np.float32)
    for maker in (lambda n: audio.white_noise(n, rng), lambda n: audio.pink_noise(n, rng)):
        noise = maker(len(clean))
        for snr in (-5.0, 0.0, 10.0):
            mixed = mix_at_snr(clean, noise, snr)
            residual = mixed - clean
            measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(residual.astype(np.float64) ** 2))
            assert measured == pytest.approx(snr, abs=0.01)


def test_dtw_costs_hand_computed():
    q = np.array([[0.0], [1.0], [2.0]], dtype=np.float32)
    same = q.copy()
    stretched = np.array([[0.0], [0.0], [1.0], [2.0]], dtype=np.float32)  # a repeated frame costs nothing
    far = np.array([[5.0]], dtype=np.float32)  # every query frame against 5: (5 + 4 + 3) / (3 + 1)
    costs = dtw_costs(q, [same, stretched, far])
    assert costs == pytest.approx([0.0, 0.0, 3.0])


def test_mcd_is_zero_for_identical_audio_and_grows_with_distortion():
    rng = np.random.default_rng(2)
    speechy = np.concatenate([TONE[:2000], 0.3 * np.sin(2 * np.pi * 900 * np.arange(2000) / SR)]).astype(np.float32)
    assert mel_cepstral_distortion(speechy, speechy, SR) == pytest.approx(0.0, abs=1e-6)
    slight = mel_cepstral_distortion(speechy + 0.003 * rng.standard_normal(len(speechy)), speechy, SR)
    heavy = mel_cepstral_distortion(speechy + 0.3 * rng.standard_normal(len(speechy)), speechy, SR)
    assert 0 < slight < heavy


def test_ctc_greedy_and_beam_decoding():
    from tasks_lib.tasks.speech_recognition.model import beam_decode, greedy_decode

    vocab = " ab"  # index 1 = space, 2 = a, 3 = b; 0 = blank
    path = [2, 2, 0, 2, 3, 3, 1, 3]  # "a a" merged, blank splits the second a: "aab b"
    lp = np.full((len(path), 4), np.log(0.01), dtype=np.float32)
    lp[np.arange(len(path)), path] = np.log(0.97)
    assert greedy_decode(lp, vocab) == "aab b"
    assert beam_decode(lp, vocab, beam=8) == "aab b"


def _write_wav(path, seconds: float, sr: int, freq: float) -> None:
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.2 * np.sin(2 * np.pi * freq * t), sr, subtype="PCM_16")


def test_lexicon_snapping_hand_computed():
    from tasks_lib.core.text_metrics import edit_distance, error_rates
    from tasks_lib.tasks.speech_recognition.model import snap_to_lexicon

    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "four") == 4 and edit_distance("four", "four") == 0
    lexicon = ["eight", "four", "three", "two"]
    assert snap_to_lexicon("thre fov ight", lexicon) == "three four eight"
    assert snap_to_lexicon("two four", lexicon) == "two four"  # known words are kept
    assert snap_to_lexicon("tw", ["two", "to"]) == "two"  # a tie goes to the word listed first
    assert snap_to_lexicon("thre", []) == "thre"
    # WER: 2 of 3 words substituted; CER: "two"->"tow" 2 substitutions + "three"->"thre" 1 deletion, of 13 chars
    wer, cer = error_rates(["one two three"], ["one tow thre"])
    assert wer == pytest.approx(2 / 3) and cer == pytest.approx(3 / 13)


def test_fsdd_loader_reads_the_upstream_layout(tmp_path):
    rec = tmp_path / "free-spoken-digit-dataset" / "recordings"
    rec.mkdir(parents=True)
    for digit, speaker, index in [(0, "george", 0), (7, "jackson", 12), (3, "theo", 4)]:
        _write_wav(rec / f"{digit}_{speaker}_{index}.wav", 0.3, 8000, 200 + 100 * digit)
    (rec / "README.txt").write_text("not a recording")
    folder = audio.locate_fsdd(str(tmp_path / "free-spoken-digit-dataset"))  # finds recordings/ inside
    assert folder == rec
    rows = read_fsdd(folder)
    assert [(r["digit"], r["speaker"], r["index"]) for r in rows] == [
        (0, "george", 0),
        (3, "theo", 4),
        (7, "jackson", 12),
    ]
    assert all(len(r["audio"]) == 2400 and r["audio"].dtype == np.float32 for r in rows)
    _write_wav(rec / "5_nicolas_1.wav", 0.3, 16000, 300)
    with pytest.raises(ValueError, match="expected 8000 Hz"):
        read_fsdd(folder)


def test_missing_espeak_stops_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="espeak-ng is not installed"):
        audio.espeak("one", "en-us", 150, 50, SR)


def test_log_mel_front_end_shape():
    fe = audio.LogMel(SR, 400, 80, 40)
    out = fe(torch.tensor(np.stack([TONE, TONE]), dtype=torch.float32))
    assert out.shape == (2, 40, fe.frames(SR))
    assert torch.isfinite(out).all()


def test_word_durations_cover_every_frame_and_spaces_get_none():
    from tasks_lib.tasks.speech_synthesis.task import word_durations

    durs = word_durations("ab cde", 50, {"ab": 10, "cde": 30})
    assert len(durs) == 6 and sum(durs) == 50 and durs[2] == 0
    assert sum(durs[:2]) == round(50 * 10 / 40)


def test_wiener_baseline_improves_white_noise():
    from tasks_lib.tasks.audio_enhancement.model import wiener_filter

    rng = np.random.default_rng(3)
    clean = np.concatenate([np.zeros(2000), TONE, np.zeros(2000)]).astype(np.float32)
    noisy = mix_at_snr(clean, audio.white_noise(len(clean), rng), 0.0)
    assert si_sdr(wiener_filter(noisy), clean) > si_sdr(noisy, clean) + 5


def test_pesq_ranks_clean_above_wiener_above_noisy_speech():
    """Narrow-band PESQ (the ``pesq`` package) on real FSDD speech: the clean signal scores near
    the top of the scale, 0 dB white noise near the bottom, and the Wiener filter in between."""
    from tasks_lib.tasks.audio_enhancement.model import wiener_filter
    from tasks_lib.tasks.audio_enhancement.task import pesq_nb

    rows = read_fsdd(audio.locate_fsdd(""), 8000)
    clean = np.concatenate([r["audio"] for r in rows if r["speaker"] == "jackson" and r["index"] == 0])
    noisy = mix_at_snr(clean, audio.white_noise(len(clean), np.random.default_rng(0)), 0.0).astype(np.float32)
    top, bottom, mid = pesq_nb(clean, clean), pesq_nb(clean, noisy), pesq_nb(clean, wiener_filter(noisy))
    assert top > 4.0 and bottom < 2.0, (top, bottom)
    assert bottom < mid < top, (bottom, mid, top)
