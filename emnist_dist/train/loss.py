"""Class weights and the class-weighted KL-divergence loss against soft targets."""

from __future__ import annotations

from typing import Optional, get_args

import torch
import torch.nn.functional as F

from ..config import ClassWeighting
from ..errors import UserError

SCHEMES = get_args(ClassWeighting)


def class_weights(counts: torch.Tensor, scheme: str, *, beta: float = 0.9999) -> torch.Tensor:
    """Per-class loss weights, float32 ``(C,)``, from the training class counts ``n_c``.

    Schemes (``N`` samples, ``C`` classes):

    - ``none``: all ones.
    - ``inverse``: ``N / (C * n_c)`` (scikit-learn's "balanced"): a class of average size
      gets 1 and the weight averaged over training SAMPLES is exactly 1, so the loss
      keeps its usual scale.
    - ``minmax``: inverse frequency ``1 / n_c`` min-max scaled to ``[1, 2]``: the most
      frequent class gets 1, the rarest 2 (the reference recipe; all ones if the
      counts are equal).
    - ``effective_number``: ``(1 - beta) / (1 - beta ** n_c)`` (Cui et al., 2019, "the
      effective number of samples"), normalised to mean 1 over CLASSES.

    A class with no training samples can still receive target mass (label smoothing
    spreads ``s/C`` onto every class), so it needs a weight: it gets the weight of the
    rarest present class, i.e. its count is taken as the smallest non-zero count.

    Raises:
        UserError: unknown scheme, ``beta`` outside (0, 1), or no samples at all.
    """
    if scheme not in SCHEMES:
        raise UserError(f"train.class_weighting={scheme!r}: expected one of {', '.join(SCHEMES)}")
    counts = torch.as_tensor(counts, dtype=torch.float64)
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() == 0:
        raise UserError(f"class counts {counts.tolist()}: expected non-negative counts with at least one sample")
    num_classes, total = len(counts), counts.sum()
    n = torch.where(counts > 0, counts, counts[counts > 0].min())
    if scheme == "none":
        weights = torch.ones_like(n)
    elif scheme == "inverse":
        weights = total / (num_classes * n)
    elif scheme == "minmax":
        inverse = 1.0 / n
        spread = inverse.max() - inverse.min()
        weights = 1.0 + (inverse - inverse.min()) / spread if spread > 0 else torch.ones_like(n)
    else:
        if not 0.0 < beta < 1.0:
            raise UserError(f"train.effective_number_beta={beta}: expected a value in (0, 1)")
        weights = (1.0 - beta) / (1.0 - beta**n)
        weights = weights / weights.mean()
    return weights.float()


class WeightedKLDivLoss(torch.nn.Module):
    """Class-weighted KL divergence between soft targets and the model's softmax.

    For logits ``z`` (B, C), targets ``t`` (B, C) with rows summing to 1, and class
    weights ``w`` (C,)::

        loss = 1/B * sum_b sum_c  w_c * t_bc * (log t_bc - log softmax(z_b)_c)

    with ``0 * log 0 = 0`` (``torch.xlogy``), computed in float32 whatever the logits'
    dtype. ``nn.KLDivLoss`` has no ``weight`` argument, hence the explicit sum.

    How a weight applies to a soft target: the weight multiplies each class's share
    of the target mass. For a one-hot target on class y this is ``w_y * CE`` (the
    usual weighted cross-entropy, per-sample, averaged over the batch without
    renormalising by the weights). For a MixUp/CutMix target
    ``lam * onehot(a) + (1 - lam) * onehot(b)`` it is, up to the constant target-entropy
    term, ``lam * w_a * CE_a + (1 - lam) * w_b * CE_b``: each of the two source images
    counts with its own class weight, in proportion to its share of the mix, which is
    exactly the mix of the two weighted hard-label losses (the loss is linear in the
    target). Label smoothing's ``s/C`` mass on every class is weighted the same way.

    With uniform weights this is the soft-target cross-entropy minus the target's
    entropy, so its gradients equal those of the cross-entropy. With non-uniform
    weights it is no longer a divergence (it can be negative and is minimised at
    ``p_c ~ w_c t_c``, which is the intended push towards heavily weighted classes);
    only its gradients matter.
    """

    def __init__(self, weights: Optional[torch.Tensor] = None) -> None:
        super().__init__()
        self.register_buffer("weights", None if weights is None else torch.as_tensor(weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=-1)
        targets = targets.float()
        pointwise = torch.xlogy(targets, targets) - targets * log_probs
        if self.weights is not None:
            pointwise = pointwise * self.weights
        return pointwise.sum(dim=-1).mean()
