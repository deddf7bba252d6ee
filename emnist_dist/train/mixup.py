"""MixUp / CutMix with label-smoothed soft targets, batch mode, on the device.

Same semantics as ``timm.data.Mixup(mode="batch", correct_lam=True)``: one lambda per
batch, each sample paired with its mirror in the batch (``x.flip(0)``), CutMix lambda
corrected to the pasted box's clipped area. The difference is where the randomness
comes from: timm draws from the global ``np.random``; here each instance owns a seeded
generator whose state is checkpointed, so a resumed run draws the same lambdas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label-smoothed one-hot float32 ``(B, C)``: ``1 - s + s/C`` on the label, ``s/C`` elsewhere (timm convention)."""
    off = smoothing / num_classes
    targets = torch.full((len(labels), num_classes), off, dtype=torch.float32, device=labels.device)
    return targets.scatter_(1, labels.long().unsqueeze(1), 1.0 - smoothing + off)


@dataclass(frozen=True)
class MixParams:
    """One batch's mixing: ``lam`` is the share kept from each sample (1.0 = unmixed)."""

    lam: float = 1.0
    box: Optional[tuple[int, int, int, int]] = None
    """CutMix box ``(y0, y1, x0, x1)`` pasted from the paired sample; None for MixUp."""


def cutmix_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[tuple[int, int, int, int], float]:
    """The CutMix box of area ``(1 - lam)`` of the image centred at ``(cy, cx)``, clipped to the image.

    Returns the box ``(y0, y1, x0, x1)`` and lambda corrected to the clipped area
    (the share of pixels that still come from the sample itself).
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, height)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, width)
    return (y0, y1, x0, x1), 1.0 - (y1 - y0) * (x1 - x0) / (height * width)


class MixUpCutMix:
    """Batch-mode MixUp / CutMix producing soft, label-smoothed targets.

    With probability ``prob`` a batch is mixed; then CutMix is chosen with probability
    ``switch_prob`` (when both alphas are > 0), and lambda ~ Beta(alpha, alpha) of the
    chosen method. Unmixed batches get the smoothed one-hot targets.

    Args:
        num_classes: classes of the split (timm defaults to 1000: here it is required).
        mixup_alpha, cutmix_alpha: Beta parameters; 0 switches that method off.
        prob: probability that a batch is mixed at all.
        switch_prob: probability of CutMix rather than MixUp when both are on.
        label_smoothing: smoothing of the one-hot targets before mixing.
        seed: seed of this instance's generator (give ranks different seeds for
            independent draws, the same seed for identical ones).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        mixup_alpha: float = 0.22,
        cutmix_alpha: float = 0.62,
        prob: float = 0.8,
        switch_prob: float = 0.5,
        label_smoothing: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.num_classes = num_classes
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.prob = prob
        self.switch_prob = switch_prob
        self.label_smoothing = label_smoothing
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start a fresh stream from ``seed`` (a resume on another number of processes)."""
        # numpy rather than torch.Generator: torch has no Beta sampler that takes a generator.
        self.rng = np.random.default_rng(seed)

    @property
    def enabled(self) -> bool:
        """Whether any batch can be mixed at all."""
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def sample(self, height: int, width: int) -> MixParams:
        """Draw one batch's mixing for images of ``height x width``."""
        if not self.enabled or self.rng.random() >= self.prob:
            return MixParams()
        use_cutmix = self.mixup_alpha <= 0 or (self.cutmix_alpha > 0 and self.rng.random() < self.switch_prob)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(self.rng.beta(alpha, alpha))
        if not use_cutmix:
            return MixParams(lam)
        cy, cx = int(self.rng.integers(height)), int(self.rng.integers(width))
        box, lam = cutmix_box(height, width, lam, cy, cx)
        return MixParams(lam, box)

    def apply(self, x: torch.Tensor, labels: torch.Tensor, params: MixParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix ``x`` ``(B, C, H, W)`` with ``x.flip(0)`` as ``params`` says; returns (x, soft targets ``(B, classes)``)."""
        if len(x) % 2:
            raise ValueError(f"MixUp/CutMix needs an even batch, got {len(x)}")
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        if params.lam == 1.0:
            return x, targets
        # one new tensor per call and the input left untouched (12.8 MB a batch at 112 px)
        if params.box is not None:
            y0, y1, x0, x1 = params.box
            x = x.clone()
            x[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1].flip(0)
        else:
            x = x.flip(0).lerp_(x, params.lam)  # lam * x + (1 - lam) * x.flip(0)
        return x, targets.flip(0).lerp_(targets, params.lam)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch with freshly drawn parameters; returns (mixed x, soft targets float32 ``(B, C)``)."""
        return self.apply(x, labels, self.sample(*x.shape[-2:]))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
