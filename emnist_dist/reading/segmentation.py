"""Find the lines and the characters of separately written handwriting in an ink mask.

The geometry proposes, the classifier decides. In order:

1. connected components of the ink (8-connected, ``scipy.ndimage.label``); specks smaller than a
   third of a square stroke (the mask's mean stroke width) are dropped;
2. lines: components whose vertical extents overlap by half the smaller height and that are at most
   a character height apart horizontally are chained together, so a sloping baseline stays one
   line; a group much smaller than its nearest neighbouring group (an i's dot, a 5's flag, a speck
   near the writing) joins that group when close, and is dropped when far and tiny;
3. within a line, components lower than ``MINOR_HEIGHT`` of the line's character height (dots,
   flags, fragments) cannot be characters: each joins the close character it overlaps most
   horizontally (or the nearest, when nearly touching), else it is dropped; components stacked
   above one another are one character;
4. candidate segmentations where the geometry is ambiguous: two neighbouring pieces that overlap or
   nearly touch and together are no wider than a character may be one character (a stroke broken in
   two) or two; a piece wider than ``SPLIT_WIDTH`` character heights may be several touching
   characters, cut near the even divisions (several columns tried, the least inked among them);
5. :func:`best_path` picks the segmentation whose characters the classifier finds most probable
   (a dynamic programme over the pieces, left to right).

Written on scipy's labelling because no library in the stack segments handwriting into characters.
Coordinates are the mask's pixels; boxes are ``(x0, y0, x1, y1)`` with exclusive ends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..model_folder.framing import stroke_widths

SPECK_AREA = 0.35
"""Components with less ink than this many squared stroke widths are noise (an i's dot has about 0.8)."""
LINE_OVERLAP = 0.5
"""Two components belong to one line when their vertical extents overlap by this share of the smaller height ..."""
LINE_GAP = 3.0
"""... and they are at most this many (larger) heights apart horizontally (a word space is about one)."""
MINOR_GROUP = 0.5
"""A group of components lower than this share of the nearest taller group's height is part of that group ..."""
ATTACH_DISTANCE = 1.0
"""... when within this many of that group's heights; farther, it is its own line unless a speck (4 strokes high)."""
MIN_LINE_HEIGHT = 8
"""A line lower than this many pixels (the smallest character predict accepts) is not read: a dash, a scratch."""
LINK_BLOCK = 512
"""Components compared with all others this many at a time while grouping lines."""
MAX_MARKS = 2000
"""Photos with more separate marks of ink than this (specks excluded) are refused: a page of dots, a texture."""
MAX_CANDIDATES = 4000
"""Photos whose marks could be cut into more candidate characters than this are refused: each is framed and
classified (about 2 ms on a laptop core), so a page of character-sized blocks would otherwise take minutes."""
DUST_COUNT = 10
"""With at least this many minor marks far from the writing, minor marks no larger than the largest of them are
dust, not dots or fragments of a character."""
MINOR_HEIGHT = 0.45
"""Pieces lower than this share of the line's character height are never characters by themselves."""
DOT_DISTANCE = 0.5
"""... joining a character above or below it only within this many character heights (an i's dot sits closer)."""
STACKED = 0.5
"""Pieces overlapping horizontally by this share of the narrower one are one character (a broken 6, a 5's flag)."""
MERGE_GAP = 0.15
"""Neighbouring pieces at most this many character heights apart may be one character ..."""
MERGE_WIDTH = 1.4
"""... when together they are at most this many character heights wide."""
SPLIT_WIDTH = 0.85
"""A piece wider than this many character heights may be touching characters."""
CHAR_WIDTH = 0.6
"""Typical character width in character heights: how many characters a wide piece is tried as."""
CUT_SHIFTS = (-0.2, -0.1, 0.0, 0.1, 0.2)
"""Cuts are tried at the even division and shifted by these shares of a part's width."""
SPACE_GAP = 0.6
"""A gap wider than this many character heights (and ``SPACE_RATIO`` times the line's median gap) is a space."""
SPACE_RATIO = 2.5
CHAR_BONUS = 0.0
"""Added to a character's log-probability: above 0 favours more, smaller characters."""
CUT_PENALTY = 1.0
"""Subtracted for each cut through a connected piece: the geometry says one piece, the classifier must outvote it
(it is often sure of both halves of a wide character). Tuned on 200 photos of benchmarks/read_lines.py's kind
with another seed than it reports (1.0: 99 % of the plain photos read exactly; 0.3: 97 %; 2.0: 98 %)."""
MERGE_PENALTY = 0.3
"""Subtracted for each merge of separate pieces, for the same reason."""
WIDE = 0.9
WIDE_PENALTY = 2.0
"""A character wider than ``WIDE`` character heights costs this much per extra height of width (touching pairs)."""


@dataclass
class Character:
    """A candidate character: some components of the label image, optionally only between two columns."""

    labels: tuple[int, ...]
    box: tuple[int, int, int, int]
    columns: tuple[int, int] | None = None
    """Absolute column range [c0, c1) kept when a piece is cut; None: the whole components."""


@dataclass
class Line:
    """The pieces of one line (sorted left to right) and its character height."""

    pieces: list[Character]
    height: float
    dropped: list[int] = field(default_factory=list)


def _box(boxes: np.ndarray) -> tuple[int, int, int, int]:
    return (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))


