"""Line and character segmentation (emnist_dist.reading.segmentation) on ink drawn with Pillow at known places.

Each case draws characters (DejaVu Sans, or pen strokes) where the test puts them, so the expected
lines and character boxes are known by construction.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from emnist_dist.reading import segmentation as seg
from emnist_dist.model_folder.preprocess import ink_mask

FONT = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 60)


def canvas(width: int = 700, height: int = 240) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (width, height), 0)
    return image, ImageDraw.Draw(image)


def write(image: Image.Image, x: int, baseline: int, text: str, font=FONT) -> tuple[int, int, int, int]:
    """Draw ``text`` with the pen at (x, baseline), as a line of writing does; returns its ink box (x0, y0, x1, y1)."""
    size = font.size
    glyph = Image.new("L", (3 * size * len(text), 3 * size), 0)
    ImageDraw.Draw(glyph).text((size, 2 * size), text, fill=255, font=font, anchor="ls")
    left, top, right, bottom = glyph.getbbox()
    x0, y0 = x + left - size, baseline + top - 2 * size
    ink = glyph.crop((left, top, right, bottom))
    image.paste(ImageChops.lighter(image.crop((x0, y0, x0 + ink.width, y0 + ink.height)), ink), (x0, y0))
    return x0, y0, x0 + ink.width, y0 + ink.height


def read_geometry(image: Image.Image, attach: bool = True) -> tuple[np.ndarray, list[seg.Line]]:
    labels, boxes, areas, stroke = seg.label_ink(np.asarray(image) > 127)
    return labels, [seg.line_pieces(m, boxes, attach) for m in seg.group_lines(boxes, areas, stroke)]


def assert_boxes(pieces: list[seg.Character], expected: list[tuple], tolerance: int = 2):
    assert len(pieces) == len(expected), [p.box for p in pieces]
    for piece, box in zip(pieces, expected):
        assert np.abs(np.subtract(piece.box, box)).max() <= tolerance, (piece.box, box)


def test_each_written_character_is_one_piece_left_to_right():
    image, draw = canvas()
    boxes = [write(image, 40 + 70 * i, 130, c) for i, c in enumerate("3805")]
    _, lines = read_geometry(image)
    assert len(lines) == 1
    assert_boxes(lines[0].pieces, boxes)


def test_dots_of_i_and_j_join_their_stems_and_stay_in_the_line():
    image, draw = canvas()
    boxes = [write(image, 40 + 60 * i, 130, c) for i, c in enumerate("aijk")]
    labels, lines = read_geometry(image)
    assert len(lines) == 1  # the dots are no line of their own
    assert_boxes(lines[0].pieces, boxes)
    assert [len(p.labels) for p in lines[0].pieces] == [1, 2, 2, 1]  # i and j: stem + dot
    _, plain = read_geometry(image, attach=False)
    assert [len(p.labels) for p in plain[0].pieces] == [1, 1, 1, 1]  # the plain reader drops the dots


def test_strokes_broken_in_two_are_one_character():
    image, draw = canvas()
    # A 4 written in two strokes that do not meet, a 5 whose flag is lifted off, a 6 broken across.
    draw.line([(70, 40), (40, 120), (100, 120)], fill=255, width=8)
    draw.line([(88, 60), (88, 108)], fill=255, width=8)  # ends 4 pixels above the bar
    draw.line([(170, 42), (215, 42)], fill=255, width=8)
    draw.line([(168, 55), (165, 95)], fill=255, width=8)
    draw.arc((160, 85, 220, 155), -120, 150, fill=255, width=8)
    six = write(image, 260, 160, "6", ImageFont.truetype(FONT.path, 120))
    middle = (six[1] + six[3]) // 2
    draw.rectangle((six[0], middle - 3, six[2], middle + 3), fill=0)
    labels, lines = read_geometry(image)
    assert len(lines) == 1
    pieces = lines[0].pieces
    assert len(pieces) == 3, [p.box for p in pieces]
    assert [len(p.labels) >= 2 for p in pieces] == [True, True, True]
    _, plain = read_geometry(image, attach=False)
    assert len(plain[0].pieces) > 3  # as plain components they are more characters than there are


def test_touching_pair_is_offered_cut_where_the_strokes_meet_and_the_classifier_decides():
    image, draw = canvas()
    left = write(image, 40, 130, "0")
    bearing = left[0] - 40
    write(image, left[2] - 4 - bearing, 130, "0")  # the two 0s' ink overlaps by 4 pixels: one component
    labels, lines = read_geometry(image)
    (piece,) = lines[0].pieces
    lattice = seg.candidates(labels, lines[0])
    cuts = [chars for start, stop, chars in lattice.edges if len(chars) == 2]
    at_junction = [chars for chars in cuts if abs(chars[0].columns[1] - (left[2] - 2)) <= 4]
    assert at_junction, f"no cut near column {left[2] - 2}: {[c[0].columns[1] for c in cuts]}"
    first, second = at_junction[0]
    assert first.box[0] == piece.box[0] and second.box[2] == piece.box[2]
    assert seg.candidate_ink(labels, first).sum() + seg.candidate_ink(labels, second).sum() == \
        seg.candidate_ink(labels, piece).sum()  # the cut parts share out the ink
    # The classifier's confidence chooses: sure of two 0s -> two characters; sure of one wide glyph -> one.
    sure_of_two = {id(c): (-0.01 if c in at_junction[0] else -3.0) for _, _, cs in lattice.edges for c in cs}
    assert seg.best_path(lattice, sure_of_two) == at_junction[0]
    sure_of_one = {id(c): (-0.01 if c is piece else -3.0) for _, _, cs in lattice.edges for c in cs}
    assert seg.best_path(lattice, sure_of_one) == [piece]


def test_neighbours_that_may_be_one_character_are_merged_only_when_the_classifier_prefers_it():
    image, draw = canvas()
    draw.line([(60, 40), (60, 140)], fill=255, width=8)  # a 1 ...
    draw.arc((70, 40, 130, 140), 0, 360, fill=255, width=8)  # ... beside an 0, almost touching: 10 or a 0?
    labels, lines = read_geometry(image)
    lattice = seg.candidates(labels, lines[0])
    one, zero = lines[0].pieces
    merged = [chars[0] for start, stop, chars in lattice.edges if stop - start == 2]
    assert len(merged) == 1 and merged[0].box == (one.box[0], one.box[1], zero.box[2], zero.box[3])
    scores = {id(one): -0.05, id(zero): -0.05, id(merged[0]): -0.02}  # equally sure: geometry (two pieces) wins
    assert seg.best_path(lattice, scores) == [one, zero]
    scores[id(one)] = -2.5  # the 1 alone is implausible, the merged glyph is sure
    assert seg.best_path(lattice, scores) == merged


def test_sloping_baseline_stays_one_line():
    image, draw = canvas(900, 400)
    boxes = [write(image, 30 + 80 * i, 90 + 12 * i, c) for i, c in enumerate("20467139")]  # drops two heights
    _, lines = read_geometry(image)
    assert len(lines) == 1
    assert_boxes(lines[0].pieces, boxes)


def test_mixed_sizes_in_a_line_are_all_characters():
    image, draw = canvas()
    small = ImageFont.truetype(FONT.path, 36)  # digits 26 pixels high beside 44
    boxes, x = [], 30
    for i, c in enumerate("743891"):
        box = write(image, x, 130, c, FONT if i % 2 == 0 else small)
        boxes.append(box)
        x = box[2] + 15
    _, lines = read_geometry(image)
    assert len(lines) == 1 and not lines[0].dropped
    assert_boxes(lines[0].pieces, boxes)


def test_specks_of_noise_are_dropped():
    image, draw = canvas()
    boxes = [write(image, 200 + 70 * i, 130, c) for i, c in enumerate("581")]
    rng = np.random.default_rng(0)
    for x, y in zip(rng.integers(0, 700, 80), rng.integers(0, 240, 80)):  # pepper: 1-3 pixel dots everywhere
        draw.ellipse((x, y, x + rng.integers(0, 3), y + rng.integers(0, 3)), fill=255)
    draw.ellipse((40, 30, 49, 39), fill=255)  # a blot as big as a dot, far from the writing
    _, lines = read_geometry(image)
    assert len(lines) == 1
    assert_boxes(lines[0].pieces, boxes)


def test_several_lines_top_to_bottom_each_with_its_characters():
    image, draw = canvas(600, 420)
    rows = ["12", "3456", "789"]
    boxes = [[write(image, 40 + 70 * i, 90 + 130 * r, c) for i, c in enumerate(row)] for r, row in enumerate(rows)]
    _, lines = read_geometry(image)
    assert len(lines) == 3
    for line, expected in zip(lines, boxes):
        assert_boxes(line.pieces, expected)


def test_uneven_light_leaves_the_characters_found_as_on_even_paper():
    image, draw = canvas(700, 240)
    boxes = [write(image, 60 + 60 * i, 130, c) for i, c in enumerate("90627")]
    ink = np.asarray(image, dtype=np.float32) / 255
    light = np.linspace(1.0, 0.45, ink.shape[1])[None, :] * np.linspace(1.0, 0.8, ink.shape[0])[:, None]
    photo = (0.9 - 0.75 * ink) * light  # dark ink on paper lit from the top left
    assert photo[:, -20:].mean() < 0.6 * photo[:, :20].mean()  # really uneven: the right edge is far darker
    labels, boxes_found, areas, stroke = seg.label_ink(ink_mask(photo))
    lines = [seg.line_pieces(m, boxes_found) for m in seg.group_lines(boxes_found, areas, stroke)]
    assert len(lines) == 1
    assert_boxes(lines[0].pieces, boxes)


def test_word_breaks_where_a_gap_is_much_wider_than_the_others():
    height = 60.0
    chars = [seg.Character((i,), (x, 0, x + 40, 60)) for i, x in enumerate([0, 50, 100, 200, 250])]
    assert seg.word_breaks(chars, height) == [False, False, True, False]  # gaps 10, 10, 60, 10
    even = [seg.Character((i,), (x, 0, x + 40, 60)) for i, x in enumerate([0, 80, 160])]
    assert seg.word_breaks(even, height) == [False, False]  # wide but even spacing is no word break


@pytest.mark.parametrize("parts", [2, 3])
def test_cut_parts_cover_the_piece_without_overlap(parts):
    image, draw = canvas()
    x = 40
    for c in "000"[:parts]:
        box = write(image, x, 130, c)
        x = box[2] - 4 - (box[0] - x)  # the next 0's ink overlaps this one's by 4 pixels
    labels, lines = read_geometry(image)
    (piece,) = lines[0].pieces
    for columns in seg.cut_options(seg.candidate_ink(labels, piece), parts):
        chars = seg.cut(labels, piece, columns)
        assert len(chars) == parts
        assert chars[0].columns[0] == piece.box[0] and chars[-1].columns[1] == piece.box[2]
        assert all(a.columns[1] == b.columns[0] for a, b in zip(chars[:-1], chars[1:]))


def test_label_ink_keeps_diagonal_strokes_whole_and_drops_specks_measured_on_the_writing():
    """Components on a 40x40 mask by hand. The stroke width is stroke_widths' 2 area / boundary over the components of
    at least a tenth of the largest: the 4x20 bar (area 80, boundary 2*4 + 2*20 - 4 = 44) and the 1x8 line (exactly
    a tenth: area 8, boundary 8), 176 / 52; specks are below 0.35 * (176 / 52)^2 = 4.01 pixels."""
    mask = np.zeros((40, 40), dtype=bool)
    mask[1, 35] = True  # label 1: one pixel, a speck
    mask[4:8, 5:25] = True  # label 2: the bar
    mask[12, 2:10] = True  # label 3: the line
    mask[16:18, 30:32] = True  # label 4: 2x2, a speck
    for i in range(5):  # label 5: a diagonal touching only at corners, one 8-connected stroke
        mask[25 + i, 10 + i] = True
    expected = np.zeros((40, 40), dtype=np.int64)
    expected[4:8, 5:25], expected[12, 2:10] = 2, 3
    for i in range(5):
        expected[25 + i, 10 + i] = 5

    labels, boxes, areas, stroke = seg.label_ink(mask)
    assert stroke == pytest.approx(176 / 52)
    assert areas.tolist() == [0, 80, 8, 0, 5]
    assert boxes.tolist() == [[35, 1, 36, 2], [5, 4, 25, 8], [2, 12, 10, 13], [30, 16, 32, 18], [10, 25, 15, 30]]
    np.testing.assert_array_equal(labels, expected)


def test_label_ink_of_a_blank_mask_is_empty():
    labels, boxes, areas, stroke = seg.label_ink(np.zeros((20, 30), dtype=bool))
    assert boxes.shape == (0, 4) and areas.shape == (0,) and stroke == 1.0 and not labels.any()


def boxes_of(*rows) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(x0, y0, x1, y1)`` as given, each with some ink."""
    boxes = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return boxes, np.full(len(boxes), 100)


