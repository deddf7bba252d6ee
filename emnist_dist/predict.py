"""Predict the characters in a user's own images with an exported model.

    python -m emnist_dist.predict --model runs/x/model photo.jpg scans/ [--top-k 3] [--json] [--save-glyphs DIR]

Each image (files, or folders searched recursively for image files) should show one handwritten
character; it becomes a 28x28 glyph framed like the model's training glyphs and the model predicts
it (:mod:`emnist_dist.model_folder.predictor`). One line per image: ``path: label prob% ...`` best first,
or with ``--json`` one ``{path, predictions}`` object. A file that cannot be used gets one line on
stderr; the others are still predicted and the exit code is 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from .cli import CliParser, PerFileErrors, run_cli
from .errors import UserError
from .files import atomic_path, check_writable_folder
from .model_folder.artifact import load_model
from .model_folder.predictor import choose_device, collect_images, predict_logits, top_k
from .model_folder.preprocess import to_model_framing


def glyph_folder(path: str) -> Path:
    """The ``--save-glyphs`` folder, created if needed; a file in the way or an OS refusal is one UserError."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--save-glyphs {path}: is a file; expected a folder (it is created if missing)")
    if not folder.exists() and folder.suffix:
        raise UserError(f"--save-glyphs {path}: would be a new folder named like a file ({folder.suffix}); expected "
                        "a folder name without a suffix")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--save-glyphs {path}: cannot create the folder ({err.strerror or err})") from None
    check_writable_folder(f"--save-glyphs {path}", folder)
    return folder


def format_prediction(path: Path, predictions: list[dict]) -> str:
    """``path: label prob%  label prob% ...``, best first."""
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
    """Predict every image; returns the exit code (1 when some file could not be used)."""
    args = build_parser().parse_args(argv)
    if args.top_k < 1:
        raise UserError(f"--top-k {args.top_k}: expected an integer >= 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected an integer >= 1")
    device = choose_device(args.cpu)
    model, info = load_model(args.model, device)
    paths, problems = collect_images(args.inputs)
    errors = PerFileErrors(problems)
    if args.save_glyphs:
        glyph_dir = glyph_folder(args.save_glyphs)
    for start in range(0, len(paths), args.batch_size):
        framed = list(errors.each_ok(paths[start : start + args.batch_size],
                                     lambda path: to_model_framing(path, info.framing)))
        if not framed:
            continue
        done, glyphs = [path for path, _ in framed], [glyph for _, glyph in framed]
        probs = predict_logits(model, info, np.stack(glyphs), device, args.batch_size).softmax(dim=1)
        for i, (path, predictions) in enumerate(zip(done, top_k(probs, info.class_names, args.top_k))):
            if args.json:
                print(json.dumps({"path": str(path), "predictions": predictions}))
            else:
                print(format_prediction(path, predictions))
            if args.save_glyphs:
                with atomic_path(glyph_dir / f"{start + i:05d}_{path.stem}.png") as tmp:
                    Image.fromarray(glyphs[i]).save(tmp, format="PNG")
        sys.stdout.flush()
    return errors.exit_code


def cli() -> None:
    """Console script entry point (``emnist-predict``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
