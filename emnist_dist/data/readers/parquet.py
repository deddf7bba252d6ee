"""Where a split comes from: ``nist``, a local path, ``hf:OWNER/NAME`` or ``synthetic``.

Every source is read into :class:`SplitArrays` (images as the source stores them, labels as
class ids); the NIST files, Hub/parquet copies and the synthetic stand-in all store glyphs
transposed, so ``write_dataset`` applies the one orientation fix. A folder with the classic
MNIST file names (MNIST, Fashion-MNIST, KMNIST: ``train-images-idx3-ubyte[.gz]`` ...) is the
10-class ``mnist`` split stored upright, class names from a ``classes.txt`` beside the files
(else the digits). Raw NIST labels are checked
against the split's classes and shifted (letters: 1..26 -> 0..25). Parquet files and
``datasets`` folders from elsewhere are read the same way (NIST orientation and numbering, as
in every copy made from the NIST files); a folder written by emnist_dist itself (a cache, or a Hub
dataset folder written by ``publish``, recognised by its card) is taken as is.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from ...errors import UserError, one_line
from ..dataset_io import META_FILE, PARTS, SplitArrays, load_split, read_meta
from ..download import download
from ..hub_folder import CARD_FILE, published_configs, published_parquet
from ..idx import IMAGE_SIDE, read_idx
from ..splits import SplitInfo, get_split

NIST_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"
NIST_MD5 = "58c8d27c78d21e728a6bc7b3cc06412e"
NIST_SIZE = 561_753_746  # bytes of the archive with NIST_MD5 (as tensorflow_datasets records it)
ZIP_SIGNATURE = b"PK\x03\x04"
MIRRORS_ENV = "EMNIST_DIST_NIST_MIRRORS"
KINDS = {"images": "images-idx3", "labels": "labels-idx1"}
# Where the NIST members may sit inside a folder: flat, as in gzip.zip, torchvision's layout.
_MEMBER_DIRS = (".", "gzip", "raw", "EMNIST/raw")
# The classic MNIST-format names (MNIST, Fashion-MNIST, KMNIST); their glyphs are stored upright.
MNIST_FORMAT_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
MNIST_FORMAT_SPLIT = "mnist"
CLASSES_FILE = "classes.txt"
_LOCAL_HINT = "pass a local copy instead: --source /path/to/gzip.zip (or a folder of its .gz/IDX files, or parquet)"


def member_name(split: str, part: str, kind: str) -> str:
    """NIST file name without ``.gz``, e.g. ``emnist-byclass-train-images-idx3-ubyte``."""
    return f"emnist-{split}-{part}-{KINDS[kind]}-ubyte"


def is_synthetic(source: str) -> bool:
    return source == "synthetic"


def describe(split: str, source: str) -> str:
    """One human line naming what the data is; the synthetic stand-in says so plainly."""
    if is_synthetic(source):
        return f"SYNTHETIC stand-in for {split} (not EMNIST), fonts sha256:{synthetic_fonts(split)[:16]}"
    if source != "nist" and not source.startswith("hf:") and _mnist_format_members(_existing_path(source)):
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
        return _synthetic(info, train_per_class, test_per_class, seed)
    if source == "nist":
        md5 = nist_md5()
        size = int(os.environ.get("EMNIST_DIST_NIST_SIZE", 0)) or (NIST_SIZE if md5 == NIST_MD5 else None)
        archive = download(nist_urls(mirrors), cache_dir / "downloads" / "gzip.zip", md5, progress,
                           size=size, signature=ZIP_SIGNATURE)
        return read_path(archive, info)
    if source.startswith("hf:"):
        return read_path(_hub_snapshot(source[3:], info), info)
    return read_path(_existing_path(source), info)


def nist_md5() -> str:
    """md5 of the NIST archive: the official one, or ``$EMNIST_DIST_NIST_MD5`` for another copy."""
    return os.environ.get("EMNIST_DIST_NIST_MD5", NIST_MD5)


def nist_urls(mirrors: Sequence[str] = ()) -> list[str]:
    """The servers of the NIST archive in the order they are tried, each once.

    The official URL (or ``$EMNIST_DIST_NIST_URL``), then ``mirrors``, then the URLs in
    ``$EMNIST_DIST_NIST_MIRRORS`` (separated by spaces or commas).
    """
    urls = [os.environ.get("EMNIST_DIST_NIST_URL", NIST_URL), *mirrors,
            *re.split(r"[\s,]+", os.environ.get(MIRRORS_ENV, "").strip())]
    return list(dict.fromkeys(url for url in urls if url))


def synthetic_fonts(split: str) -> str:
    """SHA-256 fingerprint of the fonts the synthetic stand-in of ``split`` is drawn from."""
    from ..fonts import font_fingerprint  # imported here (matplotlib): only this source needs it

    return font_fingerprint("".join(get_split(split).class_names))


def _synthetic(info: SplitInfo, train_per_class: int, test_per_class: int, seed: int) -> SplitArrays:
    for name, value in (("synthetic_train_per_class", train_per_class), ("synthetic_test_per_class", test_per_class)):
        if value < 1:
            raise UserError(f"{name}={value}: expected an integer >= 1")
    from ..synthetic import render_glyphs  # imported here, like datasets below: the other sources start faster

    # Disjoint seeds (even / odd) so the test glyphs are never the training glyphs.
    train_images, train_labels = render_glyphs(info.class_names, train_per_class, 2 * seed)
    test_images, test_labels = render_glyphs(info.class_names, test_per_class, 2 * seed + 1)
    # Stored transposed, exactly like the NIST files, so the same orientation fix applies.
    return SplitArrays(
        np.ascontiguousarray(train_images.transpose(0, 2, 1)),
        train_labels,
        np.ascontiguousarray(test_images.transpose(0, 2, 1)),
        test_labels,
        upright=False,
    )


def read_path(path: Path, info: SplitInfo) -> SplitArrays:
    """Read a split from a local file or folder (any of the layouts listed in the README)."""
    if path.is_file():
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty file: expected the EMNIST gzip.zip or a .parquet file")
        if path.suffix == ".zip":
            return _read_zip(path, info)
        if path.suffix == ".parquet":
            return _read_parquet_file(path, info)
        raise UserError(f"{path}: unsupported file type: expected gzip.zip, a .parquet file, or a folder")
    if not any(path.iterdir()):
        raise UserError(f"{path}: empty folder: expected EMNIST files (gzip.zip, .gz or IDX members, parquet)")
    if (path / "dataset_dict.json").is_file():
        return _read_saved_dataset(path, info)
    published = published_parquet(path, info)
    if published is not None:  # written by `publish`: upright, class ids
        return _arrays_from_tables(info, published, published=True)
    members = {(part, kind): _find_member(path, member_name(info.name, part, kind)) for part in PARTS for kind in KINDS}
    if any(members.values()):
        missing = [member_name(info.name, p, k) for (p, k), found in members.items() if found is None]
        expected = f"all four emnist-{info.name}-{{train,test}}-{{images-idx3,labels-idx1}}-ubyte[.gz] files"
        return _read_found_members(path, members, missing, expected, info, upright=False)
    classic = _mnist_format_members(path)
    if classic:
        return _read_mnist_format(path, classic, info)
    archives = sorted(path.glob("*.zip"))
    if archives:
        return _read_zip(path / "gzip.zip" if (path / "gzip.zip").is_file() else archives[0], info)
    if any(path.rglob("*.parquet")):
        return _read_parquet_folder(path, info)
    raise UserError(
        f"{path}: no EMNIST {info.name} files found: expected gzip.zip, emnist-{info.name}-*-ubyte[.gz] files "
        "(flat, under gzip/ or EMNIST/raw/), MNIST-format train-*/t10k-*-ubyte[.gz] files, parquet files "
        "with image+label columns, or a saved datasets folder"
    )


def _read_found_members(
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

    return _read_members(info, open_file, upright)


# --- MNIST-format folders (MNIST, Fashion-MNIST, KMNIST) ---------------------------------------


def _mnist_format_members(folder: Path) -> dict[tuple[str, str], Path | None]:
    """The classic MNIST-format files under ``folder`` (None where missing); empty when there are none."""
    if not folder.is_dir():
        return {}
    found = {key: _find_member(folder, base) for key, base in MNIST_FORMAT_NAMES.items()}
    return found if any(found.values()) else {}


def _read_mnist_format(path: Path, members: dict[tuple[str, str], Path | None], info: SplitInfo) -> SplitArrays:
    """The 10-class split from MNIST-format files: upright glyphs, labels 0..9, names from classes.txt."""
    if info.name != MNIST_FORMAT_SPLIT:
        raise UserError(
            f"{path}: MNIST-format files (train-images-idx3-ubyte, ...) hold a 10-class set: "
            f"expected --split {MNIST_FORMAT_SPLIT}, not {info.name}"
        )
    missing = [MNIST_FORMAT_NAMES[key] for key, found in members.items() if found is None]
    expected = "all four of " + ", ".join(f"{name}[.gz]" for name in MNIST_FORMAT_NAMES.values())
    arrays = _read_found_members(path, members, missing, expected, info, upright=True)
    arrays.class_names = _read_class_names(members[("train", "images")].parent, info)
    return arrays


def _read_class_names(folder: Path, info: SplitInfo) -> list[str]:
    """Class names from ``folder/classes.txt`` (one a line, in label order), else the split's own."""
    file = folder / CLASSES_FILE
    if not file.is_file():
        return list(info.class_names)
    try:
        names = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{file}: unreadable ({one_line(err)}): expected UTF-8 text, one class name a line") from None
    while names and not names[-1]:  # a trailing blank line is not a class
        names.pop()
    blank, repeated = sum(not name for name in names), len(names) - len(set(names))
    if len(names) != info.num_classes or blank or repeated:
        raise UserError(
            f"{file}: {len(names)} lines ({blank} blank, {repeated} repeated): expected {info.num_classes} "
            "distinct class names, one a line in label order"
        )
    return names


