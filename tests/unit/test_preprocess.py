"""The NIST-style preprocessing of a user's image (emnist_dist.preprocess) against hand-made cases.

References: the EMNIST paper's conversion re-done with numpy and Pillow only, the geometry of
hand-drawn rectangles worked out by hand, and the same picture stored in other Pillow modes.
"""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from emnist_dist.errors import UserError
from emnist_dist.inference.preprocess import (
    BORDER,
    MAX_SIDE,
    WORK_SIDE,
    otsu_threshold,
    preprocess_file,
    read_grayscale,
    to_emnist,
)


def paper(height: int, width: int, *boxes: tuple[int, int, int, int], ink: float = 0.0, bg: float = 1.0) -> np.ndarray:
    """A float image of ``bg`` with filled rectangles ``(top, left, bottom, right)`` (exclusive) of ``ink``."""
    img = np.full((height, width), bg, dtype=np.float32)
    for top, left, bottom, right in boxes:
        img[top:bottom, left:right] = ink
    return img


# An "L" shape: a vertical bar and a foot, inside a 60x40 box.
L_SHAPE = ((0, 0, 60, 12), (48, 0, 60, 40))


def shifted(boxes, dy, dx):
    return tuple((top + dy, left + dx, bottom + dy, right + dx) for top, left, bottom, right in boxes)


def bright_box(glyph: np.ndarray, level: int = 128) -> tuple[int, int, int, int]:
    """Rows/cols (first, last) of the pixels at least ``level``."""
    rows, cols = np.nonzero(glyph >= level)
    return rows.min(), rows.max(), cols.min(), cols.max()


