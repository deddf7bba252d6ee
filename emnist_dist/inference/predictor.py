"""Predict the characters in a user's own images with an exported model.

    python -m emnist_dist.predict --model runs/x/model photo.jpg scans/ [--top-k 3] [--json]

Each image (files, or folders searched recursively for image files) should show one
handwritten character; :func:`emnist_dist.inference.preprocess.to_model_framing` turns it into a
28x28 glyph framed like the model's training glyphs (as measured at export), then the model's
own resize and normalisation apply (:func:`predict_logits`).
A file that cannot be used gets one line on stderr; the others are still predicted and
the exit code is 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import CliParser, UserError
from .artifact import ModelInfo, load_model
from ..files import atomic_path
from .preprocess import to_model_framing
from ..data.resize import to_model_input

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pbm", ".pgm", ".ppm", ".pnm")
"""Files with these suffixes are taken from folders; files named explicitly are tried whatever their suffix."""
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))
"""Test-time augmentation: one-pixel shifts of the 28x28 glyph (no flips: characters are not symmetric)."""


def choose_device(cpu: bool = False) -> torch.device:
    """The first CUDA device unless ``cpu`` or none is available."""
    return torch.device("cuda" if torch.cuda.is_available() and not cpu else "cpu")


def shift(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift ``(N, 1, H, W)`` images by whole pixels, filling with 0 (background)."""
    if dy == 0 and dx == 0:
        return images
    h, w = images.shape[-2:]
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    return padded[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, info: ModelInfo, images: torch.Tensor | np.ndarray,
                   device: torch.device | str = "cpu", batch_size: int = 512, tta: bool = False) -> torch.Tensor:
    """Logits ``(N, C)`` (float32, on the CPU) of upright uint8 glyphs ``(N, 1, 28, 28)`` or ``(N, 28, 28)``.

    Applies the model's own resize and normalisation (from ``info``). With ``tta`` the
    logits are averaged over :data:`TTA_SHIFTS`.
    """
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    shifts = TTA_SHIFTS if tta else TTA_SHIFTS[:1]
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        logits = sum(model(to_model_input(shift(batch, dy, dx), info.image_size, info.mean, info.std)).float()
                     for dy, dx in shifts)
        out.append((logits / len(shifts)).cpu())
    return torch.cat(out) if out else torch.empty(0, info.num_classes)


def top_k(probs: torch.Tensor, class_names: list[str], k: int) -> list[list[dict]]:
    """Per row, the ``k`` most probable classes as ``{"label", "prob"}``, best first."""
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[{"label": class_names[i], "prob": round(float(p), 6)} for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(values.tolist(), indices.tolist())]


def collect_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Expand files and folders (recursively, by :data:`IMAGE_EXTENSIONS`) into image paths.

    Returns the paths in order and one error message per input that yields nothing.
    """
    paths, errors = [], []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                errors.append(f"{path}: folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return paths, errors


def glyph_folder(path: str) -> Path:
    """The ``--save-glyphs`` folder, created if needed; a file in the way or an OS refusal is one UserError."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--save-glyphs {path}: is a file; expected a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--save-glyphs {path}: cannot create the folder ({err.strerror or err})") from None
    return folder


def format_human(path: Path, predictions: list[dict]) -> str:
    return f"{path}: " + "  ".join(f"{p['label']} {100 * p['prob']:.1f}%" for p in predictions)


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.predict",
                       description="Predict the handwritten character in each image (one character per image).")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER", help="Image files and/or folders (recursive).")
    parser.add_argument("--top-k", type=int, default=3, help="How many classes to show per image (default 3).")
    parser.add_argument("--json", action="store_true", help="JSON Lines: one {path, predictions} object per image.")
    parser.add_argument("--batch-size", type=int, default=256, help="Images per forward pass (default 256).")
    parser.add_argument("--cpu", action="store_true", help="Use the CPU even when a GPU is available.")
    parser.add_argument("--save-glyphs", metavar="DIR",
                        help="Also write the 28x28 glyph each image becomes (what the model sees) as PNG into DIR.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: expected an integer >= 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected an integer >= 1")
    device = choose_device(args.cpu)
    model, info = load_model(args.model, device)
    paths, errors = collect_images(args.inputs)
    for message in errors:
        print(f"error: {message}", file=sys.stderr)
    failed = len(errors)
    if args.save_glyphs:
        glyph_dir = glyph_folder(args.save_glyphs)
    for start in range(0, len(paths), args.batch_size):
        done, glyphs = [], []
        for path in paths[start : start + args.batch_size]:
            try:
                glyphs.append(to_model_framing(path, info.framing))
                done.append(path)
            except UserError as err:
                print(f"error: {err}", file=sys.stderr)
                failed += 1
        if not done:
            continue
        probs = predict_logits(model, info, np.stack(glyphs), device, args.batch_size).softmax(dim=1)
        for i, (path, predictions) in enumerate(zip(done, top_k(probs, info.class_names, args.top_k))):
            if args.json:
                print(json.dumps({"path": str(path), "predictions": predictions}))
            else:
                print(format_human(path, predictions))
            if args.save_glyphs:
                with atomic_path(glyph_dir / f"{start + i:05d}_{path.stem}.png") as tmp:
                    Image.fromarray(glyphs[i]).save(tmp, format="PNG")
        sys.stdout.flush()
    return 1 if failed else 0
