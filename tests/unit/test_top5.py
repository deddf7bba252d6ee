"""The evaluation metrics (emnist_dist.metrics): top-1, top-5, balanced and case-insensitive accuracy, F1, loss,
against hand counts and scikit-learn."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from emnist_dist.metrics import EvalMetrics, balanced_accuracy, compute_metrics


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


def test_every_metric_against_a_hand_count_and_scikit_learn():
    names = ["0", "C", "O", "c", "o"]  # a ByClass-like set: C/c and O/o differ only by case
    targets = torch.tensor([0, 1, 2, 3, 4, 1, 3, 2])
    preds = torch.tensor([2, 3, 2, 1, 4, 1, 0, 4])
    logits = torch.nn.functional.one_hot(preds, 5).float()
    metrics = EvalMetrics(names)
    metrics.update(logits[:5], targets[:5], loss=torch.tensor(2.0))  # two batches: 5 samples at loss 2, 3 at loss 6
    metrics.update(logits[5:], targets[5:], loss=torch.tensor(6.0))
    values = metrics.compute()
    # By hand: right at samples 2, 4, 5; ignoring case also at 1 (C read as c), 3 (c as C) and 7 (O as o).
    assert values["acc"] == pytest.approx(3 / 8) and values["case_insensitive_acc"] == pytest.approx(6 / 8)
    # Recall per class: 0: 0/1, C: 1/2, O: 1/2, c: 0/2, o: 1/1.
    assert values["balanced_acc"] == pytest.approx((0 + 1 / 2 + 1 / 2 + 0 + 1) / 5)
    assert values["balanced_acc"] == pytest.approx(balanced_accuracy_score(targets, preds))
    assert values["macro_f1"] == pytest.approx(f1_score(targets, preds, average="macro"))
    assert values["weighted_f1"] == pytest.approx(f1_score(targets, preds, average="weighted"))
    assert values["loss"] == pytest.approx((5 * 2 + 3 * 6) / 8) and values["num_samples"] == 8
    assert "case_insensitive_acc" not in compute_metrics(logits, targets, ["0", "1", "2", "3", "4"])


def test_balanced_accuracy_leaves_out_classes_never_seen_and_weighted_f1_weights_by_support():
    names = ["a", "b", "c", "d"]
    targets = torch.tensor([0, 0, 0, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 3, 2])  # d is predicted once but never the target
    values = compute_metrics(torch.nn.functional.one_hot(preds, 4).float(), targets, names)
    # By hand: recall a 2/3, b 1/1, c 1/2 (d has no support); F1 a 4/5, b 2/3, c 2/3, d 0 with supports 3, 1, 2, 0.
    assert values["balanced_acc"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    assert values["macro_f1"] == pytest.approx((4 / 5 + 2 / 3 + 2 / 3 + 0) / 4)
    assert values["weighted_f1"] == pytest.approx((3 * 4 / 5 + 2 / 3 + 2 * 2 / 3) / 6)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        assert values["balanced_acc"] == pytest.approx(balanced_accuracy_score(targets, preds))
    assert values["weighted_f1"] == pytest.approx(f1_score(targets, preds, average="weighted"))
    assert balanced_accuracy(torch.zeros(4, 4, dtype=torch.int64)) == 0.0  # no sample at all: 0, not NaN
