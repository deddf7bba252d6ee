"""``python -m emnist_dist.train`` (also under ``accelerate launch -m emnist_dist.train``)."""

from .trainer import cli

cli()
