"""The EMNIST data layer: sources -> one cached ``datasets`` dataset per split -> whole-split tensors.

Public API::

    prepare(split, source, cache_dir=None, ...) -> Path     # cache once, reuse afterwards
    load_split(cache_path, "train" | "test") -> (uint8 (N,1,28,28), int64 (N,))
    load_emnist(data_config, seed) -> EmnistData            # prepare + load + exclude/fold/val carve-out + stats

Command line: ``python -m emnist_dist.data prepare|inspect --split SPLIT --source SOURCE``.
"""

from .cache import default_cache_dir, prepare
from .dataset_io import load_split
from .emnist import EmnistData, load_emnist, prepare_data
from .splits import SPLITS, SplitInfo, class_names
from .exclusion import read_exclude
from .stats import class_counts, image_stats, stratified_folds, stratified_split, stratified_subset

__all__ = [
    "SPLITS",
    "EmnistData",
    "SplitInfo",
    "class_counts",
    "class_names",
    "default_cache_dir",
    "image_stats",
    "load_emnist",
    "load_split",
    "prepare",
    "prepare_data",
    "read_exclude",
    "stratified_folds",
    "stratified_split",
    "stratified_subset",
]
