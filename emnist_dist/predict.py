"""``python -m emnist_dist.predict``: predict the characters in a user's own images (the code is in :mod:`emnist_dist.inference.predictor`)."""

from .errors import run_cli
from .inference.predictor import main


def cli() -> None:
    """Console script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
