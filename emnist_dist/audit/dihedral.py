"""The eight symmetries of the square, the fold models' (class x symmetry) targets, and their scores.

The fold models of the audit are joint models: trained on every glyph as stored, target (class,
identity), plus the same glyph under a random other symmetry t, target (class, t)
(:func:`with_symmetry_targets`). Such a model tells the orientation of a glyph from what its own
class looks like in each orientation, so a glyph stored turned is recognised even when other turned
glyphs of its class were in the training data (a class-only model learns those as the class, and then
accepts the turned glyph as stored). :func:`score_joint` reads both qualities off one forward pass.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..data import EmnistData
from ..model_folder.artifact import ModelInfo
from ..model_folder.predictor import predict_logits

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


UNDO = (0, 3, 2, 1, 4, 5, 6, 7)
"""``UNDO[t]``: the index of the symmetry that turns ``TRANSFORMS[t]`` back (rot90 <-> rot270; the others are
their own inverse)."""


def joint_class_names(class_names: list[str]) -> list[str]:
    """The joint model's output names, class-major: ``name`` for (class, identity), ``name/rot90`` ... after it."""
    return [name if t == 0 else f"{name}/{TRANSFORMS[t]}" for name in class_names for t in range(len(TRANSFORMS))]


def with_symmetry_targets(data: EmnistData, seed: int) -> EmnistData:
    """A fold's data for the joint model: targets ``8 * class + t`` over :func:`joint_class_names`.

    Training: every glyph as stored (``t = 0``) and once more under a symmetry ``t`` drawn uniformly from
    the seven others (seeded), so half of what the model sees is upright and its class evidence stays
    strong. Validation and test glyphs as stored (``t = 0``): their accuracy is the class accuracy of a
    model that also got the orientation right. Pixel statistics do not change under these symmetries.
    """
    symmetries = len(TRANSFORMS)
    turns = torch.randint(1, symmetries, (len(data.train_labels),), generator=torch.Generator().manual_seed(seed))
    turned = data.train_images.clone()
    for t in range(1, symmetries):
        chosen = turns == t
        turned[chosen] = dihedral(data.train_images[chosen], TRANSFORMS[t])
    labels = torch.cat([data.train_labels * symmetries, data.train_labels * symmetries + turns])
    return replace(
        data,
        class_names=joint_class_names(data.class_names),
        train_images=torch.cat([data.train_images, turned]),
        train_labels=labels,
        train_index=torch.cat([data.train_index, data.train_index]),
        val_labels=data.val_labels * symmetries,
        test_labels=data.test_labels * symmetries,
        train_class_counts=torch.bincount(labels, minlength=symmetries * len(data.class_names)),
    )


@torch.inference_mode()
def score_joint(model: torch.nn.Module, info: ModelInfo, images: torch.Tensor, labels: torch.Tensor,
                device: torch.device | str = "cpu", batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Score upright uint8 glyphs ``(N, 1, 28, 28)`` as stored with a joint model (:func:`with_symmetry_targets`).

    Returns:
        probs: float32 ``(N, C)``, the class probabilities given that the glyph is upright (the joint
        model's identity column, renormalised);
        label_probs: float32 ``(N, len(TRANSFORMS))``, column ``s`` the joint probability of the glyph's own
        label and of being upright once turned by ``TRANSFORMS[s]`` (column 0: as stored).
    """
    symmetries = len(TRANSFORMS)
    joint = predict_logits(model, info, images, device, batch_size).softmax(dim=1)
    joint = joint.view(len(labels), -1, symmetries)
    upright = joint[:, :, 0]
    probs = upright / upright.sum(dim=1, keepdim=True).clamp_min(1e-30)
    own = joint[torch.arange(len(labels)), labels]  # (N, 8): P(label, stored = upright turned by t)
    return probs, own[:, list(UNDO)]
