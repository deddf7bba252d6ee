"""Export a model folder to ONNX, checked against PyTorch with onnxruntime.

    python -m emnist_dist.onnx_export --model runs/x/model     # writes runs/x/model/model.onnx

The file is only written when every ONNX logit matches PyTorch's within the tolerance printed
(otherwise exit 1, one ``error:`` line); an existing file is replaced only when it is an earlier
export of this command. The graph, its metadata and the parity check are described in
:mod:`emnist_dist.export.onnx_conversion`.
"""

from __future__ import annotations

import sys

from .cli import CliParser, run_cli
from .export.onnx_conversion import ATOL, MIN_OPSET, PARITY_BATCHES, RTOL, ParityError, export_and_check
from .model_folder.artifact import ONNX_FILE


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.onnx_export",
                       description="Export an exported model folder to ONNX (dynamic batch) and check parity.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("--out", help=f"ONNX file to write, or a folder (ending with /) to write {ONNX_FILE} into "
                        f"(default: MODEL/{ONNX_FILE}); missing folders are created; only an earlier export "
                        "is overwritten.")
    parser.add_argument("--opset", type=int, help=f"ONNX opset version, from {MIN_OPSET} (default: the exporter's "
                        "recommendation).")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Export and check; returns the exit code (1 when the parity check fails)."""
    args = build_parser().parse_args(argv)
    try:
        path, worst = export_and_check(args.model, args.out, args.opset)
    except ParityError as err:
        print(f"error: parity check failed: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    print(f"parity with PyTorch: max |logit difference| {worst:.2e} (tolerance {ATOL:g} + {RTOL:g} * |logit|), "
          f"batches {', '.join(map(str, PARITY_BATCHES))}")
    return 0


def cli() -> None:
    """Console script entry point (``emnist-onnx-export``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
