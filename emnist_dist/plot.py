"""``python -m emnist_dist.plot RUN_DIR [RUN_DIR ...]``: draw or compare learning curves (the code is in :mod:`emnist_dist.inference.run_plots`)."""

from .errors import run_cli
from .inference.run_plots import main


def cli() -> None:
    """Console script entry point."""
    run_cli(main)


if __name__ == "__main__":
    cli()
