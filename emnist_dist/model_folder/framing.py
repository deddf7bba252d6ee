"""How a dataset frames its characters in the 28x28 glyph, measured from the glyphs themselves.

EMNIST and MNIST both come from NIST's binary scans but frame them differently: EMNIST's
conversion (Cohen et al. 2017) fills the frame, the character's longer side reaching a
2-pixel margin, its bounding box centred; MNIST (LeCun et al. 1998) fits the character into
a 20x20 box and centres it by its centre of mass, so its strokes also come out thinner. A
model only reads a user's photo well when the photo becomes a glyph framed like its training
data, so the framing is measured from the training glyphs at export and stored in the model
folder; :func:`emnist_dist.model_folder.preprocess.to_model_framing` follows it.

Measuring: each glyph is upsampled ``MEASURE_SCALE`` times (bilinear) and its ink taken as the
pixels at or above half its peak. That threshold keeps a blurred edge where the sharp edge was,
and the upsampling measures in quarter pixels instead of whole ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from ..errors import UserError

GLYPH_SIDE = 28
MEASURE_SCALE = 4
"""Glyphs are measured at 4x their resolution (112 px)."""
MAX_MEASURED = 4096
"""At most this many glyphs (evenly spread over the set) are measured: the medians settle long before."""
STROKE_PERCENTILES = (0.1, 0.9)
"""The stroke widths a conversion keeps: those within the 10th..90th percentile of the training glyphs'."""
CENTRES = ("box", "mass")


@dataclass(frozen=True)
class Framing:
    """The framing of a set of 28x28 glyphs (lengths in pixels of the 28-pixel frame)."""

    box: float
    """Median longer side of the ink's bounding box, as a fraction of the frame side."""
    stroke_low: float
    stroke_high: float
    """10th and 90th percentile of the stroke width: a converted image's strokes are brought into this range."""
    centre: str
    """``box``: the bounding box is centred (EMNIST); ``mass``: the centre of mass is (MNIST)."""
    measured: dict = field(default_factory=dict, compare=False)
    """The evidence, for the record: ``glyphs`` measured, median ``stroke``, median distance of the
    bounding-box centre (``box_offset``) and of the centre of mass (``mass_offset``) from the frame
    centre; ``centre`` is whichever is smaller."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object, where: str) -> "Framing":
        """Check and convert the stored form; a bad value raises UserError naming ``where`` and the field."""
        fields = ("box", "stroke_low", "stroke_high", "centre")
        if not isinstance(raw, dict) or any(name not in raw for name in fields):
            raise UserError(f"{where}: framing is {str(raw)[:60]}: expected an object with {', '.join(fields)}")
        for name in fields[:3]:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= GLYPH_SIDE:
                raise UserError(f"{where}: framing.{name} is {value!r}: expected a number in (0, {GLYPH_SIDE}]")
        if raw["box"] > 1.5 or raw["stroke_low"] > raw["stroke_high"]:
            raise UserError(f"{where}: framing box {raw['box']!r}, stroke_low {raw['stroke_low']!r}, stroke_high "
                            f"{raw['stroke_high']!r}: expected box <= 1.5 and stroke_low <= stroke_high")
        if raw["centre"] not in CENTRES:
            raise UserError(f"{where}: framing.centre is {raw['centre']!r}: expected one of {', '.join(CENTRES)}")
        measured = raw.get("measured", {})
        return cls(**{name: raw[name] for name in fields}, measured=measured if isinstance(measured, dict) else {})


NIST_FRAMING = Framing(box=round(96 / 106, 4), stroke_low=round(6 * 28 / 106, 3),
                       stroke_high=round(96 / 106 * GLYPH_SIDE, 3), centre="box")
"""For model folders written before the framing was measured: the conversion predict applied then
(the models were trained on EMNIST or its synthetic stand-in, both framed NIST-style). The character
was drawn 96 pixels long, blurred (3 pixels of spread) and framed with a 2-pixel margin, so its
longer side spans 96/106 of the frame; strokes thinner than 6 of those 106 pixels were thickened,
none were thinned (no stroke is as wide as the glyph)."""


def ink_masks(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float glyphs ``(N, 1, 28, 28)`` -> boolean ink masks ``(N, 1, 112, 112)`` (half the peak)."""
    x = images.float()
    x = F.interpolate(x, scale_factor=MEASURE_SCALE, mode="bilinear", align_corners=False)
    peak = x.amax(dim=(2, 3), keepdim=True)
    return (x >= 0.5 * peak) & (peak > 0)


