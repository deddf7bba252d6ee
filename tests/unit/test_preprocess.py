"""Turning a user's image into a glyph framed like the model's training data (emnist_dist.model_folder.preprocess).

References: EMNIST's and MNIST's conversions re-done from their papers with numpy and Pillow
(tests/helpers/framed_data.py), the geometry of hand-drawn rectangles worked out by hand, and the
same picture stored in other Pillow modes and as numpy arrays.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from emnist_dist.errors import UserError
from emnist_dist.model_folder.framing import NIST_FRAMING, Framing, measure_framing
from emnist_dist.model_folder.preprocess import (MAX_SIDE, _crop_to_ink, _place, otsu_threshold, read_grayscale,
                                                 to_model_framing)
from tests.helpers.framed_data import DIGITS, FRAMINGS, binary_scan, nist_reference, photo_of
from emnist_dist.data.synthetic import render_glyphs


def paper(height: int, width: int, *boxes: tuple[int, int, int, int], ink: float = 0.0, bg: float = 1.0) -> np.ndarray:
    """A float image of ``bg`` with filled rectangles ``(top, left, bottom, right)`` (exclusive) of ``ink``."""
    img = np.full((height, width), bg, dtype=np.float32)
    for top, left, bottom, right in boxes:
        img[top:bottom, left:right] = ink
    return img


# An "L" shape: a vertical bar and a foot, inside a 60x40 box.
L_SHAPE = ((0, 0, 60, 12), (48, 0, 60, 40))
# Plain geometry: the ink's longer side spans 3/4 of the frame (21 pixels), strokes are left as they are.
BOX = Framing(box=0.75, stroke_low=0.1, stroke_high=27.0, centre="box")
MASS = dataclasses.replace(BOX, centre="mass")


def shifted(boxes, dy, dx):
    return tuple((top + dy, left + dx, bottom + dy, right + dx) for top, left, bottom, right in boxes)


def bright_box(glyph: np.ndarray, level: int = 128) -> tuple[int, int, int, int]:
    """Rows/cols (first, last) of the pixels at least ``level``."""
    rows, cols = np.nonzero(glyph >= level)
    return rows.min(), rows.max(), cols.min(), cols.max()


def centre_of_mass(glyph: np.ndarray) -> tuple[float, float]:
    """(row, col) of the intensity-weighted centre, pixel i spanning [i, i + 1)."""
    ys, xs = np.mgrid[0:28, 0:28] + 0.5
    g = glyph.astype(np.float64)
    return (ys * g).sum() / g.sum(), (xs * g).sum() / g.sum()


def stroke_of(glyph: np.ndarray) -> float:
    return measure_framing(torch.from_numpy(glyph)[None]).measured["stroke"]


# ---------------------------------------------------------------------------------------------
# Geometry


@pytest.mark.parametrize("height, width", [(80, 20), (20, 80), (50, 50)])
def test_ink_box_spans_the_framing_share_is_centred_and_keeps_its_aspect_ratio(height, width):
    glyph = to_model_framing(paper(300, 400, (37, 51, 37 + height, 51 + width)), BOX)
    # By hand: the longer side becomes 0.75 * 28 = 21 pixels, the shorter one 21 * short / long.
    long_side, short_side = 21, 21 * min(height, width) / max(height, width)
    top, bottom, left, right = bright_box(glyph)
    expected_h, expected_w = (long_side, short_side) if height >= width else (short_side, long_side)
    assert abs(bottom - top + 1 - expected_h) <= 1 and abs(right - left + 1 - expected_w) <= 1
    assert abs(top - (27 - bottom)) <= 1 and abs(left - (27 - right)) <= 1  # equal margins: centred
    assert glyph.dtype == np.uint8 and glyph.shape == (28, 28) and glyph.max() == 255 and glyph[0, 0] == 0


def test_centring_by_box_or_by_mass():
    image = paper(200, 300, *shifted(L_SHAPE, 60, 90))
    by_box, by_mass = to_model_framing(image, BOX), to_model_framing(image, MASS)
    # The L's mass lies low and left of its box: centring the box leaves the mass off-centre ...
    row, col = centre_of_mass(by_box)
    assert row > 14.5 and col < 13.0
    top, bottom, left, right = bright_box(by_box)
    assert abs(top - (27 - bottom)) <= 1 and abs(left - (27 - right)) <= 1
    # ... centring the mass puts it within a quarter pixel (the work resolution) of the frame centre.
    row, col = centre_of_mass(by_mass)
    assert abs(row - 14) <= 0.3 and abs(col - 14) <= 0.3
    # The same ink either way (averaging down keeps the total): only the placement differs.
    assert int(by_box.sum()) == pytest.approx(int(by_mass.sum()), rel=0.02)


def test_polarity_dark_on_light_equals_light_on_dark():
    dark_on_light = paper(90, 70, *shifted(L_SHAPE, 10, 10))
    a, b = to_model_framing(dark_on_light, NIST_FRAMING), to_model_framing(1.0 - dark_on_light, NIST_FRAMING)
    np.testing.assert_array_equal(a, b)
    # The L's vertical bar is on the left, its foot at the bottom: upright, not mirrored.
    top, bottom, left, right = bright_box(a)
    assert a[top:bottom, left + 1].mean() > 200 and a[top:bottom - 6, right - 1].mean() < 20
    assert a[bottom - 1, left:right].mean() > 200


def test_position_and_canvas_size_do_not_matter():
    centred = to_model_framing(paper(80, 60, *shifted(L_SHAPE, 10, 10)), MASS)
    off_centre = to_model_framing(paper(200, 300, *shifted(L_SHAPE, 130, 230)), MASS)  # corner of a bigger page
    np.testing.assert_array_equal(centred, off_centre)
    row, col = centre_of_mass(centred)  # and both are the L framed by MASS: 21 pixels tall, mass at the centre
    top, bottom, _, _ = bright_box(centred)
    assert abs(row - 14) <= 0.3 and abs(col - 14) <= 0.3 and abs(bottom - top + 1 - 21) <= 1


@pytest.mark.parametrize("polarity", ["dark on light", "light on dark"])
def test_a_crop_so_tight_that_the_ink_covers_half_the_border(polarity):
    tight = paper(60, 40, *L_SHAPE)  # the L's bar and foot are the left and bottom edges of the image
    roomy = paper(90, 70, *shifted(L_SHAPE, 15, 12))
    if polarity == "light on dark":
        tight = 1.0 - tight
    glyph = to_model_framing(tight, BOX)
    np.testing.assert_array_equal(glyph, to_model_framing(roomy, BOX))
    top, bottom, left, right = bright_box(glyph)  # by hand: the L's 60 rows become 21, its 40 columns 14
    assert abs(bottom - top + 1 - 21) <= 1 and abs(right - left + 1 - 14) <= 1
    assert abs(top - (27 - bottom)) <= 1 and abs(left - (27 - right)) <= 1


def test_uneven_lighting_is_evened_out_before_thresholding():
    even = paper(300, 400, *shifted(L_SHAPE, 120, 170), ink=0.1)
    # Lit from the left: the paper darkens from 1.0 to 0.45 across the page (ink darkens with it).
    shaded = even * np.linspace(1.0, 0.45, 400, dtype=np.float32)[None, :]
    # The gradient is strong enough to fool a plain Otsu threshold: it falls inside the paper's range,
    # so far more than the ink would be taken as ink.
    t = otsu_threshold(shaded)
    assert (shaded <= t).mean() > 10 * (even < 0.5).mean()
    a, b = to_model_framing(shaded, NIST_FRAMING), to_model_framing(even, NIST_FRAMING)
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
    assert_like_nist_conversion(b, even < 0.5)


def test_strokes_are_brought_into_the_framing_range():
    hairline = paper(300, 300, (40, 100, 240, 101), (239, 100, 240, 200))  # 1-pixel "L", 200 pixels tall
    marker = paper(300, 300, (40, 100, 240, 180), (160, 100, 240, 260))  # strokes 40% of its height
    untouched = dataclasses.replace(BOX, stroke_low=0.1, stroke_high=27.0)
    fitted = dataclasses.replace(BOX, stroke_low=2.0, stroke_high=4.0)
    # Left alone, the hairline comes out about a pixel wide and the marker strokes about 8 pixels.
    assert stroke_of(to_model_framing(hairline, untouched)) < 1.6
    assert stroke_of(to_model_framing(marker, untouched)) > 6.0
    # Fitted, both land in (about) the 2..4 pixel range, the glyph still spanning 21 pixels.
    for image in (hairline, marker):
        glyph = to_model_framing(image, fitted)
        assert 1.8 <= stroke_of(glyph) <= 4.4
        top, bottom, left, right = bright_box(glyph)
        assert abs(max(bottom - top, right - left) + 1 - 21) <= 1.5


def test_the_crop_after_thinning_a_broad_stroke_is_the_inks_bounding_box():
    x = torch.zeros(1, 1, 10, 12)
    x[0, 0, 2, 4] = x[0, 0, 6, 3] = x[0, 0, 4, 9] = 1.0  # rows 2 to 6, columns 3 to 9
    torch.testing.assert_close(_crop_to_ink(x), x[..., 2:7, 3:10])


@pytest.mark.parametrize("top, left", [(0, 0), (2, 1), (-1, -2), (4, 5), (1, 6)])
def test_placing_ink_on_the_canvas_cuts_what_falls_outside(top, left):
    ink = torch.arange(1.0, 13.0).reshape(3, 4)
    expected = torch.zeros(16, 16)  # the canvas with a margin of 3 all round, placed in by plain slicing
    expected[3 + top : 6 + top, 3 + left : 7 + left] = ink
    torch.testing.assert_close(_place(ink, top, left, 5), expected[3:8, 3:8])


def otsu_by_brute_force(values: np.ndarray, bins: int) -> float:
    """Otsu's definition cut by cut: the upper edge of the last bin of the dark class that maximises
    w0 w1 (mu0 - mu1)^2 over the histogram's bin centres."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    best, best_cut = -1.0, 0
    for cut in range(bins - 1):
        dark, light = hist[: cut + 1], hist[cut + 1 :]
        if not dark.sum() or not light.sum():  # one class empty: no split
            continue
        w0, w1 = dark.sum() / hist.sum(), light.sum() / hist.sum()
        mu0, mu1 = (dark * centres[: cut + 1]).sum() / dark.sum(), (light * centres[cut + 1 :]).sum() / light.sum()
        if w0 * w1 * (mu0 - mu1) ** 2 > best:
            best, best_cut = w0 * w1 * (mu0 - mu1) ** 2, cut
    return float(edges[best_cut + 1])


