"""The eight symmetries against Pillow's own, and the scores under them against a hand-run model."""

import numpy as np
import pytest
import torch
from PIL import Image

from emnist_dist.audit.dihedral import TRANSFORMS, dihedral, score_glyphs
from emnist_dist.data.resize import to_model_input
from emnist_dist.inference.artifact import ModelInfo

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


class Moments(torch.nn.Module):
    """A fixed 3-class model: logits from where the ink sits (top / left / bottom-right weight)."""

    def forward(self, x):
        h, w = x.shape[-2:]
        top = x[..., : h // 2, :].mean(dim=(1, 2, 3))
        left = x[..., :, : w // 2].mean(dim=(1, 2, 3))
        corner = x[..., h // 2 :, w // 2 :].mean(dim=(1, 2, 3))
        return 4 * torch.stack([top, left, corner], dim=1)


def test_scores_are_the_models_probabilities_under_each_symmetry():
    rng = np.random.default_rng(2)
    glyphs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    glyphs[:, :10] //= 4  # asymmetric ink, so the symmetries score differently
    labels = torch.tensor([0, 1, 2, 0, 1])
    info = ModelInfo(architecture="moments", class_names=["t", "l", "c"], image_size=20, mean=0.3, std=0.2, split="x")
    probs, label_probs = score_glyphs(Moments(), info, torch.from_numpy(glyphs)[:, None], labels, batch_size=2)
    assert probs.shape == (5, 3) and label_probs.shape == (5, 8)
    for t, name in enumerate(TRANSFORMS):  # re-derived with Pillow's transforms, one glyph at a time
        for i, glyph in enumerate(glyphs):
            x = to_model_input(torch.from_numpy(pil(glyph, name).copy())[None, None], 20, 0.3, 0.2)
            expected = Moments()(x).softmax(dim=1)[0]
            assert label_probs[i, t] == pytest.approx(float(expected[labels[i]]), abs=1e-6)
            if name == "identity":
                assert torch.allclose(probs[i], expected, atol=1e-6)
