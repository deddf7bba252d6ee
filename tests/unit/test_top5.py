"""Top-5 accuracy beside top-1 (emnist_dist.metrics), against a hand count."""

from __future__ import annotations

import pytest
import torch

from emnist_dist.metrics import EvalMetrics, compute_metrics


def test_top5_counts_targets_among_the_five_largest_logits():
    names = [str(i) for i in range(8)]
    # Logits rank the classes 0 > 1 > 2 > ... > 7 for every sample.
    logits = torch.arange(8, 0, -1, dtype=torch.float32).repeat(6, 1)
    targets = torch.tensor([0, 3, 4, 5, 7, 2])
    # By hand: top-1 right only for target 0; top-5 (classes 0..4) right for 0, 3, 4 and 2.
    values = compute_metrics(logits, targets, names)
    assert values["acc"] == pytest.approx(1 / 6) and values["top5_acc"] == pytest.approx(4 / 6)


def test_top5_accumulates_over_batches_like_one_batch():
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(50, 47, generator=gen), torch.randint(47, (50,), generator=gen)
    names = [f"c{i}" for i in range(47)]
    metrics = EvalMetrics(names)
    for start in range(0, 50, 7):
        metrics.update(logits[start : start + 7], targets[start : start + 7])
    expected = float((logits.topk(5, dim=1).indices == targets[:, None]).any(dim=1).float().mean())
    assert metrics.compute()["top5_acc"] == pytest.approx(expected)
