"""Review figures for MLflow (matplotlib with the Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def blank_grid(n: int, cols: int, cell_width: float, cell_height: float):
    """A figure of ``n`` panels in rows of ``cols`` (each ``cell_width`` x ``cell_height`` inches),
    every axis off: (figure, 2-D array of axes)."""
    rows = int(np.ceil(n / cols))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(cell_width * cols, cell_height * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str]):
    """A labelled heat map of a confusion matrix (counts in the cells)."""
    plt = _pyplot()
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n, 1.0 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(class_names, rotation=90)
    ax.set_yticklabels(class_names)
    for i in range(n):
        for j in range(n):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    return fig


def image_grid_figure(
    images: np.ndarray, titles: Sequence[str], colors: Sequence[str], suptitle: str = "", cols: int = 8
):
    """A grid of uint8 HxWxC images with a coloured title over each."""
    fig, axes = blank_grid(len(images), cols, 1.4, 1.6)
    for ax, img, title, color in zip(axes.flat, images, titles, colors, strict=False):
        ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255)
        ax.set_title(title, fontsize=7, color=color)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig
