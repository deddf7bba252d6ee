"""Where a split comes from: ``nist``, a local path, ``hf:OWNER/NAME`` or ``synthetic``; one reader module each,
one row of :data:`SOURCE_KINDS` each (how the kind is recognised, named in the cache, described and read).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ...errors import UserError
from ..dataset_io import SplitArrays
from ..splits import SplitInfo
from .hub_repo import hub_snapshot
from .mnist_format import has_mnist_format, mnist_format_members, read_mnist_format
from .nist_download import download_nist
from .nist_files import has_nist_members, has_zip, read_nist_folder, read_zip, read_zip_in_folder
from .parquet import has_parquet, is_saved_dataset, read_parquet_file, read_parquet_folder, read_saved_dataset
from .published_folder import is_published_folder, read_published_folder
from .synthetic_source import describe_synthetic, read_synthetic, synthetic_cache_tag

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


@dataclass(frozen=True)
class SourceRequest:
    """A split asked of a source, with what any kind of source may need to name, describe or read it."""

    split: str
    source: str
    train_per_class: int = 0  # the synthetic stand-in's size and seed
    test_per_class: int = 0
    seed: int = 0
    cache_dir: Path | None = None  # where a download goes (nist)
    progress: bool = False
    mirrors: Sequence[str] = ()


def _describe_emnist(request: SourceRequest) -> str:
    return f"EMNIST {request.split} ({request.source})"


@dataclass(frozen=True)
class SourceKind:
    """One kind of ``source``: which strings it is, its cache entry's tag, its description and its reader."""

    name: str
    matches: Callable[[str], bool]
    cache_tag: Callable[[SourceRequest], str]
    read: Callable[[SourceRequest, SplitInfo], SplitArrays]
    describe: Callable[[SourceRequest], str] = _describe_emnist


def _local_tag(request: SourceRequest) -> str:
    path = _existing_path(request.source)
    return f"local-{_slug(path.name)}-{_fingerprint(path)}"


def _describe_local(request: SourceRequest) -> str:
    if mnist_format_members(_existing_path(request.source)):
        return f"MNIST-format {request.split} ({request.source})"
    return _describe_emnist(request)


SOURCE_KINDS = (
    SourceKind("synthetic", lambda source: source == "synthetic",
               cache_tag=lambda r: synthetic_cache_tag(r.split, r.train_per_class, r.test_per_class, r.seed),
               read=lambda r, info: read_synthetic(info, r.train_per_class, r.test_per_class, r.seed),
               describe=lambda r: describe_synthetic(r.split)),
    SourceKind("nist", lambda source: source == "nist", cache_tag=lambda r: "nist",
               read=lambda r, info: read_path(download_nist(r.cache_dir, r.progress, r.mirrors), info)),
    SourceKind("hub", lambda source: source.startswith("hf:"), cache_tag=lambda r: "hf-" + _slug(r.source[3:]),
               read=lambda r, info: read_path(hub_snapshot(r.source[3:], info), info)),
    SourceKind("local", lambda source: True, cache_tag=_local_tag,
               read=lambda r, info: read_path(_existing_path(r.source), info), describe=_describe_local),
)
"""The kinds of ``source``, in the order they are tried (a local path: whatever the others are not)."""


def source_kind(source: str) -> SourceKind:
    """The kind of ``source`` (:data:`SOURCE_KINDS`)."""
    return next(kind for kind in SOURCE_KINDS if kind.matches(source))


def is_synthetic(source: str) -> bool:
    return source_kind(source).name == "synthetic"


def is_mnist_format(source: str) -> bool:
    """True for a local folder of MNIST-format files: a dataset of its own (MNIST, Fashion-MNIST ...), not EMNIST."""
    return source_kind(source).name == "local" and bool(mnist_format_members(_existing_path(source)))


def describe(split: str, source: str) -> str:
    """One human line naming what the data is; the synthetic stand-in says so plainly."""
    return source_kind(source).describe(SourceRequest(split, source))


def cache_name(split: str, source: str, train_per_class: int, test_per_class: int, seed: int) -> str:
    """Folder name of the cache entry for ``source`` + ``split`` (+ the synthetic parameters).

    A local path is keyed by its absolute location and the names, sizes and modification
    times of its files, so replacing the files makes a new entry instead of reusing a stale one.
    """
    request = SourceRequest(split, source, train_per_class, test_per_class, seed)
    return f"{split}-{source_kind(source).cache_tag(request)}"


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
    request = SourceRequest(info.name, source, train_per_class, test_per_class, seed, cache_dir, progress, mirrors)
    return source_kind(source).read(request, info)


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
