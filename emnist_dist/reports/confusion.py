"""Evaluation report pieces: per-class table, most-confused pairs, and the two figures.

Everything takes the confusion matrix (rows: true class, columns: prediction) or the
predictions themselves, so it serves the ``evaluate`` command and the trackers alike.
Figures are matplotlib ``Figure`` objects drawn with the Agg canvas, without pyplot: no
display, no global backend switch, nothing to close.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import torch
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from torchmetrics.functional.classification import (
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from ..files import atomic_path


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts ``(C, C)``: row = true class, column = predicted class."""
    return multiclass_confusion_matrix(preds, targets, num_classes)


def per_class_table(preds: torch.Tensor, targets: torch.Tensor, class_names: list[str]) -> list[dict]:
    """One row per class: ``class``, ``precision``, ``recall``, ``f1``, ``support`` (0 where undefined)."""
    c = len(class_names)
    precision = multiclass_precision(preds, targets, c, average=None)
    recall = multiclass_recall(preds, targets, c, average=None)
    f1 = multiclass_f1_score(preds, targets, c, average=None)
    support = torch.bincount(targets, minlength=c)
    return [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]


def confused_pairs(confusion: torch.Tensor, class_names: list[str], top: int = 20) -> list[dict]:
    """The most frequent errors, ``true -> predicted``, most first.

    Each row: ``true``, ``pred``, ``count``, ``rate`` (share of the true class's samples)
    and ``case_only`` (the two differ only by letter case, e.g. c/C).
    """
    cm = confusion.cpu().long().clone()
    support = cm.sum(dim=1)
    cm.fill_diagonal_(0)
    counts, flat = cm.flatten().sort(descending=True, stable=True)
    rows = []
    for count, index in zip(counts.tolist()[:top], flat.tolist()[:top]):
        if count == 0:
            break
        t, p = divmod(index, cm.shape[1])
        true, pred = class_names[t], class_names[p]
        rows.append({"true": true, "pred": pred, "count": count, "rate": count / int(support[t]),
                     "case_only": true != pred and true.lower() == pred.lower()})
    return rows


PER_CLASS_COLUMNS = ["class", "precision", "recall", "f1", "support"]
PAIR_COLUMNS = ["true", "pred", "count", "rate", "case_only"]


def write_csv(rows: list[dict], path: str | os.PathLike, columns: list[str]) -> None:
    """Write dict rows under the header ``columns`` atomically (the header even when there are no rows)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


MAX_LABELLED_CLASSES = 100


def confusion_matrix_figure(confusion: torch.Tensor, class_names: list[str]) -> Figure:
    """Row-normalised confusion matrix, class characters on both axes.

    Sized so 62 classes stay readable (about a quarter inch per class); a square-root
    colour scale makes the rare confusions visible next to the ~90% diagonal. Up to 20
    classes, every non-zero cell is also written as a percentage. Past ``MAX_LABELLED_CLASSES``
    (the audit's fold models have 8 outputs per class: 496 for ByClass) the figure stops growing
    and the axes carry no names.
    """
    cm = confusion.cpu().double()
    rates = (cm / cm.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    n = len(class_names)
    side = max(6.0, 0.26 * min(n, MAX_LABELLED_CLASSES) + 2.5)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="viridis", norm=PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0), interpolation="nearest")
    if n <= MAX_LABELLED_CLASSES:
        ticks = np.arange(n)
        font = 10 if n <= 30 else 8
        # Monospace: its glyphs tell l/I/1 and O/0 apart, exactly the confusions that matter.
        ax.set_xticks(ticks, class_names, fontsize=font, fontfamily="monospace")
        ax.set_yticks(ticks, class_names, fontsize=font, fontfamily="monospace")
        ax.tick_params(top=True, labeltop=True)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (each row normalised to 1; square-root colour scale)")
    if n <= 20:
        for t in range(n):
            for p in range(n):
                if rates[t, p] > 0:
                    ax.text(p, t, f"{100 * rates[t, p]:.0f}", ha="center", va="center", fontsize=7,
                            color="black" if rates[t, p] > 0.5 else "white")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class")
    fig.tight_layout()
    return fig


def worst_misclassified_figure(images: np.ndarray, targets: np.ndarray, preds: np.ndarray, confidence: np.ndarray,
                               class_names: list[str], count: int = 36) -> Figure:
    """Grid of the misclassified images predicted with the highest confidence.

    Args:
        images: upright uint8 glyphs ``(N, 28, 28)`` (or ``(N, 1, 28, 28)``), ink bright.
        targets, preds: class indices ``(N,)``.
        confidence: probability of the predicted class ``(N,)``.
        count: at most this many cells, worst first.
    """
    images = images.reshape(len(images), images.shape[-2], images.shape[-1])
    wrong = np.flatnonzero(preds != targets)
    worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    cols = 6
    rows = max(1, -(-len(worst) // cols))
    fig = Figure(figsize=(cols * 1.6, rows * 1.85))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, worst):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"true {class_names[targets[i]]}  pred {class_names[preds[i]]}\n{100 * confidence[i]:.0f}%",
                     fontsize=9, fontfamily="monospace")
    fig.suptitle("Most confident mistakes (true / predicted, confidence)" if len(worst) else "No mistakes")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
