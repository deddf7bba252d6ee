"""The cache format: a ``datasets.DatasetDict`` folder, written atomically, read as whole tensors.

Each prepared split is a folder that ``datasets.load_from_disk`` reads: parts ``train`` and
``test`` (each an Arrow IPC stream ``data-00000-of-00001.arrow`` with ``dataset_info.json`` and
``state.json``, listed by ``dataset_dict.json``), features ``image`` (28x28 uint8, a fixed-size
list of fixed-size lists, stored upright) and ``label`` (``ClassLabel`` with the split's class
names), plus ``emnist_dist.json`` (split, source, description, the row count of each part and the
size and SHA-256 of every file, written last).

The folder is written here with pyarrow's IPC stream writer in the layout ``load_from_disk``
reads, rather than by ``DatasetDict.save_to_disk``: the Arrow table is built straight from the
decompressed buffers (the orientation fix done a record batch at a time into one small buffer)
and every file is hashed while it is written. ``save_to_disk`` re-derived the schema for each of
its ~800 record batches (3.2 s for ByClass), the checksums then read everything back, and
importing ``datasets`` alone costs over a second: ``prepare`` went from about 2.7x the time of
merely decompressing the files to under 2x. The tests read the folder back with ``datasets``'s
own loader. Loading copies the Arrow value buffers into one tensor, without per-sample Python work
(going through Python lists costs about 4x the time and 3x the memory). :func:`verify_dataset`
checks a folder against its metadata (a truncated Arrow file can otherwise load as a shorter dataset).

``torch`` and ``datasets`` are imported by :func:`load_split` only, so ``prepare`` (the command
line above all) starts in a fraction of the time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import pyarrow as pa

from ..errors import UserError, one_line
from ..files import atomic_path, file_sha256, write_error
from .idx import IMAGE_SIDE
from .splits import SplitInfo, get_split

if TYPE_CHECKING:
    import torch

META_FILE = "emnist_dist.json"
FORMAT_VERSION = 2  # 2: row counts and file checksums in META_FILE
PARTS = ("train", "test")
ARROW_FILE = "data-00000-of-00001.arrow"
STATS_FILE = "image_stats.json"  # the training images' mean and std, added by :mod:`.stats` on first use
ENTRY_FILES = frozenset({"dataset_dict.json", META_FILE, STATS_FILE, *PARTS, *(
    f"{part}/{name}" for part in PARTS for name in (ARROW_FILE, "dataset_info.json", "state.json"))})
"""Every path (relative, POSIX) a cache entry holds: the folder :func:`write_dataset` writes, with its statistics."""
_BATCH_ROWS = 1000  # rows per Arrow record batch, as datasets writes them
_IMAGE_TYPE = pa.list_(pa.list_(pa.uint8(), IMAGE_SIDE), IMAGE_SIDE)


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


def features_dict(info: SplitInfo) -> dict:
    """The cache's features as ``datasets.Features.to_dict()`` writes them (JSON).

    28x28 uint8 ``image`` (``List(List(Value("uint8"), length=28), length=28)``) and ``label``
    (``ClassLabel`` with the split's class names). Spelled out so that writing the cache needs no
    ``datasets`` import; a test compares it with ``datasets``'s own serialisation.
    """
    pixel = {"dtype": "uint8", "_type": "Value"}
    row = {"feature": pixel, "length": IMAGE_SIDE, "_type": "List"}
    return {
        "image": {"feature": row, "length": IMAGE_SIDE, "_type": "List"},
        "label": {"names": list(info.class_names), "_type": "ClassLabel"},
    }


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


def foreign_entry_files(path: Path) -> list[str]:
    """What the cache entry ``path`` holds besides :data:`ENTRY_FILES` (and this package's interrupted temporary
    files), relative POSIX paths, sorted: a user's files, which rebuilding the entry would delete."""
    found = (item.relative_to(path).as_posix() for item in path.rglob("*"))
    return sorted(name for name in found if name not in ENTRY_FILES and not re.fullmatch(r"(.*/)?\..+\.tmp-\d+", name))


def verify_dataset(path: str | Path) -> str | None:
    """What is wrong with the cache folder ``path`` (one phrase), or None when it matches its metadata.

    Checks the format version, that no part is empty, and the size and SHA-256 of every file the
    metadata lists.
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
    rows = meta.get("rows")
    empty = [part for part in PARTS if isinstance(rows, dict) and rows.get(part) == 0]
    if empty:  # an older emnist_dist cached such parts; no run can use them
        return f"its {empty[0]} part holds 0 rows"
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

    Images not yet upright (``arrays.upright`` False) are fixed a record batch at a time while
    writing; ``arrays`` is left as it is. ``meta`` gets the format version, the class names, the
    row counts and every
    file's size and SHA-256, and is written last. The caller makes sure no other process writes
    ``target`` at the same time (``prepare`` holds a lock).

    Raises:
        UserError: the cache folder cannot be written (read-only, full); nothing is left behind.
    """
    if arrays.class_names is not None:
        info = replace(info, class_names=arrays.class_names)
    features = features_dict(info)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(target, err) from None
    with atomic_path(target) as tmp:
        tmp.mkdir()
        files = {"dataset_dict.json": _write_json(tmp / "dataset_dict.json", {"splits": list(PARTS)})}
        for part in PARTS:
            (tmp / part).mkdir()
            images, labels = getattr(arrays, f"{part}_images"), getattr(arrays, f"{part}_labels")
            with open(tmp / part / ARROW_FILE, "wb") as file:
                files[f"{part}/{ARROW_FILE}"] = _write_arrow(file, images, labels, arrays.upright, features)
            files[f"{part}/dataset_info.json"] = _write_json(
                tmp / part / "dataset_info.json", {"description": meta["description"], "features": features}
            )
            state = {
                "_data_files": [{"filename": ARROW_FILE}],
                "_fingerprint": f"{target.name}-{part}",
                "_format_columns": None,
                "_format_kwargs": {},
                "_format_type": None,
                "_output_all_columns": False,
                "_split": part,
            }
            files[f"{part}/state.json"] = _write_json(tmp / part / "state.json", state)
        rows = {part: len(getattr(arrays, f"{part}_labels")) for part in PARTS}
        full_meta = {**meta, "format": FORMAT_VERSION, "class_names": info.class_names, "rows": rows, "files": dict(sorted(files.items()))}
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2) + "\n")


