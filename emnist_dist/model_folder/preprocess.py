"""Turn a photo or scan of one handwritten character into a 28x28 glyph framed like a model's training data.

A user's image first needs what the NIST scans behind EMNIST and MNIST had: one grey channel,
the character as binary ink. Then it is framed the way the model's training glyphs were, as
measured at export (:mod:`emnist_dist.model_folder.framing`: the ink's size in the frame, its stroke
width, centring by bounding box or by centre of mass). :func:`to_model_framing` does, in order:

1. grey levels in [0, 1] from a file, a numpy array or a Pillow image (transparency on white
   paper (or on black, when that shows the drawing better), EXIF orientation applied, 16-bit and float
   images scaled from their value range);
2. even out the lighting (a smooth surface fitted to the image border, taken as paper), then
   binarise with Otsu's threshold; polarity: the border is paper, so dark ink on light paper
   becomes bright ink on black;
3. crop to the ink's bounding box and bring its stroke width into the range the training glyphs
   show (dilating hairlines, eroding marker strokes), at the crop's own resolution;
4. scale so its longer side spans the training glyphs' median share of the frame, at
   ``WORK_SCALE`` times the final resolution (antialiased);
5. place it with its bounding box or its centre of mass at the centre, average down to 28x28
   (antialiasing), stretch the intensities to 0..255.

The output is upright and white-on-black like the orientation-fixed EMNIST arrays.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import UserError
from .framing import GLYPH_SIDE, MEASURE_SCALE, Framing, centre_of_mass, stroke_widths

MAX_PIXELS = 50_000_000
"""Images with more pixels are refused before decoding (decompression-bomb guard; a 600 dpi A4 scan is ~35 MP)."""
MAX_SIDE = 1024
"""Larger images are downscaled to this longer side right after opening (JPEG: while decoding)."""
MIN_SIDE = 8
"""Smaller images cannot show a character."""
MIN_CONTRAST = 0.1
"""Ink and paper must differ by at least this much (intensities in [0, 1]), else the image is blank."""
MAX_PAPER_NOISE = 0.08
"""Lighting is only evened out when the border fits a smooth surface this closely (robust sigma)."""
WORK_SCALE = MEASURE_SCALE
"""The glyph is drawn at this multiple of 28 pixels, then averaged down: the resolution its framing was measured at."""
FIT_ROUNDS = 3
"""At most this many dilations or erosions bring the strokes into the framing's range."""

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class Photo:
    """An image file decoded once, upright: what a reader reads and draws on."""

    image: Image.Image
    """Decoded, EXIF orientation applied; a JPEG may be reduced while decoding (``open_photo``'s ``max_pixels``)."""
    size: tuple[int, int]
    """The file's own (width, height), upright: positions on the photo are given in these pixels."""
    name: str
    """The file's path, as errors name it."""


def open_photo(path: str | os.PathLike, max_pixels: int | None = None, colour: bool = False) -> Photo:
    """Decode an image file once: upright, a JPEG reduced while decoding to no less than ``MAX_SIDE`` on its
    longer side (or ``max_pixels`` pixels) and, unless ``colour``, decoded in grey.

    Raises UserError naming the file if it is missing, empty, not an image or larger than ``MAX_PIXELS``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file" if not path.exists() else f"{path}: not a file; expected an image")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file; expected an image (PNG, JPEG, ...)")
    with _image_errors(path):
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise UserError(
                        f"{path}: {width}x{height} pixels is more than the {MAX_PIXELS // 1_000_000} megapixels "
                        "accepted; expected a photo or scan of one character"
                    )
                upright = (height, width) if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (width, height)
                im.draft(None if colour else "L", _shrunk_size(width, height, max_pixels)[::-1])  # JPEG: reduced
                image = ImageOps.exif_transpose(im)  # a new, decoded image (a copy when already upright)
    return Photo(image, upright, str(path))


@contextmanager
def _image_errors(path: Path) -> Iterator[None]:
    """Pillow raises a zoo of exception types from its codecs (OSError, SyntaxError, EOFError, ValueError,
    struct.error ...) and warns about oversized images: every one of them means "this file is not a usable
    image", raised as one UserError naming the file."""
    try:
        yield
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - see the docstring
        detail = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise UserError(f"{path}: cannot read as an image ({detail})") from None


