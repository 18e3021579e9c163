"""Verification metrics from pair scores: ROC curve and AUC (scikit-learn), equal error rate, accuracy at a
threshold."""

from __future__ import annotations

import warnings

import numpy as np


def roc_curve(same: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), thresholds falling; ties share one point.

    ``sklearn.metrics.roc_curve`` keeping every point (``drop_intermediate=False``: the equal error
    rate is interpolated between neighbours). A rate with no pairs to count (one class only) is 0, not NaN.
    """
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import roc_curve as sk_roc_curve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = sk_roc_curve(np.asarray(same, bool), np.asarray(score, float), drop_intermediate=False)
    return np.nan_to_num(fpr), np.nan_to_num(tpr), thresholds


def roc_auc(same: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``): P(score of a same pair > a different
    pair), ties count half; 0 when the pairs hold one class only (undefined)."""
    from sklearn.metrics import roc_auc_score

    same = np.asarray(same, bool)
    if same.all() or not same.any():
        return 0.0
    return float(roc_auc_score(same, np.asarray(score, float)))


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
