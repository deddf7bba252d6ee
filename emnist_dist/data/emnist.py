"""``load_emnist``: everything a training run needs from the data layer, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import UserError
from .cache import prepare
from .dataset_io import dataset_class_names, load_split, read_meta
from .exclusion import read_exclude
from .stats import class_counts, image_stats, stratified_folds, stratified_split, stratified_subset

if TYPE_CHECKING:
    from ..config import DataConfig


@dataclass
class EmnistData:
    """A prepared split in memory: uint8 ``(N, 1, 28, 28)`` images and int64 labels per part.

    ``val_*`` is the stratified carve-out of the training split; ``heldout_*`` the K-fold part
    ``data.fold`` (empty without one), neither trained nor validated on; ``train_class_counts``
    counts what is left for training (after exclusion, hold-out, carve-out and any ``subset``);
    ``*_index`` are the rows of the split's training part (as the source stores it) each sample
    comes from; ``train_rows`` is the size of that training part and ``excluded`` counts the rows
    ``data.exclude`` removed; ``mean``/``std`` are the training split's pixel statistics after
    resizing to ``image_size``.
    """

    split: str
    source: str
    is_synthetic: bool
    cache_path: Path
    class_names: list[str]
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    heldout_images: torch.Tensor
    heldout_labels: torch.Tensor
    train_index: torch.Tensor
    val_index: torch.Tensor
    heldout_index: torch.Tensor
    train_rows: int
    excluded: int
    test_images: torch.Tensor
    test_labels: torch.Tensor
    train_class_counts: torch.Tensor
    mean: float
    std: float
    description: str


def prepare_data(cfg: "DataConfig", progress: bool = True) -> Path:
    """:func:`prepare` with a run's data configuration: the cache folder of ``cfg.split`` from ``cfg.source``."""
    return prepare(
        cfg.split,
        cfg.source,
        cfg.cache_dir,
        synthetic_train_per_class=cfg.synthetic_train_per_class,
        synthetic_test_per_class=cfg.synthetic_test_per_class,
        progress=progress,
        mirrors=cfg.mirrors,
    )


def load_emnist(cfg: "DataConfig", seed: int, progress: bool = True) -> EmnistData:
    """Prepare (or reuse) ``cfg.split`` from ``cfg.source`` and load it.

    Args:
        cfg: the run's data configuration.
        seed: draws the K-fold partition (``cfg.fold``), the validation carve-out
            (``cfg.val_fraction``) and the ``cfg.subset``, in that order, after ``cfg.exclude``.
            The synthetic source's glyphs do not depend on it (they use ``prepare``'s default
            seed), so runs with different seeds see the same data.
        progress: progress output on stderr while preparing.
    """
    if cfg.subset is not None and cfg.subset < 1:
        raise UserError(f"data.subset={cfg.subset}: expected a positive number of training samples (or null)")
    path = prepare_data(cfg, progress)
    meta = read_meta(path)
    names = dataset_class_names(path)
    images, labels = load_split(path, "train")
    test_images, test_labels = load_split(path, "test")
    kept = torch.arange(len(labels))
    if cfg.exclude is not None:
        kept = kept[~torch.isin(kept, read_exclude(cfg.exclude, len(labels)))]
    excluded = len(labels) - len(kept)
    heldout_idx = kept[:0]
    if cfg.fold is not None:
        part = stratified_folds(labels[kept], cfg.folds, seed)
        heldout_idx, kept = kept[part == cfg.fold], kept[part != cfg.fold]
    train_idx, val_idx = (kept[i] for i in stratified_split(labels[kept], cfg.val_fraction, seed))
    if cfg.subset is not None:
        train_idx = train_idx[stratified_subset(labels[train_idx], cfg.subset, seed)]
    train_labels = labels[train_idx]
    mean, std = image_stats(path, cfg.image_size)
    return EmnistData(
        split=cfg.split,
        source=cfg.source,
        is_synthetic=meta["synthetic"],
        cache_path=path,
        class_names=names,
        train_images=images[train_idx],
        train_labels=train_labels,
        val_images=images[val_idx],
        val_labels=labels[val_idx],
        heldout_images=images[heldout_idx],
        heldout_labels=labels[heldout_idx],
        train_index=train_idx,
        val_index=val_idx,
        heldout_index=heldout_idx,
        train_rows=len(labels),
        excluded=excluded,
        test_images=test_images,
        test_labels=test_labels,
        train_class_counts=class_counts(train_labels, len(names)),
        mean=mean,
        std=std,
        description=meta["description"],
    )
