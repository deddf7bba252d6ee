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

The code is in :mod:`emnist_dist.reports.evaluation`.
"""

from __future__ import annotations

from pathlib import Path

from .cli import CliParser, run_cli
from .errors import UserError
from .files import check_writable_folder
from .reports.evaluation import REFRAME_CHOICES, default_out_dir, evaluate, write_report
from .model_folder.predictor import choose_device
from .reports.confusion import confused_pairs

PRINTED_PAIRS = 10


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


def check_report_folder(out: Path) -> None:
    """Refuse, before evaluating, a report folder that is a file or lies where nothing can be written.

    Raises:
        UserError: ``out`` or its nearest existing parent is not a folder, or that folder cannot be written.
    """
    existing = next(path for path in (out, *out.parents) if path.exists() or path.is_symlink())
    if not existing.is_dir():
        raise UserError(f"--out {out}: {existing} is not a folder: expected a report folder (new or existing)")
    check_writable_folder(f"--out {out}", existing)


def main(argv: list[str] | None = None) -> int:
    """Evaluate, print the report and write its files; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected an integer >= 1")
    out = Path(args.out or default_out_dir(args.model))
    check_report_folder(out)
    result = evaluate(args.model, args.split, args.source, args.cache_dir, args.tta, args.batch_size,
                      choose_device(args.cpu), args.reframe)
    print_report(result)
    out = write_report(result, out)
    print(f"\nreport written to {out}")
    return 0


def cli() -> None:
    """Console script entry point (``emnist-evaluate``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
