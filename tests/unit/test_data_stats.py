"""Class counts, the stratified validation carve-out and subset, and the resized-pixel statistics."""

import hashlib
import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from tests.helpers.emnist_raw import random_split, write_gzip_zip

from emnist_dist.cli import log_to_console
from emnist_dist.data import class_counts, image_stats, prepare, stratified_folds, stratified_split, stratified_subset
from emnist_dist.data.stats import resize_matrix
from emnist_dist.data.resize import resize_to_float


def labels_with_counts(counts, seed=0):
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def per_class(labels, indices, num_classes):
    found = Counter(labels[indices].tolist())
    return [found.get(c, 0) for c in range(num_classes)]


def test_class_counts_against_counter():
    labels = torch.tensor([3, 0, 3, 3, 1, 0])
    assert class_counts(labels, 5).tolist() == [2, 1, 0, 3, 0]
    assert class_counts(labels, 5).dtype == torch.int64


def test_proportional_split_by_hand():
    labels = labels_with_counts([50, 30, 20])
    train, val = stratified_split(labels, 0.1, seed=0)
    assert per_class(labels, val, 3) == [5, 3, 2]
    assert per_class(labels, train, 3) == [45, 27, 18]


def test_largest_remainder_rounding_by_hand():
    # 10 samples, 30% -> 3 for validation; exact shares 2.1, 0.6, 0.3 -> floors 2, 0, 0 and the
    # one left over goes to the largest remainder (class 1).
    labels = labels_with_counts([7, 2, 1])
    _, val = stratified_split(labels, 0.3, seed=4)
    assert per_class(labels, val, 3) == [2, 1, 0]


def test_split_is_a_sorted_partition_and_deterministic():
    labels = labels_with_counts([40, 25, 13, 9], seed=1)
    train, val = stratified_split(labels, 0.2, seed=7)
    assert train.dtype == val.dtype == torch.int64
    assert torch.equal(train, train.sort().values) and torch.equal(val, val.sort().values)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(len(labels)))
    assert len(val) == round(len(labels) * 0.2)
    again_train, again_val = stratified_split(labels, 0.2, seed=7)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert not torch.equal(val, stratified_split(labels, 0.2, seed=8)[1])


def test_zero_fraction_gives_an_empty_validation_part():
    labels = labels_with_counts([3, 4])
    train, val = stratified_split(labels, 0.0, seed=0)
    assert torch.equal(train, torch.arange(7)) and val.numel() == 0 and val.dtype == torch.int64
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, seed=0)


def test_subset_is_exact_and_stratified():
    labels = labels_with_counts([60, 30, 10])
    subset = stratified_subset(labels, 20, seed=3)
    assert len(subset) == 20 and per_class(labels, subset, 3) == [12, 6, 2]
    assert torch.equal(stratified_subset(labels, 500, seed=3), torch.arange(100))


def test_folds_partition_every_class_evenly():
    labels = labels_with_counts([41, 17, 6, 1])
    part = stratified_folds(labels, 4, seed=5)
    assert part.dtype == torch.int64 and sorted(set(part.tolist())) == [0, 1, 2, 3]
    sizes = torch.bincount(part).tolist()
    assert sum(sizes) == 65 and max(sizes) - min(sizes) <= 1
    for c, count in enumerate([41, 17, 6, 1]):  # each class spread over the parts, counts differ by at most one
        held = torch.bincount(part[labels == c], minlength=4)
        assert int(held.sum()) == count and int(held.max() - held.min()) <= 1
    assert torch.equal(part, stratified_folds(labels, 4, seed=5))
    assert not torch.equal(part, stratified_folds(labels, 4, seed=6))
    with pytest.raises(ValueError):
        stratified_folds(labels, 1, seed=0)


def test_image_stats_exact_and_cached(tmp_path):
    raw = random_split("digits", 300, 10, seed=41)
    cache = prepare("digits", str(write_gzip_zip(tmp_path / "gzip.zip", raw)), tmp_path / "cache", progress=False)
    images = torch.from_numpy(raw.train_images.transpose(0, 2, 1).copy()).unsqueeze(1)
    for size in (28, 20, 112):
        # Independent reference: resize every image (in float64), population std.
        x = images.double() / 255.0
        if size != 28:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        mean, std = image_stats(cache, size)
        assert mean == pytest.approx(x.mean().item(), abs=1e-6)
        assert std == pytest.approx(x.std(unbiased=False).item(), abs=1e-6)
    stored = json.loads((cache / "image_stats.json").read_text())
    assert set(stored) == {"28", "20", "112"}
    # the stats file is covered by the metadata's checksum
    record = json.loads((cache / "emnist_dist.json").read_text())["stats"]
    assert record["sha256"] == hashlib.sha256((cache / "image_stats.json").read_bytes()).hexdigest()
    # a cached value is returned as stored, without reading the images again
    (cache / "train" / "data-00000-of-00001.arrow").unlink()
    assert image_stats(cache, 112) == (stored["112"]["mean"], stored["112"]["std"])


@pytest.fixture
def stats_cache(tmp_path):
    """A prepared split with its 28 px statistics computed and stored, and those statistics."""
    raw = random_split("digits", 100, 10, seed=43)
    cache = prepare("digits", str(write_gzip_zip(tmp_path / "gzip.zip", raw)), tmp_path / "cache", progress=False)
    return cache, image_stats(cache, 28)


def rewrite_stats(cache, stored: dict, record_checksum: bool) -> None:
    """Replace the stats file; with ``record_checksum`` also its SHA-256 in the metadata (a consistent edit)."""
    data = json.dumps(stored).encode()
    (cache / "image_stats.json").write_bytes(data)
    if record_checksum:
        meta = json.loads((cache / "emnist_dist.json").read_text())
        meta["stats"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (cache / "emnist_dist.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("mean, std", [(0.2, -0.1), (0.2, 0.0), (1.5, 0.3), (0.2, float("nan"))])
def test_impossible_stored_statistics_are_recomputed_saying_so(stats_cache, capsys, mean, std):
    cache, right = stats_cache
    rewrite_stats(cache, {"28": {"mean": mean, "std": std}}, record_checksum=True)
    log_to_console()  # a command's console: the data layer logs, the console shows its records on stderr
    assert image_stats(cache, 28) == right
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {cache / 'image_stats.json'} holds ") and "expected" in err[0]
    assert image_stats(cache, 28) == right and capsys.readouterr().err == ""  # stored again, correctly


def test_a_stats_file_that_does_not_match_its_checksum_is_recomputed(stats_cache, capsys):
    cache, right = stats_cache
    rewrite_stats(cache, {"28": {"mean": 0.123, "std": 0.3}}, record_checksum=False)  # plausible, but not ours
    log_to_console()
    assert image_stats(cache, 28) == right
    assert "does not match its SHA-256 in emnist_dist.json" in capsys.readouterr().err


@pytest.mark.parametrize("size", [20, 28, 112])
def test_resize_matrix_reproduces_resize_to_float(size):
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(size))
    resize = resize_matrix(size)
    assert torch.allclose(
        resize @ (images[:, 0].double() / 255) @ resize.T, resize_to_float(images, size)[:, 0].double(), atol=1e-6
    )
