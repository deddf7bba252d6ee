"""The EMNIST data layer: sources -> one cached ``datasets`` dataset per split -> whole-split tensors.

Public API::

    prepare(split, source, cache_dir=None, ...) -> Path     # cache once, reuse afterwards
    load_split(cache_path, "train" | "test") -> (uint8 (N,1,28,28), int64 (N,))
    load_emnist(data_config, seed) -> EmnistData            # prepare + load + exclude/fold/val carve-out + stats

Command line: ``python -m emnist_dist.data prepare|inspect|publish --split SPLIT --source SOURCE``.

The names are imported on first use (PEP 562): inference code imports ``data.resize`` and
``data.splits`` alone, without pulling in ``datasets`` and ``pyarrow`` (a predict-only install,
a Hugging Face Space).
"""

from importlib import import_module

_HOMES = {
    "default_cache_dir": "cache", "prepare": "cache",
    "load_split": "dataset_io",
    "EmnistData": "emnist", "load_emnist": "emnist", "prepare_data": "emnist",
    "read_exclude": "exclusion",
    "SPLITS": "splits", "SplitInfo": "splits", "class_names": "splits",
    "class_counts": "stats", "image_stats": "stats", "stratified_folds": "stats", "stratified_split": "stats", "stratified_subset": "stats",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
