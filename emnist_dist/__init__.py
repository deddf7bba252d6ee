"""emnist_dist: EMNIST handwritten character classifiers, laptop CPU to multi-node SLURM."""

__version__ = "0.1.0"
