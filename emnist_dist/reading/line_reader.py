"""Reading lines of separately written handwriting on a photo with an exported character model
(what ``python -m emnist_dist.read`` and the demo's "Write a line" run).

A photo is decoded once and becomes an ink mask once, as a single character does for predict (grey
levels, lighting evened out, Otsu, polarity from the border: :mod:`emnist_dist.model_folder.preprocess`);
:mod:`emnist_dist.reading.segmentation` finds its lines and candidate characters; each candidate's
ink, cut from that mask, is framed as predict frames a character (``frame_ink``) for the model; where
the geometry is ambiguous the candidates the model finds most probable win (:func:`read_photo`).
:func:`allowed_classes` turns a ``--charset`` into class indices; :func:`annotate` draws a reading on the photo.
"""

from __future__ import annotations

import math
import os
import string
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..errors import UserError
from . import segmentation as seg
from ..model_folder.artifact import ModelInfo
from ..model_folder.predictor import predict_logits, top_k
from ..model_folder.preprocess import MAX_SIDE, MIN_SIDE, Photo, frame_ink, ink_mask, load_grayscale, open_photo
from .form_lines import remove_form_lines

CHARSETS = {"digits": string.digits, "upper": string.ascii_uppercase, "lower": string.ascii_lowercase,
            "letters": string.ascii_letters}
"""Named ``--charset`` values; any other value is the string of allowed labels itself."""
TOP_K = 5
ANNOTATION_SIDE = 2048
READ_PIXELS = MAX_SIDE**2
"""Photos are read at most this many pixels large (a square one at ``MAX_SIDE`` a side, as predict reads a
character; a long strip keeps enough of its height to show the writing)."""
"""Annotated photos are drawn at most this large on their longer side."""


def allowed_classes(charset: str | None, class_names: list[str]) -> list[int]:
    """Indices of the classes a ``--charset`` allows (all when None), in class order.

    A named set keeps those of its characters the model has (none is an error); a string of labels
    must name only classes the model has.
    """
    if charset is None:
        return list(range(len(class_names)))
    if charset in CHARSETS:
        allowed = [i for i, name in enumerate(class_names) if name in CHARSETS[charset]]
        if not allowed:
            raise UserError(f"--charset {charset}: the model has none of these characters; "
                            f"its classes are {''.join(class_names)}")
        return allowed
    missing = sorted(set(charset) - set(class_names))
    if not charset or missing:
        raise UserError(f"--charset {charset!r}: the model has no class {''.join(missing) or '(empty set)'}; "
                        f"expected digits, upper, lower, letters or labels among {''.join(class_names)}")
    return [i for i, name in enumerate(class_names) if name in set(charset)]


@dataclass
class Reading:
    """What was read on one photo, with the boxes in the photo's own pixels."""

    name: str
    lines: list[list[dict]]
    """Per line, per character: ``{"box", "label", "prob", "top5"}``, left to right."""
    spaces: list[list[bool]]
    """Per line, per gap between characters: whether a word ends there."""
    size: tuple[int, int]
    """The photo's (width, height) upright: the pixels the boxes are given in."""

    def line_texts(self) -> list[str]:
        return ["".join(c["label"] + (" " if space else "") for c, space in zip(chars, [*breaks, False]))
                for chars, breaks in zip(self.lines, self.spaces)]

    def to_json(self) -> dict:
        """``{"path", "text", "lines": [{"text", "chars": [...]}]}``."""
        texts = self.line_texts()
        return {"path": self.name, "text": "\n".join(texts),
                "lines": [{"text": text, "chars": chars} for text, chars in zip(texts, self.lines)]}


def photo_size(image: Photo | np.ndarray | Image.Image) -> tuple[int, int]:
    """(width, height) of a decoded photo as shown upright (EXIF orientation applied)."""
    if isinstance(image, Photo):
        return image.size
    if isinstance(image, np.ndarray):
        return image.shape[1], image.shape[0]
    width, height = image.size
    return (height, width) if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (width, height)


