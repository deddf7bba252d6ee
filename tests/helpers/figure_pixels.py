"""A matplotlib figure's pixels, drawn with the Agg canvas: the reference the tests compare the pictures a run
writes against, and read cell colours from."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def figure_pixels(fig: Figure) -> np.ndarray:
    """Render ``fig`` at its own dpi to an RGB uint8 array ``(H, W, 3)``."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
