"""Class weights by hand; the weighted KL loss against a hand computation and PyTorch's losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from emnist_dist.errors import UserError
from emnist_dist.train.loss import WeightedKLDivLoss, class_weights


def test_class_weights_by_hand():
    counts = torch.tensor([10, 30, 60])  # N = 100, C = 3
    torch.testing.assert_close(class_weights(counts, "none"), torch.ones(3))
    inverse = class_weights(counts, "inverse")
    torch.testing.assert_close(inverse, torch.tensor([100 / 30, 100 / 90, 100 / 180]))
    assert float((inverse * counts).sum() / counts.sum()) == pytest.approx(1.0)  # mean 1 over samples
    # 1/n = [0.1, 1/30, 1/60] scaled to [1, 2]: (1/30 - 1/60) / (0.1 - 1/60) = 0.2
    torch.testing.assert_close(class_weights(counts, "minmax"), torch.tensor([2.0, 1.2, 1.0]))
    beta = 0.9
    raw = torch.tensor([(1 - beta) / (1 - beta**n) for n in (10, 30, 60)], dtype=torch.float64)
    effective = class_weights(counts, "effective_number", beta=beta)
    torch.testing.assert_close(effective, (raw / raw.mean()).float())
    assert effective.dtype == torch.float32 and float(effective.mean()) == pytest.approx(1.0)


def test_equal_counts_give_ones():
    for scheme in ("inverse", "minmax", "effective_number"):
        torch.testing.assert_close(class_weights(torch.tensor([5, 5, 5, 5]), scheme), torch.ones(4))


def test_absent_class_gets_the_rarest_present_weight():
    for counts in (torch.tensor([10, 0, 30, 60]), torch.tensor([1, 0, 30, 60])):  # the rarest may have 1 sample
        for scheme in ("inverse", "minmax", "effective_number"):
            w = class_weights(counts, scheme, beta=0.9)
            assert torch.isfinite(w).all()
            assert w[1] == w[0] == w.max()


def test_bad_scheme_or_counts_are_user_errors():
    with pytest.raises(UserError) as err:
        class_weights(torch.tensor([1, 2]), "balanced")
    assert str(err.value) == ("train.class_weighting='balanced': expected one of none, inverse, minmax, "
                              "effective_number")
    for beta in (1.0, 0.0):  # the open interval (0, 1)
        with pytest.raises(UserError, match=f"train.effective_number_beta={beta}"):
            class_weights(torch.tensor([1, 2]), "effective_number", beta=beta)
    for counts in (torch.tensor([0, 0]), torch.tensor([-1, 5])):
        with pytest.raises(UserError, match="at least one sample"):
            class_weights(counts, "inverse")


def test_hand_computed_small_case():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.0]])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.1, 0.1, 0.8]])
    w = [1.0, 2.0, 0.5]
    expected = 0.0
    for z, t in zip(logits.tolist(), targets.tolist()):
        log_norm = math.log(sum(math.exp(v) for v in z))
        expected += sum(wc * tc * (math.log(tc) - (zc - log_norm)) for wc, tc, zc in zip(w, t, z) if tc > 0)
    loss = WeightedKLDivLoss(torch.tensor(w))(logits, targets)
    assert float(loss) == pytest.approx(expected / 2, rel=1e-6)


def soft_targets(b, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(b, c, generator=g) ** 4
    t[:, : c // 3] = 0  # exact zeros, as one-hot and CutMix targets have
    return t / t.sum(1, keepdim=True)


def test_uniform_weights_equal_soft_cross_entropy_minus_target_entropy():
    logits = torch.randn(16, 10)
    t = soft_targets(16, 10)
    entropy = -torch.special.xlogy(t, t).sum(1).mean()
    expected = F.cross_entropy(logits, t) - entropy
    torch.testing.assert_close(WeightedKLDivLoss()(logits, t), expected)
    torch.testing.assert_close(WeightedKLDivLoss(torch.ones(10))(logits, t), expected)


def test_weighted_equals_kldivloss_weighted_elementwise():
    logits, t, w = torch.randn(16, 10), soft_targets(16, 10, seed=1), torch.rand(10) + 0.5
    pointwise = torch.nn.KLDivLoss(reduction="none")(F.log_softmax(logits, 1), t)
    torch.testing.assert_close(WeightedKLDivLoss(w)(logits, t), (pointwise * w).sum(1).mean())


def test_hard_targets_reduce_to_per_sample_weighted_cross_entropy():
    logits, labels, w = torch.randn(16, 10), torch.randint(0, 10, (16,)), torch.rand(10) + 0.5
    expected = F.cross_entropy(logits, labels, weight=w, reduction="none").mean()
    torch.testing.assert_close(WeightedKLDivLoss(w)(logits, F.one_hot(labels, 10).float()), expected)


def test_gradients_finite_with_zero_targets():
    logits = (torch.randn(8, 10) * 30).requires_grad_()
    WeightedKLDivLoss(torch.rand(10) + 0.5)(logits, F.one_hot(torch.arange(8), 10).float()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_fp32_math_for_bf16_logits():
    logits, t, w = torch.randn(16, 10).bfloat16(), soft_targets(16, 10, seed=2), torch.rand(10) + 0.5
    loss = WeightedKLDivLoss(w)(logits, t.bfloat16())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, WeightedKLDivLoss(w)(logits.float(), t.bfloat16().float()))
