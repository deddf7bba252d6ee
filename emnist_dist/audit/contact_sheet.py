"""``label_issues.png``: the most suspicious glyphs, each captioned with what the audit found."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .ranking import LABEL_ISSUE

_COLUMNS = 8
_LABEL_COLOUR, _TRANSFORM_COLOUR = "firebrick", "navy"


def caption(row: dict) -> str:
    """Two lines: row index and score; then ``'O'→'0'`` (given → suggested) or ``'7' rot90`` (label, fix).

    Quoted in a monospace font, so l/I/1 and O/0 stay apart at 62 classes.
    """
    head = f"#{row['index']}  {row['score']:.3f}"
    if row["issue"] == LABEL_ISSUE:
        return f"{head}\n{row['label']!r}→{row['suggested']!r}"
    return f"{head}\n{row['label']!r} {row['issue']}"


def contact_sheet_figure(issues: list[dict], glyphs: np.ndarray, title: str) -> Figure:
    """A grid of ``glyphs`` (upright uint8 ``(N, 28, 28)``, one per row of ``issues``, same order).

    Label issues are captioned in red (given → suggested label), pre-augmented glyphs in blue
    (their label and the rotation/flip that turns them upright).
    """
    cells = max(1, len(issues))
    rows = -(-cells // _COLUMNS)
    fig = Figure(figsize=(_COLUMNS * 1.45, rows * 1.7 + 0.6))
    axes = fig.subplots(rows, _COLUMNS, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row, glyph in zip(axes.flat, issues, glyphs):
        ax.imshow(glyph, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        colour = _LABEL_COLOUR if row["issue"] == LABEL_ISSUE else _TRANSFORM_COLOUR
        ax.set_title(caption(row), fontsize=9, fontfamily="monospace", color=colour)
    legend = "red: given→suggested label;  blue: label, and the rotation/flip that makes the glyph its label"
    fig.suptitle(f"{title}\n{legend}" if issues else f"{title}: nothing flagged", fontsize=11)
    fig.tight_layout()
    return fig
