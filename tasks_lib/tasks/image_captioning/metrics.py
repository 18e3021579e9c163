"""Caption metrics: corpus BLEU (sacrebleu), CIDEr-D (re-implemented, numpy-free) and exact match.

All take ``hypotheses`` (one string per image) and ``references`` (a list of strings per
image; the count may differ between images).

BLEU-4 is sacrebleu's corpus BLEU (13a tokenisation, exponential smoothing) divided by 100,
so it lies in 0-1. CIDEr-D follows Vedantam et al. (2015) as computed by the coco-caption
``CiderD`` scorer: per n = 1..4, tf-idf vectors of the n-grams (idf from the document
frequency of each n-gram over the corpus's reference sets, ``log(N) - log(max(1, df))``),
the hypothesis counts clipped to the reference's, cosine similarity times the Gaussian length
penalty ``exp(-(len_h - len_r)^2 / (2 * 6^2))``, averaged over references and n, times 10.
Scores therefore depend on the corpus (idf), as in coco-caption; a perfect corpus scores
10 only where no n-gram occurs in every image's references.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import sacrebleu

from tasks_lib.core.text import tokenize


def caption_tokens(text: str) -> list[str]:
    """Lower-cased words of a caption; punctuation dropped (as coco-caption's PTB tokenizer does)."""
    return [t for t in tokenize(text) if t[0].isalnum()]


def bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU-4 (0-1) and its 1-gram precision, with every image's references."""
    if not hypotheses:
        return {"bleu4": 0.0, "bleu1": 0.0}
    n_refs = max(len(r) for r in references)
    streams = [[r[i] if i < len(r) else None for r in references] for i in range(n_refs)]
    score = sacrebleu.corpus_bleu(list(hypotheses), streams)
    return {"bleu4": score.score / 100, "bleu1": score.precisions[0] / 100}


def _ngrams(tokens: list[str], n_max: int = 4) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, n_max + 1) for i in range(len(tokens) - n + 1))


def cider_d(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n_max: int = 4, sigma: float = 6.0
) -> tuple[float, list[float]]:
    """(corpus CIDEr-D, score per image); see the module docstring."""
    hyp_counts = [_ngrams(caption_tokens(h), n_max) for h in hypotheses]
    ref_counts = [[_ngrams(caption_tokens(r), n_max) for r in refs] for refs in references]
    df: Counter = Counter()
    for refs in ref_counts:
        df.update({g for c in refs for g in c})
    log_n = math.log(max(len(ref_counts), 1))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n_max)]
        norm = [0.0] * n_max
        for g, tf in counts.items():
            w = tf * (log_n - math.log(max(1.0, df[g])))
            vec[len(g) - 1][g] = w
            norm[len(g) - 1] += w * w
        length = sum(tf for g, tf in counts.items() if len(g) == 1)
        return vec, [math.sqrt(v) for v in norm], length

    scores = []
    for hc, refs in zip(hyp_counts, ref_counts, strict=True):
        vh, nh, lh = vector(hc)
        total = 0.0
        for rc in refs:
            vr, nr, lr = vector(rc)
            penalty = math.exp(-((lh - lr) ** 2) / (2 * sigma**2))
            for n in range(n_max):
                dot = sum(min(w, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, w in vh[n].items())
                if nh[n] and nr[n]:
                    total += dot / (nh[n] * nr[n]) * penalty
        scores.append(10.0 * total / n_max / max(len(refs), 1))
    return (sum(scores) / len(scores) if scores else 0.0), scores


def caption_metrics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """bleu4 (primary, 0-1), bleu1, cider (CIDEr-D, 0-10), exact_match (equals a reference) and mean_words."""
    norm = [" ".join(caption_tokens(h)) for h in hypotheses]
    exact = [n in {" ".join(caption_tokens(r)) for r in refs} for n, refs in zip(norm, references, strict=True)]
    out = bleu(hypotheses, references)
    out["cider"] = cider_d(hypotheses, references)[0]
    out["exact_match"] = sum(exact) / max(len(exact), 1)
    out["mean_words"] = sum(len(n.split()) for n in norm) / max(len(norm), 1)
    return out
