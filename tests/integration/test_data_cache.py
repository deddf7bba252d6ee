"""The cache contract: DatasetDict layout and features, keys, reuse without conversion, atomicity."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, List, Value, load_from_disk
from tests.helpers.emnist_raw import random_split, write_gzip_zip

from emnist_dist.data import class_names, default_cache_dir, load_split, prepare
from emnist_dist.errors import UserError

SMALL = dict(synthetic_train_per_class=6, synthetic_test_per_class=2, progress=False)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its inode and modification time."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_layout_and_features_read_back_by_datasets(tmp_path):
    raw = random_split("bymerge", 94, 47, seed=31)
    cache = prepare("bymerge", str(write_gzip_zip(tmp_path / "gzip.zip", raw)), tmp_path / "cache", progress=False)
    saved = load_from_disk(str(cache))
    assert sorted(saved) == ["test", "train"]
    label = saved["train"].features["label"]
    assert isinstance(label, ClassLabel) and label.names == class_names("bymerge")
    image = saved["train"].features["image"]  # 28 x 28 uint8, fixed size
    assert (image.length, image.feature.length, image.feature.feature.dtype) == (28, 28, "uint8")
    expected = Features({"image": List(List(Value("uint8"), length=28), length=28),
                         "label": ClassLabel(names=class_names("bymerge"))})
    for part in ("train", "test"):
        assert saved[part].features == expected and saved[part].split == part
        # a lone Arrow file carries the features too (its schema metadata), as datasets writes them
        assert Dataset.from_file(str(cache / part / "data-00000-of-00001.arrow")).features == expected
    # datasets' own reader (which hands back int64) agrees with load_split, upright
    via_datasets = saved["train"].with_format("numpy")[:]
    images, labels = load_split(cache, "train")
    assert via_datasets["image"].shape == (94, 28, 28)
    assert np.array_equal(via_datasets["image"], images[:, 0].numpy())
    assert np.array_equal(via_datasets["image"], raw.train_images.transpose(0, 2, 1))
    assert np.array_equal(via_datasets["label"], labels.numpy())
    assert images.is_contiguous() and images.dtype == torch.uint8 and labels.dtype == torch.int64


def test_second_prepare_converts_nothing(tmp_path):
    first = prepare("digits", "synthetic", tmp_path, **SMALL)
    before = snapshot(tmp_path)
    again = prepare("digits", "synthetic", tmp_path, **SMALL)
    assert again == first and snapshot(tmp_path) == before  # same files, untouched


def test_keys_separate_sources_splits_and_synthetic_sizes(tmp_path):
    base = prepare("digits", "synthetic", tmp_path, **SMALL)
    assert prepare("mnist", "synthetic", tmp_path, **SMALL) != base
    assert prepare("digits", "synthetic", tmp_path, **{**SMALL, "synthetic_train_per_class": 7}) != base
    assert prepare("digits", "synthetic", tmp_path, seed=1, **SMALL) != base
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 4  # besides hidden lock files


def test_a_replaced_local_file_is_converted_again(tmp_path):
    archive = write_gzip_zip(tmp_path / "gzip.zip", random_split("digits", 20, 10, seed=1))
    first = prepare("digits", str(archive), tmp_path / "cache", progress=False)
    newer = random_split("digits", 30, 10, seed=2)
    write_gzip_zip(archive, newer)
    os.utime(archive, ns=(archive.stat().st_atime_ns, archive.stat().st_mtime_ns + 10**9))
    second = prepare("digits", str(archive), tmp_path / "cache", progress=False)
    assert second != first
    assert np.array_equal(load_split(second, "train")[0][:, 0].numpy(), newer.train_images.transpose(0, 2, 1))


def test_leftovers_of_an_interrupted_prepare_are_not_taken_for_a_dataset(tmp_path):
    target_name = prepare("digits", "synthetic", tmp_path / "probe", **SMALL).name
    root = tmp_path / "cache"
    (root / f".{target_name}.tmp-12345" / "train").mkdir(parents=True)  # killed mid-write
    (root / target_name / "train").mkdir(parents=True)  # looks like the target, but unfinished
    (root / target_name / "train" / "data-00000-of-00001.arrow").write_bytes(b"partial")
    cache = prepare("digits", "synthetic", root, **SMALL)
    assert cache == root / target_name
    assert load_split(cache, "train")[0].shape == (60, 1, 28, 28)
    assert not (root / f".{target_name}.tmp-12345").exists()  # the killed writer's folder is swept


def test_load_split_rejects_unknown_parts_and_non_caches(tmp_path):
    cache = prepare("digits", "synthetic", tmp_path, **SMALL)
    with pytest.raises(UserError, match="which='val': expected one of train, test"):
        load_split(cache, "val")
    with pytest.raises(UserError, match="not a prepared emnist_dist dataset"):
        load_split(tmp_path, "train")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("EMNIST_DIST_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("EMNIST_DIST_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "emnist_dist"
    monkeypatch.setenv("EMNIST_DIST_CACHE", str(tmp_path / "env"))
    prepare("digits", "synthetic", **SMALL)  # no cache_dir: the default is used
    assert (tmp_path / "env").is_dir() and not (tmp_path / ".cache").exists()
