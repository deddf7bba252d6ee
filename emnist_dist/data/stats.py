"""Class counts, the stratified validation carve-out, and normalisation statistics."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import torch
from filelock import FileLock

from ..errors import UserError, one_line
from ..files import write_bytes_atomic, write_text_atomic
from .cache import lock_path
from .dataset_io import META_FILE, STATS_FILE, load_split, read_meta
from .idx import IMAGE_SIDE
from .resize import resize_to_float

logger = logging.getLogger(__name__)  # plain logging, as in cache.py

_STATS_BATCH = 8192


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Samples per class, int64 ``(num_classes,)``."""
    counts = torch.bincount(labels.to(torch.int64), minlength=num_classes)
    if counts.numel() != num_classes:
        raise ValueError(f"labels reach {counts.numel() - 1}, beyond num_classes={num_classes}")
    return counts


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into (train, val), keeping every class's share.

    ``round(N * val_fraction)`` samples go to validation, spread over the classes in proportion
    to their counts (largest-remainder rounding, so the total is exact); which samples of a class
    go is drawn from ``seed``. Both index tensors are sorted int64; ``val_fraction=0`` gives an
    empty validation part.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction}: expected a fraction in [0, 1)")
    taken = _stratified_mask(labels, round(labels.numel() * val_fraction), seed)
    return torch.nonzero(~taken).flatten(), torch.nonzero(taken).flatten()


def stratified_subset(labels: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Sorted int64 indices of ``size`` samples (all if fewer) drawn per class like :func:`stratified_split`."""
    return torch.nonzero(_stratified_mask(labels, min(size, labels.numel()), seed)).flatten()


def _stratified_mask(labels: torch.Tensor, n_take: int, seed: int) -> torch.Tensor:
    """Boolean mask selecting ``n_take`` samples, class quotas by largest remainder, random within class."""
    labels = labels.to(torch.int64)
    n = labels.numel()
    counts = torch.bincount(labels) if n else torch.zeros(0, dtype=torch.int64)
    # Integer arithmetic keeps the quotas exact: floor(count * n_take / n) plus one for the
    # classes with the largest remainders until the total is n_take.
    scaled = counts * n_take
    quotas = scaled // max(n, 1)
    short = n_take - int(quotas.sum())
    quotas[torch.argsort(scaled % max(n, 1), descending=True, stable=True)[:short]] += 1
    order = _class_grouped_order(labels, seed)
    ordered_labels = labels[order]
    class_start = torch.cumsum(counts, 0) - counts
    rank_in_class = torch.arange(n) - class_start[ordered_labels]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[rank_in_class < quotas[ordered_labels]]] = True
    return mask


def stratified_folds(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """The K-fold part (0..folds-1) of every sample, int64 ``(N,)``, stratified by class.

    The samples are shuffled with ``seed``, grouped by class, and dealt out to the parts in turn,
    so every class is spread over the parts as evenly as possible (counts differ by at most one)
    and so are the parts' sizes. Written here rather than taken from scikit-learn's
    ``StratifiedKFold``, whose assignment has changed between releases: a resumed audit must
    hold out exactly the glyphs it held out before.
    """
    if folds < 2:
        raise ValueError(f"folds={folds}: expected at least 2")
    order = _class_grouped_order(labels.to(torch.int64), seed)
    part = torch.empty(labels.numel(), dtype=torch.int64)
    part[order] = torch.arange(labels.numel()) % folds
    return part


def _class_grouped_order(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Sample indices shuffled with ``seed``, then grouped by class (the stable sort keeps the shuffle within a class)."""
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))
    return perm[torch.sort(labels[perm], stable=True).indices]


