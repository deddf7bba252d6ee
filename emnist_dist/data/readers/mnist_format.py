"""MNIST-format folders (MNIST, Fashion-MNIST, KMNIST): ``train-images-idx3-ubyte[.gz]`` ...

The 10-class ``mnist`` split stored upright, class names from a ``classes.txt`` beside the files
(else the digits).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UserError, one_line
from ..dataset_io import SplitArrays
from ..splits import MNIST_FORMAT_SPLIT, SplitInfo, class_names_problem
from .nist_files import find_member, read_found_members

# The classic MNIST-format names (MNIST, Fashion-MNIST, KMNIST); their glyphs are stored upright.
MNIST_FORMAT_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
CLASSES_FILE = "classes.txt"


def mnist_format_members(folder: Path) -> dict[tuple[str, str], Path | None]:
    """The classic MNIST-format files under ``folder`` (None where missing); empty when there are none."""
    if not folder.is_dir():
        return {}
    found = {key: find_member(folder, base) for key, base in MNIST_FORMAT_NAMES.items()}
    return found if any(found.values()) else {}


def has_mnist_format(folder: Path, info: SplitInfo) -> bool:
    """Whether ``folder`` holds any MNIST-format file."""
    return bool(mnist_format_members(folder))


def read_mnist_format(path: Path, info: SplitInfo) -> SplitArrays:
    """The 10-class split from MNIST-format files: upright glyphs, labels 0..9, names from classes.txt."""
    members = mnist_format_members(path)
    if info.name != MNIST_FORMAT_SPLIT:
        raise UserError(
            f"{path}: MNIST-format files (train-images-idx3-ubyte, ...) hold a 10-class set: "
            f"expected --split {MNIST_FORMAT_SPLIT}, not {info.name}"
        )
    missing = [MNIST_FORMAT_NAMES[key] for key, found in members.items() if found is None]
    expected = "all four of " + ", ".join(f"{name}[.gz]" for name in MNIST_FORMAT_NAMES.values())
    arrays = read_found_members(path, members, missing, expected, info, upright=True)
    arrays.class_names = _read_class_names(members[("train", "images")].parent, info)
    return arrays


def _read_class_names(folder: Path, info: SplitInfo) -> list[str]:
    """Class names from ``folder/classes.txt`` (one a line, in label order; a UTF-8 byte-order mark is dropped),
    else the split's own. They must pass the model folder's rule (:func:`~..splits.class_names_problem`): a
    name a trained model could not be loaded with is refused here, before any training."""
    file = folder / CLASSES_FILE
    if not file.is_file():
        if file.exists() or file.is_symlink():  # a folder, a FIFO, a dangling link: not the names it promises
            raise UserError(f"{file}: not a regular file: expected UTF-8 text, one class name a line (or no {CLASSES_FILE})")
        return list(info.class_names)
    try:
        names = [line.strip() for line in file.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"{file}: unreadable ({one_line(err)}): expected UTF-8 text, one class name a line") from None
    while names and not names[-1]:  # a trailing blank line is not a class
        names.pop()
    blank, repeated = sum(not name for name in names), len(names) - len(set(names))
    expected = f"expected {info.num_classes} distinct class names, one a line in label order"
    if len(names) != info.num_classes or blank or repeated:
        raise UserError(f"{file}: {len(names)} lines ({blank} blank, {repeated} repeated): {expected}")
    problem = class_names_problem(names)
    if problem is not None:
        raise UserError(f"{file}: {problem}: {expected}, each visible printable text")
    return names
