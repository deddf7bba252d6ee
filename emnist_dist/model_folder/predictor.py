"""Predictions of an exported model on glyphs: logits (optionally with test-time shifts), top-k labels, and
the image files a list of files and folders holds (what ``python -m emnist_dist.predict`` and ``read`` use).

A user's image becomes a 28x28 glyph framed like the model's training glyphs with
:func:`emnist_dist.model_folder.preprocess.to_model_framing`; :func:`predict_logits` then applies the model's
own resize and normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.resize import to_model_input
from .artifact import ModelInfo

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pbm", ".pgm", ".ppm", ".pnm")
"""Files with these suffixes are taken from folders; files named explicitly are tried whatever their suffix."""
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
"""Test-time augmentation: one-pixel shifts of the 28x28 glyph (no flips: characters are not symmetric)."""


def choose_device(cpu: bool = False) -> torch.device:
    """The first CUDA device unless ``cpu`` or none is available."""
    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift ``(N, 1, H, W)`` images by whole pixels, filling with 0 (background)."""
    if dy == 0 and dx == 0:
        return images
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, info: ModelInfo, images: torch.Tensor | np.ndarray,
                   device: torch.device | str = "cpu", batch_size: int = 512, tta: bool = False) -> torch.Tensor:
    """Logits ``(N, C)`` (float32, on the CPU) of upright uint8 glyphs ``(N, 1, 28, 28)`` or ``(N, 28, 28)``.

    Applies the model's own resize and normalisation (from ``info``). With ``tta`` the
    logits are averaged over :data:`TTA_SHIFTS`.
    """
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    shifts = TTA_SHIFTS if tta else TTA_SHIFTS[:1]
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        logits = sum(model(to_model_input(shift(batch, dy, dx), info.image_size, info.mean, info.std)).float()
                     for dy, dx in shifts)
        out.append((logits / len(shifts)).cpu())
    return torch.cat(out) if out else torch.empty(0, info.num_classes)


def top_k(probs: torch.Tensor, class_names: list[str], k: int) -> list[list[dict]]:
    """Per row, the ``k`` most probable classes as ``{"label", "prob"}``, best first."""
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[{"label": class_names[i], "prob": round(float(p), 6)} for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(values.tolist(), indices.tolist())]


def collect_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders (recursively, by :data:`IMAGE_EXTENSIONS`) into image paths.

    Returns the paths in order and one error message per input that yields nothing.
    """
    paths, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return paths, errors
