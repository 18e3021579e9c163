"""Review figure: predicted boxes (solid, with class and score) over ground truth (dashed)."""

from __future__ import annotations

from tasks_lib.core.figures import _pyplot, blank_grid


def detections_figure(images, preds, gt_boxes, gt_labels, classes, score_min: float = 0.3, cols: int = 4):
    plt = _pyplot()
    fig, axes = blank_grid(len(images), cols, 3.2, 3.3)
    for ax, img, (pb, ps, pl), gb, _gl in zip(axes.flat, images, preds, gt_boxes, gt_labels, strict=False):
        ax.imshow(img)
        for b in gb:
            ax.add_patch(plt.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, ls="--", lw=1, ec="white"))
        for b, s, lab in zip(pb, ps, pl, strict=True):
            if s < score_min:
                continue
            ax.add_patch(plt.Rectangle(b[:2], b[2] - b[0], b[3] - b[1], fill=False, lw=1.5, ec="lime"))
            ax.text(b[0], b[1] - 1, f"{classes[int(lab)]} {s:.2f}", color="lime", fontsize=6, va="bottom")
        ax.set_title(f"{len(gb)} objects, {int((ps >= score_min).sum())} found", fontsize=8)
    fig.suptitle(f"test split: predictions (green, score >= {score_min}) over ground truth (dashed)", fontsize=9)
    fig.tight_layout()
    return fig
