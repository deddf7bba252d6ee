"""The cache format: a ``datasets.DatasetDict`` on disk, written atomically, read as whole tensors.

Each prepared split is a folder saved with ``DatasetDict.save_to_disk``: parts ``train`` and
``test``, features ``image`` (28x28 uint8, a fixed-size list of fixed-size lists, stored
upright) and ``label`` (``ClassLabel`` with the split's class names), plus ``emnist_dist.json``
(split, source, description, the row count of each part and the size and SHA-256 of every file,
written last). The Arrow table is built straight from the decompressed buffers and written once;
loading copies the Arrow value buffers into one tensor, without per-sample Python work (going
through Python lists costs about 4x the time and 3x the memory). :func:`verify_dataset` checks a
folder against its metadata (a truncated Arrow file can otherwise load as a shorter dataset).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

from ..errors import UserError, one_line
from ..files import atomic_path, file_sha256, write_error
from .idx import IMAGE_SIDE
from .splits import SplitInfo, get_split

META_FILE = "emnist_dist.json"
FORMAT_VERSION = 2  # 2: row counts and file checksums in META_FILE
PARTS = ("train", "test")
_TRANSPOSE_CHUNK = 1 << 16


@dataclass
class SplitArrays:
    """Both parts of one split as read from a source.

    Images are ``(N, 28, 28)`` uint8, labels ``(N,)`` int64 class ids (0..C-1). ``upright`` is
    False while the images are still stored transposed like the NIST files. ``class_names`` are
    the source's own names (e.g. Fashion-MNIST's), or None for the split's.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    upright: bool
    class_names: list[str] | None = None


def features(info: SplitInfo) -> Features:
    """The cache's features: 28x28 uint8 ``image`` and ``label`` with the split's class names."""
    return Features(
        {
            "image": List(List(Value("uint8"), length=IMAGE_SIDE), length=IMAGE_SIDE),
            "label": ClassLabel(names=info.class_names),
        }
    )


def read_meta(path: str | Path) -> dict:
    """The cache's ``emnist_dist.json``: split, source, synthetic flag, description, rows and files."""
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise UserError(
            f"{path}: not a prepared emnist_dist dataset (no {META_FILE}): expected the folder `prepare` printed"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{meta_path}: unreadable ({one_line(err)}): expected the metadata `prepare` wrote") from None
    if not isinstance(meta, dict):
        raise UserError(f"{meta_path}: holds {type(meta).__name__}: expected the metadata `prepare` wrote")
    return meta


def dataset_class_names(path: str | Path) -> list[str]:
    """Class names of the prepared dataset ``path``, in label order (those its source gave, else the split's)."""
    meta = read_meta(path)
    return list(meta.get("class_names") or get_split(meta["split"]).class_names)


def verify_dataset(path: str | Path) -> str | None:
    """What is wrong with the cache folder ``path`` (one phrase), or None when it matches its metadata.

    Checks the format version and the size and SHA-256 of every file the metadata lists.
    """
    path = Path(path)
    try:
        meta = read_meta(path)
        files = {name: (int(entry["bytes"]), str(entry["sha256"])) for name, entry in meta["files"].items()}
    except UserError:
        return f"no readable {META_FILE}"
    except (KeyError, TypeError, ValueError, AttributeError):
        return f"{META_FILE} lists no files"
    if meta.get("format") != FORMAT_VERSION:
        return f"written by another emnist_dist version (format {meta.get('format')}, expected {FORMAT_VERSION})"
    for name, (size, digest) in files.items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes where {META_FILE} says {size}"
        if file_sha256(file) != digest:
            return f"{name} does not match its SHA-256 in {META_FILE}"
    return None


def write_dataset(target: Path, arrays: SplitArrays, info: SplitInfo, meta: dict) -> None:
    """Write ``arrays`` as the cache folder ``target``, atomically (replacing a damaged one).

    The images are fixed to upright in place (when ``arrays.upright`` is False). ``meta`` gets the
    format version, the class names, the row counts and every file's size and SHA-256, and is
    written last. The
    caller makes sure no other process writes ``target`` at the same time (``prepare`` holds a lock).

    Raises:
        UserError: the cache folder cannot be written (read-only, full); nothing is left behind.
    """
    if arrays.class_names is not None:
        info = replace(info, class_names=arrays.class_names)
    feats = features(info)
    parts = {}
    for part in PARTS:
        images = np.require(getattr(arrays, f"{part}_images"), np.uint8, ["C_CONTIGUOUS", "WRITEABLE"])
        if not arrays.upright:
            _transpose_in_place(images)
        table = pa.table(
            {"image": _image_array(images), "label": pa.array(getattr(arrays, f"{part}_labels"), pa.int64())}
        )
        dataset_info = DatasetInfo(description=meta["description"], features=feats)
        # datasets' documented table class, with a fingerprint given: Dataset.from_dict would pickle the
        # whole table to hash one (measured 0.44 s and a full copy per 100k glyphs).
        parts[part] = Dataset(InMemoryTable(table), info=dataset_info, split=part, fingerprint=f"{target.name}-{part}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(target, err) from None
    with atomic_path(target) as tmp:
        with quiet_datasets():
            DatasetDict(parts).save_to_disk(str(tmp))
        files = {
            str(f.relative_to(tmp)): {"bytes": f.stat().st_size, "sha256": file_sha256(f)}
            for f in sorted(tmp.rglob("*"))
            if f.is_file()
        }
        rows = {part: len(dataset) for part, dataset in parts.items()}
        full_meta = {**meta, "format": FORMAT_VERSION, "class_names": info.class_names, "rows": rows, "files": files}
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2) + "\n")