@pytest.mark.parametrize("second, lines", [
    ((15, 10, 25, 30), 1),  # 20 high beside 20 high, overlapping by 10: half the smaller height, one line
    ((15, 12, 25, 32), 2),  # overlapping by 8: two lines
    ((70, 0, 80, 20), 1),  # level, 60 apart: three heights, one line
    ((71, 0, 81, 20), 2),  # 61 apart: two
])
def test_components_chain_into_a_line_up_to_the_limits(second, lines):
    boxes, areas = boxes_of((0, 0, 10, 20), second)
    assert len(seg.group_lines(boxes, areas, stroke=3.0)) == lines


def test_minor_groups_join_the_nearest_line_or_stand_alone_by_their_size():
    """Stroke 3: a group lower than half its neighbour's height joins it within one of its heights; farther, it is
    dropped below max(4 strokes, 8) = 12 pixels high and kept as its own line from 12."""
    boxes, areas = boxes_of(
        (0, 100, 30, 140), (40, 100, 70, 140), (80, 100, 110, 140),  # a line of three 40 high
        (600, 300, 630, 340), (640, 300, 670, 340),  # a second line, to the right
        (300, 0, 310, 11),  # far and 11 high: dropped
        (300, 400, 310, 412),  # far and 12 high: a line of its own
        (85, 85, 95, 93),  # a dot 7 above the third character: joins it, though it comes last
        (645, 252, 655, 260),  # a dot one height (40) above the second line: joins it
    )
    groups = [sorted(g.tolist()) for g in seg.group_lines(boxes, areas, stroke=3.0)]
    assert groups == [[0, 1, 2, 7], [3, 4, 8], [6]]  # top to bottom


