"""Pictures of a training run: ``confusion_matrix.png`` and ``curves.png`` in the run folder.

The curves come from the run's ``metrics.jsonl`` (:func:`read_metrics_log`, one record per validation):
training loss, validation accuracy, balanced accuracy and top-5 accuracy, and the learning rate, against
epochs (:func:`curves_figure`, one colour per run, so it also compares runs: ``python -m emnist_dist.plot``).
Training writes both pictures at its end (:func:`write_run_pictures`); the confusion matrix is the one the
trackers get.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ..errors import UserError
from ..train.run_folder import METRICS_LOG, RunFolder
from .confusion import confusion_matrix_figure, save_figure


def read_metrics_log(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``; a missing or malformed file raises UserError naming it."""
    path = RunFolder(run_dir).metrics
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: not a folder; expected a training run folder holding {METRICS_LOG}")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: cannot read ({err.__class__.__name__}); expected the {METRICS_LOG} "
                        "a training run writes") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), (int, float)):
            raise UserError(f"{path}: line {number} is not a JSON object with an epoch; expected one record "
                            "per validation as training writes them")
        records.append(record)
    return records


def curves_figure(runs: dict[str, list[dict]]) -> Figure:
    """Training loss, validation accuracies and learning rate against epochs, one colour per run."""
    fig = Figure(figsize=(15, 4.5))
    loss_ax, acc_ax, lr_ax = fig.subplots(1, 3)
    for colour, (name, records) in zip(_colours(len(runs)), runs.items()):
        epochs = [r["epoch"] for r in records]

        def series(key: str) -> list[float]:
            return [r.get(key, np.nan) for r in records]

        loss_ax.plot(epochs, series("train/loss"), "o-", color=colour, label=name)
        acc_ax.plot(epochs, series("val/acc"), "o-", color=colour, label=f"{name}: accuracy")
        acc_ax.plot(epochs, series("val/balanced_acc"), "s--", color=colour, label=f"{name}: balanced accuracy")
        if any("val/top5_acc" in r for r in records):
            acc_ax.plot(epochs, series("val/top5_acc"), "^:", color=colour, label=f"{name}: top-5 accuracy")
        lr_ax.plot(epochs, series("lr"), "o-", color=colour, label=name)
    for ax, title in ((loss_ax, "training loss"), (acc_ax, "validation"), (lr_ax, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    acc_ax.set_ylabel("share of the validation split")
    lr_ax.set_yscale("log")
    if not any(runs.values()):
        acc_ax.text(0.5, 0.5, "no validation records\n(no validation split?)", ha="center", va="center",
                    transform=acc_ax.transAxes)
    acc_ax.legend(fontsize=8, loc="lower right")
    if len(runs) > 1:
        loss_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _colours(n: int) -> list:
    from matplotlib import colormaps

    return [colormaps["tab10"](i % 10) for i in range(n)]


def write_run_pictures(folder: RunFolder, confusion: torch.Tensor, class_names: list[str]) -> np.ndarray:
    """Write the confusion matrix and the curves pictures into the run folder (atomically).

    Returns the confusion matrix picture as an RGB array, for the trackers.
    """
    save_figure(confusion_matrix_figure(confusion, class_names), folder.confusion_matrix)
    records = read_metrics_log(folder.root) if folder.metrics.is_file() else []
    save_figure(curves_figure({folder.root.name: records}), folder.curves)
    # The trackers get the picture the folder holds, read back: decoding the PNG costs a few milliseconds,
    # drawing the figure a second time about half a second at 62 classes.
    with Image.open(folder.confusion_matrix) as picture:
        return np.asarray(picture.convert("RGB"))