def read_photo(model: torch.nn.Module, info: ModelInfo, image: Photo | np.ndarray | Image.Image | str | os.PathLike,
               allowed: list[int] | None = None, device: torch.device | str = "cpu", name: str | None = None,
               choose: bool = True) -> Reading:
    """Read the handwritten lines on one photo.

    Args:
        model, info: the exported model (:func:`emnist_dist.model_folder.artifact.load_model`).
        image: a path (decoded here, once), a photo decoded by ``open_photo`` (boxes in its ``size``), a Pillow
            image or a numpy array (as for ``to_model_framing``).
        allowed: class indices the text may use (:func:`allowed_classes`); probabilities are renormalised over them.
        name: how the result and errors name the photo (default: the path, or "image").
        choose: let the classifier choose among candidate segmentations (False: each connected
            component, dots and fragments dropped, is one character: the plain reader).

    Raises UserError naming the photo when it cannot be read or shows no handwriting.
    """
    if isinstance(image, (str, os.PathLike)):
        image = open_photo(image, READ_PIXELS)
    gray, name = load_grayscale(image, name, READ_PIXELS)
    width, height = photo_size(image)
    if min(gray.shape) < MIN_SIDE:
        shrunk = f" (read at {gray.shape[1]}x{gray.shape[0]}: at most {READ_PIXELS:,} pixels)" if gray.shape != (
            height, width) else ""
        raise UserError(f"{name}: {width}x{height} pixels{shrunk} is too thin to hold a line of writing; "
                        f"expected at least {MIN_SIDE} pixels a side")
    scale = (width / gray.shape[1], height / gray.shape[0])
    mask = ink_mask(gray, name)
    labels, boxes, areas, stroke = seg.label_ink(mask)
    without_lines = remove_form_lines(mask, stroke)
    if without_lines is not mask:
        labels, boxes, areas, stroke = seg.label_ink(without_lines)
    marks = int(np.count_nonzero(areas))
    if marks > seg.MAX_MARKS:
        raise UserError(f"{name}: {marks:,} separate marks of ink; at most {seg.MAX_MARKS:,} are read "
                        "(expected lines of handwriting, not a page of dots or a texture)")
    grouped = seg.group_lines(boxes, areas, stroke)
    stray = np.delete(areas, np.concatenate(grouped)) if grouped else areas
    lines = [seg.line_pieces(members, boxes, choose, areas, stray[stray > 0]) for members in grouped]
    if not lines:
        raise UserError(f"{name}: no handwriting found (only specks, or strokes lower than {seg.MIN_LINE_HEIGHT} "
                        "pixels); expected lines of separate characters")
    lattices = [seg.candidates(labels, line) if choose else
                seg.Lattice(len(line.pieces), [(i, i + 1, [p]) for i, p in enumerate(line.pieces)], line.height)
                for line in lines]
    chars = [c for lattice in lattices for _, _, cs in lattice.edges for c in cs]
    if len(chars) > seg.MAX_CANDIDATES:
        raise UserError(f"{name}: its {marks:,} marks could be cut into {len(chars):,} characters; at most "
                        f"{seg.MAX_CANDIDATES:,} are weighed (expected lines of handwriting, not a page of marks)")
    glyphs = np.stack([frame_ink(seg.candidate_ink(labels, c), info.framing) for c in chars])
    allowed = list(range(info.num_classes)) if allowed is None else allowed
    log_probs = predict_logits(model, info, glyphs, device)[:, allowed].log_softmax(dim=1)
    names = [info.class_names[i] for i in allowed]
    scored = {id(c): float(lp.max()) for c, lp in zip(chars, log_probs)}
    ranked = {id(c): ranks for c, ranks in zip(chars, top_k(log_probs.exp(), names, TOP_K))}
    read_lines, spaces = [], []
    for line, lattice in zip(lines, lattices):
        path = seg.best_path(lattice, scored)
        read_lines.append([{"box": _photo_box(c.box, scale), "label": ranked[id(c)][0]["label"],
                            "prob": ranked[id(c)][0]["prob"], "top5": ranked[id(c)]} for c in path])
        spaces.append(seg.word_breaks(path, line.height))
    return Reading(name, read_lines, spaces, (width, height))


def _photo_box(box: tuple[int, int, int, int], scale: tuple[float, float]) -> list[int]:
    x0, y0, x1, y1 = box
    return [math.floor(x0 * scale[0]), math.floor(y0 * scale[1]), math.ceil(x1 * scale[0]), math.ceil(y1 * scale[1])]


def annotate(image: Photo | Image.Image, reading: Reading) -> Image.Image:
    """The photo (upright, RGB, at most ``ANNOTATION_SIDE`` a side) with each character's box (red) and label
    (blue, centred above it) drawn on it; the probabilities are in the JSON.

    ``image`` is the photo read, as the reader got it (a Pillow image) or decoded (:func:`open_photo`, perhaps
    reduced while decoding: the boxes, in the photo's own pixels, are scaled to it)."""
    image = image.image.convert("RGB") if isinstance(image, Photo) else ImageOps.exif_transpose(image).convert("RGB")
    fit = min(1.0, ANNOTATION_SIDE / max(image.size))
    if fit < 1:
        image = image.resize((round(image.width * fit), round(image.height * fit)), Image.Resampling.LANCZOS)
    scale = image.width / reading.size[0]
    draw = ImageDraw.Draw(image)
    for chars in reading.lines:
        for c in chars:
            x0, y0, x1, y1 = (v * scale for v in c["box"])
            size = max(12, round(0.4 * (y1 - y0)))
            width = max(2, round(size / 10))
            draw.rectangle((x0 - width, y0 - width, x1 + width, y1 + width), outline=(220, 30, 30), width=width)
            draw.text(((x0 + x1) / 2, y0 - width - 2), c["label"], fill=(30, 60, 220), anchor="md",
                      font=ImageFont.load_default(size=size), stroke_width=max(1, size // 10), stroke_fill="white")
    return image
