"""Verification metrics from pair scores: ROC curve, ROC AUC, equal error rate, accuracy at a threshold."""

from __future__ import annotations

import numpy as np


def roc_curve(same: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds falling; ties share one point."""
    same, score = np.asarray(same, bool), np.asarray(score, float)
    order = np.argsort(-score, kind="stable")
    s, t = score[order], same[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tp, fp = np.cumsum(t)[last], np.cumsum(~t)[last]
    tpr = np.r_[0.0, tp / max(t.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~t).sum(), 1)]
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(same: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids): P(score of a same pair > a different pair), ties count half."""
    fpr, tpr, _ = roc_curve(same, score)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def equal_error_rate(same: np.ndarray, score: np.ndarray) -> float:
    """The error rate where false accepts equal false rejects (interpolated on the ROC curve)."""
    fpr, tpr, _ = roc_curve(same, score)
    fnr = 1 - tpr
    i = int(np.flatnonzero(fnr <= fpr)[0])  # first point where false rejects no longer exceed false accepts
    if i == 0:
        return float(fpr[0])
    # crossing between points i-1 and i of (fpr, fnr)
    d0, d1 = fnr[i - 1] - fpr[i - 1], fnr[i] - fpr[i]
    w = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def best_threshold(same: np.ndarray, score: np.ndarray) -> float:
    """The threshold (same if score >= it) with the best accuracy on these pairs; midpoints between scores."""
    same, score = np.asarray(same, bool), np.asarray(score, float)
    cands = np.unique(score)
    mids = np.r_[cands[0] - 1e-6, (cands[1:] + cands[:-1]) / 2, cands[-1] + 1e-6]
    acc = [((score >= m) == same).mean() for m in mids]
    return float(mids[int(np.argmax(acc))])


def pair_accuracy(same: np.ndarray, score: np.ndarray, threshold: float) -> float:
    return float(((np.asarray(score) >= threshold) == np.asarray(same, bool)).mean())
