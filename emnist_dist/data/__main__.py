"""``python -m emnist_dist.data {prepare,inspect}``: cache a split, or look at one."""

from __future__ import annotations

from ..errors import CliParser, run_cli
from .cache import prepare


def build_parser() -> CliParser:
    common = CliParser(add_help=False)
    common.add_argument(
        "--split", default="byclass", help="byclass | bymerge | balanced | letters | digits | mnist (default: byclass)"
    )
    common.add_argument(
        "--source",
        default="synthetic",
        help="nist (official download) | a local path (gzip.zip, folder of .gz or IDX files, parquet, "
        "saved datasets folder) | hf:OWNER/NAME | synthetic (offline stand-in, NOT EMNIST; default)",
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

    parser = CliParser(prog="python -m emnist_dist.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "prepare", parents=[common], help="convert a split into the cache (once) and print its folder as the last line"
    )
    inspect = commands.add_parser(
        "inspect", parents=[common], help="write a PNG grid of samples per class and print class counts"
    )
    inspect.add_argument("--out", default=None, help="PNG to write (default: emnist-SPLIT-samples.png)")
    inspect.add_argument("--per-class", type=int, default=8, help="samples per class in the grid")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = prepare(
        args.split,
        args.source,
        args.cache_dir,
        synthetic_train_per_class=args.synthetic_train_per_class,
        synthetic_test_per_class=args.synthetic_test_per_class,
        seed=args.seed,
    )
    if args.command == "inspect":
        from .glyph_grid import count_report, write_grid  # torch and matplotlib: imported for inspect only

        out = write_grid(path, args.out or f"emnist-{args.split}-samples.png", args.per_class)
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
