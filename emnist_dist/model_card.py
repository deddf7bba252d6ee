"""``python -m emnist_dist.model_card``: write (and optionally push) the Hub model card of a model folder (the code is in :mod:`emnist_dist.inference.card`)."""

from .errors import run_cli
from .inference.card import main


def cli() -> None:
    """Console script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