def _find_member(folder: Path, base: str) -> Path | None:
    for sub in _MEMBER_DIRS:
        for name in (base + ".gz", base):
            candidate = folder / sub / name
            if candidate.is_file():
                return candidate
    return None


def _read_zip(path: Path, info: SplitInfo) -> SplitArrays:
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
            for name, gzipped in ((base + ".gz", True), (base, False)):
                if name in by_name:
                    try:
                        return archive.open(by_name[name]), f"{path}:{by_name[name]}", gzipped
                    except (zipfile.BadZipFile, OSError) as err:
                        raise UserError(
                            f"{path}:{by_name[name]}: unreadable zip member ({err}): expected an intact archive"
                        ) from None
            raise UserError(f"{path}: no member {base}.gz: expected the EMNIST gzip.zip layout (gzip/{base}.gz)")

        return _read_members(info, open_member)


def _read_members(
    info: SplitInfo, open_member: Callable[[str, str], tuple[BinaryIO, str, bool]], upright: bool = False
) -> SplitArrays:
    """Read and cross-check the four IDX members (stored ``upright`` or transposed); labels become class ids."""
    arrays: dict[str, np.ndarray] = {}
    for part in PARTS:
        names = {}
        for kind in KINDS:
            stream, names[kind], gzipped = open_member(part, kind)
            with stream:
                arrays[f"{part}_{kind}"] = read_idx(stream, names[kind], kind, gzipped)
        n_images, n_labels = len(arrays[f"{part}_images"]), len(arrays[f"{part}_labels"])
        if n_images != n_labels:
            raise UserError(
                f"{names['images']} holds {n_images} images but {names['labels']} holds {n_labels} labels: "
                "expected equal counts"
            )
        arrays[f"{part}_labels"] = _class_ids(arrays[f"{part}_labels"], info, names["labels"])
    return SplitArrays(upright=upright, **arrays)