def test_otsu_threshold_is_the_definitions():
    rng = np.random.default_rng(1)  # two levels on a background that fills every bin: one best cut
    values = np.concatenate([rng.normal(0.3, 0.08, 4000), rng.normal(0.75, 0.05, 2000), rng.uniform(0.02, 0.98, 3000)])
    values = values.clip(0.02, 0.98)
    assert otsu_threshold(values) == otsu_by_brute_force(values, 256)
    assert otsu_threshold(values, bins=16) == otsu_by_brute_force(values, 16)


def test_otsu_threshold_separates_two_levels():
    values = np.concatenate([np.full(900, 0.2), np.full(100, 0.8)])
    assert 0.2 < otsu_threshold(values) <= 0.8
    rng = np.random.default_rng(0)
    noisy = np.clip(np.concatenate([rng.normal(0.9, 0.03, 5000), rng.normal(0.3, 0.05, 500)]), 0, 1)
    assert 0.45 < otsu_threshold(noisy) < 0.75


# ---------------------------------------------------------------------------------------------
# EMNIST's and MNIST's framings, from their papers


@pytest.fixture(scope="module")
def references():
    """Per framing: 30 synthetic digits converted as its paper says, and their measured framing."""
    glyphs, _ = render_glyphs(DIGITS, 3, seed=5)
    scans = [binary_scan(g) for g in glyphs]
    out = {}
    for name, convert in FRAMINGS.items():
        framed = np.stack([convert(scan) for scan in scans])
        out[name] = framed, measure_framing(torch.from_numpy(framed))
    return out