class _HashingSink:
    """A binary file that hashes what is written through it (the Arrow writer's sink)."""

    def __init__(self, file: BinaryIO):
        self.file, self.sha256, self.bytes = file, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        written = self.file.write(data)
        self.bytes += written
        return written

    def flush(self) -> None:
        self.file.flush()

    @property
    def closed(self) -> bool:
        return self.file.closed

    def entry(self) -> dict:
        return {"bytes": self.bytes, "sha256": self.sha256.hexdigest()}


def _write_arrow(file: BinaryIO, images: np.ndarray, labels: np.ndarray, upright: bool, features: dict) -> dict:
    """One part as an Arrow IPC stream of ``_BATCH_ROWS``-row record batches; returns its size and SHA-256.

    The schema carries the features in the ``huggingface`` metadata, as ``datasets`` writes it.
    """
    schema = pa.schema(
        [("image", _IMAGE_TYPE), ("label", pa.int64())],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    turned = np.empty((min(_BATCH_ROWS, len(images)), IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    sink = _HashingSink(file)
    with pa.ipc.new_stream(sink, schema) as writer:
        for start in range(0, len(images), _BATCH_ROWS):
            block = images[start : start + _BATCH_ROWS]
            if not upright:  # swap each glyph's rows and columns, into the reused buffer
                block = turned[: len(block)]
                np.copyto(block, images[start : start + len(block)].transpose(0, 2, 1))
            batch = pa.record_batch([_image_array(block), pa.array(labels[start : start + len(block)])], schema=schema)
            writer.write_batch(batch)
    return sink.entry()


def _write_json(path: Path, value: dict) -> dict:
    data = (json.dumps(value, indent=2) + "\n").encode()
    path.write_bytes(data)
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _image_array(images: np.ndarray) -> pa.Array:
    """``(N, 28, 28)`` uint8 -> Arrow fixed-size list of fixed-size lists, sharing the numpy buffer."""
    values = pa.UInt8Array.from_buffers(pa.uint8(), images.size, [None, pa.py_buffer(images)])
    rows = pa.FixedSizeListArray.from_arrays(values, IMAGE_SIDE)
    return pa.FixedSizeListArray.from_arrays(rows, IMAGE_SIDE)


def load_split(cache_path: str | Path, which: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """One part of a prepared split as whole tensors.

    Args:
        cache_path: folder returned by ``prepare``.
        which: ``"train"`` or ``"test"``.

    Returns:
        images ``(N, 1, 28, 28)`` uint8 (contiguous, upright) and labels ``(N,)`` int64.
    """
    import torch  # imported here: see the module docstring
    from datasets import Dataset

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