def _transpose_in_place(images: np.ndarray) -> None:
    """Swap rows and columns of every glyph, a chunk at a time (one small temporary)."""
    for start in range(0, len(images), _TRANSPOSE_CHUNK):
        block = images[start : start + _TRANSPOSE_CHUNK]
        block[...] = block.transpose(0, 2, 1).copy()


def _image_array(images: np.ndarray) -> pa.Array:
    """``(N, 28, 28)`` uint8 -> Arrow fixed-size list of fixed-size lists, sharing the numpy buffer."""
    values = pa.UInt8Array.from_buffers(pa.uint8(), images.size, [None, pa.py_buffer(images)])
    rows = pa.FixedSizeListArray.from_arrays(values, IMAGE_SIDE)
    return pa.FixedSizeListArray.from_arrays(rows, IMAGE_SIDE)


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence the ``datasets`` progress bars (saving takes seconds; ``prepare`` reports itself)."""
    silence = not datasets.utils.are_progress_bars_disabled()
    if silence:
        datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        if silence:
            datasets.utils.enable_progress_bars()


def load_split(cache_path: str | Path, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One part of a prepared split as whole tensors.

    Args:
        cache_path: folder returned by ``prepare``.
        which: ``"train"`` or ``"test"``.

    Returns:
        images ``(N, 1, 28, 28)`` uint8 (contiguous, upright) and labels ``(N,)`` int64.
    """
    if which not in PARTS:
        raise UserError(f"which={which!r}: expected one of {', '.join(PARTS)}")
    rows = read_meta(cache_path).get("rows")
    if not isinstance(rows, dict) or not isinstance(rows.get(which), int):
        raise UserError(f"{cache_path}: no row counts in {META_FILE} (an older emnist_dist wrote it): run `prepare` again")
    expected_rows = rows[which]
    try:
        table = Dataset.load_from_disk(str(Path(cache_path) / which)).data  # datasets' memory-mapped Table
    except (OSError, ValueError, pa.ArrowException) as err:
        raise UserError(f"{cache_path}: its {which} part is unreadable ({one_line(err)}): run `prepare` again") from None
    if table.num_rows != expected_rows:
        raise UserError(
            f"{cache_path}: its {which} part holds {table.num_rows} rows: expected {expected_rows} "
            "(damaged or from an older emnist_dist; run `prepare` again)"
        )
    # Allocated by numpy, which asks Linux for transparent huge pages on large arrays: first
    # touching the fresh memory is then ~4x cheaper than with torch.empty (measured).
    images = np.empty((table.num_rows, 1, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    flat = images.reshape(-1)
    filled = 0
    for chunk in table.column("image").chunks:
        # The memory-mapped uint8 values, viewed without conversion (to_pylist / formatting
        # would hand back int64 Python objects), copied once into the output tensor.
        values = chunk.flatten().flatten().to_numpy(zero_copy_only=True)
        flat[filled : filled + values.size] = values
        filled += values.size
    labels = np.concatenate([c.to_numpy() for c in table.column("label").chunks]) if table.num_rows else np.zeros(0)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64, copy=False))