def image_stats(cache_path: str | Path, image_size: int) -> tuple[float, float]:
    """Mean and std of the training pixels after ``resize_to_float(images, image_size)``.

    Over the whole training part of the prepared split, exact up to the float32 rounding the
    resized pixels themselves have (sums in float64), and cached in ``image_stats.json``
    inside the dataset folder, keyed by ``image_size``; the file's size and SHA-256 are recorded
    in ``emnist_dist.json`` (under ``stats``), both written under the entry's lock. A stats file
    that does not match that record, or holds values no image set can have (not
    ``0 <= mean <= 1``, ``0 < std <= 0.5``), is ignored with a warning line and the numbers are
    recomputed. A cache that cannot be written (a shared, read-only dataset) gets them computed
    in memory each time.

    Resizing every image to 112x112 takes minutes on a 2-core CPU for ByClass. Instead:
    bilinear resizing is linear and separable, ``resize(x) = A x A^T`` (:func:`resize_matrix`),
    so per image ``sum(resize(x)) = w^T x w`` with ``w = A^T 1`` and
    ``sum(resize(x)^2) = trace(G x G x^T)`` with ``G = A^T A``: the same numbers from 28x28
    matrix products, about 25x faster (measured).
    """
    cache_path = Path(cache_path)
    key = str(image_size)
    cached = _read_stats(cache_path, warn=True)
    if key in cached:
        return cached[key]["mean"], cached[key]["std"]
    images, _ = load_split(cache_path, "train")
    resize = resize_matrix(image_size)
    weights, gram = resize.sum(0), (resize.T @ resize).float()
    pixel_sums = torch.zeros(IMAGE_SIDE, IMAGE_SIDE, dtype=torch.int64)
    total_sq = torch.zeros((), dtype=torch.float64)
    for batch in images[:, 0].split(_STATS_BATCH):
        pixel_sums += batch.sum(0, dtype=torch.int64)
        x = batch.float() / 255.0  # float32 like resize_to_float's output; sums in float64
        total_sq += (gram @ x @ gram * x).sum(dtype=torch.float64)
    total = weights @ (pixel_sums.double() / 255.0) @ weights
    count = images.shape[0] * image_size**2
    mean = float(total) / count
    std = math.sqrt(max(float(total_sq) / count - mean**2, 0.0))
    _store_stats(cache_path, key, mean, std)
    return mean, std


def _store_stats(cache_path: Path, key: str, mean: float, std: float) -> None:
    """Add ``key``'s numbers to the stats file and record its checksum in the metadata, under the entry's lock."""
    try:
        with FileLock(lock_path(cache_path)):
            stored = _read_stats(cache_path, warn=False)  # what other processes added meanwhile
            stored[key] = {"mean": mean, "std": std}
            data = (json.dumps(stored, indent=2, sort_keys=True) + "\n").encode()
            write_bytes_atomic(cache_path / STATS_FILE, data)
            meta = {**read_meta(cache_path), "stats": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
            write_text_atomic(cache_path / META_FILE, json.dumps(meta, indent=2) + "\n")
    except (OSError, UserError):
        pass  # a read-only cache: the numbers are correct, only not kept for next time


def _read_stats(cache_path: Path, warn: bool) -> dict:
    """``{size: {"mean", "std"}}`` from the stats file when it matches its record in the metadata, else ``{}``."""
    path = cache_path / STATS_FILE
    if not path.is_file():
        return {}
    problem, stored = _stats_problem(cache_path, path)
    if problem is None:
        return stored
    if warn:
        logger.warning(f"{path} {problem}: ignoring it and computing the image statistics again")
    return {}


def _stats_problem(cache_path: Path, path: Path) -> tuple[str | None, dict]:
    """What is wrong with the stats file (one phrase) or None, and its entries."""
    try:
        data = path.read_bytes()
        record = read_meta(cache_path).get("stats")
    except (OSError, UserError) as err:
        return f"is unreadable ({one_line(err)})", {}
    if not isinstance(record, dict) or record.get("sha256") != hashlib.sha256(data).hexdigest():
        return f"does not match its SHA-256 in {META_FILE}", {}
    try:
        stored = json.loads(data)
    except ValueError:
        return "is not JSON", {}
    if not isinstance(stored, dict):
        return "holds no table of image sizes", {}
    for key, value in stored.items():
        numbers = value if isinstance(value, dict) else {}
        mean, std = numbers.get("mean"), numbers.get("std")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (mean, std)):
            return f"holds {value!r} for image size {key}: expected numbers mean and std", {}
        if not (0.0 <= mean <= 1.0 and 0.0 < std <= 0.5):
            return (f"holds mean {mean}, std {std} for image size {key}: expected 0 <= mean <= 1 and "
                    "0 < std <= 0.5 (pixels in [0, 1])"), {}
    return None, stored


def resize_matrix(image_size: int) -> torch.Tensor:
    """``A`` (image_size x 28, float64) with ``resize_to_float(x) == A @ (x / 255) @ A.T``.

    Read off ``resize_to_float`` itself: an image whose row ``r`` is all white resizes to one
    whose every column is ``A[:, r]`` (each output pixel's weights sum to one).
    """
    bars = torch.zeros(IMAGE_SIDE, 1, IMAGE_SIDE, IMAGE_SIDE, dtype=torch.uint8)
    rows = torch.arange(IMAGE_SIDE)
    bars[rows, 0, rows, :] = 255
    return resize_to_float(bars, image_size)[:, 0, :, 0].T.double()
