"""The eight symmetries against Pillow's own, the (class x symmetry) targets, and the joint scores against a
hand-run model."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from emnist_dist.audit.dihedral import TRANSFORMS, dihedral, joint_class_names, score_joint, with_symmetry_targets
from emnist_dist.data import EmnistData
from emnist_dist.data.resize import to_model_input
from emnist_dist.model_folder.artifact import ModelInfo

PIL_OPS = {
    "identity": None,
    "rot90": Image.Transpose.ROTATE_90,  # Pillow turns counter-clockwise
    "rot180": Image.Transpose.ROTATE_180,
    "rot270": Image.Transpose.ROTATE_270,
    "flip_lr": Image.Transpose.FLIP_LEFT_RIGHT,
    "flip_ud": Image.Transpose.FLIP_TOP_BOTTOM,
    "transpose": Image.Transpose.TRANSPOSE,
    "antitranspose": Image.Transpose.TRANSVERSE,
}


def pil(image: np.ndarray, name: str) -> np.ndarray:
    op = PIL_OPS[name]
    return image if op is None else np.asarray(Image.fromarray(image).transpose(op))


@pytest.mark.parametrize("name", TRANSFORMS)
def test_each_symmetry_is_pillows(name):
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    batch = torch.from_numpy(np.stack([image, image[::-1].copy()]))[:, None]
    got = dihedral(batch, name)[:, 0].numpy()
    assert np.array_equal(got[0], pil(image, name)) and np.array_equal(got[1], pil(image[::-1].copy(), name))


def test_the_eight_are_distinct_and_unknown_names_fail():
    image = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8))
    assert len({dihedral(image, name).numpy().tobytes() for name in TRANSFORMS}) == 8
    with pytest.raises(ValueError, match="rot45"):
        dihedral(image, "rot45")


def undo_with_pillow(name: str) -> str:
    """The symmetry that turns ``name`` back, found by composing Pillow's transforms on a random image."""
    image = np.random.default_rng(3).integers(0, 256, (6, 6), dtype=np.uint8)
    return next(back for back in TRANSFORMS if np.array_equal(pil(pil(image, name).copy(), back), image))


def small_split(n: int = 40, classes: int = 3) -> EmnistData:
    rng = np.random.default_rng(4)
    images = torch.from_numpy(rng.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8))
    labels = torch.arange(n) % classes
    return EmnistData(split="x", source="x", is_synthetic=False, cache_path=Path("."), class_names=list("abc"),
                      train_images=images, train_labels=labels, val_images=images[:4], val_labels=labels[:4],
                      heldout_images=images[:5], heldout_labels=labels[:5], train_index=torch.arange(100, 100 + n),
                      val_index=torch.arange(4), heldout_index=torch.arange(5), train_rows=n, excluded=0,
                      test_images=images[:6], test_labels=labels[:6], train_class_counts=torch.bincount(labels),
                      mean=0.5, std=0.3, description="x")


def test_symmetry_targets_add_each_glyph_once_more_under_a_named_other_symmetry():
    data = small_split()
    joint = with_symmetry_targets(data, seed=0)
    n = len(data.train_labels)
    assert joint.class_names[:9] == ["a", "a/rot90", "a/rot180", "a/rot270", "a/flip_lr", "a/flip_ud", "a/transpose",
                                     "a/antitranspose", "b"] and len(joint.class_names) == 24
    assert torch.equal(joint.train_images[:n], data.train_images) and torch.equal(joint.train_labels[:n], data.train_labels * 8)
    turned = joint.train_labels[n:]
    assert torch.equal(turned // 8, data.train_labels) and bool((turned % 8 > 0).all())
    assert len(set((turned % 8).tolist())) == 7  # every other symmetry drawn (40 draws)
    for i in range(n):  # the second copy is the glyph under the symmetry its target names (Pillow's)
        name = joint.class_names[int(turned[i])].split("/")[1]
        assert np.array_equal(joint.train_images[n + i, 0].numpy(), pil(data.train_images[i, 0].numpy(), name))
    assert torch.equal(joint.train_index, torch.cat([data.train_index, data.train_index]))
    assert torch.equal(joint.val_labels, data.val_labels * 8) and torch.equal(joint.test_labels, data.test_labels * 8)
    assert torch.equal(joint.train_class_counts, torch.bincount(joint.train_labels, minlength=24))
    assert torch.equal(with_symmetry_targets(data, seed=0).train_images, joint.train_images)  # seeded


class Linear(torch.nn.Module):
    """A fixed joint model of 3 classes x 8 symmetries: a seeded linear map of the pixels."""

    def __init__(self, size: int):
        super().__init__()
        self.weight = torch.randn(24, size * size, generator=torch.Generator().manual_seed(5)) / size

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def test_joint_scores_against_a_hand_run_model():
    rng = np.random.default_rng(2)
    glyphs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1])
    info = ModelInfo(architecture="linear", class_names=joint_class_names(list("abc")), image_size=20, mean=0.3,
                     std=0.2, split="x")
    probs, label_probs = score_joint(Linear(20), info, torch.from_numpy(glyphs)[:, None], labels, batch_size=2)
    assert probs.shape == (5, 3) and label_probs.shape == (5, 8)
    for i, glyph in enumerate(glyphs):  # re-derived one glyph at a time
        x = to_model_input(torch.from_numpy(glyph)[None, None], 20, 0.3, 0.2)
        joint = Linear(20)(x).softmax(dim=1)[0].view(3, 8)
        assert torch.allclose(probs[i], joint[:, 0] / joint[:, 0].sum(), atol=1e-6)
        for s, fix in enumerate(TRANSFORMS):  # column s: the label, stored as upright turned by what s undoes
            t = TRANSFORMS.index(undo_with_pillow(fix))
            assert label_probs[i, s] == pytest.approx(float(joint[labels[i], t]), abs=1e-6)
