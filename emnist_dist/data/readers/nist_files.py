"""The raw NIST files: ``gzip.zip``, or a folder of its ``.gz`` or extracted IDX members.

Members ``emnist-{split}-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]``, flat, under
``gzip/`` (as in the archive) or ``raw/`` / ``EMNIST/raw/`` (torchvision's layout). Glyphs are
stored transposed; raw labels are checked against the split's classes and shifted (letters:
1..26 -> 0..25). The IDX reading here also serves the MNIST-format reader.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from ...errors import UserError, one_line
from ..dataset_io import PARTS, SplitArrays
from ..idx import read_idx
from ..splits import SplitInfo

KINDS = {"images": "images-idx3", "labels": "labels-idx1"}
# Where the NIST members may sit inside a folder: flat, as in gzip.zip, torchvision's layout.
_MEMBER_DIRS = (".", "gzip", "raw", "EMNIST/raw")


def member_name(split: str, part: str, kind: str) -> str:
    """NIST file name without ``.gz``, e.g. ``emnist-byclass-train-images-idx3-ubyte``."""
    return f"emnist-{split}-{part}-{KINDS[kind]}-ubyte"


def nist_members(folder: Path, info: SplitInfo) -> dict[tuple[str, str], Path | None]:
    """The split's four NIST members under ``folder`` (None where missing)."""
    return {(part, kind): find_member(folder, member_name(info.name, part, kind)) for part in PARTS for kind in KINDS}


