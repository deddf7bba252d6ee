"""Write the model card ``model/README.md``, optionally push the folder to the Hugging Face Hub.

    python -m emnist_dist.model_card --model runs/x/model [--eval runs/x/eval/metrics.json]
    python -m emnist_dist.model_card --model runs/x/model --push-to-hub OWNER/NAME

The card states the data (plainly when it is the synthetic stand-in), the test metrics
(from config.json, and from an ``evaluate`` report when one is given or found beside
the model folder), the classes, the preprocessing, intended use and limits
(:mod:`emnist_dist.reports.card`).
"""

from __future__ import annotations

from .cli import CliParser, run_cli
from .model_folder.artifact import CARD_FILE, read_model_info
from .reports.card import push_to_hub, read_eval_metrics, write_model_card
from .reports.evaluation import EVAL_METRICS_FILE, default_out_dir


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.model_card",
                       description=f"Write MODEL/{CARD_FILE} (the model card); optionally push the folder to the Hub.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("--eval", help="metrics.json of python -m emnist_dist.evaluate, or its folder "
                                       "(default: eval/metrics.json beside the model folder, when present).")
    parser.add_argument("--push-to-hub", metavar="REPO",
                        help="Also upload the model folder to this Hub repo (OWNER/NAME).")
    parser.add_argument("--private", action="store_true", help="Create the Hub repo as private.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Write the card (and push); returns the exit code."""
    args = build_parser().parse_args(argv)
    read_model_info(args.model)  # fail early, before reading anything else
    found = default_out_dir(args.model) / EVAL_METRICS_FILE
    eval_path = args.eval or (found if found.is_file() else None)
    eval_metrics = read_eval_metrics(eval_path) if eval_path else None
    path = write_model_card(args.model, eval_metrics)
    print(f"wrote {path}" + (f" (with the metrics of {eval_path})" if eval_path else ""))
    if args.push_to_hub:
        print(f"pushed to {push_to_hub(args.model, args.push_to_hub, args.private)}")
    return 0


def cli() -> None:
    """Console script entry point (``emnist-model-card``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
