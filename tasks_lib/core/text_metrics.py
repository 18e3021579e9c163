"""Transcript metrics shared by the speech tasks: edit distance (rapidfuzz) and WER / CER (jiwer).

speech_recognition scores its transcripts with them; speech_synthesis scores the
intelligibility of its audio with the speech_recognition champion's transcripts.
"""

from __future__ import annotations

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions, substitutions cost 1).

    ``rapidfuzz.distance.Levenshtein`` (C++): it runs on the serving path, once per word and lexicon entry.
    """
    return int(Levenshtein.distance(a, b))


def nearest_word(word: str, lexicon: list[str]) -> str:
    """The lexicon entry closest to ``word`` by edit distance; a tie goes to the entry listed first."""
    return process.extractOne(word, lexicon, scorer=Levenshtein.distance)[0]


def error_rates(refs: list[str], hyps: list[str]) -> tuple[float, float]:
    """(WER, CER) over a set of utterances (jiwer; an empty hypothesis counts as all deletions)."""
    import jiwer

    return float(jiwer.wer(refs, hyps)), float(jiwer.cer(refs, hyps))
