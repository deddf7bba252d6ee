"""The synthetic stand-in (source ``synthetic``): glyphs drawn from fonts, offline; not EMNIST."""

from __future__ import annotations

import numpy as np

from ...errors import UserError
from ..dataset_io import SplitArrays
from ..splits import SplitInfo, get_split


def synthetic_fonts(split: str) -> str:
    """SHA-256 fingerprint of the fonts the synthetic stand-in of ``split`` is drawn from."""
    from ..fonts import font_fingerprint  # imported here (matplotlib): only this source needs it

    return font_fingerprint("".join(get_split(split).class_names))


def synthetic_cache_tag(split: str, train_per_class: int, test_per_class: int, seed: int) -> str:
    """The cache entry's tag: the sizes, the seed and the fonts decide the glyphs."""
    return f"synthetic-{train_per_class}x{test_per_class}-seed{seed}-fonts{synthetic_fonts(split)[:12]}"


def describe_synthetic(split: str) -> str:
    """The stand-in says so plainly."""
    return f"SYNTHETIC stand-in for {split} (not EMNIST), fonts sha256:{synthetic_fonts(split)[:16]}"


def read_synthetic(info: SplitInfo, train_per_class: int, test_per_class: int, seed: int) -> SplitArrays:
    """Both parts of ``info``'s split drawn from fonts, stored transposed like the NIST files."""
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
