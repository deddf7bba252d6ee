"""Benchmark ``prepare`` and ``load_split`` on raw files of full EMNIST ByClass size.

    python -m benchmarks.prepare [--train 697932] [--test 116323]

Generates a ``gzip.zip`` in the official layout (glyph-like images, so the gzip ratio is
EMNIST-like) in a temporary folder, then prints side by side:

- prepare time vs the floor of merely reading + decompressing the same members (goal <= 2x),
- peak memory (VmHWM, Linux) of a child process doing the prepare (goal <= 3 GB),
- load_split time (cache -> tensor) vs reading the same Arrow bytes raw (goal <= 2x).

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from emnist_dist.data import class_names, image_stats, load_split
from emnist_dist.data.synthetic import render_glyphs
from tests.helpers.emnist_raw import RawSplit, write_gzip_zip

# The child reports its own peak RSS (VmHWM): getrusage's ru_maxrss of a child also counts
# the parent's memory it was forked from, which here would be the generated data.
_CHILD = """
import json, re, sys, time
from pathlib import Path
from emnist_dist.data import prepare
start = time.perf_counter()
path = prepare("byclass", sys.argv[1], sys.argv[2], progress=False)
seconds = time.perf_counter() - start
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(json.dumps({"seconds": seconds, "path": str(path), "peak_gb": peak_kb * 1024 / 1e9}))
"""


def glyph_like(n: int, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
    """``n`` images drawn from a pool of rendered glyphs, transposed like the NIST files."""
    return np.ascontiguousarray(pool[rng.integers(len(pool), size=n)].transpose(0, 2, 1))


def decompress_floor(archive: Path) -> float:
    """Seconds to read and gunzip every member of the split (nothing else)."""
    start = time.perf_counter()
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            if name.endswith(".gz"):
                zlib.decompress(zf.read(name), wbits=31)
    return time.perf_counter() - start


def raw_read(paths: list[Path]) -> float:
    """Seconds to read the given files' bytes into memory."""
    start = time.perf_counter()
    for p in paths:
        np.fromfile(p, dtype=np.uint8)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=697_932)
    parser.add_argument("--test", type=int, default=116_323)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        pool, _ = render_glyphs(class_names("byclass"), 40, seed=0)
        raw = RawSplit(
            "byclass",
            glyph_like(args.train, rng, pool),
            rng.integers(0, 62, args.train, dtype=np.uint8),
            glyph_like(args.test, rng, pool),
            rng.integers(0, 62, args.test, dtype=np.uint8),
        )
        archive = write_gzip_zip(tmp / "gzip.zip", raw)
        del raw
        print(
            f"generated {archive.stat().st_size / 1e6:.0f} MB gzip.zip ({args.train} + {args.test} images) "
            f"in {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
        )

        floor = min(decompress_floor(archive) for _ in range(2))
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(archive), str(tmp / "cache")],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        cache = Path(result["path"])

        rows = [("prepare (gzip.zip -> cache)", result["seconds"], "read + gunzip members", floor)]
        for part in ("train", "test"):
            files = sorted((cache / part).glob("*.arrow"))
            raw_read(files)  # warm the page cache for both contenders
            raw_s = min(raw_read(files) for _ in range(3))
            load_s = min(_timed(load_split, cache, part) for _ in range(3))
            rows.append((f"load_split({part!r}) -> tensor", load_s, "read the same Arrow bytes", raw_s))
        stats_s = _timed(image_stats, cache, 112)

    print(f"{'operation':34} {'time':>8}   {'baseline':28} {'time':>8} {'ratio':>6}")
    for name, seconds, base_name, base in rows:
        print(f"{name:34} {seconds:7.2f}s   {base_name:28} {base:7.2f}s {seconds / base:5.2f}x")
    print(f"peak memory of the prepare process (max RSS, imports included): {result['peak_gb']:.2f} GB")
    print(
        f"image_stats(cache, 112), exact mean/std of the resized training pixels: {stats_s:.1f}s (once; cached after)"
    )


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