def read_grayscale(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as float32 ``(H, W)`` grey levels in [0, 1], at most ``MAX_SIDE`` on its longer side
    (or, given ``max_pixels``, at most that many pixels, whatever its shape: a long strip keeps its height).

    Transparent images are composited on white paper, the EXIF orientation of photos is
    applied, 16-bit and float images are scaled from their value range. Raises UserError naming
    the file if it is missing, empty, not an image, larger than ``MAX_PIXELS`` or holds
    non-finite pixels.
    """
    return load_grayscale(path, max_pixels=max_pixels)[0]


def pil_to_grayscale(im: Image.Image, name: str = "image") -> np.ndarray:
    """Any Pillow mode -> float32 grey levels in [0, 1]; transparency becomes paper (:func:`on_paper`)."""
    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):  # 16/32-bit integers (16-bit PNGs often open as "I"), floats
        return unit_range(np.asarray(im, dtype=np.float64), name)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        return on_paper(np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0, alpha)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def on_paper(gray: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Grey levels with an alpha channel composited on paper: white paper, unless black paper shows the drawing
    with more contrast (white ink on a transparent sheet, or ink cut out of an opaque one as transparent pixels)."""
    on_white = gray * alpha + (1.0 - alpha)
    on_black = gray * alpha
    return (on_black if float(on_black.std()) > float(on_white.std()) else on_white).astype(np.float32)


def array_to_grayscale(image: np.ndarray, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """A numpy image -> float32 grey levels in [0, 1], at most ``MAX_SIDE`` on its longer side.

    Accepts ``(H, W)``, ``(H, W, 1)``, grey + alpha ``(H, W, 2)``, RGB ``(H, W, 3)`` and RGBA ``(H, W, 4)``
    of bool, integer or float values; alpha is composited on paper (:func:`on_paper`), colour becomes luma
    (ITU-R 601 weights, as Pillow's ``convert("L")``), values are scaled from their range
    (:func:`unit_range`). Raises UserError naming ``name`` for other shapes or non-finite pixels.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (1, 2, 3, 4):
        channels = a.shape[2]
    elif a.ndim == 2:
        channels, a = 1, a[..., None]
    else:
        raise UserError(f"{name}: an array of shape {a.shape}: expected (H, W) grey or (H, W, C) "
                        "with 1 to 4 channels (grey, grey+alpha, RGB, RGBA)")
    if a.dtype == bool:
        a = a.astype(np.float64)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise UserError(f"{name}: an array of {a.dtype}: expected integer, float or bool pixels")
    a = unit_range(a.astype(np.float64), name)
    color, alpha = (a[..., :-1], a[..., -1:]) if channels in (2, 4) else (a, None)
    gray = color[..., 0] if color.shape[2] == 1 else color @ np.array([0.299, 0.587, 0.114])
    if alpha is not None:
        gray = on_paper(gray, alpha[..., 0])
    return _shrink(gray.astype(np.float32), max_pixels)


def unit_range(values: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey levels of any numeric range -> float32 in [0, 1], keeping their meaning where it is plain.

    Values within [0, 1] stay (float images); within [0, 255] are divided by 255; larger ones up to
    65535 by the largest value of their bit depth (2**12 - 1 for a 12-bit scan stored in 16 bits,
    2**16 - 1 for a full 16-bit one); any other range (negative values, 32-bit) is stretched from its
    minimum to its maximum. Raises UserError naming ``name`` when a pixel is NaN or infinite.
    """
    bad = ~np.isfinite(values)
    if bad.any():
        raise UserError(f"{name}: {int(bad.sum())} pixel value(s) are NaN or infinite: expected finite grey levels")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if low < 0 or high > 65535:
        return ((values - low) / max(high - low, 1e-12)).astype(np.float32)
    top = 1.0 if high <= 1 else 255.0 if high <= 255 else float(2 ** math.ceil(math.log2(high + 1)) - 1)
    return (values / top).astype(np.float32)


def _shrunk_size(width: int, height: int, max_pixels: int | None = None) -> tuple[int, int]:
    """(height, width) after shrinking to at most ``MAX_SIDE`` on the longer side, or to ``max_pixels`` pixels."""
    if max_pixels is None:
        scale = MAX_SIDE / max(height, width, 1)
    else:
        scale = math.sqrt(max_pixels / max(height * width, 1))
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _shrink(gray: np.ndarray, max_pixels: int | None = None) -> np.ndarray:
    """Area-downscale to ``_shrunk_size`` (bounded work for large photos)."""
    size = _shrunk_size(gray.shape[1], gray.shape[0], max_pixels)
    if size == gray.shape:
        return gray
    x = torch.from_numpy(np.ascontiguousarray(gray))[None, None]
    return F.interpolate(x, size=size, mode="area")[0, 0].numpy()


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1]: maximises the between-class variance.

    Written out because none of the project's dependencies offers it (no scipy/skimage).
    """
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centers)
    total = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total * w0 - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = 0.0
    return float(edges[int(np.argmax(between)) + 1])


def _border_band(height: int, width: int) -> np.ndarray:
    """Boolean mask of the outer band (5% of the shorter side, at least one pixel): taken as paper."""
    band = max(1, min(height, width) // 20)
    mask = np.zeros((height, width), dtype=bool)
    mask[:band], mask[-band:], mask[:, :band], mask[:, -band:] = True, True, True, True
    return mask


def flatten_illumination(gray: np.ndarray) -> np.ndarray:
    """Remove uneven lighting: subtract a quadratic surface fitted to the border band (taken as paper).

    Photos are often lit from one side; left alone, the gradient across the paper pulls
    Otsu's threshold into the paper and the "ink" becomes the shadowed half. The fit is
    redone once without the band pixels far from the first fit (ink touching the border).
    When even then the band is no smooth surface (a tight crop whose ink covers much of
    the border), or the lighting is even, the image comes back unchanged.
    """
    height, width = gray.shape
    ys, xs = np.nonzero(_border_band(height, width))
    step = max(1, len(ys) // 20_000)  # a subsample is plenty for six coefficients
    ys, xs = ys[::step], xs[::step]

    def basis(y: np.ndarray, x: np.ndarray) -> list[np.ndarray]:
        y, x = y / max(height - 1, 1) - 0.5, x / max(width - 1, 1) - 0.5
        return [np.ones_like(x), x, y, x * x, x * y, y * y]

    design = np.stack(basis(ys.astype(np.float64), xs.astype(np.float64)), axis=1)
    values = gray[ys, xs].astype(np.float64)
    keep = np.ones(len(values), dtype=bool)
    for _ in range(2):
        coef = np.linalg.lstsq(design[keep], values[keep], rcond=None)[0]
        residual = np.abs(values - design @ coef)
        keep = residual <= 3 * 1.4826 * np.median(residual[keep]) + 1e-3
    if 1.4826 * np.median(residual[keep]) > MAX_PAPER_NOISE or np.ptp(design[:, 1:] @ coef[1:]) < 1e-3:
        return gray
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    surface = sum(c * term for c, term in zip(coef, basis(y, x)))
    return np.clip(gray - surface + np.median(values[keep]), 0.0, 1.0).astype(np.float32)


def ink_mask(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey levels -> boolean mask of the ink, whatever the polarity.

    After :func:`flatten_illumination`, Otsu's threshold splits the image in two; the side
    that holds most of the border band is paper. When the band is split about evenly (a
    crop so tight that ink covers much of the border), the smaller side is the ink. Raises
    UserError (naming ``name``) for an image too small or too uniform to hold a character.
    """
    height, width = gray.shape
    if min(height, width) < MIN_SIDE:
        raise UserError(f"{name}: {width}x{height} pixels is too small; expected at least {MIN_SIDE}x{MIN_SIDE}")
    gray = flatten_illumination(gray)
    bright = gray > otsu_threshold(gray)
    band_bright = bright[_border_band(height, width)].mean()
    if band_bright >= 0.65:
        mask = ~bright
    elif band_bright <= 0.35:
        mask = bright
    else:
        mask = bright if bright.mean() < 0.5 else ~bright
    ink, paper = gray[mask], gray[~mask]
    if ink.size == 0 or paper.size == 0 or abs(float(np.median(ink) - np.median(paper))) < MIN_CONTRAST:
        raise UserError(f"{name}: no ink found (the image is blank or has too little contrast); "
                        "expected one dark character on light paper or a light one on dark")
    return mask


def load_grayscale(image: Photo | np.ndarray | Image.Image | str | os.PathLike, name: str | None = None,
                   max_pixels: int | None = None) -> tuple[np.ndarray, str]:
    """A file's path, a decoded :class:`Photo`, a Pillow image or a numpy array -> (grey levels in [0, 1] at most
    ``MAX_SIDE`` a side or ``max_pixels`` pixels, the name errors use: ``name``, else the path, else "image")."""
    if isinstance(image, (str, os.PathLike)):
        image = open_photo(image, max_pixels)
    if isinstance(image, Photo):
        name = name or image.name
        with _image_errors(Path(image.name)):
            return _shrink(pil_to_grayscale(image.image, name), max_pixels), name
    name = name or "image"
    if isinstance(image, Image.Image):
        return _shrink(pil_to_grayscale(ImageOps.exif_transpose(image), name), max_pixels), name
    return array_to_grayscale(image, name, max_pixels), name


def to_model_framing(image: np.ndarray | Image.Image | str | os.PathLike, framing: Framing,
                     name: str | None = None) -> np.ndarray:
    """A user's image of one character -> a 28x28 uint8 glyph framed like the model's training glyphs.

    The one conversion behind predict and the demo (see the module docstring for the steps).

    Args:
        image: an image file's path, a numpy array (see :func:`array_to_grayscale`) or a Pillow image.
        framing: the model's framing (``ModelInfo.framing``).
        name: how errors name the image (default: the path, or "image").

    Returns:
        upright glyph ``(28, 28)`` uint8, ink bright on black. Raises UserError naming the image when it
        cannot be read or shows no character.
    """
    gray, name = load_grayscale(image, name)
    return frame_ink(ink_mask(gray, name), framing)


def frame_ink(mask: np.ndarray, framing: Framing) -> np.ndarray:
    """A boolean ink mask holding one character -> the 28x28 uint8 glyph framed like the model's training glyphs
    (steps 3 to 5 of the module docstring: the ink is taken as it is, not thresholded again)."""
    rows, cols = np.nonzero(mask)
    crop = torch.from_numpy(mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32))
    work = WORK_SCALE * GLYPH_SIDE
    crop, scale = _fit_strokes(crop[None, None], framing, framing.box * work)
    h, w = crop.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    ink = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=scale < 1).clamp_(0, 1)
    if framing.centre == "mass":
        centre = centre_of_mass(ink)[0].tolist()
    else:
        centre = [size[0] / 2, size[1] / 2]
    canvas = _place(ink[0, 0], round(work / 2 - centre[0]), round(work / 2 - centre[1]), work)
    # The mean of each WORK_SCALE x WORK_SCALE block, as avg_pool2d gives it, but 80x faster on CPU (0.09 ms
    # against 7.7 ms for a 16x16 block): read frames thousands of candidates on a page of many marks.
    glyph = canvas.reshape(GLYPH_SIDE, WORK_SCALE, GLYPH_SIDE, WORK_SCALE).mean((1, 3))
    glyph = glyph / glyph.max().clamp(min=1e-12) * 255.0
    return glyph.round().to(torch.uint8).numpy()