def nist_reference(binary: np.ndarray) -> np.ndarray:
    """EMNIST's conversion of a binary NIST image (Cohen et al. 2017, fig. 1) with numpy + Pillow:
    Gaussian blur sigma=1, region of interest, centred in a square with a 2-pixel border,
    bicubic downsampling to 28x28, intensities scaled to 0..255."""
    taps = np.arange(-3, 4)
    kernel = np.exp(-(taps**2) / 2.0)
    kernel /= kernel.sum()
    canvas = np.pad(binary.astype(np.float64), 10)
    blurred = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, canvas)
    blurred = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, blurred)
    rows, cols = np.nonzero(blurred > 1e-12)
    roi = blurred[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = max(roi.shape) + 2 * 2
    square = np.zeros((side, side))
    top, left = (side - roi.shape[0]) // 2, (side - roi.shape[1]) // 2
    square[top : top + roi.shape[0], left : left + roi.shape[1]] = roi
    small = np.asarray(Image.fromarray(square.astype(np.float32), "F").resize((28, 28), Image.Resampling.BICUBIC))
    small = np.clip(small, 0, None)
    return np.round(small / small.max() * 255).astype(np.uint8)


def test_matches_the_paper_conversion_on_a_binary_nist_sized_character():
    # Ink box 96x48 at NIST scale: no rescaling happens, so the output must be the paper's conversion.
    binary = 1.0 - paper(128, 128, (16, 40, 112, 56), (16, 40, 32, 88), (56, 40, 70, 80))  # an "F"
    assert WORK_SIDE == 96
    ours = to_emnist(binary).astype(int)
    ref = nist_reference(binary).astype(int)
    assert np.abs(ours - ref).max() <= 1  # rounding only (Pillow's bicubic = torch's antialiased bicubic)


def test_polarity_dark_on_light_equals_light_on_dark():
    dark_on_light = paper(90, 70, *shifted(L_SHAPE, 10, 10))
    light_on_dark = 1.0 - dark_on_light
    a, b = to_emnist(dark_on_light), to_emnist(light_on_dark)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == (28, 28)
    assert a.max() == 255 and a[0, 0] == 0  # ink bright, background black
    # The L's vertical bar is on the left, its foot at the bottom: upright, not mirrored.
    assert a[5:20, 8].mean() > 200 and a[5:20, 20].mean() < 20
    assert a[23, 8:20].mean() > 200


def test_position_and_canvas_size_do_not_matter():
    centred = to_emnist(paper(80, 60, *shifted(L_SHAPE, 10, 10)))
    off_centre = to_emnist(paper(200, 300, *shifted(L_SHAPE, 130, 230)))  # bottom-right corner of a bigger page
    np.testing.assert_array_equal(centred, off_centre)


@pytest.mark.parametrize("height, width", [(80, 20), (20, 80), (50, 50)])
def test_ink_box_is_centred_with_the_margin_and_keeps_its_aspect_ratio(height, width):
    img = paper(300, 400, (37, 51, 37 + height, 51 + width))
    glyph = to_emnist(img)
    # Hand geometry: the longer side becomes 96 px, the blur adds 3 px on each side, the square a 2 px border;
    # the blurred edge of a solid box stays where the box edge was (half of the peak), then x 28/side.
    long_ink = WORK_SIDE
    short_ink = WORK_SIDE * min(height, width) / max(height, width)
    side = long_ink + 2 * 3 + 2 * BORDER
    scale = 28 / side
    expected_long, expected_short = long_ink * scale, short_ink * scale
    top, bottom, left, right = bright_box(glyph, level=128)
    measured_h, measured_w = bottom - top + 1, right - left + 1
    expected_h, expected_w = (expected_long, expected_short) if height >= width else (expected_short, expected_long)
    assert abs(measured_h - expected_h) <= 1.0 and abs(measured_w - expected_w) <= 1.0
    # Centred: equal margins (within a pixel) on both axes.
    assert abs(top - (27 - bottom)) <= 1 and abs(left - (27 - right)) <= 1
    # The margin on the long axis is the blur's spread plus the border, (3 + 2) * 28 / 106 = 1.3 px:
    # the first bright pixel is the first whose centre (i + 0.5) lies past it, row/col 1.
    margin = (3 + BORDER) * scale
    first = top if height >= width else left
    assert first == math.ceil(margin - 0.5) == 1
    # Nothing is cut: the outermost rows/cols hold at most the faint tail of the blur.
    assert glyph[[0, 27], :].max() < 64 and glyph[:, [0, 27]].max() < 64


@pytest.mark.parametrize("polarity", ["dark on light", "light on dark"])
def test_a_crop_so_tight_that_the_ink_covers_half_the_border(polarity):
    tight = paper(60, 40, *L_SHAPE)  # the L's bar and foot are the left and bottom edges of the image
    roomy = paper(90, 70, *shifted(L_SHAPE, 15, 12))
    if polarity == "light on dark":
        tight = 1.0 - tight
    np.testing.assert_array_equal(to_emnist(tight), to_emnist(roomy))


def test_uneven_lighting_is_evened_out_before_thresholding():
    even = paper(300, 400, *shifted(L_SHAPE, 120, 170), ink=0.1)
    # Lit from the left: the paper darkens from 1.0 to 0.45 across the page (ink darkens with it).
    light = np.linspace(1.0, 0.45, 400, dtype=np.float32)[None, :]
    shaded = even * light
    # The gradient is strong enough to fool a plain Otsu threshold: it falls inside the paper's range,
    # so far more than the ink would be taken as ink.
    t = otsu_threshold(shaded)
    assert (shaded <= t).mean() > 10 * (even < 0.5).mean()
    assert np.abs(to_emnist(shaded).astype(int) - to_emnist(even).astype(int)).mean() < 3


def test_hairline_strokes_are_thickened_like_a_pen():
    thin = paper(300, 300, (40, 100, 240, 101), (239, 100, 240, 200))  # 1-pixel "L", 200 pixels tall
    thick = paper(300, 300, (40, 100, 240, 114), (226, 100, 240, 200))  # same L, strokes 7% of its height
    a, b = to_emnist(thin), to_emnist(thick)
    # Both come out with strokes of about the same weight (7% of 96 is about MIN_STROKE at the NIST stage);
    # left alone, the hairline gives a 1-pixel line: 0.75x the bright pixels, mean difference 17.
    assert 0.85 < (a >= 128).sum() / (b >= 128).sum() < 1.5
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 13


def test_otsu_threshold_separates_two_levels():
    values = np.concatenate([np.full(900, 0.2), np.full(100, 0.8)])
    t = otsu_threshold(values)
    assert 0.2 < t <= 0.8
    rng = np.random.default_rng(0)
    noisy = np.clip(np.concatenate([rng.normal(0.9, 0.03, 5000), rng.normal(0.3, 0.05, 500)]), 0, 1)
    t = otsu_threshold(noisy)
    assert 0.45 < t < 0.75


# ---------------------------------------------------------------------------------------------
# Files: modes, orientation, size limits, bad input


def _l_image() -> Image.Image:
    """A binary dark-on-light "L" in mode L (exactly representable in every mode)."""
    return Image.fromarray((paper(90, 70, *shifted(L_SHAPE, 15, 12)) * 255).astype(np.uint8), "L")


@pytest.fixture
def reference_glyph(tmp_path):
    path = tmp_path / "ref.png"
    _l_image().save(path)
    return preprocess_file(path)


def _transparent(mode: str) -> Image.Image:
    """Black ink on a fully transparent BLACK background: only compositing on white shows the ink."""
    ink = np.asarray(_l_image()) == 0
    if mode == "RGBA":
        arr = np.zeros((*ink.shape, 4), np.uint8)
        arr[..., 3] = np.where(ink, 255, 0)
    else:  # LA
        arr = np.zeros((*ink.shape, 2), np.uint8)
        arr[..., 1] = np.where(ink, 255, 0)
    return Image.fromarray(arr, mode)


def _sixteen_bit(low: int, high: int) -> Image.Image:
    values = np.where(np.asarray(_l_image()) == 0, low, high).astype(np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    return image


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _l_image().convert("RGB"), id="RGB"),
        pytest.param(lambda: _transparent("RGBA"), id="RGBA-transparent"),
        pytest.param(lambda: _transparent("LA"), id="LA-transparent"),
        pytest.param(lambda: _l_image().convert("P"), id="P"),
        pytest.param(lambda: _l_image().convert("1"), id="1"),
        pytest.param(lambda: _sixteen_bit(0, 65535), id="I;16-full-range"),
        # Ink and paper both above 255: a plain convert("L") would clip both to white.
        pytest.param(lambda: _sixteen_bit(5000, 40000), id="I;16-narrow-range"),
    ],
)
def test_image_modes_give_the_same_glyph(tmp_path, reference_glyph, make):
    image = make()
    path = tmp_path / "glyph.png"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode[:1] == image.mode[:1]  # the file really is in that mode family
    np.testing.assert_array_equal(preprocess_file(path), reference_glyph)


