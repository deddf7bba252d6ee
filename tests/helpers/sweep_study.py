"""A tiny sweep on real images, shared by the sweep tests: a random subset of Debian's Fashion-MNIST written
as an MNIST-format folder, a base config that trains timm's test_resnet on it in seconds, and readers of
what a study leaves (with the csv / json modules, independent of the package's writers)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from tests.helpers.defects import FASHION_MNIST, read_mnist_part
from tests.helpers.mnist_format import FASHION_CLASSES, write_mnist_format


def write_fashion_subset(folder: Path, train_size: int, test_size: int, seed: int = 0) -> Path:
    """``train_size`` random Fashion-MNIST training images and ``test_size`` test images, MNIST format."""
    rng = np.random.default_rng(seed)
    train_images, train_labels = read_mnist_part(FASHION_MNIST, "train")
    test_images, test_labels = read_mnist_part(FASHION_MNIST, "t10k")
    chosen = np.sort(rng.choice(len(train_labels), train_size, replace=False))
    tested = np.sort(rng.choice(len(test_labels), test_size, replace=False))
    return write_mnist_format(folder, (train_images[chosen], train_labels[chosen]),
                              (test_images[tested], test_labels[tested]), classes=FASHION_CLASSES)


def write_base_config(path: Path, source: Path, cache_dir: Path, epochs: int = 2) -> Path:
    """A base config for the trials: test_resnet at 28 px, Lion, CPU, no trackers, frequent sync points."""
    config = {
        "data": {"split": "mnist", "source": str(source), "cache_dir": str(cache_dir), "image_size": 28,
                 "val_fraction": 0.2},
        "model": {"name": "test_resnet", "pretrained": False, "channels_last": False, "drop_rate": 0.0},
        "train": {"epochs": epochs, "batch_size": 32, "eval_batch_size": 512, "lr": 1e-3, "warmup_epochs": 0.5,
                  "T_0": epochs, "class_weighting": "none"},
        "augment": {"mix_prob": 0.0},
        "log": {"trackers": [], "log_every": 2, "progress": False},
        "cpu": True,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def write_space(path: Path, parameters: dict, method: str = "random", **extra) -> Path:
    """A W&B sweep file maximising val/acc over ``parameters``."""
    path.write_text(yaml.safe_dump({"method": method, "metric": {"name": "val/acc", "goal": "maximize"},
                                    "parameters": parameters, **extra}))
    return path


def read_trials(study: Path) -> list[dict]:
    """trials.csv as the csv module reads it."""
    with open(study / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_trial_record(study: Path, number: int) -> dict:
    """trials/NNNN/trial.json."""
    return json.loads((study / "trials" / f"{number:04d}" / "trial.json").read_text())


def val_records(run: Path) -> list[dict]:
    """A run folder's metrics.jsonl records."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def fashion_sweep_data(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh folder and the 640 + 100 real Fashion-MNIST images the sweep tests train on (fails under CI=true,
    skips elsewhere, where Debian's dataset-fashion-mnist is missing)."""
    from tests.conftest import missing_system_dependency
    from tests.helpers.defects import FASHION_MNIST

    if not FASHION_MNIST.is_dir():
        missing_system_dependency("needs Debian's real Fashion-MNIST images (apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("sweep")
    return root, write_fashion_subset(root / "fashion", train_size=640, test_size=100)
