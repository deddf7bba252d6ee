"""Photos of handwritten lines composed from single glyphs, with the ground-truth text.

Glyphs come from the synthetic stand-in (font digits, randomly distorted) or from scikit-learn's
``load_digits`` (1,797 real handwritten digits, 8x8 with 17 grey levels, upsampled). Each photo
holds one line (two in one photo out of five) of 3-7 characters of varied size, spacing (from
touching to a third of the height apart) and a sloping, jittered baseline; some strokes are broken
(a thin band erased across the glyph); then uneven light, blur, noise and JPEG, as a phone photo
of a form would have. Everything is drawn with numpy and Pillow, independently of emnist_dist's
reading code.
"""

from __future__ import annotations

import io
import string
import zlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from emnist_dist.data.synthetic import render_glyphs

DIGITS = list(string.digits)
FONT = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")


@dataclass
class LineStyle:
    """Ranges the generator draws from (uniformly) for each photo."""

    chars: tuple[int, int] = (3, 7)
    two_lines: float = 0.2
    height: tuple[float, float] = (36, 80)
    """Character height in pixels."""
    size_jitter: float = 0.15
    """Each character's height varies by up to this share around the photo's."""
    gap: tuple[float, float] = (-0.06, 0.35)
    """Space between neighbouring glyph boxes, in character heights (negative: they overlap and may touch)."""
    slope: tuple[float, float] = (-0.08, 0.08)
    baseline_jitter: float = 0.05
    broken: float = 0.15
    """Share of glyphs with a stroke broken by an erased band."""
    light: tuple[float, float] = (0.55, 1.0)
    """The darkest corner's brightness relative to the brightest."""
    blur: tuple[float, float] = (0.0, 1.2)
    noise: tuple[float, float] = (0.01, 0.05)
    jpeg: tuple[int, int] = (50, 90)


GOAL_STYLE = LineStyle(gap=(0.0, 0.35), broken=0.0)
"""Separately written characters, as in reading forms: spaced apart (blur may still join them), no broken strokes."""
HARD_STYLE = LineStyle()
"""Besides: neighbours overlapping up to 6 % of the height (touching pairs) and 15 % of the glyphs with broken strokes."""


def synthetic_glyphs(per_class: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Synthetic digit glyphs (28x28 uint8, ink bright) and their labels. SYNTHETIC, NOT real handwriting."""
    images, labels = render_glyphs(DIGITS, per_class, seed=seed)
    return images, [DIGITS[i] for i in labels]


def real_digit_glyphs(side: int = 32) -> tuple[np.ndarray, list[str]]:
    """scikit-learn's 1,797 real handwritten digits, upsampled 8x8 -> side x side (bicubic), ink bright, uint8."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack([np.asarray(Image.fromarray((d * 255 / 16).astype(np.float32), "F").resize(
        (side, side), Image.Resampling.BICUBIC)) for d in digits.images])
    return np.clip(images, 0, 255).round().astype(np.uint8), [str(t) for t in digits.target]


def _ink(glyph: np.ndarray, height: float) -> np.ndarray:
    """A glyph cropped to its ink (above a quarter of its peak) and scaled to ``height`` pixels, float in [0, 1]."""
    g = glyph.astype(np.float32) / max(float(glyph.max()), 1.0)
    rows, cols = np.nonzero(g > 0.25)
    crop = g[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = height / crop.shape[0]
    size = (max(2, round(crop.shape[1] * scale)), max(2, round(height)))
    return np.clip(np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BICUBIC)), 0, 1)


