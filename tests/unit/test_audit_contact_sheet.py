"""The contact sheet shows the given glyphs, in rank order, captioned with what the audit found."""

import numpy as np

from emnist_dist.audit.contact_sheet import caption, contact_sheet_figure

ISSUES = [
    {"index": 70, "label": "O", "suggested": "0", "score": 0.013, "issue": "label"},
    {"index": 5, "label": "7", "suggested": "7", "score": 0.021, "issue": "rot90"},
    {"index": 9, "label": "l", "suggested": "I", "score": 0.25, "issue": "label"},
]


def test_captions_quote_the_characters():
    assert caption(ISSUES[0]) == "#70  0.013\n'O'→'0'"
    assert caption(ISSUES[1]) == "#5  0.021\n'7' rot90"


def test_each_cell_is_its_glyph_in_order():
    glyphs = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    fig = contact_sheet_figure(ISSUES, glyphs, "top 3")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and len(fig.axes) == 8  # one row of 8 cells, the rest blank
    for ax, glyph, row in zip(shown, glyphs, ISSUES):
        assert np.array_equal(ax.images[0].get_array(), glyph)
        assert ax.get_title() == caption(row)
    assert shown[0].title.get_color() != shown[1].title.get_color()  # label issue vs turned glyph
    assert fig.get_suptitle().startswith("top 3\nred: given→suggested label")


def test_an_empty_list_still_draws():
    fig = contact_sheet_figure([], np.zeros((0, 28, 28), np.uint8), "audit")
    assert fig.get_suptitle() == "audit: nothing flagged"
