"""EMNIST facts: the six splits, their class names in label order, and their sizes."""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass

from ..errors import UserError

_BYMERGE_LOWER = "abdefghnqrt"  # lower-case letters ByMerge keeps apart from their capitals


@dataclass(frozen=True)
class SplitInfo:
    """One EMNIST split.

    Attributes:
        name: split name as used in the NIST file names (``emnist-{name}-...``).
        class_names: one character per class, in label order (index = class id).
        train_size, test_size: sample counts of the official files.
        raw_label_offset: what the NIST label files add to the class id (1 for letters, whose
            raw labels run 1..26; 0 elsewhere).
    """

    name: str
    class_names: list[str]
    train_size: int
    test_size: int
    raw_label_offset: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


SPLITS: dict[str, SplitInfo] = {
    info.name: info
    for info in (
        SplitInfo("byclass", list(string.digits + string.ascii_uppercase + string.ascii_lowercase), 697_932, 116_323),
        SplitInfo("bymerge", list(string.digits + string.ascii_uppercase + _BYMERGE_LOWER), 697_932, 116_323),
        SplitInfo("balanced", list(string.digits + string.ascii_uppercase + _BYMERGE_LOWER), 112_800, 18_800),
        SplitInfo("letters", list(string.ascii_lowercase), 124_800, 20_800, raw_label_offset=1),
        SplitInfo("digits", list(string.digits), 240_000, 40_000),
        SplitInfo("mnist", list(string.digits), 60_000, 10_000),
    )
}
MNIST_FORMAT_SPLIT = "mnist"
"""The split a folder of MNIST-format files (MNIST, Fashion-MNIST, KMNIST) is read as: 10 classes, named by its
classes.txt."""


def get_split(split: str) -> SplitInfo:
    """The :class:`SplitInfo` of ``split``; an unknown name raises :class:`UserError`."""
    if split not in SPLITS:
        raise UserError(f"unknown EMNIST split {split!r}: expected one of {', '.join(SPLITS)}")
    return SPLITS[split]


def class_names(split: str) -> list[str]:
    """Class names of ``split`` in label order (a copy); unknown split -> :class:`UserError`."""
    return list(get_split(split).class_names)


def class_names_problem(names: list) -> str | None:
    """What makes ``names`` unfit to name classes, else None. Predictions are shown by name, so each must be
    visible, printable text and tell one class apart; a source's names (classes.txt, a published card) and a
    model folder's are held to this one rule."""
    if not names:
        return "no names"
    for index, name in enumerate(names):
        if not (isinstance(name, str) and name.strip() and name.isprintable()):
            return f"name {index} is {name!r}, not visible printable text"
    name, count = Counter(names).most_common(1)[0]
    if count > 1:
        return f"{name!r} is given {count} times"
    return None