def _class_ids(raw: np.ndarray, info: SplitInfo, name: str, offset: int | None = None) -> np.ndarray:
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


# --- parquet files and saved datasets folders -------------------------------------------------


def _read_parquet_file(path: Path, info: SplitInfo) -> SplitArrays:
    """A ``...train....parquet`` file and its sibling with ``train`` replaced by ``test``."""
    if "train" not in path.name:
        raise UserError(
            f"{path}: cannot tell the part: expected a file named like train-*.parquet next to its test-*.parquet"
        )
    test = path.with_name(path.name.replace("train", "test"))
    if not test.is_file():
        raise UserError(f"{path}: no matching test file {test.name}: expected both train and test parquet files")
    return _arrays_from_tables(info, {"train": [path], "test": [test]})


def _read_parquet_folder(path: Path, info: SplitInfo) -> SplitArrays:
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
    return _arrays_from_tables(info, by_part)


def _arrays_from_tables(info: SplitInfo, files: dict[str, list[Path]], published: bool = False) -> SplitArrays:
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
        arrays[f"{part}_labels"] = _class_ids(raw, info, name, offset=0 if published else info.raw_label_offset)
    return SplitArrays(upright=published, **arrays)


def _read_saved_dataset(path: Path, info: SplitInfo) -> SplitArrays:
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
        arrays[f"{part}_labels"] = _class_ids(raw, info, name)
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
            pixels = np.asarray(image.convert("L") if image.mode != "L" else image)
    except Image.DecompressionBombError as err:
        raise UserError(f"{where}: image too large to decode ({one_line(err)}): expected 28x28") from None
    except (UnidentifiedImageError, OSError) as err:
        raise UserError(
            f"{where}: undecodable image ({one_line(err)}): expected PNG (or another PIL format) bytes"
        ) from None
    return pixels


# --- the Hugging Face Hub -----------------------------------------------------------------------


def _hub_snapshot(repo_id: str, info: SplitInfo) -> Path:
    """Download (or find in the Hub cache) the files of a dataset repo that can hold the split."""
    import huggingface_hub  # imported here: only this source needs it
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        # The card first: a repo written by `publish` is narrowed to the split's own folder.
        folder = Path(huggingface_hub.snapshot_download(repo_id, repo_type="dataset", allow_patterns=[CARD_FILE]))
        ours = published_configs(folder) is not None
        patterns = [CARD_FILE, f"{info.name}/*"] if ours else ["*.parquet", f"*emnist-{info.name}-*", "*gzip.zip"]
        folder = huggingface_hub.snapshot_download(repo_id, repo_type="dataset", allow_patterns=patterns)
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        cause = err.__cause__
        if isinstance(cause, OfflineModeIsEnabled):
            reason = "offline mode (HF_HUB_OFFLINE) is on and the repo is not in the local Hub cache"
        elif isinstance(err, LocalEntryNotFoundError) and cause is not None:
            reason = (
                f"Hub unreachable ({type(cause).__name__}: {one_line(cause)}) "
                "and the repo is not in the local Hub cache"
            )
        else:
            reason = f"{type(err).__name__}: {one_line(err)}"
        raise UserError(
            f"hf:{repo_id}: could not get the dataset from the Hugging Face Hub ({reason}); {_LOCAL_HINT}"
        ) from None
    return Path(folder)


# --- helpers ------------------------------------------------------------------------------------


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

