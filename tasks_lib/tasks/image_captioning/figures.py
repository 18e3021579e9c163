"""Review figure: test images with the predicted caption (green when it equals a reference) and the reference."""

from __future__ import annotations

import textwrap

import numpy as np

from tasks_lib.core.figures import blank_grid


def captions_figure(images: np.ndarray, hypotheses: list[str], references: list[list[str]], cols: int = 4):
    fig, axes = blank_grid(len(images), cols, 3.4, 4.0)
    for ax, img, hyp, refs in zip(axes.flat, images, hypotheses, references, strict=False):
        ax.imshow(img)
        exact = hyp in refs
        ax.set_title("\n".join(textwrap.wrap(hyp or "(empty)", 32)), fontsize=7, color="green" if exact else "red")
        ax.text(
            0.5,
            -0.04,
            "\n".join(textwrap.wrap(f"ref: {refs[0]}", 36)),
            transform=ax.transAxes,
            ha="center",
            va="top",
            fontsize=6.5,
        )
    fig.suptitle("test split: predicted caption (green = equals the reference) over the reference", fontsize=9)
    fig.tight_layout()
    return fig
