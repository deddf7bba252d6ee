"""Remove the printed lines of a form from an ink mask before its characters are segmented.

Numbers on forms are written in boxes, on comb fields (a base line with ticks between the
characters) or on a rule; left in, a rule joins every character into one piece and a box reads as a
0 around each digit. The classic form-processing step, in ink-mask terms (``stroke`` = the writing's
mean stroke width, :func:`emnist_dist.model_folder.framing.stroke_widths`):

1. rules: straight horizontal or vertical runs of ink at least ``RULE_STROKES`` stroke widths long
   (a morphological opening with a line; a handwritten character spans at most about ten);
2. frames: a component whose bounding box is inked along all four sides (a box drawn around a
   character) loses those sides;
3. ticks: what is left touching a removed line and is itself a straight, thin bar (the teeth of a
   comb, the walls between adjacent boxes) goes too.

Characters that touched a line keep everything but the line's own pixels. Written with scipy's
filters because none of the stack's libraries removes form lines from a mask.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

RULE_STROKES = 15
"""Straight runs at least this many stroke widths long are printed rules, not writing."""
FRAME_SIDE = 0.9
"""A component is a drawn box when each side of its bounding box is inked along this share of its length ..."""
FRAME_STROKES = 4
"""... and it is at least this many stroke widths high and wide."""
TICK_FILL = 0.85
"""A piece touching a removed line is a tick when it fills this share of its bounding box ..."""
TICK_WIDTH = 2.0
"""... is at most this many stroke widths thick and at least twice as long as thick."""


def _runs_at_least(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The pixels of ``mask`` on straight runs of at least ``length`` along ``axis`` (an opening by a line).

    Moving sums instead of ``binary_opening``: the cost does not grow with the line's length.
    """
    m = mask.astype(np.float32)
    eroded = ndimage.uniform_filter1d(m, length, axis=axis, mode="constant") > 1 - 0.5 / length
    # The eroded centre pixels grow back by half a line each way (length is odd).
    return (ndimage.uniform_filter1d(eroded.astype(np.float32), length, axis=axis, mode="constant") > 0.5 / length) & mask


def _frames(mask: np.ndarray, stroke: float) -> np.ndarray:
    """The sides of the components that are drawn boxes (inked along all four sides of their bounding box)."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    edge_band = max(2, math.ceil(stroke / 2))  # a straight side lies within it; an O's round side does not
    band = max(2, math.ceil(1.5 * stroke))  # what is removed: the side's whole thickness
    out = np.zeros_like(mask)
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        ink = labels[box] == i
        height, width = ink.shape
        if min(height, width) < FRAME_STROKES * stroke:
            continue
        e = edge_band
        sides = [ink[:e].any(axis=0), ink[-e:].any(axis=0), ink[:, :e].any(axis=1), ink[:, -e:].any(axis=1)]
        if min(float(side.mean()) for side in sides) >= FRAME_SIDE:
            edge = np.zeros_like(ink)
            edge[:band], edge[-band:], edge[:, :band], edge[:, -band:] = True, True, True, True
            out[box] |= ink & edge
    return out


def _ticks(mask: np.ndarray, removed: np.ndarray, stroke: float) -> np.ndarray:
    """Straight thin bars of ``mask`` that touched the ``removed`` lines."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    touching = np.unique(labels[ndimage.binary_dilation(removed, np.ones((3, 3), dtype=bool)) & mask])
    out = np.zeros_like(mask)
    slices = ndimage.find_objects(labels)
    for i in touching[touching > 0]:
        box = slices[i - 1]
        ink = labels[box] == i
        thin, long = sorted(ink.shape)
        if thin <= TICK_WIDTH * stroke and long >= 2 * thin and ink.mean() >= TICK_FILL:
            out[box] |= ink
    return out


def remove_form_lines(mask: np.ndarray, stroke: float) -> np.ndarray:
    """``mask`` without rules, box sides and comb ticks (see the module docstring); unchanged when it has none."""
    length = 2 * round(RULE_STROKES * max(stroke, 1.0) / 2) + 1
    lines = _runs_at_least(mask, length, axis=1) | _runs_at_least(mask, length, axis=0)
    lines |= _frames(mask & ~lines, stroke)
    if not lines.any():
        return mask
    rest = mask & ~lines
    return rest & ~_ticks(rest, lines, stroke)
