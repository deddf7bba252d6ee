"""What a model folder's predictions should be, re-derived here from the documented recipes.

The model's forward pass on a 28x28 glyph (bilinear to the model's input size, scaled to [0, 1],
normalised by the stored mean and std, softmax) and the framing a converted glyph must have
(measured with numpy and scipy.ndimage), so that tests of predict, the demo and the model folder
compare against something other than the package's own conversion code.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

GLYPH_SIDE = 28


def model_probabilities(model: torch.nn.Module, info, glyphs) -> torch.Tensor:
    """Softmax ``(N, classes)`` of ``model`` on uint8 glyphs ``(N, 28, 28)``, ink bright, as a model folder's
    ``info`` (image_size, mean, std) describes its input."""
    x = torch.tensor(np.asarray(glyphs), dtype=torch.float32)[:, None] / 255
    x = F.interpolate(x, size=(info.image_size, info.image_size), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        return model((x - info.mean) / info.std).softmax(dim=1)


def framing_of(glyph: np.ndarray) -> tuple[float, float, float]:
    """(longer side of the ink's bounding box, distance of its centre and of the centre of mass from the
    frame's centre), in pixels; the ink is the pixels at or above half the peak (as the framing is measured)."""
    ink = glyph >= glyph.max() / 2
    rows, cols = np.nonzero(ink)
    long_side = max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
    box_centre = np.array([rows.min() + rows.max() + 1, cols.min() + cols.max() + 1]) / 2
    mass_centre = np.array(ndimage.center_of_mass(glyph.astype(np.float64))) + 0.5  # pixel i spans [i, i + 1)
    return float(long_side), *(float(np.linalg.norm(c - GLYPH_SIDE / 2)) for c in (box_centre, mass_centre))


def assert_framed_as(glyph: np.ndarray, framing) -> None:
    """The glyph's ink spans ``framing.box`` of the frame on its longer side (within 1.5 pixels) and is centred
    the framing's way (bounding box or centre of mass at the frame's centre, within a pixel)."""
    long_side, box_offset, mass_offset = framing_of(glyph)
    assert abs(long_side - framing.box * GLYPH_SIDE) <= 1.5, (long_side, framing.box * GLYPH_SIDE)
    assert (box_offset if framing.centre == "box" else mass_offset) <= 1.0, (framing.centre, box_offset, mass_offset)
