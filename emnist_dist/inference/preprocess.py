"""Turn a photo or scan of one handwritten character into an EMNIST-like 28x28 glyph.

EMNIST was made from the NIST 128x128 binary scans by (Cohen et al. 2017, fig. 1):
Gaussian blur with sigma=1, crop to the character's region, centre it in a square
keeping the aspect ratio with a 2-pixel border, bicubic downsampling to 28x28 and
rescaling the intensities to 0..255. A user's image first needs what NIST already
had: one grey channel, bright ink on a black background, and the character at about
the NIST scale. So :func:`to_emnist` does, in order:

1. even out the lighting (a smooth surface fitted to the image border, taken as paper),
   then binarise with Otsu's threshold, like the binary NIST scans; polarity: the
   border is paper, so dark ink on light paper becomes bright ink on black;
2. crop to the ink's bounding box;
3. scale the crop so its longer side is ``WORK_SIDE`` pixels (the NIST stage), thickening
   strokes thinner than ``MIN_STROKE`` pixels there (a pen-width match, not in the paper);
4. the NIST conversion itself: blur (sigma=1), square frame with a 2-pixel border,
   bicubic (antialiased) downsampling to 28x28, intensities stretched to 0..255.

The output is upright and white-on-black like the orientation-fixed EMNIST arrays.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..errors import UserError

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
WORK_SIDE = 96
"""Longer side of the ink at the NIST stage, where the sigma=1 blur and the 2-pixel border apply."""
MIN_STROKE = 6
"""Thinner strokes (in pixels at the NIST stage) are thickened: EMNIST's pen strokes come out 2-3 pixels
wide at 28x28, while a ball-point pen photographed up close would come out as a faint hairline."""
BLUR_SIGMA = 1.0
BORDER = 2
GLYPH_SIDE = 28

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def read_grayscale(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as float32 ``(H, W)`` grey levels in [0, 1], at most ``MAX_SIDE`` on its longer side.

    Transparent images are composited on white paper, the EXIF orientation of photos is
    applied, 16-bit images keep their precision. Raises UserError naming the file if it
    is missing, empty, not an image, or larger than ``MAX_PIXELS``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file; expected an image (PNG, JPEG, ...)")
    try:
        # Pillow raises a zoo of exception types from its codecs (OSError, SyntaxError,
        # EOFError, ValueError, struct.error ...) and warns about oversized images:
        # every one of them means "this file is not a usable image".
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise UserError(
                        f"{path}: {width}x{height} pixels is more than the {MAX_PIXELS // 1_000_000} megapixels "
                        "accepted; expected a photo or scan of one character"
                    )
                im.draft("L", (MAX_SIDE, MAX_SIDE))  # JPEG: decode in grey at a reduced scale
                im = ImageOps.exif_transpose(im)
                gray = _to_gray(im)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - see the comment above
        detail = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise UserError(f"{path}: cannot read as an image ({detail})") from None
    return _shrink(gray)


def _to_gray(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 grey levels in [0, 1]; transparency becomes white paper."""
    if im.mode in _SIXTEEN_BIT:
        return np.asarray(im, dtype=np.float32) / 65535.0
    if im.mode in ("I", "F"):  # 32-bit ints (16-bit PNGs often open as "I") or floats
        a = np.asarray(im, dtype=np.float32)
        top = 65535.0 if a.max() > 255 else 255.0
        return np.clip(a / top, 0.0, 1.0)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _shrink(gray: np.ndarray) -> np.ndarray:
    """Area-downscale so the longer side is at most ``MAX_SIDE`` (bounded work for large photos)."""
    height, width = gray.shape
    scale = MAX_SIDE / max(height, width)
    if scale >= 1:
        return gray
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
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


def to_emnist(gray: np.ndarray, name: str = "image") -> np.ndarray:
    """Grey levels ``(H, W)`` in [0, 1] -> an upright EMNIST-like glyph, uint8 ``(28, 28)``, ink bright.

    See the module docstring for the steps; raises UserError naming ``name`` when no
    character can be found.
    """
    mask = ink_mask(gray, name)
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    crop = torch.from_numpy(crop.astype(np.float32))[None, None]
    # The NIST stage: the character at about the size it had in the 128x128 scans, its strokes
    # at least MIN_STROKE wide (grown by dilation, which adds `grow` pixels on every side).
    h, w = crop.shape[-2:]
    grow = max(0, math.ceil((MIN_STROKE - stroke_width(crop) * WORK_SIDE / max(h, w)) / 2))
    scale = (WORK_SIDE - 2 * grow) / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    if grow:
        crop = F.max_pool2d(F.pad(crop, (grow,) * 4), 2 * grow + 1, stride=1, padding=grow)
    roi = _blur_roi(crop)
    # Centre in a square keeping the aspect ratio, with the 2-pixel border.
    h, w = roi.shape[-2:]
    side = max(h, w) + 2 * BORDER
    top, left = (side - h) // 2, (side - w) // 2
    square = F.pad(roi, (left, side - w - left, top, side - h - top))
    glyph = F.interpolate(square, size=(GLYPH_SIDE, GLYPH_SIDE), mode="bicubic", align_corners=False, antialias=True)
    glyph = glyph[0, 0].clamp_(min=0.0)
    glyph = glyph / glyph.max() * 255.0
    return glyph.round().to(torch.uint8).numpy()


def stroke_width(mask: torch.Tensor) -> float:
    """Mean stroke width in pixels of a binary ``(1, 1, H, W)`` mask: twice its area over its boundary.

    (A stroke of width w and length L has area wL and two edges of L pixels; one- and
    two-pixel lines both read as 2.)
    """
    padded = F.pad(mask, (1, 1, 1, 1))
    eroded = -F.max_pool2d(-padded, 3, stride=1, padding=1)
    return float(2 * mask.sum() / (padded - eroded).sum().clamp(min=1))


def _blur_roi(crop: torch.Tensor) -> torch.Tensor:
    """Gaussian blur (sigma ``BLUR_SIGMA``) on a black surround, grown by the kernel radius: the region of interest.

    Separable convolutions with zero padding, because the NIST character lies on an
    unbounded black background (torchvision's gaussian_blur pads by reflection).
    """
    radius = int(np.ceil(3 * BLUR_SIGMA))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * BLUR_SIGMA**2))
    kernel = kernel / kernel.sum()
    x = F.pad(crop, (radius,) * 4)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(x, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def preprocess_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file and convert it with :func:`to_emnist`; errors name the file."""
    return to_emnist(read_grayscale(path), name=str(path))