def _fit_strokes(crop: torch.Tensor, framing: Framing, long_side: float) -> tuple[torch.Tensor, float]:
    """Bring a binary crop's stroke width into the framing's range; returns it and its scale to ``long_side``.

    Done at the crop's own resolution, before downscaling, so hairlines of a large photo are
    thickened before they could vanish. Dilating by g pixels adds 2g to a thin stroke's width and
    to the crop's sides (eroding takes them away), so g solves ``(w + 2g) * long_side / (longest + 2g)
    = target``; for broad strokes (a marker) that is only approximate, so it is redone, at most
    ``FIT_ROUNDS`` times.
    """
    for _ in range(FIT_ROUNDS):
        longest = max(crop.shape[-2:])
        width = float(stroke_widths(crop > 0.5)[0])  # in crop pixels
        scaled = width * long_side / longest  # in work pixels, WORK_SCALE per glyph pixel
        low, high = framing.stroke_low * WORK_SCALE, framing.stroke_high * WORK_SCALE
        target = low if scaled < low else high if scaled > high else None
        if target is None or target >= long_side:  # in range (or no stroke could be that wide)
            break
        g = (target * longest / long_side - width) / (2 - 2 * target / long_side)
        if g > 0:
            grow = math.ceil(g)
            crop = square_max(F.pad(crop, (grow,) * 4), grow)
        else:
            shrink = math.floor(-g)
            if shrink < 1:
                break
            eroded = -square_max(-F.pad(crop, (shrink,) * 4), shrink)[..., shrink:-shrink, shrink:-shrink]
            if not eroded.any():  # eroding would remove the whole character
                break
            crop = _crop_to_ink(eroded)
    return crop, long_side / max(crop.shape[-2:])


