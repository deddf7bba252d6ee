"""Benchmark ``prepare`` on raw files of full EMNIST ByClass size, in-process and as the command line.

    python -m benchmarks.prepare [--rounds 3] [--train 697932] [--test 116323]

Generates a ``gzip.zip`` in the official layout (glyph-like images, so the gzip ratio is
EMNIST-like) in a temporary folder, then measures, like against like:

- the floor: a fresh Python process that reads every member of the split from the archive and
  gunzips it in one call (``zlib.decompress``, as the baseline always was), and nothing else;
- the command line a user runs: ``python -m emnist_dist.data prepare --split byclass --source
  ARCHIVE`` into an empty cache folder (interpreter start, imports, reading, the orientation fix,
  writing, checksums, fsync: everything);
- ``prepare()`` in a fresh process that times itself around the call only (imports excluded) and
  reports its peak memory (VmHWM, Linux).

Method: ``--rounds`` rounds; each round runs the three processes back to back, in an order that
rotates from round to round, so load from elsewhere on a shared machine hits them alike. The wall
time of a process is ``time.perf_counter`` around ``subprocess.run`` in this process, its CPU time
the user + system time the kernel charged it (``getrusage`` of the children); the floor process
also times its decompression from inside, the in-process baseline. Goals: the command line's wall
time within 2x the floor process's wall time (goal 1.5x), in every round; the same for the
in-process times. Per round ratios are printed, then the median and range. Then, once: loading the
cached split into a tensor vs reading the same Arrow bytes raw, and the exact image statistics.

Not part of the test suite. On a shared machine, read the ratios (the sides measured back to back),
not the seconds, and note the load average printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emnist_dist.data import class_names, image_stats, load_split
from emnist_dist.data.synthetic import render_glyphs
from tests.helpers.emnist_raw import RawSplit, write_gzip_zip

# The floor: read + gunzip every member of the archive, nothing else; it times itself too.
_FLOOR = """
import sys, time, zipfile, zlib
start = time.perf_counter()
with zipfile.ZipFile(sys.argv[1]) as archive:
    for name in archive.namelist():
        if name.endswith(".gz"):
            zlib.decompress(archive.read(name), wbits=31)
print(time.perf_counter() - start)
"""
# The child reports its own peak RSS (VmHWM): getrusage's ru_maxrss of a child also counts
# the parent's memory it was forked from, which here would be the generated data.
_IN_PROCESS = """
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


def run_process(args: list[str]) -> tuple[float, float, str]:
    """Run a child process; its wall seconds (seen from here), CPU seconds (user + system) and stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def raw_read(paths: list[Path]) -> float:
    """Seconds to read the given files' bytes into memory."""
    start = time.perf_counter()
    for p in paths:
        np.fromfile(p, dtype=np.uint8)
    return time.perf_counter() - start


def measure_round(archive: Path, cache: Path, order: list[str]) -> dict:
    """One round: the floor, the command line and in-process ``prepare``, in ``order``; each cache starts empty."""
    result = {}
    for side in order:
        shutil.rmtree(cache, ignore_errors=True)
        if side == "floor":
            wall, cpu, out = run_process([sys.executable, "-c", _FLOOR, str(archive)])
            result["floor"] = {"wall": wall, "cpu": cpu, "inside": float(out.strip())}
        elif side == "cli":
            wall, cpu, out = run_process(
                [sys.executable, "-m", "emnist_dist.data", "prepare", "--split", "byclass", "--source", str(archive),
                 "--cache-dir", str(cache)]
            )
            result["cli"] = {"wall": wall, "cpu": cpu}
        else:
            wall, cpu, out = run_process([sys.executable, "-c", _IN_PROCESS, str(archive), str(cache)])
            child = json.loads(out.strip().splitlines()[-1])
            result["in_process"] = {"wall": wall, "cpu": cpu, "inside": child["seconds"], "peak_gb": child["peak_gb"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=697_932)
    parser.add_argument("--test", type=int, default=116_323)
    parser.add_argument("--rounds", type=int, default=3)
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
        run_process([sys.executable, "-c", _FLOOR, str(archive)])  # warm the page cache and the interpreter's files

        print(f"method: {args.rounds} rounds; each runs three fresh processes back to back in a rotating order: the "
              "floor (read + gunzip every member with zlib.decompress, nothing else), the command line "
              "(python -m emnist_dist.data prepare into an empty cache folder) and prepare() timing itself in-process; "
              "wall = time.perf_counter around each process from here (same clock), CPU = its user + system time; "
              "ratios are per round, the two sides measured back to back")
        sides = ["floor", "cli", "in_process"]
        rounds = []
        print(f"{'round':>5} {'order':28} {'floor wall':>10} {'CLI wall':>9} {'CLI/floor':>9}   "
              f"{'floor in':>8} {'prepare in':>10} {'in/in':>6}   {'CPU floor':>9} {'CPU CLI':>8}   load")
        for r in range(args.rounds):
            order = sides[r % 3 :] + sides[: r % 3]
            m = measure_round(archive, tmp / "cache", order)
            m["load"] = os.getloadavg()[0]
            rounds.append(m)
            f, c, p = m["floor"], m["cli"], m["in_process"]
            print(f"{r + 1:>5} {' > '.join(order):28} {f['wall']:9.2f}s {c['wall']:8.2f}s {c['wall'] / f['wall']:8.2f}x   "
                  f"{f['inside']:7.2f}s {p['inside']:9.2f}s {p['inside'] / f['inside']:5.2f}x   "
                  f"{f['cpu']:8.2f}s {c['cpu']:7.2f}s   {m['load']:.1f}", flush=True)

        shutil.rmtree(tmp / "cache", ignore_errors=True)
        _, _, out = run_process([sys.executable, "-c", _IN_PROCESS, str(archive), str(tmp / "cache")])
        cache = Path(json.loads(out.strip().splitlines()[-1])["path"])
        loads = []
        for part in ("train", "test"):
            files = sorted((cache / part).glob("*.arrow"))
            raw_read(files)  # warm the page cache for both contenders
            raw_s = min(raw_read(files) for _ in range(3))
            load_s = min(_timed(load_split, cache, part) for _ in range(3))
            loads.append((part, load_s, raw_s))
        stats_s = _timed(image_stats, cache, 112)

    print()
    _summary("command line, wall (python -m emnist_dist.data prepare vs the floor process)",
             [m["cli"]["wall"] / m["floor"]["wall"] for m in rounds])
    _summary("in-process (prepare() vs the floor's own decompression time)",
             [m["in_process"]["inside"] / m["floor"]["inside"] for m in rounds])
    _summary("command line, CPU time (user + system, both processes)",
             [m["cli"]["cpu"] / m["floor"]["cpu"] for m in rounds])
    peak = max(m["in_process"]["peak_gb"] for m in rounds)
    print(f"peak memory of the prepare process (max RSS, imports included): {peak:.2f} GB")
    for part, load_s, raw_s in loads:
        print(f"load_split({part!r}) -> tensor {load_s:.2f}s vs reading the same Arrow bytes {raw_s:.2f}s: "
              f"{load_s / raw_s:.2f}x (best of 3 each)")
    print(f"image_stats(cache, 112), exact mean/std of the resized training pixels: {stats_s:.1f}s (once; cached after)")
    print(f"load average (1 min) during the rounds: {min(m['load'] for m in rounds):.1f}-{max(m['load'] for m in rounds):.1f} "
          f"on {os.cpu_count()} CPUs")


def _summary(name: str, ratios: list[float]) -> None:
    print(f"{name}: median {statistics.median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x "
          f"over {len(ratios)} rounds")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
