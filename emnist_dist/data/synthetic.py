"""The offline stand-in: EMNIST-shaped glyphs rendered from fonts. SYNTHETIC, NOT EMNIST.

Every character is rasterised once per font (matplotlib's bundled DejaVu/STIX/Computer
Modern fonts only, see :mod:`.fonts`: the same glyphs on every machine); each sample then gets
a random stroke width, affine distortion (rotation, shear, per-axis scale, position) and blur
as batched tensor ops, so tens of thousands of glyphs take a second or two. Glyphs are white
ink (up to 255) on black (0), 28x28, like EMNIST.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .fonts import font_files

_RENDER_PX = 64  # font size used for the master rasters
_BANK_SIDE = 40  # side of the per-(font, class) master glyph canvas
_GLYPH_SIDE = 36  # the largest glyph of a font fills this much of the canvas


@functools.lru_cache(maxsize=8)
def glyph_bank(chars: str) -> torch.Tensor:
    """Master rasters ``(fonts, len(chars), 40, 40)`` float in [0, 1], one per font and character.

    Within a font all characters share one scale, so relative sizes survive (``o`` stays
    smaller than ``O``); each glyph is centred on its bounding box.
    """
    fonts = font_files(chars)
    if not fonts:
        raise RuntimeError(f"no font draws all of {chars!r}; matplotlib's bundled DejaVu fonts should")
    bank = np.zeros((len(fonts), len(chars), _BANK_SIDE, _BANK_SIDE), dtype=np.float32)
    for f, path in enumerate(fonts):
        font = ImageFont.truetype(str(path), _RENDER_PX)
        crops = [_render(font, c) for c in chars]
        scale = _GLYPH_SIDE / max(max(crop.size) for crop in crops)
        for c, crop in enumerate(crops):
            w, h = (max(1, round(side * scale)) for side in crop.size)
            small = np.asarray(crop.resize((w, h), Image.Resampling.LANCZOS), dtype=np.float32) / 255.0
            top, left = (_BANK_SIDE - h) // 2, (_BANK_SIDE - w) // 2
            bank[f, c, top : top + h, left : left + w] = small
    return torch.from_numpy(bank).clamp_(0.0, 1.0)


def _render(font: ImageFont.FreeTypeFont, char: str) -> Image.Image:
    """One character, white on black, cropped to its ink."""
    canvas = Image.new("L", (3 * _RENDER_PX, 3 * _RENDER_PX), 0)
    ImageDraw.Draw(canvas).text((_RENDER_PX, _RENDER_PX // 2), char, fill=255, font=font)
    return canvas.crop(canvas.getbbox())


def render_glyphs(class_names: list[str], per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``per_class`` random glyphs of every class, shuffled. SYNTHETIC, NOT EMNIST.

    Args:
        class_names: one character per class (label order).
        per_class: glyphs per class.
        seed: the same seed gives the same glyphs (with the same matplotlib fonts, see
            :func:`.fonts.font_fingerprint`).

    Returns:
        images ``(N, 28, 28)`` uint8, upright, white ink on black; labels ``(N,)`` int64.
    """
    bank = glyph_bank("".join(class_names))
    gen = torch.Generator().manual_seed(seed)
    n = len(class_names) * per_class
    labels = torch.arange(len(class_names)).repeat_interleave(per_class)[torch.randperm(n, generator=gen)]
    fonts = torch.randint(bank.shape[0], (n,), generator=gen)
    x = bank[fonts, labels].unsqueeze(1)
    x = _stroke(x, gen)
    x = _affine(x, gen)
    x = _blur(x, gen)
    x = x / x.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    images = (x.squeeze(1) * 255.0).round_().to(torch.uint8)
    return images.numpy(), labels.numpy().astype(np.int64)


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def _stroke(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Strokes as drawn, or thickened by one or two 3x3 dilations, per sample.

    (No erosion: it breaks the thin fonts' strokes into fragments.)
    """
    width = torch.multinomial(torch.tensor([0.35, 0.4, 0.25]), x.shape[0], replacement=True, generator=gen)
    out = x.clone()
    for times in (1, 2):
        thick = width >= times
        out[thick] = F.max_pool2d(out[thick], 3, stride=1, padding=1)
    return out


def _affine(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation, shear, per-axis scale and shift; resamples the 40x40 masters to 28x28."""
    n = x.shape[0]
    angle = _uniform(n, -15.0, 15.0, gen) * (math.pi / 180.0)
    shear = _uniform(n, -0.3, 0.3, gen)
    scale_x, scale_y = _uniform(n, 0.75, 1.1, gen), _uniform(n, 0.8, 1.1, gen)
    shift_x, shift_y = _uniform(n, -0.12, 0.12, gen), _uniform(n, -0.12, 0.12, gen)
    cos, sin, zero, one = angle.cos(), angle.sin(), torch.zeros(n), torch.ones(n)
    rotate = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], 1).view(n, 3, 3)
    shear_m = torch.stack([one, shear, zero, zero, one, zero, zero, zero, one], 1).view(n, 3, 3)
    scale_m = torch.stack([scale_x, zero, zero, zero, scale_y, zero, zero, zero, one], 1).view(n, 3, 3)
    move = torch.stack([one, zero, shift_x, zero, one, shift_y, zero, zero, one], 1).view(n, 3, 3)
    forward = move @ rotate @ shear_m @ scale_m  # glyph coordinates -> image coordinates
    theta = torch.linalg.inv(forward)[:, :2]  # affine_grid maps output pixels back to the source
    grid = F.affine_grid(theta, [n, 1, 28, 28], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _blur(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gaussian blur with a per-sample sigma, as one grouped convolution."""
    n = x.shape[0]
    sigma = _uniform(n, 0.4, 1.1, gen)
    taps = torch.arange(-2, 3, dtype=torch.float32)
    kernel_1d = torch.exp(-(taps[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum(1, keepdim=True)
    kernel = (kernel_1d[:, :, None] * kernel_1d[:, None, :]).unsqueeze(1)  # (n, 1, 5, 5)
    return F.conv2d(x.view(1, n, 28, 28), kernel, padding=2, groups=n).view(n, 1, 28, 28)
