"""Draw the learning curves of a training run, or compare several.

    python -m emnist_dist.plot runs/a                     # redraws runs/a/curves.png
    python -m emnist_dist.plot runs/a runs/b [--out F]    # compares runs (default curves_compared.png)

The curves come from each run's ``metrics.jsonl`` (one record per validation): training loss,
validation accuracy, balanced accuracy and top-5 accuracy, and the learning rate, against epochs
(:mod:`emnist_dist.reports.run_plots`).
"""

from __future__ import annotations

from pathlib import Path

from .cli import CliParser, run_cli
from .errors import UserError
from .reports.confusion import save_figure
from .reports.run_plots import curves_figure, read_metrics_log
from .train.run_folder import CURVES_FILE

COMPARED_FILE = "curves_compared.png"


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.plot",
                       description="Draw the learning curves of one training run, or compare several.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="Training run folders (holding metrics.jsonl).")
    parser.add_argument("--out", help=f"PNG to write (default: RUN_DIR/{CURVES_FILE} for one run, "
                                      f"{COMPARED_FILE} in the current folder for several).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Draw the curves; returns the exit code."""
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


def cli() -> None:
    """Console script entry point (``emnist-plot``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
