"""Digit sets framed like EMNIST and like MNIST, and photo-like renderings of their glyphs.

Both framings are re-done here from the papers with numpy and Pillow only, independently of
emnist_dist's own conversion: the synthetic glyphs (fonts, randomly distorted) are upsampled to
binary "scans" like NIST's, then converted as Cohen et al. (2017, EMNIST) and LeCun et al.
(1998, MNIST) describe. The sets are written as parquet files, a source the data layer reads.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageFilter

from emnist_dist.data.synthetic import render_glyphs

DIGITS = list(string.digits)
SCAN_SCALE = 4
"""A 28x28 synthetic glyph becomes a 112x112 binary scan, its character about 80-100 pixels tall as in NIST's."""


def binary_scan(glyph: np.ndarray) -> np.ndarray:
    """Upsample a 28x28 uint8 glyph 4x (bicubic) and threshold at half its peak: a bilevel scan."""
    big = np.asarray(Image.fromarray(glyph.astype(np.float32), "F").resize(
        (28 * SCAN_SCALE, 28 * SCAN_SCALE), Image.Resampling.BICUBIC))
    return big >= 0.5 * big.max()


def nist_reference(binary: np.ndarray) -> np.ndarray:
    """EMNIST's conversion of a binary NIST image (Cohen et al. 2017, fig. 1): Gaussian blur sigma=1,
    region of interest, centred in a square with a 2-pixel border, bicubic downsampling to 28x28,
    intensities scaled to 0..255."""
    taps = np.arange(-3, 4)
    kernel = np.exp(-(taps**2) / 2.0)
    kernel /= kernel.sum()
    canvas = np.pad(binary.astype(np.float64), 10)
    windows = np.lib.stride_tricks.sliding_window_view
    blurred = windows(np.pad(canvas, ((0, 0), (3, 3))), 7, axis=1) @ kernel  # along rows, then columns
    blurred = windows(np.pad(blurred, ((3, 3), (0, 0))), 7, axis=0) @ kernel
    rows, cols = np.nonzero(blurred > 1e-12)
    roi = blurred[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(roi.shape) + 2 * 2
    square = np.zeros((side, side))
    top, left = (side - roi.shape[0]) // 2, (side - roi.shape[1]) // 2
    square[top : top + roi.shape[0], left : left + roi.shape[1]] = roi
    small = np.asarray(Image.fromarray(square.astype(np.float32), "F").resize((28, 28), Image.Resampling.BICUBIC))
    small = np.clip(small, 0, None)
    return np.round(small / small.max() * 255).astype(np.uint8)


def mnist_reference(binary: np.ndarray) -> np.ndarray:
    """MNIST's conversion (LeCun et al. 1998): fit into a 20x20 box keeping the aspect ratio, with
    anti-aliasing (grey levels), then centre in 28x28 by the centre of mass (a whole-pixel shift)."""
    rows, cols = np.nonzero(binary)
    crop = binary[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)
    h, w = crop.shape
    scale = 20 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    box = np.asarray(Image.fromarray(crop, "F").resize(size, Image.Resampling.BOX), dtype=np.float64)
    ys, xs = np.mgrid[0 : box.shape[0], 0 : box.shape[1]] + 0.5
    com_y, com_x = (ys * box).sum() / box.sum(), (xs * box).sum() / box.sum()
    top, left = int(round(14 - com_y)), int(round(14 - com_x))
    frame = np.zeros((28, 28))
    r0, c0, r1, c1 = max(top, 0), max(left, 0), min(top + box.shape[0], 28), min(left + box.shape[1], 28)
    frame[r0:r1, c0:c1] = box[r0 - top : r1 - top, c0 - left : c1 - left]
    return np.round(frame / frame.max() * 255).astype(np.uint8)


FRAMINGS = {"emnist": nist_reference, "mnist": mnist_reference}


def framed_glyphs(framing: str, class_names: list[str], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` synthetic glyphs per class, framed as ``framing`` (emnist | mnist): uint8 (N, 28, 28), labels."""
    glyphs, labels = render_glyphs(class_names, per_class, seed)
    convert = FRAMINGS[framing]
    return np.stack([convert(binary_scan(g)) for g in glyphs]), labels


def write_parquet_source(folder: Path, framing: str, class_names: list[str], train_per_class: int,
                         test_per_class: int) -> Path:
    """``folder/train-*.parquet`` and ``folder/test-*.parquet`` (image: 28*28 uint8 lists stored
    transposed as in the NIST files, label), to pass as ``--data.source folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part, per_class, seed in (("train", train_per_class, 0), ("test", test_per_class, 1)):
        images, labels = framed_glyphs(framing, class_names, per_class, seed)
        stored = images.transpose(0, 2, 1).reshape(len(images), -1)
        table = pa.table({"image": pa.array(list(stored), type=pa.list_(pa.uint8())),
                          "label": pa.array(labels, type=pa.int64())})
        pq.write_table(table, folder / f"{part}-00000-of-00001.parquet")
    return folder


def photo_of(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photo-like picture of a glyph: dark ink on light paper, enlarged 4-12x, anywhere on a larger page,
    lit unevenly, blurred and noisy. Returns uint8 ``(H, W)``."""
    factor = rng.uniform(4, 12)
    side = round(28 * factor)
    big = np.asarray(Image.fromarray(glyph.astype(np.float32) / 255, "F").resize((side, side),
                                                                                  Image.Resampling.BICUBIC))
    paper, ink = rng.uniform(0.75, 0.95), rng.uniform(0.05, 0.3)
    height, width = side + rng.integers(0, side, 2)
    page = np.full((height, width), paper)
    top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    page[top : top + side, left : left + side] = paper - (paper - ink) * np.clip(big, 0, 1)
    page *= np.linspace(1.0, rng.uniform(0.8, 1.0), width)[None, :]  # light falling off across the page
    blurred = Image.fromarray((page * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.5)))
    noisy = np.asarray(blurred, dtype=np.float64) + rng.normal(0, 6, (height, width))
    return np.clip(noisy, 0, 255).astype(np.uint8)