def break_stroke(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Erase a thin band (a tenth of the height) through the glyph's middle part at a random angle."""
    h, w = ink.shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    distance = np.abs((x - cx) * np.sin(angle) - (y - cy) * np.cos(angle))
    return np.where(distance < 0.05 * h, 0.0, ink)


@dataclass
class LinePhoto:
    image: Image.Image
    text: str
    """The characters, lines joined by a newline."""
    boxes: list[list[tuple[int, int, int, int]]]
    """Per line, each character's ink box (x0, y0, x1, y1) in the photo's pixels."""


def line_photo(glyphs: np.ndarray, labels: list[str], rng: np.random.Generator,
               style: LineStyle = LineStyle(), lines: int | None = None) -> LinePhoto:
    """One photo of handwritten lines drawn from ``glyphs`` (ink bright, any size) with ``labels``."""
    if lines is None:
        lines = 2 if rng.random() < style.two_lines else 1
    height = rng.uniform(*style.height)
    placed, texts, boxes = [], [], []
    top = 0.0
    for _ in range(lines):
        n = int(rng.integers(style.chars[0], style.chars[1] + 1))
        slope = rng.uniform(*style.slope)
        x, row, row_boxes = 0.0, [], []
        picks = rng.integers(len(glyphs), size=n)
        for k in picks:
            h = height * rng.uniform(1 - style.size_jitter, 1 + style.size_jitter)
            ink = _ink(glyphs[k], h)
            if rng.random() < style.broken:
                ink = break_stroke(ink, rng)
            baseline = top + height + slope * x + rng.uniform(-1, 1) * style.baseline_jitter * height
            y0 = round(baseline - ink.shape[0])
            placed.append((ink, round(x), y0))
            row_boxes.append((round(x), y0, round(x) + ink.shape[1], y0 + ink.shape[0]))
            row.append(labels[k])
            x += ink.shape[1] + rng.uniform(*style.gap) * height
        texts.append("".join(row))
        boxes.append(row_boxes)
        top = max(b[3] for b in row_boxes) + rng.uniform(0.5, 0.9) * height
    # Canvas with a margin of about one character height around the ink.
    x0 = min(p[1] for p in placed)
    y0 = min(p[2] for p in placed)
    x1 = max(p[1] + p[0].shape[1] for p in placed)
    y1 = max(p[2] + p[0].shape[0] for p in placed)
    margin = (round(height * rng.uniform(0.6, 1.5)), round(height * rng.uniform(0.6, 1.5)))
    canvas = np.zeros((y1 - y0 + 2 * margin[0], x1 - x0 + 2 * margin[1]), dtype=np.float32)
    for ink, x, y in placed:
        r, c = y - y0 + margin[0], x - x0 + margin[1]
        region = canvas[r : r + ink.shape[0], c : c + ink.shape[1]]
        np.maximum(region, ink, out=region)
    shift = (margin[1] - x0, margin[0] - y0)
    boxes = [[(a + shift[0], b + shift[1], c + shift[0], d + shift[1]) for a, b, c, d in row] for row in boxes]
    return LinePhoto(photograph(canvas, rng, style), "\n".join(texts), boxes)


def photograph(ink: np.ndarray, rng: np.random.Generator, style: LineStyle = LineStyle()) -> Image.Image:
    """Ink (float, bright = ink) -> an RGB JPEG-compressed photo: paper, uneven light, blur, noise."""
    h, w = ink.shape
    paper, dark = rng.uniform(0.8, 0.95), rng.uniform(0.05, 0.3)
    grey = paper - (paper - dark) * ink
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = ((x / w - 0.5) * np.cos(angle) + (y / h - 0.5) * np.sin(angle)) / np.sqrt(0.5) + 0.5  # 0..1 across
    grey = grey * (1 - (1 - rng.uniform(*style.light)) * np.clip(ramp, 0, 1))
    image = Image.fromarray(np.clip(grey * 255, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(*style.blur)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(*style.noise) * 255, (h, w))
    tint = rng.uniform(0.9, 1.0, 3)
    rgb = np.clip(noisy[..., None] * tint, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(rng.integers(style.jpeg[0], style.jpeg[1] + 1)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def words_photo(path: Path) -> Path:
    """The typed words "12 345" in DejaVu Sans, dark on light paper, a word gap of about one character height."""
    image = Image.new("RGB", (640, 200), (240, 236, 226))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 80)
    draw.text((40, 50), "12", fill=(25, 25, 60), font=font)
    draw.text((40 + draw.textlength("12", font=font) + 60, 50), "345", fill=(25, 25, 60), font=font)
    image.save(path)
    return path


def huge_png(path: Path, side: int = 20_000) -> Path:
    """A PNG whose header says side x side pixels (400 megapixels) with a few rows of data: tiny on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (side + 1) * 4)) + chunk(b"IEND", b""))
    return path


def character_error_rate(read: list[str], truth: list[str]) -> float:
    """Total edit distance (Levenshtein: insertions, deletions, substitutions) over total reference length."""
    return sum(edit_distance(a, b) for a, b in zip(read, truth)) / max(1, sum(len(t) for t in truth))


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, the textbook dynamic programme."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]
