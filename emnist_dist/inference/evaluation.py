"""Evaluate an exported model on an EMNIST test split and write a readable report.

    python -m emnist_dist.evaluate --model runs/x/model [--data.split S] [--data.source SRC] [--tta]

By default the model's own split and data source (from its config.json) are used. Test glyphs
framed differently from the model's training glyphs (e.g. an MNIST-framed set for an
EMNIST-trained model) are first converted to the model's framing, as predict converts photos
(``--reframe auto``; ``always`` or ``never`` to choose). It
prints the metrics of ``final.json``, a per-class table and the most confused pairs, and
writes into ``--out`` (default: ``eval/`` beside the model folder, i.e. ``runs/x/eval``;
never inside the model folder, which re-exporting replaces as a whole):

- ``metrics.json``: ``test/acc``, ``test/top5_acc``, ``test/balanced_acc``, ``test/macro_f1``,
  ``test/weighted_f1``, ``test/case_insensitive_acc`` (splits with both cases of a letter),
  ``test/num_samples``, and how the test glyphs were framed (``data_framing``, ``reframed``);
- ``per_class.csv``: class, precision, recall, f1, support;
- ``confused_pairs.csv``: the most frequent true -> predicted errors;
- ``confusion_matrix.png`` (row-normalised) and ``worst_misclassified.png``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from ..data import class_names, load_split, prepare
from ..data.dataset_io import dataset_class_names, read_meta
from ..errors import CliParser, UserError
from ..files import write_text_atomic
from .artifact import load_model
from .framing import Framing, framing_difference, measure_framing
from .preprocess import to_model_framing
from ..metrics import compute_metrics
from .predictor import choose_device, predict_logits
from .reports import (
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

PRINTED_PAIRS = 10
REFRAME_CHOICES = ("auto", "always", "never")


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.evaluate",
                       description="Evaluate an exported model on an EMNIST test split and write a report.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("--data.split", dest="split", help="Test split (default: the split the model was trained on).")
    parser.add_argument("--data.source", dest="source",
                        help="nist | local path | hf:OWNER/NAME | synthetic (default: the model's training source).")
    parser.add_argument("--data.cache_dir", dest="cache_dir",
                        help="Prepared-dataset cache (default $EMNIST_DIST_CACHE or ~/.cache/emnist_dist).")
    parser.add_argument("--out", help="Report folder (default: eval/ beside the model folder).")
    parser.add_argument("--tta", action="store_true",
                        help="Test-time augmentation: average the logits over one-pixel shifts.")
    parser.add_argument("--reframe", choices=REFRAME_CHOICES, default="auto",
                        help="Convert the test glyphs to the model's framing: auto (when they are framed "
                             "differently), always or never (default auto).")
    parser.add_argument("--batch-size", type=int, default=512, help="Images per forward pass (default 512).")
    parser.add_argument("--cpu", action="store_true", help="Use the CPU even when a GPU is available.")
    return parser


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
        print(f"test glyphs framed unlike the model's training glyphs ({difference or 'as asked'}): converting "
              f"{len(images)} to the model's framing (--reframe never keeps them)", file=sys.stderr)
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
    write_text_atomic(out / "metrics.json", json.dumps(result["metrics"], indent=2) + "\n")
    return out


def print_report(result: dict) -> None:
    """Metrics, the per-class table and the most confused pairs, for a terminal."""
    metrics = result["metrics"]
    print(f"{metrics['data']}, split {metrics['split']}, {metrics['test/num_samples']} test images"
          + (", converted to the model's framing" if metrics["reframed"] else "")
          + (", test-time augmentation" if metrics["tta"] else ""))
    for key, value in metrics.items():
        if key.startswith("test/") and key != "test/num_samples":
            print(f"  {key:<26} {100 * value:6.2f}%")
    width = max(5, *(len(name) for name in result["class_names"]))  # words, e.g. Fashion-MNIST's "Ankle boot"
    print(f"\n{'class':>{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for row in result["per_class"]:
        print(f"{row['class']:>{width}} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1']:7.4f} {row['support']:8d}")
    pairs = confused_pairs(result["confusion"], result["class_names"], top=PRINTED_PAIRS)
    if pairs:
        print("\nmost confused (true -> predicted):")
        for p in pairs:
            note = "  (case only)" if p["case_only"] else ""
            print(f"  {p['true']} -> {p['pred']}: {p['count']} ({100 * p['rate']:.1f}% of {p['true']}){note}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected an integer >= 1")
    result = evaluate(args.model, args.split, args.source, args.cache_dir, args.tta, args.batch_size,
                      choose_device(args.cpu), args.reframe)
    print_report(result)
    out = write_report(result, args.out or default_out_dir(args.model))
    print(f"\nreport written to {out}")
    return 0
