"""Write MNIST-format folders (the classic MNIST / Fashion-MNIST / KMNIST file names), for tests.

Format: four IDX files (big-endian header, magic 2051 with n/rows/cols for images, 2049 with n for
labels, then the uint8 payload) named ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (optionally gzipped, ``.gz`` added).
Unlike EMNIST's files, the glyphs are stored upright. Independent of ``emnist_dist.data``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from tests.helpers.emnist_raw import idx_bytes

FILE_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
# Fashion-MNIST's classes in label order (Xiao et al. 2017, the dataset's README).
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def write_mnist_format(
    folder: Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    gzipped: bool = True,
    classes: list[str] | None = None,
) -> Path:
    """Write ``(images (N, 28, 28) upright, labels (N,))`` per part into ``folder``; optionally a classes.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, (images, labels) in (("train", train), ("test", test)):
        for kind, array in (("images", images), ("labels", labels)):
            data = idx_bytes(array)
            name = FILE_NAMES[(part, kind)]
            if gzipped:
                (folder / (name + ".gz")).write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
    if classes is not None:
        (folder / "classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    return folder


def random_mnist_format(folder: Path, n_train: int, n_test: int, seed: int, **kwargs) -> Path:
    """A folder of random glyphs with every one of the 10 labels present (``kwargs`` go to write_mnist_format)."""
    rng = np.random.default_rng(seed)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), (np.arange(n) % 10).astype(np.uint8)

    return write_mnist_format(folder, part(n_train), part(n_test), **kwargs)