def has_nist_members(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` holds any of the split's NIST members."""
    return any(nist_members(folder, info).values())


def read_nist_folder(path: Path, info: SplitInfo) -> SplitArrays:
    """The split from a folder of its NIST members (all four required)."""
    members = nist_members(path, info)
    missing = [member_name(info.name, p, k) for (p, k), found in members.items() if found is None]
    expected = f"all four emnist-{info.name}-{{train,test}}-{{images-idx3,labels-idx1}}-ubyte[.gz] files"
    return read_found_members(path, members, missing, expected, info, upright=False)


def has_zip(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` holds a ``.zip`` archive."""
    return any(folder.glob("*.zip"))


def read_zip_in_folder(path: Path, info: SplitInfo) -> SplitArrays:
    """The split from ``path/gzip.zip``, else the first ``.zip`` by name."""
    archives = sorted(path.glob("*.zip"))
    return read_zip(path / "gzip.zip" if (path / "gzip.zip").is_file() else archives[0], info)


def read_found_members(
    path: Path,
    members: dict[tuple[str, str], Path | None],
    missing: list[str],
    expected: str,
    info: SplitInfo,
    upright: bool,
) -> SplitArrays:
    """Read the four IDX files found under ``path``; ``missing`` names the ones not found (an error)."""
    if missing:
        raise UserError(f"{path}: {missing[0]}[.gz] is missing: expected {expected}")

    def open_file(part: str, kind: str) -> tuple[BinaryIO, str, bool]:
        found = members[(part, kind)]
        return open(found, "rb"), str(found), found.suffix == ".gz"

    return read_members(info, open_file, upright)


def find_member(folder: Path, base: str) -> Path | None:
    """``base`` or ``base.gz`` in one of the member folders under ``folder``, else None; several copies must agree."""
    found = [folder / sub / name for sub in _MEMBER_DIRS for name in (base + ".gz", base)
             if (folder / sub / name).is_file()]
    _check_copies_agree([(str(path), _opener(path)) for path in found])
    return found[0] if found else None


def _opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: gzip.open(path) if path.suffix == ".gz" else open(path, "rb")


def _zip_opener(archive: zipfile.ZipFile, name: str) -> Callable[[], BinaryIO]:
    return lambda: gzip.GzipFile(fileobj=archive.open(name)) if name.endswith(".gz") else archive.open(name)


def _check_copies_agree(copies: list[tuple[str, Callable[[], BinaryIO]]]) -> None:
    """Several copies of one member (``x.gz`` beside its extracted ``x``, a flat one and one under ``gzip/``)
    must hold the same bytes once decompressed: otherwise which one is read would decide the data, silently.
    ``copies``: each copy's name and an opener of its decompressed bytes.

    Raises:
        UserError: naming two copies that differ, or one that cannot be read.
    """
    if len(copies) < 2:
        return
    first, open_first = copies[0]
    for name, open_other in copies[1:]:
        with open_first() as a, open_other() as b:
            while True:
                chunk_a, chunk_b = _read_chunk(a, first), _read_chunk(b, name)
                if chunk_a != chunk_b:
                    raise UserError(f"{first} and {name}: two copies of one file with different content: expected "
                                    "one copy (remove the wrong one)")
                if not chunk_a:
                    break


def _read_chunk(stream: BinaryIO, name: str) -> bytes:
    try:
        return stream.read(1 << 20)
    except (OSError, EOFError, zlib.error) as err:
        raise UserError(f"{name}: unreadable ({one_line(err)}): expected an intact IDX file (gzipped or not)") from None


def read_zip(path: Path, info: SplitInfo) -> SplitArrays:
    """The split from the NIST archive (members found by name, at any depth)."""
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file: expected the EMNIST gzip.zip")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(f"{path}: not a readable zip archive ({err}): expected the EMNIST gzip.zip") from None
    with archive:
        by_name = {Path(name).name: name for name in archive.namelist()}

        def open_member(part: str, kind: str) -> tuple[BinaryIO, str, bool]:
            base = member_name(info.name, part, kind)
            copies = [name for name in archive.namelist() if Path(name).name in (base + ".gz", base)]
            _check_copies_agree([(f"{path}:{name}", _zip_opener(archive, name)) for name in copies])
            for name, gzipped in ((base + ".gz", True), (base, False)):
                if name in by_name:
                    try:
                        return archive.open(by_name[name]), f"{path}:{by_name[name]}", gzipped
                    except (zipfile.BadZipFile, OSError) as err:
                        raise UserError(
                            f"{path}:{by_name[name]}: unreadable zip member ({err}): expected an intact archive"
                        ) from None
            raise UserError(f"{path}: no member {base}.gz: expected the EMNIST gzip.zip layout (gzip/{base}.gz)")

        return read_members(info, open_member)


def read_members(
    info: SplitInfo, open_member: Callable[[str, str], tuple[BinaryIO, str, bool]], upright: bool = False
) -> SplitArrays:
    """Read and cross-check the four IDX members (stored ``upright`` or transposed); labels become class ids.

    The labels are read first: the images file's header must then declare as many glyphs, checked before its
    payload (the part that may be large) is read.
    """
    arrays: dict[str, np.ndarray] = {}
    for part in PARTS:
        stream, labels_name, gzipped = open_member(part, "labels")
        with stream:
            labels = read_idx(stream, labels_name, "labels", gzipped)
        stream, images_name, gzipped = open_member(part, "images")
        with stream:
            arrays[f"{part}_images"] = read_idx(stream, images_name, "images", gzipped, (labels_name, len(labels)))
        arrays[f"{part}_labels"] = class_ids(labels, info, labels_name)
    return SplitArrays(upright=upright, **arrays)


def class_ids(raw: np.ndarray, info: SplitInfo, name: str, offset: int | None = None) -> np.ndarray:
    """NIST labels -> class ids 0..C-1 (letters shift by one, or by ``offset``); out-of-range labels raise UserError."""
    low = info.raw_label_offset if offset is None else offset
    labels = raw.astype(np.int64) - low
    bad = (labels < 0) | (labels >= info.num_classes)
    if bad.any():
        first = int(raw[np.argmax(bad)])
        raise UserError(
            f"{name}: label {first} is outside the {info.num_classes} classes of {info.name}: "
            f"expected labels {low}..{low + info.num_classes - 1}"
        )
    return labels
