"""``python -m emnist_dist.audit`` (also under ``accelerate launch -m emnist_dist.audit``)."""

from .pipeline import cli

cli()
