"""Parquet files and saved ``datasets`` folders: ``image`` (encoded or 28x28 integers) + ``label`` columns.

Copies from elsewhere (a Hub repo's shards, ``DatasetDict.save_to_disk``) hold the NIST orientation
and numbering, as every copy made from the NIST files does; an emnist_dist cache is taken as is.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from ...errors import UserError, one_line
from ..dataset_io import META_FILE, PARTS, SplitArrays, load_split, read_meta
from ..idx import IMAGE_SIDE
from ..splits import SplitInfo
from .nist_files import class_ids


def has_parquet(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` holds ``.parquet`` files at any depth."""
    return any(folder.rglob("*.parquet"))


def is_saved_dataset(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` was written by ``DatasetDict.save_to_disk``."""
    return (folder / "dataset_dict.json").is_file()


def read_parquet_file(path: Path, info: SplitInfo) -> SplitArrays:
    """A ``...train....parquet`` file and its sibling with ``train`` replaced by ``test``."""
    if "train" not in path.name:
        raise UserError(
            f"{path}: cannot tell the part: expected a file named like train-*.parquet next to its test-*.parquet"
        )
    test = path.with_name(path.name.replace("train", "test"))
    if not test.is_file():
        raise UserError(f"{path}: no matching test file {test.name}: expected both train and test parquet files")
    return arrays_from_tables(info, {"train": [path], "test": [test]})


def read_parquet_folder(path: Path, info: SplitInfo) -> SplitArrays:
    """Parquet shards under ``path``, sorted into parts by a path component starting with train/test.

    A Hub repo holding several splits as subfolders (``byclass/``, ``balanced/`` ...) is narrowed
    to the requested split's folder.
    """
    files = sorted(path.rglob("*.parquet"))
    in_split = [f for f in files if info.name in f.relative_to(path).parts[:-1]]
    files = in_split or files
    by_part = {part: [f for f in files if any(c.startswith(part) for c in f.relative_to(path).parts)] for part in PARTS}
    for part, found in by_part.items():
        if not found:
            raise UserError(
                f"{path}: no {part} parquet files: expected files or folders named {part}* "
                f"(e.g. data/{part}-00000-of-00001.parquet)"
            )
    return arrays_from_tables(info, by_part)


def arrays_from_tables(info: SplitInfo, files: dict[str, list[Path]], published: bool = False) -> SplitArrays:
    """Parquet files per part -> arrays; ``published``: as ``publish`` writes them (upright, class ids)."""
    arrays = {}
    for part, paths in files.items():
        tables = []
        for f in paths:
            try:
                tables.append(pq.read_table(f, columns=["image", "label"]))
            except (pa.ArrowInvalid, OSError, KeyError) as err:
                raise UserError(
                    f"{f}: unreadable parquet or no image+label columns ({one_line(err)}): "
                    "expected a parquet file with image and label columns"
                ) from None
        name = str(paths[0]) if len(paths) == 1 else f"{paths[0].parent} ({len(paths)} {part} files)"
        try:
            table = pa.concat_tables(tables)
        except pa.ArrowInvalid as err:
            raise UserError(f"{name}: shards disagree ({one_line(err)}): expected one schema") from None
        arrays[f"{part}_images"], raw = _table_arrays(table, name)
        arrays[f"{part}_labels"] = class_ids(raw, info, name, offset=0 if published else info.raw_label_offset)
    return SplitArrays(upright=published, **arrays)


def read_saved_dataset(path: Path, info: SplitInfo) -> SplitArrays:
    """A folder written by ``DatasetDict.save_to_disk`` (by emnist_dist or anyone else)."""
    if (path / META_FILE).is_file():  # an emnist_dist cache: upright, class ids already
        split = read_meta(path)["split"]
        if split != info.name:
            raise UserError(f"{path}: an emnist_dist {split} dataset: expected {info.name}")
        train_images, train_labels = load_split(path, "train")
        test_images, test_labels = load_split(path, "test")
        return SplitArrays(
            train_images.squeeze(1).numpy(),
            train_labels.numpy(),
            test_images.squeeze(1).numpy(),
            test_labels.numpy(),
            upright=True,
        )
    from datasets import load_from_disk

    try:
        saved = load_from_disk(str(path))
    except (OSError, ValueError) as err:
        raise UserError(
            f"{path}: unreadable datasets folder ({one_line(err)}): "
            "expected a folder saved by DatasetDict.save_to_disk"
        ) from None
    missing = [part for part in PARTS if part not in saved]
    if missing:
        raise UserError(f"{path}: no {missing[0]} split (found {', '.join(saved)}): expected train and test")
    arrays = {}
    for part in PARTS:
        name = f"{path}/{part}"
        arrays[f"{part}_images"], raw = _table_arrays(saved[part].data.table, name)
        arrays[f"{part}_labels"] = class_ids(raw, info, name)
    return SplitArrays(upright=False, **arrays)


def _table_arrays(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (encoded PNG/... bytes, or nested integer lists) + ``label`` columns -> arrays."""
    missing = [c for c in ("image", "label") if c not in table.column_names]
    if missing:
        raise UserError(
            f"{name}: no {missing[0]!r} column (found {', '.join(table.column_names)}): expected image and label"
        )
    label_col = table.column("label")
    if not pa.types.is_integer(label_col.type) or label_col.null_count:
        raise UserError(
            f"{name}: label column holds {label_col.type} with {label_col.null_count} nulls: "
            "expected integers, no nulls"
        )
    labels = label_col.to_numpy().astype(np.int64)
    images = np.empty((table.num_rows, IMAGE_SIDE, IMAGE_SIDE), dtype=np.uint8)
    filled = 0
    for chunk in table.column("image").chunks:
        images[filled : filled + len(chunk)] = _decode_images(chunk, name, filled)
        filled += len(chunk)
    return images, labels


def _decode_images(chunk: pa.Array, name: str, first_row: int) -> np.ndarray:
    kind = chunk.type
    if pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0:  # datasets' Image feature
        chunk = chunk.field("bytes")
        kind = chunk.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return (
            np.stack([_decode_png(blob, name, first_row + i) for i, blob in enumerate(chunk.to_pylist())])
            if len(chunk)
            else np.zeros((0, 28, 28), np.uint8)
        )
    values = chunk
    while (
        pa.types.is_list(values.type) or pa.types.is_large_list(values.type) or pa.types.is_fixed_size_list(values.type)
    ):
        values = values.flatten()
    if not pa.types.is_integer(values.type) or values.null_count:
        raise UserError(f"{name}: image column holds {chunk.type}: expected encoded images or 28x28 integer arrays")
    pixels = values.to_numpy()
    if pixels.size != len(chunk) * IMAGE_SIDE * IMAGE_SIDE:
        raise UserError(f"{name}: image arrays hold {pixels.size} values for {len(chunk)} images: expected 28x28 each")
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise UserError(f"{name}: pixel values span {pixels.min()}..{pixels.max()}: expected 0..255")
    return pixels.astype(np.uint8, copy=False).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)


def _decode_png(blob: bytes | None, name: str, row: int) -> np.ndarray:
    """One encoded image (row ``row`` of ``name``) -> 28x28 uint8 (the per-image decode is unavoidable; done once, here).

    The size is checked from the header, before decoding: a huge image is refused without
    allocating it (PIL itself refuses one over its decompression-bomb limit at open).
    """
    where = f"{name}: row {row}"
    if blob is None:
        raise UserError(f"{where}: the image has no embedded bytes: expected every image stored in the file")
    try:
        with Image.open(io.BytesIO(blob)) as image:
            if image.size != (IMAGE_SIDE, IMAGE_SIDE):
                raise UserError(f"{where}: the image is {image.size[0]}x{image.size[1]}: expected 28x28")
            pixels = _greyscale_bytes(image, where)
    except Image.DecompressionBombError as err:
        raise UserError(f"{where}: image too large to decode ({one_line(err)}): expected 28x28") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(
            f"{where}: undecodable image ({one_line(err)}): expected PNG (or another PIL format) bytes"
        ) from None
    return pixels


_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # "I": how some Pillow versions open 16-bit PNGs


def _greyscale_bytes(image: Image.Image, where: str) -> np.ndarray:
    """A decoded image's pixels as 0..255 uint8. A 16-bit image is scaled from its format's 0..65535
    (Pillow's ``convert("L")`` clips it at 255 instead, which turns a 16-bit glyph black and white); one whose
    values all stay within 0..255 (8-bit values written into a 16-bit file) would come out black: refused."""
    if image.mode == "L":
        return np.asarray(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.int64)
        if values.min() < 0 or values.max() > 65535:
            raise UserError(f"{where}: pixel values span {values.min()}..{values.max()}: expected an 8- or 16-bit "
                            "image (0..255 or 0..65535)")
        if 0 < values.max() <= 255:
            raise UserError(f"{where}: a 16-bit image whose values stay within 0..{values.max()}: expected values "
                            "over the 16-bit range 0..65535, or an 8-bit image")
        return ((values * 255 + 32767) // 65535).astype(np.uint8)
    if image.mode == "F":
        raise UserError(f"{where}: a 32-bit floating-point image: expected an 8- or 16-bit image")
    return np.asarray(image.convert("L"))
