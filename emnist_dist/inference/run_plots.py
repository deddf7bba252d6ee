"""Pictures of a training run: ``confusion_matrix.png`` and ``curves.png`` in the run folder.

    python -m emnist_dist.plot runs/a                     # redraws runs/a/curves.png
    python -m emnist_dist.plot runs/a runs/b [--out F]    # compares runs (default curves_compared.png)

The curves come from the run's ``metrics.jsonl`` (one record per validation): training loss,
validation accuracy, balanced accuracy and top-5 accuracy, and the learning rate, against epochs.
Training writes both pictures at its end; the confusion matrix is the one the trackers get.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from ..errors import CliParser, UserError
from .reports import confusion_matrix_figure, figure_to_array, save_figure

METRICS_LOG = "metrics.jsonl"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix.png"
COMPARED_FILE = "curves_compared.png"


def read_metrics_log(run_dir: str | os.PathLike) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``; a missing or malformed file raises UserError naming it."""
    path = Path(run_dir) / METRICS_LOG
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


def write_run_pictures(run_dir: str | os.PathLike, confusion: torch.Tensor, class_names: list[str]) -> np.ndarray:
    """Write ``confusion_matrix.png`` and ``curves.png`` into the run folder (atomically).

    Returns the confusion matrix picture as an RGB array, for the trackers.
    """
    run_dir = Path(run_dir)
    figure = confusion_matrix_figure(confusion, class_names)
    save_figure(figure, run_dir / CONFUSION_FILE)
    log = run_dir / METRICS_LOG
    save_figure(curves_figure({run_dir.name: read_metrics_log(run_dir) if log.is_file() else []}),
                run_dir / CURVES_FILE)
    return figure_to_array(figure)


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.plot",
                       description="Draw the learning curves of one training run, or compare several.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="Training run folders (holding metrics.jsonl).")
    parser.add_argument("--out", help=f"PNG to write (default: RUN_DIR/{CURVES_FILE} for one run, "
                                      f"{COMPARED_FILE} in the current folder for several).")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runs = {}
    for run in args.runs:
        name = Path(run).resolve().name
        if name in runs:
            name = str(run)
        runs[name] = read_metrics_log(run)
    out = Path(args.out) if args.out else (Path(args.runs[0]) / CURVES_FILE if len(runs) == 1 else Path(COMPARED_FILE))
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; expected the path of the PNG to write")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: no folder {out.parent}; expected an existing folder")
    save_figure(curves_figure(runs), out)
    print(f"wrote {out}")
    return 0
