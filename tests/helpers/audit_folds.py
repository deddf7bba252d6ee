"""The tests' tiny audit, and the check that its out-of-fold scores are what each fold's own model scores.

Two folds of timm's test_resnet at 28 px on 240 synthetic digit glyphs (24 per class), 2 epochs of batch 16:
seconds per fold, in this process or under ``accelerate launch``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from emnist_dist.audit.dihedral import score_joint
from emnist_dist.config import DataConfig
from emnist_dist.data import load_emnist
from emnist_dist.model_folder.artifact import load_model
from tests.helpers.train_runs import final

TINY_AUDIT = ["--data.split", "digits", "--data.source", "synthetic", "--data.synthetic_train_per_class", "24",
              "--data.synthetic_test_per_class", "3", "--data.image_size", "28", "--model.name", "test_resnet",
              "--train.epochs", "2", "--train.batch_size", "16", "--data.folds", "2", "--log.trackers", "[]",
              "--log.progress", "false", "--log.log_every", "1", "--cpu", "true"]
TINY_AUDIT_GLYPHS = 240


def assert_scores_are_the_fold_models(out: Path, cache: Path, world_size: int) -> None:
    """Every training glyph of a TINY_AUDIT run in ``out`` was scored once, by the fold model that never saw it:
    ``oof_probs.safetensors`` holds, row for row, what that fold's exported model scores in this process."""
    oof = load_file(out / "oof_probs.safetensors")
    assert torch.equal(oof["index"], torch.arange(TINY_AUDIT_GLYPHS))
    for k in range(2):  # the second fold trains after the first run ended (its process group, under a launch)
        assert final(out / f"fold_{k}")["world_size"] == world_size
        data = load_emnist(DataConfig(split="digits", cache_dir=str(cache), image_size=28,
                                      synthetic_train_per_class=24, synthetic_test_per_class=3, fold=k, folds=2),
                           seed=0, progress=False)
        model, info = load_model(out / f"fold_{k}" / "model")
        probs, label_probs = score_joint(model, info, data.heldout_images, data.heldout_labels)
        rows = data.heldout_index
        assert torch.allclose(oof["probs"][rows], probs, atol=1e-5)
        assert torch.allclose(oof["label_probs"][rows], label_probs, atol=1e-5)
