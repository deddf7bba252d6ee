"""``python -m emnist_dist.read``: read lines of handwriting on photos (the code is in :mod:`emnist_dist.inference.line_reader`)."""

from .errors import run_cli
from .inference.line_reader import main


def cli() -> None:
    """Console script entry point (``emnist-read``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
