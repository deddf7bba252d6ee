"""``prepare``: turn a source into a cached dataset once, then reuse it (verified) ever after.

Several processes may prepare the same cache entry at once (the ranks of a run, jobs sharing a
cache on a cluster file system): building an entry takes a lock beside it (``filelock``), so one
process builds while the others wait and then reuse the result. A cache entry that does not match
its own metadata (a truncated or altered file) is rebuilt from its source, or reported in one line
when it cannot be. A cache that is only read never needs to be writable.
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from filelock import FileLock, Timeout

from ..errors import UserError
from ..files import sweep_temporaries
from .dataset_io import PARTS, SplitArrays, foreign_entry_files, verify_dataset, write_dataset
from .readers import cache_name, describe, is_synthetic, read_source
from .readers.synthetic_source import synthetic_fonts
from .splits import get_split

# Plain logging, not accelerate's adapter: the data commands run without an Accelerator (the adapter refuses
# to log before one exists); callers pass progress=False off the main process.
logger = logging.getLogger(__name__)


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
    mirrors: Sequence[str] = (),
) -> Path:
    """Make sure ``split`` from ``source`` is cached and return the cache folder.

    Args:
        split: one of the six EMNIST splits.
        source: ``nist`` | a local path | ``hf:OWNER/NAME`` | ``synthetic``.
        cache_dir: cache root (default :func:`default_cache_dir`).
        synthetic_train_per_class, synthetic_test_per_class, seed: the synthetic source's size
            and seed (part of its cache key; ignored by the other sources).
        progress: show the download bar and progress lines on stderr.
        mirrors: source ``nist``: URLs of copies of the archive, tried in order after the official one.

    Returns:
        The folder of a ``datasets.DatasetDict`` (see :mod:`.dataset_io`). A folder that already
        exists for the same key and matches its metadata is returned as is, without reading the
        source again; one that does not is rebuilt (a line on stderr says so).

    Raises:
        UserError: unknown split, unusable source or bad files, a damaged entry that cannot be
            rebuilt, a cache folder that cannot be written; nothing is left in the cache.
    """
    info = get_split(split)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = root / cache_name(split, source, synthetic_train_per_class, synthetic_test_per_class, seed)
    problem = verify_dataset(target) if target.exists() else None
    if target.exists() and problem is None:
        _sweep_if_idle(target)
        return target
    with _building(target, problem):
        sweep_temporaries(target)  # left by processes killed while building; we hold the lock
        problem = verify_dataset(target) if target.exists() else None
        if target.exists() and problem is None:  # another process built it while we waited
            return target
        if problem is not None:
            foreign = foreign_entry_files(target) if target.is_dir() else []
            if foreign:  # rebuilding replaces the folder: never with a user's file in it
                raise UserError(f"cache {target} is damaged ({problem}) and holds what emnist_dist did not write: "
                                f"{', '.join(foreign)}: expected only its dataset files (move them out, then run "
                                "again to rebuild it)")
            say(True, f"cache {target} is damaged ({problem}): rebuilding it from {source}")
        description = describe(split, source)
        start = time.perf_counter()
        say(progress, f"preparing {description} ...")
        try:
            try:
                arrays = read_source(info, source, root, train_per_class=synthetic_train_per_class,
                                     test_per_class=synthetic_test_per_class, seed=seed, progress=progress,
                                     mirrors=mirrors)
            except OSError as err:
                raise UserError(f"source {source}: cannot be read ({err.strerror or err}): expected a readable "
                                "file or folder") from None
            _refuse_empty_parts(arrays, split, source)
        except UserError as err:
            if problem is None:
                raise
            raise UserError(f"cache {target} is damaged ({problem}) and could not be rebuilt: {err}") from None
        meta = {"split": split, "source": source, "synthetic": is_synthetic(source), "description": description}
        if is_synthetic(source):
            meta["fonts_sha256"] = synthetic_fonts(split)
        write_dataset(target, arrays, info, meta)
    say(
        progress,
        f"cached {len(arrays.train_labels)} train + {len(arrays.test_labels)} test images "
        f"in {time.perf_counter() - start:.1f} s",
    )
    return target


def _refuse_empty_parts(arrays: SplitArrays, split: str, source: str) -> None:
    """A part without images would be cached and then break every run: refuse it here, naming it."""
    for part in PARTS:
        if len(getattr(arrays, f"{part}_labels")) == 0:
            raise UserError(f"source {source}: the {part} part of {split} holds 0 images: expected at least one "
                            "image in each of train and test")


def lock_path(target: Path) -> Path:
    """The lock file beside the cache entry ``target``: held while the entry (or its statistics) is written."""
    return target.with_name(f".{target.name}.lock")


@contextmanager
def _building(target: Path, problem: str | None) -> Iterator[None]:
    """Hold the entry's build lock (waiting for another builder, saying so); one line if it cannot be taken."""
    lock = FileLock(lock_path(target))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            say(True, f"waiting for another process preparing {target} ...")
            lock.acquire()
    except OSError as err:
        state = f"is damaged ({problem}) and cannot be rebuilt" if problem else "cannot be created"
        raise UserError(f"cache {target} {state}: {target.parent} is not writable ({err.strerror}): "
                        "expected a writable cache_dir, or a cache prepared there beforehand") from None
    try:
        yield
    finally:
        lock.release()


def _sweep_if_idle(target: Path) -> None:
    """Remove a killed builder's leftovers beside a finished entry, unless someone holds the lock."""
    leftovers = [*target.parent.glob(f".{target.name}.tmp-*"), *target.parent.glob(f".{target.name}.old-*")]
    if not leftovers:
        return
    try:
        with FileLock(lock_path(target), timeout=0):
            sweep_temporaries(target)
    except (Timeout, OSError):
        pass  # another process is building (its temporaries are live) or the cache is read-only


def say(enabled: bool, message: str) -> None:
    """Log a progress line of the data layer when ``enabled`` (a command's console shows it on stderr)."""
    if enabled:
        logger.info(message)
