"""``python -m emnist_dist.evaluate``: evaluate a model folder on an EMNIST split (the code is in :mod:`emnist_dist.inference.evaluation`)."""

from .errors import run_cli
from .inference.evaluation import main


def cli() -> None:
    """Console script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
