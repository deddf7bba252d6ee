"""Evaluation of an exported model on an EMNIST test split (what ``python -m emnist_dist.evaluate`` runs).

:func:`evaluate` runs the model on the split (first converting test glyphs framed unlike the model's
training glyphs, see ``reframe``) and returns the metrics of ``final.json``, the per-class table, the
confusion matrix and the raw outputs; :func:`write_report` writes them as ``metrics.json``,
``per_class.csv``, ``confused_pairs.csv``, ``confusion_matrix.png`` and ``worst_misclassified.png``;
:func:`default_out_dir` is where they go by default (``eval/`` beside the model folder).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import torch

from ..data import class_names, load_split, prepare
from ..data.dataset_io import dataset_class_names, read_meta
from ..errors import UserError
from ..files import write_text_atomic
from ..model_folder.artifact import load_model
from ..model_folder.framing import Framing, framing_difference, measure_framing
from ..model_folder.preprocess import to_model_framing
from ..metrics import compute_metrics
from ..model_folder.predictor import predict_logits
from .confusion import (
    PAIR_COLUMNS,
    PER_CLASS_COLUMNS,
    confused_pairs,
    confusion_matrix,
    confusion_matrix_figure,
    per_class_table,
    save_figure,
    worst_misclassified_figure,
    write_csv,
)

logger = logging.getLogger(__name__)  # evaluation runs in one process: no accelerate state needed
EVAL_METRICS_FILE = "metrics.json"
"""The report's metrics file (what the model card reads)."""
REFRAME_CHOICES = ("auto", "always", "never")
"""Values of :func:`evaluate`'s ``reframe``: convert when framed differently, always, or never."""


def default_out_dir(model_dir: str | os.PathLike) -> Path:
    """``eval/`` beside the model folder (``runs/x/model`` -> ``runs/x/eval``)."""
    return Path(model_dir).resolve().parent / "eval"


def evaluate(model_dir: str | os.PathLike, split: str | None = None, source: str | None = None,
             cache_dir: str | None = None, tta: bool = False, batch_size: int = 512,
             device: torch.device | str = "cpu", reframe: str = "auto") -> dict:
    """Run the model on a test split; returns the metrics, the table rows and the raw outputs.

    Keys: ``metrics`` (the final.json keys plus split/source/tta/framing), ``per_class``,
    ``confusion`` ``(C, C)``, ``preds``, ``targets``, ``confidence``, ``images`` and ``class_names``.
    """
    model, info = load_model(model_dir, device)
    split = split or info.split
    source = source or info.source
    if not source:
        raise UserError(f"{model_dir}: config.json records no data source; pass --data.source "
                        "(nist, a local path, hf:OWNER/NAME or synthetic)")

    def check_classes(names: list[str]) -> None:
        if names != list(info.class_names):
            raise UserError(f"--data.split {split} --data.source {source}: its {len(names)} classes are not the "
                            f"{info.num_classes} classes the model predicts (trained on {info.split}): "
                            f"{', '.join(names[:10])} ... vs {', '.join(info.class_names[:10])} ...")

    if len(class_names(split)) != info.num_classes:  # refused before preparing anything
        check_classes(class_names(split))
    cache = prepare(split, source, cache_dir, progress=sys.stderr.isatty())  # only the test part is loaded
    names = dataset_class_names(cache)  # a source may name its classes (an MNIST-format classes.txt)
    check_classes(names)
    meta = read_meta(cache)
    images, targets = load_split(cache, "test")
    data_framing = measure_framing(images)
    difference = framing_difference(data_framing, info.framing)
    reframed = reframe == "always" or (reframe == "auto" and bool(difference))
    if reframed:
        logger.info(f"test glyphs framed unlike the model's training glyphs ({difference or 'as asked'}): converting "
                    f"{len(images)} to the model's framing (--reframe never keeps them)")
        images = reframe_glyphs(images, info.framing)
    logits = predict_logits(model, info, images, device, batch_size, tta=tta)
    confidence, preds = logits.softmax(dim=1).max(dim=1)
    values = compute_metrics(logits, targets, names)
    metrics = {f"test/{k}": v for k, v in values.items() if k != "num_samples"}
    metrics["test/num_samples"] = int(len(targets))
    metrics.update(split=split, source=source, data=meta["description"], synthetic=bool(meta["synthetic"]),
                   tta=tta, model=str(model_dir), data_framing=data_framing.to_dict(), reframed=reframed)
    return {
        "metrics": metrics,
        "per_class": per_class_table(preds, targets, info.class_names),
        "confusion": confusion_matrix(preds, targets, info.num_classes),
        "preds": preds, "targets": targets, "confidence": confidence,
        "images": images, "class_names": names,
    }


def reframe_glyphs(images: torch.Tensor, framing: Framing) -> torch.Tensor:
    """Convert uint8 glyphs ``(N, 1, 28, 28)`` to ``framing`` one by one, as predict converts a photo.

    A glyph the conversion cannot read (blank) is kept as it is.
    """
    out = images.clone()
    for i, glyph in enumerate(images[:, 0].numpy()):
        try:
            out[i, 0] = torch.from_numpy(to_model_framing(glyph, framing, name=f"test glyph {i}"))
        except UserError:
            pass
    return out


def write_report(result: dict, out_dir: str | os.PathLike) -> Path:
    """Write metrics.json, the two CSVs and the two PNGs into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = result["class_names"]
    write_csv(result["per_class"], out / "per_class.csv", PER_CLASS_COLUMNS)
    write_csv(confused_pairs(result["confusion"], names, top=50), out / "confused_pairs.csv", PAIR_COLUMNS)
    save_figure(confusion_matrix_figure(result["confusion"], names), out / "confusion_matrix.png")
    save_figure(worst_misclassified_figure(torch.as_tensor(result["images"]).numpy(), result["targets"].numpy(),
                                           result["preds"].numpy(), result["confidence"].numpy(), names),
                out / "worst_misclassified.png")
    write_text_atomic(out / EVAL_METRICS_FILE, json.dumps(result["metrics"], indent=2) + "\n")
    return out