def label_ink(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Label the ink's 8-connected components; returns (label image, boxes ``(n, 4)``, areas ``(n,)``, stroke width).

    Row i of boxes and areas is label i + 1. Specks (``SPECK_AREA``) are removed from the label image
    and from the rows (their rows stay, with area 0).
    """
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    slices = ndimage.find_objects(labels)
    boxes = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices], dtype=np.int64).reshape(-1, 4)
    areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    # The stroke width of the writing, not of the noise: measured on components of at least a tenth of the largest.
    large = np.isin(labels, np.flatnonzero(areas >= 0.1 * areas.max()) + 1) if n else mask
    stroke = float(stroke_widths(torch.from_numpy(large)[None, None])[0]) if n else 1.0
    specks = areas < SPECK_AREA * stroke**2
    if specks.any():
        labels[np.isin(labels, np.flatnonzero(specks) + 1)] = 0
        areas = np.where(specks, 0, areas)
    return labels, boxes, areas, stroke


def group_lines(boxes: np.ndarray, areas: np.ndarray, stroke: float) -> list[np.ndarray]:
    """Component indices (rows of ``boxes``) per line, lines top to bottom; specks (area 0) are left out, and so
    are groups lower than ``MIN_LINE_HEIGHT`` pixels (a thin dash alone on a photo is no writing)."""
    live = np.flatnonzero(areas > 0)
    if not len(live):
        return []
    b = boxes[live].astype(np.float64)
    heights = b[:, 3] - b[:, 1]
    rows, cols = [], []
    for start in range(0, len(live), LINK_BLOCK):  # a block of rows against all: memory linear in the components
        a = b[start : start + LINK_BLOCK, None]
        overlap_y = np.minimum(a[..., 3], b[None, :, 3]) - np.maximum(a[..., 1], b[None, :, 1])
        gap_x = np.maximum(a[..., 0], b[None, :, 0]) - np.minimum(a[..., 2], b[None, :, 2])
        h = heights[start : start + LINK_BLOCK, None]
        i, j = np.nonzero((overlap_y >= LINE_OVERLAP * np.minimum(h, heights[None, :]))
                          & (gap_x <= LINE_GAP * np.maximum(h, heights[None, :])))
        rows.append(i + start)
        cols.append(j)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    linked = coo_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(live), len(live)))
    n_groups, group_of = connected_components(linked, directed=False)
    groups = [live[group_of == g] for g in range(n_groups)]
    # Small groups (dots, flags above a line, specks) join their nearest larger group, smallest first.
    group_boxes = np.array([_box(boxes[members]) for members in groups], dtype=np.float64)
    group_heights = np.array([_group_height(boxes[members]) for members in groups])
    alive = np.ones(n_groups, dtype=bool)
    for g in np.argsort(group_heights, kind="stable"):
        larger = alive & (group_heights[g] < MINOR_GROUP * group_heights)
        if not larger.any():
            if group_heights[g] < MIN_LINE_HEIGHT:
                alive[g] = False
            continue
        distances = _distances(group_boxes[g], group_boxes)
        nearest = int(np.argmin(np.where(larger, distances, np.inf)))
        if distances[nearest] <= ATTACH_DISTANCE * group_heights[nearest]:
            groups[nearest] = np.concatenate([groups[nearest], groups[g]])
            group_boxes[nearest] = _box(np.stack([group_boxes[nearest], group_boxes[g]]))
            alive[g] = False
        elif group_heights[g] < max(4 * stroke, MIN_LINE_HEIGHT):  # a lone speck far from the writing
            alive[g] = False
    groups = [members for g, members in enumerate(groups) if alive[g]]
    return sorted(groups, key=lambda members: float(np.mean((boxes[members, 1] + boxes[members, 3]) / 2)))


def _group_height(boxes: np.ndarray) -> float:
    """A group's character height: its tallest component."""
    return float((boxes[:, 3] - boxes[:, 1]).max())


def _distances(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Euclidean distances from one box to each of ``boxes`` ``(n, 4)`` (0 where they overlap)."""
    dx = np.maximum(0, np.maximum(box[0], boxes[:, 0]) - np.minimum(box[2], boxes[:, 2]))
    dy = np.maximum(0, np.maximum(box[1], boxes[:, 1]) - np.minimum(box[3], boxes[:, 3]))
    return np.hypot(dx, dy)


def line_pieces(members: np.ndarray, boxes: np.ndarray, attach: bool = True, areas: np.ndarray | None = None,
                stray: np.ndarray | None = None) -> Line:
    """The pieces of one line: its major components, each with the minor ones (dots, flags) that belong to it
    and with the components stacked above or below it (``attach=False``: each major component alone, the
    minor ones dropped, as a plain connected-components reader does).

    Dust: when at least ``DUST_COUNT`` minor components lie far from every character (with ``stray``, the
    areas of the marks left out of every line), the minor ones no larger than the largest of them (``areas``
    per component) are dropped even near a character: an i's dot is rare, dust is everywhere.
    """
    heights = boxes[members, 3] - boxes[members, 1]
    tall = heights >= 0.5 * heights.max()
    height = float(np.median(heights[tall]))
    major = members[heights >= MINOR_HEIGHT * height]
    minor = members[heights < MINOR_HEIGHT * height]
    owned: dict[int, list[int]] = {int(m): [int(m)] for m in major}
    if not attach:
        pieces = sorted((Character((m + 1,), _box(boxes[[m]])) for m in owned), key=lambda p: p.box[0] + p.box[2])
        return Line(pieces, height, [int(m) for m in minor])
    owner = {}
    for m in minor:
        bm = boxes[m]
        overlap = np.minimum(bm[2], boxes[major, 2]) - np.maximum(bm[0], boxes[major, 0])
        distances = _distances(bm, boxes[major])
        # Above or below a character and close (an i's dot), or beside one and nearly touching (a fragment).
        near = np.where(overlap > 0, distances <= DOT_DISTANCE * height, distances <= MERGE_GAP * height)
        if near.any():
            owner[int(m)] = int(major[int(np.argmax(np.where(near, overlap, -np.inf)))])
    dropped = [int(m) for m in minor if int(m) not in owner]
    if areas is not None:
        far = np.concatenate([areas[dropped], [] if stray is None else stray])
        if len(far) >= DUST_COUNT:
            dust = float(far.max())
            dropped += [m for m in owner if areas[m] <= dust]
            owner = {m: o for m, o in owner.items() if areas[m] > dust}
    for m, o in owner.items():
        owned[o].append(m)
    # Pieces stacked above one another are parts of one character (neighbours sit side by side).
    parts = sorted(owned.values(), key=lambda p: boxes[p[0], 0])
    stacked = [parts[0]] if parts else []
    for part in parts[1:]:
        a, b = _box(boxes[stacked[-1]]), _box(boxes[part])
        if min(a[2], b[2]) - max(a[0], b[0]) >= STACKED * min(a[2] - a[0], b[2] - b[0]):
            stacked[-1] = stacked[-1] + part
        else:
            stacked.append(part)
    pieces = [Character(tuple(i + 1 for i in p), _box(boxes[p])) for p in stacked]
    pieces.sort(key=lambda p: (p.box[0] + p.box[2]) / 2)
    return Line(pieces, height, dropped)


def candidate_ink(labels: np.ndarray, char: Character) -> np.ndarray:
    """The boolean ink of a candidate (a cut part keeps only its columns), cropped to its box."""
    x0, y0, x1, y1 = char.box
    ink = np.isin(labels[y0:y1, x0:x1], char.labels)
    if char.columns is not None:
        cols = np.arange(x0, x1)
        ink &= ((cols >= char.columns[0]) & (cols < char.columns[1]))[None, :]
    return ink


def cut_options(ink: np.ndarray, parts: int) -> list[list[int]]:
    """Candidate column sets for cutting a piece's ink into ``parts``: the even division, shifted by
    ``CUT_SHIFTS`` of a part's width, and the columns of least ink near each division.

    The least ink is not always right (between two touching 0s it lies inside an 0, where only the
    top and bottom arcs cross the column), so the classifier chooses among all of them.
    """
    width = ink.shape[1]
    step = width / parts
    options = [[round(k * step + shift * step) for k in range(1, parts)] for shift in CUT_SHIFTS]
    profile = np.convolve(ink.sum(axis=0).astype(np.float64), np.ones(3) / 3, mode="same")
    least = []
    for k in range(1, parts):
        lo, hi = round((k - 1 / 3) * step), round((k + 1 / 3) * step)
        least.append(lo + int(np.argmin(profile[lo:hi])) if hi > lo else round(k * step))
    options.append(least)
    unique = []
    for columns in options:
        bounds = [0, *columns, width]
        if columns not in unique and all(a < b for a, b in zip(bounds[:-1], bounds[1:])):
            unique.append(columns)
    return unique


def cut(labels: np.ndarray, piece: Character, columns: list[int]) -> list[Character] | None:
    """Cut a piece at ``columns`` (counted from its left edge) into characters; None when a part has no ink."""
    ink = candidate_ink(labels, piece)
    bounds = [0, *columns, ink.shape[1]]
    chars = []
    for c0, c1 in zip(bounds[:-1], bounds[1:]):
        part = ink[:, c0:c1]
        rows = np.flatnonzero(part.any(axis=1))
        cols = np.flatnonzero(part.any(axis=0))
        if not len(rows):
            return None
        x0 = piece.box[0] + c0
        chars.append(Character(piece.labels, (x0 + int(cols[0]), piece.box[1] + int(rows[0]),
                                              x0 + int(cols[-1]) + 1, piece.box[1] + int(rows[-1]) + 1),
                               columns=(x0, piece.box[0] + c1)))
    return chars


@dataclass
class Lattice:
    """Candidate segmentations of a line: edges ``(start, end, characters)`` over its pieces 0..n."""

    size: int
    edges: list[tuple[int, int, list[Character]]]
    height: float
    """The line's character height."""


def candidates(labels: np.ndarray, line: Line) -> Lattice:
    """Every plausible reading of the line's pieces: each piece alone, neighbours merged, wide pieces cut."""
    pieces, height = line.pieces, line.height
    edges = []
    for i, piece in enumerate(pieces):
        edges.append((i, i + 1, [piece]))
        width = piece.box[2] - piece.box[0]
        if width > SPLIT_WIDTH * height:
            ink = candidate_ink(labels, piece)
            for parts in range(2, max(2, round(width / (CHAR_WIDTH * height)) + 1) + 1):
                for columns in cut_options(ink, parts):
                    chars = cut(labels, piece, columns)
                    if chars:
                        edges.append((i, i + 1, chars))
        for j in range(i + 2, min(i + 4, len(pieces) + 1)):
            group = pieces[i:j]
            box = _box(np.array([p.box for p in group]))
            ordered = sorted(group, key=lambda p: p.box[0])
            gaps = [b.box[0] - max(a.box[2] for a in ordered[: k + 1]) for k, b in enumerate(ordered[1:])]
            if box[2] - box[0] <= MERGE_WIDTH * height and max(gaps) <= MERGE_GAP * height:
                edges.append((i, j, [Character(tuple(lab for p in group for lab in p.labels), box)]))
    return Lattice(len(pieces), edges, height)


def best_path(lattice: Lattice, log_prob: dict[int, float]) -> list[Character]:
    """The segmentation (path through the lattice) with the highest total score.

    Each character scores its classifier log-probability (``log_prob[id(char)]``) plus ``CHAR_BONUS``,
    less ``WIDE_PENALTY`` per character height of width beyond ``WIDE``; each cut through a piece costs
    ``CUT_PENALTY``, each merge of pieces ``MERGE_PENALTY``.
    """
    best: list[tuple[float, list[Character]] | None] = [None] * (lattice.size + 1)
    best[0] = (0.0, [])
    for end in range(1, lattice.size + 1):
        for start, stop, chars in lattice.edges:
            if stop != end or best[start] is None:
                continue
            score = (best[start][0] - CUT_PENALTY * (len(chars) - 1) - MERGE_PENALTY * (stop - start - 1)
                     + sum(log_prob[id(c)] + CHAR_BONUS
                           - WIDE_PENALTY * max(0.0, (c.box[2] - c.box[0]) / lattice.height - WIDE) for c in chars))
            if best[end] is None or score > best[end][0]:
                best[end] = (score, best[start][1] + chars)
    return best[lattice.size][1]


def word_breaks(chars: list[Character], height: float) -> list[bool]:
    """Per gap between consecutive characters: True where a space goes (a gap much wider than the others)."""
    gaps = [b.box[0] - a.box[2] for a, b in zip(chars[:-1], chars[1:])]
    if not gaps:
        return []
    typical = float(np.median(np.maximum(gaps, 0)))
    return [g > SPACE_GAP * height and g > SPACE_RATIO * typical for g in gaps]