def test_the_papers_framings_are_measured_as_described(references):
    emnist, mnist = references["emnist"][1], references["mnist"][1]
    # EMNIST: the character fills the frame up to the 2-pixel border (and the blur's spread), box centred.
    assert emnist.centre == "box" and 0.85 <= emnist.box <= 0.93
    # MNIST: the longer side is 20 of the 28 pixels (within the quarter-pixel measuring step), mass centred.
    assert mnist.centre == "mass" and abs(mnist.box * 28 - 20) <= 0.5
    # MNIST's strokes come out thinner: the same scans, drawn smaller.
    assert mnist.measured["stroke"] < 0.9 * emnist.measured["stroke"]
    assert mnist.measured["mass_offset"] < 0.5 <= emnist.measured["mass_offset"]


@pytest.mark.parametrize("name", list(FRAMINGS))
def test_photos_of_framed_glyphs_come_back_framed_the_same_way(references, name):
    framed, framing = references[name]
    other = references["mnist" if name == "emnist" else "emnist"][1]
    rng = np.random.default_rng(1)
    photos = [photo_of(g, rng) for g in framed]
    ours = np.stack([to_model_framing(p, framing) for p in photos])
    again = measure_framing(torch.from_numpy(ours))
    assert abs(again.box - framing.box) <= 0.02 and again.centre == framing.centre
    # Pixel by pixel close to the paper's own conversion, much closer than the other framing gets.
    diff = np.abs(ours.astype(int) - framed.astype(int)).mean()
    wrong = np.stack([to_model_framing(p, other) for p in photos])
    assert diff < 14 and diff < 0.6 * np.abs(wrong.astype(int) - framed.astype(int)).mean()


