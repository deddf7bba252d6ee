"""Read lines of separately written handwriting on photos with an exported character model.

    python -m emnist_dist.read --model runs/x/model photo.jpg scans/ [--json] [--charset digits] [--annotate OUT]

Each photo (files, or folders searched recursively for image files) is read by
:func:`emnist_dist.reading.line_reader.read_photo`. One entry per photo: ``path: text`` (the lines
after the first indented under it), or with ``--json`` one ``{path, text, lines}`` object; ``--annotate``
also draws the boxes and labels on the photos. A photo that cannot be read gets one line on stderr; the
others are still read and the exit code is 1.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from .cli import CliParser, PerFileErrors, run_cli
from .errors import UserError
from .files import check_writable_folder, write_error
from .model_folder.artifact import load_model
from .model_folder.preprocess import Photo, open_photo
from .reading.line_reader import READ_PIXELS, Reading, allowed_classes, annotate, read_photo
from .model_folder.predictor import choose_device, collect_images

ANNOTATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
"""``--annotate`` names a file (one photo) when it ends like this, else a folder."""


def annotation_paths(out: str, photos: list[Path]) -> list[Path]:
    """Where ``--annotate OUT`` writes each photo's drawing: OUT itself for one photo when it ends in an
    image suffix, else ``OUT/NNNNN_<stem>.png`` (the folder is created). Refused before any photo is read:
    a file already there (the photo being read included: nothing is overwritten), a new folder name with a
    suffix (``x.txt``, or ``x.png`` for several photos: a file was meant), a place that cannot be written."""
    target = Path(out)
    one_file = len(photos) == 1 and target.suffix.lower() in ANNOTATION_SUFFIXES and not target.is_dir()
    if not one_file and target.exists() and not target.is_dir():
        raise UserError(f"--annotate {out}: is a file; expected a folder for {len(photos)} photos "
                        f"(or a new {'/'.join(ANNOTATION_SUFFIXES)} file for one photo)")
    if not one_file and not target.exists() and target.suffix:
        raise UserError(f"--annotate {out}: would be a new folder named like a file ({target.suffix}); expected "
                        f"a {'/'.join(ANNOTATION_SUFFIXES)} file for one photo, else a folder name without a suffix")
    paths = [target] if one_file else [target / f"{i:05d}_{p.stem}.png" for i, p in enumerate(photos)]
    taken = [p for p in paths if p.exists() or p.is_symlink()]
    if taken:
        raise UserError(f"--annotate {out}: {taken[0]} already exists; expected a new file (nothing is overwritten)")
    if not one_file:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"--annotate {out}: cannot create the folder ({err.strerror or err})") from None
    check_writable_folder(f"--annotate {out}", target if not one_file else target.parent)
    return paths


def save_annotation(drawing: Image.Image, out: Path) -> None:
    """Write a new file ``out`` (created exclusively: a file that appeared meanwhile is refused, never replaced)."""
    try:
        with out.open("xb") as f:
            try:
                drawing.save(f, format="JPEG" if out.suffix.lower() in (".jpg", ".jpeg") else out.suffix[1:].upper())
            except BaseException:
                out.unlink()
                raise
    except FileExistsError:
        raise UserError(f"--annotate: {out} already exists; expected a new file (nothing is overwritten)") from None
    except OSError as err:
        raise write_error(out, err) from None


def format_reading(reading: Reading) -> str:
    """``path: text``, the lines after the first indented under it."""
    indent = "\n" + " " * (len(reading.name) + 2)
    return f"{reading.name}: " + indent.join(reading.line_texts())


def build_parser() -> CliParser:
    parser = CliParser(prog="python -m emnist_dist.read",
                       description="Read lines of separately written handwritten characters on photos or scans.")
    parser.add_argument("--model", required=True, help="Exported model folder (output_dir/model).")
    parser.add_argument("inputs", nargs="+", metavar="PHOTO_OR_FOLDER", help="Photos and/or folders (recursive).")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines: one {path, text, lines: [{text, chars: [{box, label, prob, top5}]}]} a photo.")
    parser.add_argument("--charset", metavar="SET",
                        help="Allowed characters: digits, upper, lower, letters, or a string of labels (e.g. 0123456789-).")
    parser.add_argument("--annotate", metavar="OUT",
                        help="Also draw the boxes and labels on each photo: a PNG/JPEG file for one photo, else a folder.")
    parser.add_argument("--cpu", action="store_true", help="Use the CPU even when a GPU is available.")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Read every photo; returns the exit code (1 when some photo could not be read)."""
    args = build_parser().parse_args(argv)
    device = choose_device(args.cpu)
    model, info = load_model(args.model, device)
    allowed = allowed_classes(args.charset, info.class_names)
    paths, problems = collect_images(args.inputs)
    errors = PerFileErrors(problems)
    outs = annotation_paths(args.annotate, paths) if args.annotate and paths else []

    def read_one(path: Path) -> tuple[Photo, Reading]:
        photo = open_photo(path, READ_PIXELS, colour=bool(outs))  # the photo's one decode, read and drawn on
        return photo, read_photo(model, info, photo, allowed, device)

    for (i, _), (photo, reading) in errors.each_ok(enumerate(paths), lambda item: read_one(item[1])):
        print(json.dumps(reading.to_json()) if args.json else format_reading(reading), flush=True)
        if outs:
            save_annotation(annotate(photo, reading), outs[i])
    return errors.exit_code


def cli() -> None:
    """Console script entry point (``emnist-read``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
