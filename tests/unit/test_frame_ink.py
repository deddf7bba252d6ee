"""The back half of the photo conversion on its own: a mask's framing (what read gives each candidate) and the
square maximum that thickens its strokes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from emnist_dist.model_folder.framing import NIST_FRAMING, Framing
from emnist_dist.model_folder.preprocess import frame_ink, square_max, to_model_framing

MNIST_LIKE = Framing(box=0.7143, stroke_low=1.42, stroke_high=2.773, centre="mass")
"""The framing measured on MNIST's train digits (thin strokes: a thick one is eroded, a hairline dilated)."""


@pytest.mark.parametrize("radius", [1, 2, 5, 8, 31])
def test_square_max_is_scipys_maximum_filter(radius):
    values = np.random.default_rng(radius).random((1, 1, 37, 90)).astype(np.float32)
    ours = square_max(torch.from_numpy(values), radius).numpy()
    # scipy's own filter, the outside counting as the lowest value (cval=-inf), as square_max's docstring says
    peer = ndimage.maximum_filter(values[0, 0], size=2 * radius + 1, mode="constant", cval=-np.inf)
    assert np.array_equal(ours[0, 0], peer)


@pytest.mark.parametrize("stem", [1, 6, 14])  # a hairline (dilated), a pen stroke, a marker (eroded)
def test_a_mask_is_framed_as_predict_frames_a_picture_of_it(stem):
    """``frame_ink`` takes the mask as it is; predict's ``to_model_framing`` finds the same ink in a picture of it
    (dark on light paper) by evening out the light and thresholding: both must give the same glyph."""
    mask = np.zeros((90, 60), bool)
    mask[5:85, 8 : 8 + stem] = True  # an L
    mask[85 - stem : 85, 8:50] = True
    picture = np.pad(np.where(mask, 30, 230).astype(np.uint8), 12, constant_values=230)
    for framing in (NIST_FRAMING, MNIST_LIKE):
        glyph = frame_ink(mask, framing)
        assert glyph.shape == (28, 28) and glyph.max() == 255
        assert np.array_equal(glyph, to_model_framing(picture, framing))
