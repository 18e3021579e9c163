"""Review figure: track trails (each id its colour, its past box centres joined) on fixed test frames."""

from __future__ import annotations

import numpy as np

from tasks_lib.core.figures import _pyplot


def trails_figure(seqs, tracks, title: str, cols: int = 4):
    """Rows = sequences, columns = evenly spaced frames; ground truth dashed white, tracks coloured by id."""
    plt = _pyplot()
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(seqs), cols, figsize=(2.8 * cols, 2.9 * len(seqs)), squeeze=False)
    for row, (seq, trs) in enumerate(zip(seqs, tracks, strict=True)):
        n = len(seq.frames)
        for col, t in enumerate(np.linspace(0, n - 1, cols).round().astype(int)):
            ax = axes[row, col]
            ax.imshow(seq.frames[t])
            ax.axis("off")
            for r in seq.boxes_in(t + 1):
                ls = "--" if r[6] > 0 else ":"
                ax.add_patch(plt.Rectangle(r[2:4], r[4] - r[2], r[5] - r[3], fill=False, ls=ls, lw=0.8, ec="white"))
            for tid, frames in trs:
                past = [(f, b) for f, b, _ in frames if f <= t]
                if not past:
                    continue
                color = cmap((tid - 1) % 10)
                centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for _, b in past])
                ax.plot(centres[:, 0], centres[:, 1], "-", color=color, lw=1.2)
                f, b = past[-1]
                if f == t:
                    ax.add_patch(plt.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=1.4, ec=color))
                    ax.text(b[0], b[1] - 1, str(tid), color=color, fontsize=7, va="bottom")
            ax.set_title(f"{seq.name} frame {t + 1}", fontsize=7)
    fig.suptitle(f"{title}: trails by track id over ground truth (dashed; dotted = ignored)", fontsize=9)
    fig.tight_layout()
    return fig
