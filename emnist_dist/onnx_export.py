"""``python -m emnist_dist.onnx_export``: export a model folder to ONNX, checked against PyTorch (the code is in :mod:`emnist_dist.inference.onnx_conversion`)."""

from .errors import run_cli
from .inference.onnx_conversion import main


def cli() -> None:
    """Console script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
