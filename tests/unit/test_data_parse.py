"""Parsing the NIST files: torchvision's EMNIST parser as the oracle, every layout, orientation."""

import numpy as np
import pytest
import torch
from tests.helpers.emnist_raw import (
    RawSplit,
    random_split,
    raw_label_range,
    write_gz_folder,
    write_gzip_zip,
    write_idx_folder,
    write_torchvision_layout,
)
from torchvision.datasets import EMNIST

from emnist_dist.data import SPLITS, class_names, load_split, prepare


@pytest.mark.parametrize("split", list(SPLITS))
def test_matches_torchvision_reading_the_same_files(tmp_path, split):
    raw = random_split(split, 150, 60, seed=3)
    write_gzip_zip(tmp_path / "gzip.zip", raw)
    write_torchvision_layout(tmp_path / "tv", raw)
    cache = prepare(split, str(tmp_path / "gzip.zip"), tmp_path / "cache", progress=False)
    first_label = raw_label_range(split)[0]
    for part in ("train", "test"):
        images, labels = load_split(cache, part)
        reference = EMNIST(str(tmp_path / "tv"), split, train=part == "train")
        # torchvision keeps the stored (transposed) orientation; the cache holds it upright.
        assert torch.equal(images[:, 0], reference.data.transpose(1, 2))
        assert torch.equal(labels, reference.targets.long() - first_label)
        assert [class_names(split)[i] for i in labels] == [reference.classes[t] for t in reference.targets]


LAYOUTS = {
    "gzip.zip (stored)": lambda root, *raws: write_gzip_zip(root / "gzip.zip", *raws),
    "gzip.zip (deflated)": lambda root, *raws: write_gzip_zip(root / "gzip.zip", *raws, compression=8),
    "folder holding gzip.zip": lambda root, *raws: write_gzip_zip(root / "dl" / "gzip.zip", *raws).parent,
    "flat .gz folder": lambda root, *raws: write_gz_folder(root / "gz", *raws),
    "unzipped archive (gzip/*.gz)": lambda root, *raws: write_gz_folder(root / "unzipped", *raws, under_gzip=True),
    "extracted IDX folder": lambda root, *raws: write_idx_folder(root / "idx", *raws),
    "torchvision layout": lambda root, *raws: write_torchvision_layout(root / "tv", *raws),
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_local_layout(tmp_path, layout):
    raw = random_split("letters", 80, 30, seed=5)
    other = random_split("digits", 20, 10, seed=6)  # a second split beside it must not confuse the reader
    source = LAYOUTS[layout](tmp_path, raw, other)
    cache = prepare("letters", str(source), tmp_path / "cache", progress=False)
    for part in ("train", "test"):
        images, labels = load_split(cache, part)
        expected_images = getattr(raw, f"{part}_images").transpose(0, 2, 1)
        assert images.dtype == torch.uint8 and images.shape == (len(expected_images), 1, 28, 28)
        assert np.array_equal(images[:, 0].numpy(), expected_images)
        # letters: raw labels 1..26 become class ids 0..25 (raw 1 is 'a', raw 26 is 'z')
        assert np.array_equal(labels.numpy(), getattr(raw, f"{part}_labels").astype(np.int64) - 1)
    assert labels.dtype == torch.int64 and labels.min() == 0 and labels.max() == 25


def _upright_l() -> np.ndarray:
    """An 'L': a vertical stroke on the left and a horizontal bar at the bottom."""
    glyph = np.zeros((28, 28), dtype=np.uint8)
    glyph[4:20, 6:10] = 255
    glyph[20:24, 6:22] = 200
    return glyph


def test_orientation_fix_turns_a_stored_glyph_upright(tmp_path):
    upright = _upright_l()
    stored = upright.T  # the NIST files hold each glyph with rows and columns swapped
    images = np.stack([stored, np.zeros_like(stored)])
    raw = RawSplit("digits", images, np.array([1, 0], np.uint8), images.copy(), np.array([1, 0], np.uint8))
    write_gzip_zip(tmp_path / "gzip.zip", raw)
    cache = prepare("digits", str(tmp_path / "gzip.zip"), tmp_path / "cache", progress=False)
    glyph = load_split(cache, "train")[0][0, 0].numpy()
    assert np.array_equal(glyph, upright)
    # Read as a picture: ink down the left side and along the bottom, none top-right.
    assert (glyph[4:20, 6:10] == 255).all() and (glyph[20:24, 6:22] == 200).all()
    assert glyph[:18, 12:].sum() == 0
