"""Write EMNIST raw files in the exact NIST formats, for tests and benchmarks.

Formats (as in the official ``gzip.zip``): IDX files (big-endian header, magic 2051 with
n/rows/cols for images, 2049 with n for labels, then uint8 payload), gzip-compressed as
``gzip/emnist-{split}-{train,test}-{images-idx3,labels-idx1}-ubyte.gz`` plus
``gzip/emnist-{split}-mapping.txt``. Images are stored transposed (rows and columns of the
upright glyph swapped); labels are raw NIST labels (letters: 1..26).

This module is deliberately independent of ``emnist_dist.data`` (it hard-codes the facts)
so tests compare the package against it rather than against itself.

Usage::

    raw = random_split("balanced", n_train=200, n_test=50, seed=0)
    write_gzip_zip(tmp_path / "gzip.zip", raw)          # the official archive layout
    write_gz_folder(tmp_path / "gz", raw)                # flat folder of .gz members
    write_gz_folder(tmp_path / "unzipped", raw, under_gzip=True)   # gzip.zip extracted
    write_idx_folder(tmp_path / "idx", raw)              # extracted (gunzipped) IDX files
    write_torchvision_layout(tmp_path / "tv", raw)       # root/EMNIST/raw/... for torchvision
"""

from __future__ import annotations

import gzip
import string
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTS = ("train", "test")
KINDS = ("images-idx3", "labels-idx1")
_BYMERGE_LOWER = "abdefghnqrt"
# Characters per split in raw-label order (letters' raw labels start at 1: the 'label upper lower' file).
SPLIT_CHARS = {
    "byclass": string.digits + string.ascii_uppercase + string.ascii_lowercase,
    "bymerge": string.digits + string.ascii_uppercase + _BYMERGE_LOWER,
    "balanced": string.digits + string.ascii_uppercase + _BYMERGE_LOWER,
    "letters": string.ascii_lowercase,
    "digits": string.digits,
    "mnist": string.digits,
}
FIRST_RAW_LABEL = {"letters": 1}


@dataclass
class RawSplit:
    """One split as the NIST files hold it.

    Attributes:
        name: split name.
        train_images, test_images: ``(N, 28, 28)`` uint8, stored orientation (transposed).
        train_labels, test_labels: ``(N,)`` uint8 raw NIST labels.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array: 3-D -> images (magic 2051), 1-D -> labels (magic 2049)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = magic if magic is not None else (2051 if array.ndim == 3 else 2049)
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def member_name(split: str, part: str, kind: str) -> str:
    """``emnist-{split}-{part}-{kind}-ubyte`` with kind ``images-idx3`` or ``labels-idx1`` (no ``.gz``)."""
    return f"emnist-{split}-{part}-{kind}-ubyte"


def mapping_text(split: str) -> str:
    """Contents of ``emnist-{split}-mapping.txt``: ``label ascii`` lines (letters: ``label upper lower``)."""
    chars = SPLIT_CHARS[split]
    if split == "letters":
        return "".join(f"{i + 1} {ord(c.upper())} {ord(c)}\n" for i, c in enumerate(chars))
    return "".join(f"{i} {ord(c)}\n" for i, c in enumerate(chars))


def raw_label_range(split: str) -> tuple[int, int]:
    """Smallest and largest raw label of a split (inclusive)."""
    first = FIRST_RAW_LABEL.get(split, 0)
    return first, first + len(SPLIT_CHARS[split]) - 1


def random_split(split: str, n_train: int, n_test: int, seed: int = 0) -> RawSplit:
    """Random uint8 noise images and uniformly drawn raw labels (every class present when n >= classes)."""
    rng = np.random.default_rng(seed)
    low, high = raw_label_range(split)

    def labels(n: int) -> np.ndarray:
        # Cycle through all labels first so small sets still contain every class, then shuffle.
        return rng.permutation(np.resize(np.arange(low, high + 1), n)).astype(np.uint8)

    return RawSplit(
        split,
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        labels(n_train),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        labels(n_test),
    )


def member_files(raw: RawSplit) -> dict[str, bytes]:
    """Uncompressed member name -> bytes: the four IDX files and the mapping text."""
    files = {}
    for part in PARTS:
        files[member_name(raw.name, part, "images-idx3")] = idx_bytes(getattr(raw, f"{part}_images"))
        files[member_name(raw.name, part, "labels-idx1")] = idx_bytes(getattr(raw, f"{part}_labels"))
    files[f"emnist-{raw.name}-mapping.txt"] = mapping_text(raw.name).encode()
    return files


def _gz(name: str, data: bytes, compresslevel: int) -> tuple[str, bytes]:
    if name.endswith(".txt"):
        return name, data
    return name + ".gz", gzip.compress(data, compresslevel=compresslevel, mtime=0)


def write_gzip_zip(path: Path, *raws: RawSplit, compression: int = zipfile.ZIP_STORED, compresslevel: int = 6) -> Path:
    """The official archive layout: ``gzip/*.gz`` IDX members and ``gzip/*-mapping.txt``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for raw in raws:
            for name, data in member_files(raw).items():
                name, data = _gz(name, data, compresslevel)
                archive.writestr(f"gzip/{name}", data)
    return path


def write_gz_folder(folder: Path, *raws: RawSplit, under_gzip: bool = False, compresslevel: int = 6) -> Path:
    """A folder of the ``.gz`` members (flat, or under ``gzip/`` as unzipping gzip.zip gives)."""
    target = Path(folder) / "gzip" if under_gzip else Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for raw in raws:
        for name, data in member_files(raw).items():
            name, data = _gz(name, data, compresslevel)
            (target / name).write_bytes(data)
    return Path(folder)


def write_idx_folder(folder: Path, *raws: RawSplit) -> Path:
    """A flat folder of extracted (uncompressed) IDX files plus the mapping texts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for raw in raws:
        for name, data in member_files(raw).items():
            (folder / name).write_bytes(data)
    return folder


def write_torchvision_layout(root: Path, *raws: RawSplit) -> Path:
    """``root/EMNIST/raw/`` with extracted IDX files, the layout ``torchvision.datasets.EMNIST(root)`` reads."""
    write_idx_folder(Path(root) / "EMNIST" / "raw", *raws)
    return Path(root)
