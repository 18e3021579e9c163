"""Classification metrics computed from labels and predictions, by scikit-learn."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes (``sklearn.metrics.confusion_matrix``)."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    return sk_confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=np.arange(n_classes)).astype(np.int64)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """accuracy, macro-F1 and per-class accuracy (recall) as ``acc_class_<i>``.

    Macro-F1 averages the classes present in ``y_true`` (a class absent from the split says
    nothing about the model); a class never predicted has F1 0 (``zero_division=0``).
    """
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.arange(n_classes)
    present = np.unique(y_true)
    recall = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))
        if len(present)
        else 0.0,
    }
    out.update({f"acc_class_{i}": float(recall[i]) for i in range(n_classes)})
    return out
