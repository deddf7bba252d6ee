"""A picture and a count table of a prepared split, to check orientation and labels at a glance."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..files import write_error
from .dataset_io import dataset_class_names, load_split, read_meta
from .stats import class_counts

_ROWS_PER_BLOCK = 16  # classes per column block of the grid
_CELL = 30  # pixels per grid cell: a 28x28 glyph and a 2-pixel gap


def sample_mosaic(images: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int) -> np.ndarray:
    """uint8 picture: one row per class (its first ``per_class`` samples), in column blocks of 16 classes.

    Each row starts with an empty cell where the class label is drawn.
    """
    blocks = math.ceil(num_classes / _ROWS_PER_BLOCK)
    rows = min(num_classes, _ROWS_PER_BLOCK)
    mosaic = np.zeros((rows * _CELL, blocks * (per_class + 1) * _CELL), dtype=np.uint8)
    glyphs = images[:, 0].numpy()
    for c in range(num_classes):
        top = (c % _ROWS_PER_BLOCK) * _CELL
        left = (c // _ROWS_PER_BLOCK) * (per_class + 1) * _CELL
        for k, i in enumerate(torch.nonzero(labels == c).flatten()[:per_class].tolist()):
            x = left + (k + 1) * _CELL
            mosaic[top + 1 : top + 29, x + 1 : x + 29] = glyphs[i]
    return mosaic


def write_grid(cache_path: str | Path, out: str | Path, per_class: int = 8) -> Path:
    """Write a PNG of ``per_class`` training samples per class, labelled with the class character."""
    if per_class < 1:
        raise UserError(f"per_class={per_class}: expected at least 1 sample per class")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta = read_meta(cache_path)
    names = dataset_class_names(cache_path)
    images, labels = load_split(cache_path, "train")
    mosaic = sample_mosaic(images, labels, len(names), per_class)
    height, width = mosaic.shape
    fig = plt.figure(figsize=(width / 40, height / 40 + 0.6), dpi=80)
    ax = fig.add_axes((0, 0, 1, height / (height + 24)))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for c, name in enumerate(names):
        x = (c // _ROWS_PER_BLOCK) * (per_class + 1) * _CELL + _CELL / 2
        y = (c % _ROWS_PER_BLOCK) * _CELL + _CELL / 2
        size = 14 if len(name) <= 4 else 56 / len(name)  # a word (Fashion-MNIST's "Ankle boot") fits its cell
        ax.text(x, y, name, color="gold", fontsize=size, ha="center", va="center", fontweight="bold")
    ax.set_axis_off()
    fig.suptitle(f"{meta['description']}: {per_class} training samples per class", fontsize=16)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("xb") as file:  # created exclusively: an existing file is refused, never replaced
            try:
                fig.savefig(file, format="png")
            except BaseException:
                out.unlink()
                raise
    except FileExistsError:
        raise UserError(existing_output_error(out)) from None
    except OSError as err:
        raise write_error(out, err) from None
    finally:
        plt.close(fig)
    return out


def existing_output_error(out: Path) -> str:
    """The refusal of an ``--out`` file that already exists."""
    return f"--out {out}: already exists; expected a new file (nothing is overwritten)"


def count_report(cache_path: str | Path) -> str:
    """Per-class train/test counts and the training imbalance (largest / smallest class)."""
    meta = read_meta(cache_path)
    names = dataset_class_names(cache_path)
    train = class_counts(load_split(cache_path, "train")[1], len(names))
    test = class_counts(load_split(cache_path, "test")[1], len(names))
    width = max(5, *(len(name) for name in names))
    lines = [meta["description"], f"{'class':>{width}} {'train':>8} {'test':>8}"]
    lines += [f"{name:>{width}} {int(a):>8} {int(b):>8}" for name, a, b in zip(names, train, test)]
    lines.append(f"{'total':>{width}} {int(train.sum()):>8} {int(test.sum()):>8}")
    big, small = int(train.argmax()), int(train.argmin())
    ratio = f"{train[big] / train[small]:.1f}x" if train[small] > 0 else "inf (a class has no samples)"
    lines.append(
        f"imbalance (train, largest/smallest class): {ratio} "
        f"({names[big]!r} {int(train[big])}, {names[small]!r} {int(train[small])})"
    )
    return "\n".join(lines)
