"""Where a split comes from: ``nist``, a local path, ``hf:OWNER/NAME`` or ``synthetic``; one reader module each.

Every reader returns :class:`~emnist_dist.data.dataset_io.SplitArrays` (images as the source stores
them, labels as class ids); the NIST files, Hub/parquet copies and the synthetic stand-in all store
glyphs transposed, so ``write_dataset`` applies the one orientation fix, while MNIST-format folders,
emnist_dist caches and ``publish`` folders are upright. ``nist`` and ``hf:`` fetch a folder or
archive that is then read like a local path; a local folder's layout is recognised by the first
check of :data:`FOLDER_READERS` that holds.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

from ...errors import UserError
from ..dataset_io import SplitArrays
from ..splits import SplitInfo
from .hub_repo import hub_snapshot
from .mnist_format import has_mnist_format, mnist_format_members, read_mnist_format
from .nist_download import download_nist
from .nist_files import has_nist_members, has_zip, read_nist_folder, read_zip, read_zip_in_folder
from .parquet import has_parquet, is_saved_dataset, read_parquet_file, read_parquet_folder, read_saved_dataset
from .published_folder import is_published_folder, read_published_folder
from .synthetic_source import read_synthetic, synthetic_fonts

FILE_READERS = {".zip": read_zip, ".parquet": read_parquet_file}
"""Reader of a local file, by its suffix."""
FOLDER_READERS = (
    (is_saved_dataset, read_saved_dataset),
    (is_published_folder, read_published_folder),
    (has_nist_members, read_nist_folder),
    (has_mnist_format, read_mnist_format),
    (has_zip, read_zip_in_folder),
    (has_parquet, read_parquet_folder),
)
"""(recognises, read) of a local folder's layouts, in the order they are tried."""


def is_synthetic(source: str) -> bool:
    return source == "synthetic"


def is_mnist_format(source: str) -> bool:
    """True for a local folder of MNIST-format files: a dataset of its own (MNIST, Fashion-MNIST ...), not EMNIST."""
    return (not is_synthetic(source) and source != "nist" and not source.startswith("hf:")
            and bool(mnist_format_members(_existing_path(source))))


def describe(split: str, source: str) -> str:
    """One human line naming what the data is; the synthetic stand-in says so plainly."""
    if is_synthetic(source):
        return f"SYNTHETIC stand-in for {split} (not EMNIST), fonts sha256:{synthetic_fonts(split)[:16]}"
    if is_mnist_format(source):
        return f"MNIST-format {split} ({source})"
    return f"EMNIST {split} ({source})"


def cache_name(split: str, source: str, train_per_class: int, test_per_class: int, seed: int) -> str:
    """Folder name of the cache entry for ``source`` + ``split`` (+ the synthetic parameters).

    A local path is keyed by its absolute location and the names, sizes and modification
    times of its files, so replacing the files makes a new entry instead of reusing a stale one.
    """
    if is_synthetic(source):
        tag = f"synthetic-{train_per_class}x{test_per_class}-seed{seed}-fonts{synthetic_fonts(split)[:12]}"
    elif source == "nist":
        tag = "nist"
    elif source.startswith("hf:"):
        tag = "hf-" + _slug(source[3:])
    else:
        path = _existing_path(source)
        tag = f"local-{_slug(path.name)}-{_fingerprint(path)}"
    return f"{split}-{tag}"


def read_source(
    info: SplitInfo,
    source: str,
    cache_dir: Path,
    *,
    train_per_class: int,
    test_per_class: int,
    seed: int,
    progress: bool,
    mirrors: Sequence[str] = (),
) -> SplitArrays:
    """Read both parts of ``info``'s split from ``source`` (see the module docstring).

    ``mirrors``: URLs of copies of the NIST archive, tried in order after the official server
    (then those in ``$EMNIST_DIST_NIST_MIRRORS``); every copy must have the official md5.
    """
    if is_synthetic(source):
        return read_synthetic(info, train_per_class, test_per_class, seed)
    if source == "nist":
        return read_path(download_nist(cache_dir, progress, mirrors), info)
    if source.startswith("hf:"):
        return read_path(hub_snapshot(source[3:], info), info)
    return read_path(_existing_path(source), info)


def read_path(path: Path, info: SplitInfo) -> SplitArrays:
    """Read a split from a local file or folder (any of the layouts listed in the README)."""
    if path.is_file():
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty file: expected the EMNIST gzip.zip or a .parquet file")
        if path.suffix not in FILE_READERS:
            raise UserError(f"{path}: unsupported file type: expected gzip.zip, a .parquet file, or a folder")
        return FILE_READERS[path.suffix](path, info)
    if not any(path.iterdir()):
        raise UserError(f"{path}: empty folder: expected EMNIST files (gzip.zip, .gz or IDX members, parquet)")
    for recognises, read in FOLDER_READERS:
        if recognises(path, info):
            return read(path, info)
    raise UserError(
        f"{path}: no EMNIST {info.name} files found: expected gzip.zip, emnist-{info.name}-*-ubyte[.gz] files "
        "(flat, under gzip/ or EMNIST/raw/), MNIST-format train-*/t10k-*-ubyte[.gz] files, parquet files "
        "with image+label columns, or a saved datasets folder"
    )


def _existing_path(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise UserError(
            f"source {source!r}: no such file or folder: expected nist, synthetic, hf:OWNER/NAME or a local path"
        )
    if not (path.is_file() or path.is_dir()):  # /dev/null, a FIFO (reading one would block), a socket
        raise UserError(f"source {source!r}: not a regular file or folder: expected gzip.zip, parquet or a folder")
    return path.resolve()


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        stat = f.stat()
        digest.update(f"{f.relative_to(path) if f != path else ''}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:10]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "--", text).strip("-") or "data"
