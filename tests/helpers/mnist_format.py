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


def write_sklearn_digits(folder: Path, test_fraction: float = 0.25, seed: int = 0) -> Path:
    """scikit-learn's ``load_digits`` (1,797 real handwritten digits, 8x8, 17 grey levels) as an MNIST-format folder.

    Each digit is stretched from 0..16 to 0..255, enlarged to 20x20 (bilinear, Pillow) and centred in 28x28
    (MNIST's 20-pixel box; the 8x8 scans fill their frame); a stratified, seeded ``test_fraction`` is the t10k part.
    """
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, scan in enumerate(digits.images):
        small = Image.fromarray(np.round(scan * 255 / 16).astype(np.uint8))
        images[i, 4:24, 4:24] = np.asarray(small.resize((20, 20), Image.Resampling.BILINEAR))
    labels = digits.target.astype(np.uint8)
    train_x, test_x, train_y, test_y = train_test_split(images, labels, test_size=test_fraction, stratify=labels,
                                                        random_state=seed)
    return write_mnist_format(folder, (train_x, train_y), (test_x, test_y))
