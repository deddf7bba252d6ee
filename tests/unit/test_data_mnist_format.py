"""MNIST-format folders (MNIST, Fashion-MNIST, KMNIST) as a source of the 10-class ``mnist`` split."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.conftest import missing_system_dependency
from tests.helpers.mnist_format import FASHION_CLASSES, random_mnist_format, write_mnist_format
from torchvision.datasets import FashionMNIST

from emnist_dist.data import load_split, prepare
from emnist_dist.data.dataset_io import dataset_class_names, read_meta

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package


def test_debian_fashion_mnist_reads_as_torchvision_reads_it(tmp_path):
    if not DEBIAN_FASHION.is_dir():
        missing_system_dependency("needs Debian's Fashion-MNIST files (apt-get install dataset-fashion-mnist)")
    # As the README tells a user to name the classes of a read-only folder: links to its files + classes.txt.
    named = tmp_path / "fashion"
    named.mkdir()
    for file in DEBIAN_FASHION.glob("*-ubyte.gz"):
        (named / file.name).symlink_to(file)
    (named / "classes.txt").write_text("\n".join(FashionMNIST.classes) + "\n", encoding="utf-8")
    # torchvision reads the same files, decompressed, from its own layout (root/FashionMNIST/raw/).
    raw = tmp_path / "tv" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for file in DEBIAN_FASHION.glob("*-ubyte.gz"):
        with gzip.open(file) as src, open(raw / file.name.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)

    cache = prepare("mnist", str(named), tmp_path / "cache", progress=False)
    assert dataset_class_names(cache) == FashionMNIST.classes == FASHION_CLASSES
    assert read_meta(cache)["description"].startswith("MNIST-format mnist")
    for part in ("train", "test"):
        images, labels = load_split(cache, part)
        reference = FashionMNIST(str(tmp_path / "tv"), train=part == "train")
        assert len(labels) == {"train": 60_000, "test": 10_000}[part]
        assert torch.equal(images[:, 0], reference.data)  # upright as stored: no transposition
        assert torch.equal(labels, reference.targets)
    # The folder without classes.txt is the same data named by digits.
    plain = prepare("mnist", str(DEBIAN_FASHION), tmp_path / "cache", progress=False)
    assert dataset_class_names(plain) == list("0123456789")
    assert torch.equal(load_split(plain, "test")[0], images)


def _upright_seven() -> np.ndarray:
    """A '7' drawn by hand: a bar along the top and a stroke down from its right end to the bottom left."""
    glyph = np.zeros((28, 28), dtype=np.uint8)
    glyph[4:8, 6:22] = 255
    for row in range(8, 24):
        col = 21 - (row - 8) // 2
        glyph[row, col - 2 : col + 1] = 200
    return glyph


@pytest.mark.parametrize("gzipped", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("under", [".", "raw"], ids=["flat", "raw/"])
def test_a_stored_glyph_stays_upright(tmp_path, gzipped, under):
    seven = _upright_seven()
    images = np.stack([seven, np.zeros_like(seven)])
    labels = np.array([7, 0], np.uint8)
    write_mnist_format(tmp_path / "src" / under, (images, labels), (images, labels), gzipped=gzipped)
    cache = prepare("mnist", str(tmp_path / "src"), tmp_path / "cache", progress=False)
    glyph = load_split(cache, "train")[0][0, 0].numpy()
    assert np.array_equal(glyph, seven)
    # Read as a picture: the bar lies along the top, the stroke ends bottom left, nothing at the top left below the bar.
    assert (glyph[4:8, 6:22] == 255).all() and glyph[23, 11:15].max() == 200 and glyph[10:24, :8].sum() == 0
    assert dataset_class_names(cache) == list("0123456789")


def test_classes_txt_names_the_classes_of_a_training_run(tmp_path):
    from emnist_dist.config import DataConfig
    from emnist_dist.data import load_emnist

    names = [f"class {c}" for c in "abcdefghij"]
    source = random_mnist_format(tmp_path / "src", 40, 20, seed=0, classes=names)
    data = load_emnist(DataConfig(split="mnist", source=str(source), cache_dir=str(tmp_path / "cache"),
                                  image_size=28), seed=0)
    assert data.class_names == names and not data.is_synthetic
    assert data.description == f"MNIST-format mnist ({source})"
