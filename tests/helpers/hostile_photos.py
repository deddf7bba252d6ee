"""Photos a hostile or unlucky user gives the line reader: deep grey levels, strips, dust, dashes, transparency, forms.

Typed digits (DejaVu Sans, as ``words_photo``) drawn with Pillow and numpy, independently of emnist_dist's
reading code; each maker returns the path written and, where it has one, the text a reader should find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tests.helpers.line_photos import FONT

INK, PAPER = 25, 235


def typed_digits(text: str, height: int = 80, gap: float = 0.35, margin: int = 60) -> tuple[np.ndarray, list]:
    """Grey image (uint8, dark ink on light paper) of ``text``'s characters set one by one ``gap`` heights apart
    (a space: one height), and each character's box ``(x0, y0, x1, y1)``."""
    font = ImageFont.truetype(FONT, height)
    widths = [font.getbbox(c)[2] - font.getbbox(c)[0] if c != " " else height for c in text]
    width = int(sum(widths) + gap * height * len(text)) + 2 * margin
    image = Image.new("L", (width, int(1.6 * height) + 2 * margin), PAPER)
    draw = ImageDraw.Draw(image)
    x, boxes = margin, []
    for c, w in zip(text, widths):
        if c != " ":
            left, top, right, bottom = font.getbbox(c)
            draw.text((x - left, margin), c, fill=INK, font=font)
            boxes.append((x, margin + top, x + right - left, margin + bottom))
        x += w + gap * height
    return np.asarray(image), boxes


def deep_grey_png(path: Path, text: str, bits: int = 12) -> Path:
    """``text`` typed, stored with ``bits``-bit grey levels (paper near 2**bits - 1) in a 16-bit file (PNG or TIFF)."""
    grey, _ = typed_digits(text)
    top = 2**bits - 1
    Image.fromarray(np.round(grey / 255 * top).astype(np.uint16)).save(path)
    return path


def dash_photo(path: Path, height: int) -> Path:
    """Nothing but a horizontal stroke ``height`` (1-2) pixels high, 250 long, on paper."""
    image = Image.new("L", (400, 150), PAPER)
    ImageDraw.Draw(image).rectangle((50, 70, 300, 70 + height - 1), fill=INK)
    image.save(path)
    return path


def dotted_png(path: Path, dots: int, side: int = 1000, seed: int = 0) -> Path:
    """``dots`` 2x2 specks scattered over a ``side`` x ``side`` page: a small file of many separate marks."""
    rng = np.random.default_rng(seed)
    page = np.full((side, side), PAPER, np.uint8)
    for y, x in rng.integers(0, side - 2, (dots, 2)):
        page[y : y + 2, x : x + 2] = INK
    Image.fromarray(page).save(path)
    return path


def blocks_png(path: Path, blocks: int, side: int = 1000, size: int = 12, pitch: int = 22) -> Path:
    """``blocks`` ink squares ``size`` pixels a side, row by row ``pitch`` apart: marks big enough to be characters."""
    page = np.full((side, side), PAPER, np.uint8)
    per_row = (side - 5) // pitch
    for k in range(blocks):
        y, x = 5 + pitch * (k // per_row), 5 + pitch * (k % per_row)
        page[y : y + size, x : x + size] = INK
    Image.fromarray(page).save(path)
    return path


def speckled(grey: np.ndarray, pairs: int, seed: int = 0) -> np.ndarray:
    """``grey`` with ``pairs`` dust grains, each two 2x2 specks touching at a corner (8 pixels of ink), scattered."""
    rng = np.random.default_rng(seed)
    out = grey.copy()
    for y, x in rng.integers(0, np.array(grey.shape) - 4, (pairs, 2)):
        out[y : y + 2, x : x + 2] = INK
        out[y + 2 : y + 4, x + 2 : x + 4] = INK
    return out


def transparent_ink_png(path: Path, text: str, white_ink: bool) -> Path:
    """``text`` drawn through the alpha channel: white ink on a transparent sheet (``white_ink``), or ink cut out
    (fully transparent) of an opaque white sheet."""
    grey, _ = typed_digits(text)
    ink = grey < 128
    rgba = np.full(grey.shape + (4,), 255, np.uint8)
    rgba[..., 3] = np.where(ink, 255, 0) if white_ink else np.where(ink, 0, 255)
    if not white_ink:
        rgba[ink, :3] = 0  # what a cut-out's transparent pixels often hold: black, not shown
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def form_field(text: str, frame: str, height: int = 80) -> np.ndarray:
    """``text`` typed as on a form (:func:`draw_form`'s ``frame``), grey uint8."""
    grey, boxes = typed_digits(text, height, gap=0.5)
    image = Image.fromarray(grey)
    draw_form(image, boxes, frame, height)
    return np.asarray(image)


def draw_form(image: Image.Image, boxes: list, frame: str, height: float) -> Image.Image:
    """Draw a form's printed lines around one line of characters (their ``boxes``, ``height`` pixels high) in dark
    ink, in place: ``boxes`` (each character in its own box), ``comb`` (a base line with ticks between the
    characters), ``rule`` (underlined, the rule touching the characters' feet) or ``plain`` (nothing)."""
    draw = ImageDraw.Draw(image)
    ink = INK if image.mode in ("L", "I", "F") else (INK,) * len(image.getbands())
    line = max(2, round(height / 25))
    pad = round(0.2 * height)
    top, bottom = min(b[1] for b in boxes) - pad, max(b[3] for b in boxes)
    edges = [boxes[0][0] - pad] + [(a[2] + b[0]) // 2 for a, b in zip(boxes[:-1], boxes[1:])] + [boxes[-1][2] + pad]
    if frame == "boxes":
        for left, right in zip(edges[:-1], edges[1:]):
            draw.rectangle((left + line, top, right - line, bottom + pad), outline=ink, width=line)
    elif frame == "comb":
        draw.rectangle((edges[0], bottom + pad // 2, edges[-1], bottom + pad // 2 + line - 1), fill=ink)
        for x in edges:
            draw.rectangle((x - line // 2, bottom + pad // 2 - round(height / 2), x + line // 2, bottom + pad // 2),
                           fill=ink)
    elif frame == "rule":
        draw.rectangle((edges[0] - height, bottom - line // 2, edges[-1] + height, bottom + line), fill=ink)
    elif frame != "plain":
        raise ValueError(f"unknown frame {frame!r}")
    return image
