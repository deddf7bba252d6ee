"""``prepare``: turn a source into a cached dataset once, then reuse it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .dataset_io import is_complete, write_dataset
from .sources import cache_name, describe, is_synthetic, read_source
from .splits import get_split

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``$EMNIST_DIST_CACHE`` if set, else ``~/.cache/emnist_dist``."""
    return Path(os.environ.get("EMNIST_DIST_CACHE") or Path.home() / ".cache" / "emnist_dist").expanduser()


def prepare(
    split: str,
    source: str,
    cache_dir: str | Path | None = None,
    *,
    synthetic_train_per_class: int = 300,
    synthetic_test_per_class: int = 50,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Make sure ``split`` from ``source`` is cached and return the cache folder.

    Args:
        split: one of the six EMNIST splits.
        source: ``nist`` | a local path | ``hf:OWNER/NAME`` | ``synthetic``.
        cache_dir: cache root (default :func:`default_cache_dir`).
        synthetic_train_per_class, synthetic_test_per_class, seed: the synthetic source's size
            and seed (part of its cache key; ignored by the other sources).
        progress: show the download bar and progress lines on stderr.

    Returns:
        The folder of a ``datasets.DatasetDict`` (see :mod:`.dataset_io`). A folder that already
        exists for the same key is returned as is, without reading the source again.

    Raises:
        UserError: unknown split, unusable source or bad files; nothing is left in the cache.
    """
    info = get_split(split)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / cache_name(split, source, synthetic_train_per_class, synthetic_test_per_class, seed)
    if is_complete(target):
        return target
    description = describe(split, source)
    start = time.perf_counter()
    _say(progress, f"preparing {description} ...")
    arrays = read_source(
        info,
        source,
        root,
        train_per_class=synthetic_train_per_class,
        test_per_class=synthetic_test_per_class,
        seed=seed,
        progress=progress,
    )
    meta = {
        "format": FORMAT_VERSION,
        "split": split,
        "source": source,
        "synthetic": is_synthetic(source),
        "description": description,
    }
    write_dataset(target, arrays, info, meta)
    _say(
        progress,
        f"cached {len(arrays.train_labels)} train + {len(arrays.test_labels)} test images "
        f"in {time.perf_counter() - start:.1f} s",
    )
    return target


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr, flush=True)
