"""``python -m emnist_dist.data {prepare,inspect,publish}``: cache a split, look at one, or publish splits on the Hub."""

from __future__ import annotations

from pathlib import Path

from ..cli import CliParser, run_cli
from ..errors import UserError
from .cache import prepare
from .splits import SPLITS


def build_parser() -> CliParser:
    common = CliParser(add_help=False)
    common.add_argument(
        "--split", default="byclass", help="byclass | bymerge | balanced | letters | digits | mnist (default: byclass)"
    )
    common.add_argument(
        "--source",
        default="synthetic",
        help="nist (official download) | a local path (gzip.zip, folder of .gz or IDX files, parquet, "
        "saved datasets folder; a folder of MNIST-format train-*/t10k-*-ubyte[.gz] files with --split mnist) "
        "| hf:OWNER/NAME | synthetic (offline stand-in, NOT EMNIST; default)",
    )
    common.add_argument(
        "--cache-dir", default=None, help="cache root (default: $EMNIST_DIST_CACHE or ~/.cache/emnist_dist)"
    )
    common.add_argument(
        "--synthetic-train-per-class", type=int, default=300, help="synthetic source: training glyphs per class"
    )
    common.add_argument(
        "--synthetic-test-per-class", type=int, default=50, help="synthetic source: test glyphs per class"
    )
    common.add_argument("--seed", type=int, default=0, help="synthetic source: drawing seed")
    common.add_argument(
        "--mirror", action="append", default=[], metavar="URL",
        help="source nist: a copy of the NIST gzip.zip tried after the official server (repeatable; md5-checked)",
    )

    parser = CliParser(prog="python -m emnist_dist.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "prepare", parents=[common], help="convert a split into the cache (once) and print its folder as the last line"
    )
    inspect = commands.add_parser(
        "inspect", parents=[common], help="write a PNG grid of samples per class and print class counts"
    )
    inspect.add_argument("--out", default=None,
                         help="new PNG to write (default: emnist-SPLIT-samples.png); an existing file is refused")
    inspect.add_argument("--per-class", type=int, default=8, help="samples per class in the grid")
    publish = commands.add_parser(
        "publish", parents=[common], help="write splits as a Hub dataset folder (Parquet + card); --split all for six"
    )
    publish.add_argument("--out", required=True, help="new or empty folder to write (load_dataset(OUT, SPLIT))")
    publish.add_argument("--repo-id", default=None, help="OWNER/NAME: upload to this Hub dataset repo (needs a token)")
    publish.add_argument("--private", action="store_true", help="create the Hub repo private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = dict(
        synthetic_train_per_class=args.synthetic_train_per_class,
        synthetic_test_per_class=args.synthetic_test_per_class,
        seed=args.seed,
        mirrors=args.mirror,
    )
    if args.command == "publish":
        from .publish import publish  # imported here: only this command needs huggingface_hub's card tools

        splits = list(SPLITS) if args.split == "all" else [args.split]
        print(publish(splits, args.source, args.out, cache_dir=args.cache_dir, repo_id=args.repo_id,
                      private=args.private, **options))
        return 0
    if args.command == "inspect":
        from .glyph_grid import existing_output_error  # torch and matplotlib: imported for inspect only

        grid = Path(args.out or f"emnist-{args.split}-samples.png")
        if grid.exists() or grid.is_symlink():  # refused before the split is prepared
            raise UserError(existing_output_error(grid))
    path = prepare(args.split, args.source, args.cache_dir, **options)
    if args.command == "inspect":
        from .glyph_grid import count_report, write_grid

        out = write_grid(path, grid, args.per_class)
        print(count_report(path))
        print(f"wrote {out}")
    else:
        print(path)
    return 0


def cli() -> None:
    """Console script entry point (``emnist-data``)."""
    run_cli(main)


if __name__ == "__main__":
    cli()
