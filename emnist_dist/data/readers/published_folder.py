"""A Hub dataset folder written by ``publish`` (recognised by its card): upright glyphs, class ids, the card's class
names."""

from __future__ import annotations

from pathlib import Path

from ..dataset_io import SplitArrays
from ..hub_folder import published_parquet
from ..splits import SplitInfo
from .parquet import arrays_from_tables


def is_published_folder(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` was written by ``publish`` and holds the split (an unreadable card raises UserError)."""
    return published_parquet(folder, info) is not None


def read_published_folder(path: Path, info: SplitInfo) -> SplitArrays:
    """The split's Parquet shards, taken as they are (upright, class ids), named as the card names them."""
    files, names = published_parquet(path, info)
    arrays = arrays_from_tables(info, files, published=True)
    arrays.class_names = names
    return arrays
