"""Batched image transforms that run on the device where the data lives."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_to_float(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 ``(N, 1, 28, 28)`` -> float32 ``(N, 1, size, size)`` in [0, 1], bilinear.

    The single definition of "resized" used both for the normalisation statistics and
    for the model input, so the mean/std always describe what the network sees.
    """
    x = images.float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x
