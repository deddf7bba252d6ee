"""Glyphs to model input: the one definition of "resized and normalised" used by the statistics,
training and inference, so the mean/std always describe what the network sees."""

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


def normalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(x - mean) / std`` in place on a float batch; returns it."""
    return x.sub_(mean).div_(std)


def to_model_input(images_uint8: torch.Tensor, image_size: int, mean: float, std: float) -> torch.Tensor:
    """uint8 ``(N, 1, 28, 28)`` -> normalised float32 ``(N, 1, image_size, image_size)``: what the model sees."""
    return normalize(resize_to_float(images_uint8, image_size), mean, std)