def stroke_widths(masks: torch.Tensor) -> torch.Tensor:
    """Mean stroke width of boolean masks ``(N, 1, H, W)`` in their pixels: twice the area over the boundary.

    (A stroke of width w and length L has area wL and about 2L boundary pixels.) A boundary pixel is an ink pixel
    with a blank pixel (or the image's edge) among its 8 neighbours. The erosion is the AND of the 9 shifted masks,
    on booleans: the same counts as a 3x3 min-pool on floats, 9 times faster (training measures 4,096 glyphs).
    """
    m = masks.bool()
    height, width = m.shape[-2:]
    padded = F.pad(m, (1, 1, 1, 1))
    interior = m.clone()
    for dy in range(3):
        for dx in range(3):
            interior &= padded[..., dy : dy + height, dx : dx + width]
    boundary = (m & ~interior).sum(dim=(1, 2, 3))
    return 2 * m.sum(dim=(1, 2, 3)).float() / boundary.clamp(min=1).float()


def measure_framing(images: torch.Tensor) -> Framing:
    """Measure the framing of upright glyphs ``(N, 1, 28, 28)`` or ``(N, 28, 28)``, ink bright.

    Blank glyphs are skipped; at most :data:`MAX_MEASURED` glyphs, evenly spread, are measured.
    """
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if len(images) > MAX_MEASURED:
        images = images[torch.linspace(0, len(images) - 1, MAX_MEASURED).long()]
    long_sides, strokes, box_offsets, mass_offsets = [], [], [], []
    for batch in images.cpu().split(512):
        batch = batch[batch.flatten(1).amax(dim=1) > 0]
        if not len(batch):
            continue
        masks = ink_masks(batch)
        rows, cols = masks.any(dim=3)[:, 0], masks.any(dim=2)[:, 0]
        top, bottom = _first(rows), _first(rows.flip(1))
        left, right = _first(cols), _first(cols.flip(1))
        side = masks.shape[-1]
        height, width = side - top - bottom, side - left - right
        long_sides.append(torch.maximum(height, width).float() / (MEASURE_SCALE * GLYPH_SIDE))
        strokes.append(stroke_widths(masks) / MEASURE_SCALE)
        centre = side / 2
        box_centre = torch.stack([(top + side - bottom) / 2, (left + side - right) / 2], 1).float()
        box_offsets.append((box_centre - centre).norm(dim=1) / MEASURE_SCALE)
        mass_offsets.append((centre_of_mass(batch.float()) - GLYPH_SIDE / 2).norm(dim=1))
    if not long_sides:
        raise UserError("cannot measure the framing: every training glyph is blank")
    stroke = torch.cat(strokes)
    low, high = stroke.quantile(torch.tensor(STROKE_PERCENTILES)).tolist()
    box_offset, mass_offset = float(torch.cat(box_offsets).median()), float(torch.cat(mass_offsets).median())
    measured = {"glyphs": len(stroke), "stroke": round(float(stroke.median()), 3),
                "box_offset": round(box_offset, 3), "mass_offset": round(mass_offset, 3)}
    return Framing(box=round(float(torch.cat(long_sides).median()), 4), stroke_low=round(low, 3),
                   stroke_high=round(high, 3), centre="mass" if mass_offset < box_offset else "box", measured=measured)


def centre_of_mass(images: torch.Tensor) -> torch.Tensor:
    """``(N, 2)`` intensity-weighted (row, col) centres of ``(N, 1, H, W)`` images; pixel i spans [i, i + 1)."""
    h, w = images.shape[-2:]
    mass = images.sum(dim=(1, 2, 3)).clamp(min=1e-12)
    rows = (images.sum(dim=(1, 3)) * (torch.arange(h) + 0.5)).sum(dim=1) / mass
    cols = (images.sum(dim=(1, 2)) * (torch.arange(w) + 0.5)).sum(dim=1) / mass
    return torch.stack([rows, cols], 1)


def _first(flags: torch.Tensor) -> torch.Tensor:
    """Index of the first True per row of a boolean ``(N, L)`` (L when there is none)."""
    return torch.where(flags.any(dim=1), flags.float().argmax(dim=1), flags.shape[1])


BOX_TOLERANCE = 0.04
"""Framings whose boxes differ by less (about a pixel of the 28) count as the same."""


def framing_difference(data: Framing, model: Framing) -> str:
    """How glyphs framed as ``data`` differ from the ``model``'s framing, in words; "" when they match."""
    differences = []
    if abs(data.box - model.box) > BOX_TOLERANCE:
        differences.append(f"ink box {data.box:.2f} of the frame, not {model.box:.2f}")
    if data.centre != model.centre:
        differences.append(f"centred by {data.centre}, not by {model.centre}")
    return "; ".join(differences)