def test_palette_with_transparency_is_composited_on_white(tmp_path, reference_glyph):
    ink = np.asarray(_l_image()) == 0
    image = Image.fromarray(np.where(ink, 1, 0).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)  # both entries black ...
    image.info["transparency"] = 0  # ... but the background entry is transparent
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    np.testing.assert_array_equal(preprocess_file(path), reference_glyph)


def test_exif_orientation_of_photos_is_applied(tmp_path, reference_glyph):
    # A phone stores the sensor image rotated and says so in EXIF (orientation 6: rotate 90 CW to view).
    upright = _l_image()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    stored.save(path, quality=95, exif=exif)
    glyph = preprocess_file(path).astype(int)
    assert np.abs(glyph - reference_glyph.astype(int)).mean() < 6


def test_large_photo_is_downscaled_while_reading(tmp_path):
    big = paper(3000, 4000, (1000, 1500, 2200, 1800), (1900, 1500, 2200, 2300))  # a big "L"
    path = tmp_path / "big.jpg"
    Image.fromarray((big * 255).astype(np.uint8)).save(path, quality=90)
    gray = read_grayscale(path)
    assert max(gray.shape) <= MAX_SIDE and gray.shape[1] > gray.shape[0]
    small = paper(300, 400, (100, 150, 220, 180), (190, 150, 220, 230))
    assert np.abs(to_emnist(gray).astype(int) - to_emnist(small).astype(int)).mean() < 6


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels but carries (almost) no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("notes.png", b"this is not an image\n", "cannot read as an image"),
        ("empty.png", b"", "empty file"),
        ("bomb.png", _png_header_only(30000, 30000), "cannot read as an image"),  # Pillow's own bomb error
        ("huge.png", _png_header_only(8000, 8000), "megapixels"),  # above our limit, below Pillow's
    ],
)
def test_unreadable_files_raise_one_line_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        preprocess_file(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_truncated_png_is_a_user_error(tmp_path):
    good = tmp_path / "good.png"
    _l_image().resize((400, 300)).save(good)
    bad = tmp_path / "cut.png"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="cannot read as an image"):
        preprocess_file(bad)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        preprocess_file(tmp_path / "nope.png")


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.zeros((1, 1), np.uint8), "too small"),
        (np.full((100, 100), 255, np.uint8), "no ink found"),
        (np.full((100, 100), 0, np.uint8), "no ink found"),
        (np.random.default_rng(0).normal(200, 4, (120, 160)).clip(0, 255).astype(np.uint8), "no ink found"),
    ],
    ids=["1x1", "all-white", "all-black", "blank-noisy-paper"],
)
def test_images_without_a_character_are_refused(tmp_path, pixels, message):
    path = tmp_path / "blank.png"
    Image.fromarray(pixels, "L").save(path)
    with pytest.raises(UserError, match=message):
        preprocess_file(path)