def test_first_version_framing_matches_the_nist_conversion():
    # Model folders without a measured framing get NIST_FRAMING: a NIST-sized binary character comes
    # out about as the paper's conversion makes it.
    binary = 1.0 - paper(128, 128, (16, 40, 112, 56), (16, 40, 32, 88), (56, 40, 70, 80))  # an "F"
    ours = to_model_framing(binary, NIST_FRAMING).astype(int)
    ref = nist_reference(binary > 0.5).astype(int)
    assert np.abs(ours - ref).mean() < 8
    assert bright_box(ours) == pytest.approx(bright_box(ref), abs=1)


# ---------------------------------------------------------------------------------------------
# Numpy arrays and float images


def assert_like_nist_conversion(glyph: np.ndarray, ink: np.ndarray) -> None:
    """``glyph`` is about what EMNIST's paper conversion makes of the binary ``ink`` (re-done in numpy): the
    same bright box within a pixel, grey levels within 16 on average (measured: 13.2 for the bold L, whose
    strokes NIST_FRAMING brings into its range; the paper's conversion keeps them)."""
    reference = nist_reference(ink)
    assert bright_box(glyph) == pytest.approx(bright_box(reference), abs=1)
    assert np.abs(glyph.astype(int) - reference.astype(int)).mean() < 16


@functools.cache
def checked_l_glyph() -> np.ndarray:
    """The dark-on-light L's glyph under NIST_FRAMING, checked against the paper's conversion: the reference
    the same picture in other types, modes and files must give."""
    image = paper(90, 70, *shifted(L_SHAPE, 15, 12))
    glyph = to_model_framing(image, NIST_FRAMING)
    assert_like_nist_conversion(glyph, image < 0.5)
    return glyph


def _l_rgb() -> np.ndarray:
    gray = (paper(90, 70, *shifted(L_SHAPE, 15, 12)) * 255).astype(np.uint8)
    return np.stack([gray, gray, gray], axis=2)


@pytest.mark.parametrize("make", [
    pytest.param(lambda rgb: rgb, id="RGB-uint8"),
    pytest.param(lambda rgb: rgb[..., 0], id="gray-uint8"),
    pytest.param(lambda rgb: rgb[..., :1], id="HxWx1"),
    pytest.param(lambda rgb: rgb[..., 0].astype(np.float64) / 255, id="gray-float-0-1"),
    pytest.param(lambda rgb: rgb.astype(np.float32), id="RGB-float-0-255"),
    pytest.param(lambda rgb: rgb[..., 0].astype(np.uint16) * 257, id="gray-uint16"),
    pytest.param(lambda rgb: rgb[..., 0] > 127, id="bool"),
    pytest.param(lambda rgb: np.dstack([np.zeros_like(rgb), 255 - rgb[..., :1]]), id="RGBA-ink-on-transparent"),
])
def test_arrays_give_the_glyph_of_the_same_picture_as_a_file(tmp_path, make):
    path = tmp_path / "l.png"
    Image.fromarray(_l_rgb()).save(path)
    np.testing.assert_array_equal(to_model_framing(make(_l_rgb()), NIST_FRAMING), to_model_framing(path, NIST_FRAMING))
    np.testing.assert_array_equal(to_model_framing(path, NIST_FRAMING), checked_l_glyph())


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 3, 5, 7)), "shape"),
    (np.array([["a"] * 20] * 20), "expected integer, float or bool"),
    (np.where(np.eye(20) > 0, np.nan, 1.0), "NaN or infinite"),
])
def test_bad_arrays_are_one_line(array, message):
    with pytest.raises(UserError, match=message) as err:
        to_model_framing(array, NIST_FRAMING, name="camera frame")
    assert str(err.value).startswith("camera frame: ") and "\n" not in str(err.value)


@pytest.mark.parametrize("scale", [1.0, 255.0], ids=["float-0-1", "float-0-255"])
def test_float_tiff_is_scaled_from_its_value_range(tmp_path, scale):
    png, tiff = tmp_path / "l.png", tmp_path / "l.tiff"
    gray = _l_rgb()[..., 0]
    Image.fromarray(gray).save(png)
    Image.fromarray(gray.astype(np.float32) / 255 * scale, "F").save(tiff)
    with Image.open(tiff) as reopened:
        assert reopened.mode == "F"
    np.testing.assert_array_equal(to_model_framing(tiff, NIST_FRAMING), to_model_framing(png, NIST_FRAMING))
    np.testing.assert_array_equal(to_model_framing(png, NIST_FRAMING), checked_l_glyph())