def square_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The maximum over each pixel's (2 radius + 1)^2 square of ``(N, C, H, W)`` (same size; outside counts as
    the lowest value), taken along columns, then along rows.

    Written out because a square ``max_pool2d`` costs the square of the window a pixel, and a page of scattered
    dots asks for a window of tens of pixels: minutes on one core. Here each direction takes
    log2(window) elementwise maxima of shifted copies (van Herk's idea, by doubling).
    """
    for dim in (-2, -1):
        x = _window_max(x, radius, dim)
    return x


def _window_max(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """The maximum over ``x[i - radius : i + radius + 1]`` along ``dim`` (-1 or -2), same size."""
    length, window = x.shape[dim], 2 * radius + 1
    m = F.pad(x, (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius), value=-math.inf)
    width = 1  # m[i] is the maximum over padded[i : i + width]
    while 2 * width <= window:
        m = torch.maximum(m.narrow(dim, 0, m.shape[dim] - width), m.narrow(dim, width, m.shape[dim] - width))
        width *= 2
    return torch.maximum(m.narrow(dim, 0, length), m.narrow(dim, window - width, length))


def _crop_to_ink(x: torch.Tensor) -> torch.Tensor:
    rows = torch.nonzero(x[0, 0].any(dim=1)).flatten()
    cols = torch.nonzero(x[0, 0].any(dim=0)).flatten()
    return x[..., rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(ink: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    """A ``side`` x ``side`` black canvas with ``ink`` pasted at (top, left); what falls outside is cut."""
    canvas = torch.zeros(side, side)
    h, w = ink.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, side), min(left + w, side)
    if r1 > r0 and c1 > c0:
        canvas[r0:r1, c0:c1] = ink[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas
