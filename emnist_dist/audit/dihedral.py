"""The eight symmetries of the square, and a model's scores of glyphs under each of them.

A pre-augmented glyph (stored rotated or mirrored) is recognised by the model only once it is
turned back: :func:`score_glyphs` gives, for every glyph, the class probabilities of the stored
glyph and the probability of its own label under each symmetry.
"""

from __future__ import annotations

import torch

from ..inference.artifact import ModelInfo
from ..inference.predictor import predict_logits

_OPERATIONS = {
    "identity": lambda x: x,
    "rot90": lambda x: torch.rot90(x, 1, dims=(-2, -1)),
    "rot180": lambda x: torch.rot90(x, 2, dims=(-2, -1)),
    "rot270": lambda x: torch.rot90(x, 3, dims=(-2, -1)),
    "flip_lr": lambda x: x.flip(-1),
    "flip_ud": lambda x: x.flip(-2),
    "transpose": lambda x: x.transpose(-2, -1),
    "antitranspose": lambda x: torch.rot90(x, 2, dims=(-2, -1)).transpose(-2, -1),
}
TRANSFORMS = tuple(_OPERATIONS)
"""Names as the audit reports them; ``rotK`` turns the upright glyph K degrees counter-clockwise,
``flip_lr`` mirrors left-right, ``flip_ud`` top-bottom, ``transpose`` swaps rows and columns (the
orientation EMNIST's files store), ``antitranspose`` mirrors about the other diagonal."""


def dihedral(images: torch.Tensor, name: str) -> torch.Tensor:
    """``images`` ``(..., H, W)`` (upright, row 0 at the top) under the symmetry ``name`` of :data:`TRANSFORMS`."""
    if name not in _OPERATIONS:
        raise ValueError(f"unknown transform {name!r}: expected one of {', '.join(TRANSFORMS)}")
    return _OPERATIONS[name](images)


@torch.inference_mode()
def score_glyphs(model: torch.nn.Module, info: ModelInfo, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device | str = "cpu", batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Score upright uint8 glyphs ``(N, 1, 28, 28)`` with an exported model (its own resize and normalisation).

    Returns:
        probs: float32 ``(N, C)``, the class probabilities of the glyphs as stored;
        label_probs: float32 ``(N, len(TRANSFORMS))``, the probability of each glyph's own label
        under each symmetry (column 0, the identity, repeats ``probs[i, labels[i]]``).
    """
    rows = torch.arange(len(labels))
    probs = predict_logits(model, info, images, device, batch_size).softmax(dim=1)
    label_probs = [probs[rows, labels]]
    for name in TRANSFORMS[1:]:
        turned = predict_logits(model, info, dihedral(images, name), device, batch_size).softmax(dim=1)
        label_probs.append(turned[rows, labels])
    return probs, torch.stack(label_probs, dim=1)