def test_float_tiff_with_non_finite_pixels_is_refused(tmp_path):
    values = _l_rgb()[..., 0].astype(np.float32) / 255
    values[3, 4], values[5, 6] = np.nan, np.inf
    path = tmp_path / "nan.tiff"
    Image.fromarray(values, "F").save(path)
    with pytest.raises(UserError) as err:
        to_model_framing(path, NIST_FRAMING)
    assert str(err.value) == f"{path}: 2 pixel value(s) are NaN or infinite: expected finite grey levels"


# ---------------------------------------------------------------------------------------------
# Files: modes, orientation, size limits, bad input


def _l_image() -> Image.Image:
    """A binary dark-on-light "L" in mode L (exactly representable in every mode)."""
    return Image.fromarray((paper(90, 70, *shifted(L_SHAPE, 15, 12)) * 255).astype(np.uint8), "L")


@pytest.fixture
def reference_glyph(tmp_path):
    path = tmp_path / "ref.png"
    _l_image().save(path)
    glyph = to_model_framing(path, NIST_FRAMING)
    np.testing.assert_array_equal(glyph, checked_l_glyph())
    return glyph


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
    np.testing.assert_array_equal(to_model_framing(path, NIST_FRAMING), reference_glyph)


def test_palette_with_transparency_is_composited_on_white(tmp_path, reference_glyph):
    ink = np.asarray(_l_image()) == 0
    image = Image.fromarray(np.where(ink, 1, 0).astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)  # both entries black ...
    image.info["transparency"] = 0  # ... but the background entry is transparent
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    np.testing.assert_array_equal(to_model_framing(path, NIST_FRAMING), reference_glyph)


def test_exif_orientation_of_photos_is_applied(tmp_path, reference_glyph):
    # A phone stores the sensor image rotated and says so in EXIF (orientation 6: rotate 90 CW to view).
    upright = _l_image()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    stored.save(path, quality=95, exif=exif)
    glyph = to_model_framing(path, NIST_FRAMING).astype(int)
    assert np.abs(glyph - reference_glyph.astype(int)).mean() < 6


def test_large_photo_is_downscaled_while_reading(tmp_path):
    big = paper(3000, 4000, (1000, 1500, 2200, 1800), (1900, 1500, 2200, 2300))  # a big "L"
    path = tmp_path / "big.jpg"
    Image.fromarray((big * 255).astype(np.uint8)).save(path, quality=90)
    gray = read_grayscale(path)
    assert max(gray.shape) <= MAX_SIDE and gray.shape[1] > gray.shape[0]
    small = paper(300, 400, (100, 150, 220, 180), (190, 150, 220, 230))
    assert np.abs(to_model_framing(gray, NIST_FRAMING).astype(int) - to_model_framing(small, NIST_FRAMING).astype(int)).mean() < 6
    assert_like_nist_conversion(to_model_framing(small, NIST_FRAMING), small < 0.5)


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
        to_model_framing(path, NIST_FRAMING)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


def test_truncated_png_is_a_user_error(tmp_path):
    good = tmp_path / "good.png"
    _l_image().resize((400, 300)).save(good)
    bad = tmp_path / "cut.png"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match="cannot read as an image"):
        to_model_framing(bad, NIST_FRAMING)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        to_model_framing(tmp_path / "nope.png", NIST_FRAMING)


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
    with pytest.raises(UserError, match=message) as err:
        to_model_framing(path, NIST_FRAMING)
    assert str(err.value).startswith(f"{path}: ")  # the culprit named


def test_the_smallest_side_accepted_is_eight_pixels(tmp_path):
    def picture(height: int, width: int):
        pixels = np.full((height, width), 255, np.uint8)
        pixels[1:-1, width // 2 - 1 : width // 2 + 1] = 0  # a dark bar, a "1", on white paper
        path = tmp_path / f"{width}x{height}.png"
        Image.fromarray(pixels, "L").save(path)
        return path

    glyph = to_model_framing(picture(8, 8), NIST_FRAMING)  # the limit itself is accepted
    assert glyph.shape == (28, 28) and glyph.max() == 255
    for height, width in ((7, 8), (8, 7)):
        path = picture(height, width)
        with pytest.raises(UserError) as err:
            to_model_framing(path, NIST_FRAMING)
        assert str(err.value) == f"{path}: {width}x{height} pixels is too small; expected at least 8x8"