def test_a_group_half_as_high_as_its_neighbour_is_a_line_of_its_own():
    boxes, areas = boxes_of((0, 100, 30, 140), (0, 70, 30, 90))
    assert len(seg.group_lines(boxes, areas, stroke=3.0)) == 2


def test_more_components_than_one_linking_block_group_as_with_fewer():
    """Three lines of 400 characters: 1,200 components, compared LINK_BLOCK (512) rows at a time."""
    boxes, areas = boxes_of(*[(20 * k, 100 * r, 20 * k + 10, 100 * r + 30) for r in range(3) for k in range(400)])
    assert seg.LINK_BLOCK < len(boxes)
    groups = seg.group_lines(boxes, areas, stroke=3.0)
    assert [sorted(g.tolist()) for g in groups] == [list(range(400 * r, 400 * r + 400)) for r in range(3)]


@pytest.mark.parametrize("height, lines", [(8, 2), (7, 0)])
def test_lone_marks_are_lines_from_the_smallest_character_height(height, lines):
    boxes, areas = boxes_of((0, 0, 40, height), (0, 100, 40, 100 + height), (0, 200, 3, 203))  # and a far speck
    assert len(seg.group_lines(boxes, areas, stroke=1.0)) == lines


def test_without_attaching_each_major_component_is_a_piece_and_the_minor_ones_are_dropped():
    """Heights 40, 30, 20, 4, 40: the character height is the median of those at least half the tallest (35); the
    4 high mark is below MINOR_HEIGHT (0.45 * 35) of it. Pieces carry label = row + 1, left to right by centre."""
    boxes, _ = boxes_of((50, 0, 70, 40), (0, 70, 20, 100), (100, 20, 110, 40), (30, 30, 35, 34), (120, 0, 140, 40))
    line = seg.line_pieces(np.arange(5), boxes, attach=False)
    assert line.height == 35.0 and line.dropped == [3]
    assert [(p.labels, p.box) for p in line.pieces] == [((2,), (0, 70, 20, 100)), ((1,), (50, 0, 70, 40)),
                                                        ((3,), (100, 20, 110, 40)), ((5,), (120, 0, 140, 40))]


def test_a_component_of_exactly_the_minor_share_of_the_height_is_a_character():
    boxes, _ = boxes_of((0, 0, 20, 40), (30, 0, 50, 40), (60, 22, 70, 40), (80, 0, 100, 40))  # 18 = 0.45 * 40
    line = seg.line_pieces(np.arange(4), boxes, attach=False)
    assert [p.labels for p in line.pieces] == [(1,), (2,), (3,), (4,)] and line.dropped == []


def test_a_fragment_beside_a_character_joins_it_only_when_nearly_touching():
    """Height 40: beside a character (no horizontal overlap) a fragment joins within MERGE_GAP * 40 = 6 pixels; the
    one 10 pixels away is dropped, though an i's dot that far above would join (DOT_DISTANCE * 40 = 20)."""
    boxes, _ = boxes_of((0, 0, 20, 40), (60, 0, 80, 40), (30, 20, 35, 30), (84, 20, 88, 30))
    line = seg.line_pieces(np.arange(4), boxes, attach=True)
    assert [p.labels for p in line.pieces] == [(1,), (2, 4)] and line.dropped == [2]
