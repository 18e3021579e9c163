"""Texts the speech data steps have espeak-ng speak (speech_recognition and speech_synthesis): digit strings
and sentences from a small grammar, the character vocabulary, and the voices they are spoken in."""

from __future__ import annotations

import hashlib

import numpy as np

from tasks_lib.core.audio import DIGIT_WORDS

VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3", "en-gb+f2", "en-us+m3")
SUBJECTS = (
    "the cat",
    "a dog",
    "my friend",
    "the old man",
    "her brother",
    "a small bird",
    "the teacher",
    "our neighbour",
)
VERBS = ("sees", "likes", "finds", "wants", "brings", "takes", "makes", "opens")
OBJECTS = (
    "the red box", "a green door", "the big house", "some fresh bread",
    "a cold drink", "the blue car", "my new book", "the open window",
)  # fmt: skip
TAILS = ("", "today", "at night", "every morning", "in the park", "near the river")
VOCAB = " 'abcdefghijklmnopqrstuvwxyz"


def text_bucket(text: str) -> str:
    """The split a text belongs to, fixed by its hash: no text is spoken in two splits."""
    h = int(hashlib.sha1(text.encode()).hexdigest(), 16) % 10
    return "test" if h == 0 else "val" if h == 1 else "train"


def random_text(rng: np.random.Generator, kind: str) -> str:
    if kind == "digits":
        return " ".join(DIGIT_WORDS[d] for d in rng.integers(0, 10, int(rng.integers(2, 6))))
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS)]
    return " ".join(p for p in parts if p)


def draw_texts(counts: dict[str, int], seed: int, kinds: tuple[str, ...] = ("digits", "sentence")) -> list[tuple]:
    """(split, kind, text) rows: ``counts[split]`` texts per split, kinds alternating, texts split by hash."""
    rng = np.random.default_rng(seed)
    rows, have = [], dict.fromkeys(counts, 0)
    tries = 0
    while any(have[s] < counts[s] for s in counts):
        kind = kinds[tries % len(kinds)]
        tries += 1
        text = random_text(rng, kind)
        split = text_bucket(text)
        if split in counts and have[split] < counts[split]:
            rows.append((split, kind, text))
            have[split] += 1
        if tries > 200 * (sum(counts.values()) + 10):
            raise RuntimeError(f"could not draw {counts} distinct texts")
    return rows


def synth_jobs(texts: list[str], seed: int) -> list[tuple[str, str, int, int]]:
    """(text, voice, speed wpm, pitch) per text: voices, speeds and pitches vary deterministically."""
    rng = np.random.default_rng(seed)
    return [
        (t, VOICES[int(rng.integers(len(VOICES)))], int(rng.integers(130, 200)), int(rng.integers(25, 75)))
        for t in texts
    ]
