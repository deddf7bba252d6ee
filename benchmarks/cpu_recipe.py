"""configs/cpu.yaml on real images: test accuracy, wall time and CPU time of one run.

    python -m benchmarks.cpu_recipe --source data/fashion-mnist [--out runs/cpu] [--threads 2] [-- TRAIN ARGS]
    python -m benchmarks.cpu_recipe --sklearn-digits [--out runs/cpu_digits] [-- TRAIN ARGS]

Method: ``python -m emnist_dist.train --config configs/cpu.yaml --data.source SOURCE`` (plus any training
arguments given after ``--``) in a subprocess with ``OMP_NUM_THREADS`` = ``--threads``, fresh run folder
(``--resume never``). Measured: the run's wall time (``time.perf_counter``), its CPU time (user + sys of the
child, ``resource.getrusage``) and the load average before and after. On a machine shared with other work the
wall time is inflated; ``cpu_s / threads`` is then the estimate of the wall time on idle cores (assuming the
threads kept the cores busy). ``--sklearn-digits`` first writes scikit-learn's 1,797 real handwritten 8x8
digits as an MNIST-format folder (enlarged to 20x20 in a 28x28 frame, a stratified quarter as test
glyphs; tests/helpers/mnist_format.py). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.mnist_format import write_sklearn_digits

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--source", help="an MNIST-format folder (e.g. Fashion-MNIST's, with classes.txt)")
    data.add_argument("--sklearn-digits", action="store_true", help="scikit-learn's real handwritten digits")
    parser.add_argument("--out", default=None, help="run folder (default runs/cpu, runs/cpu_digits)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the run (default 2)")
    parser.add_argument("train_args", nargs="*", help="more training arguments, after --")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        source = str(write_sklearn_digits(Path(scratch) / "sklearn-digits")) if args.sklearn_digits else args.source
        out = args.out or ("runs/cpu_digits" if args.sklearn_digits else "runs/cpu")
        command = [sys.executable, "-m", "emnist_dist.train", "--config", str(REPO / "configs" / "cpu.yaml"),
                   "--data.source", source, "--output_dir", out, "--resume", "never", *args.train_args]
        load_before = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(command, cwd=REPO, check=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        wall = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    final = json.loads((REPO / out / "final.json").read_text())
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({
        "data": final["data"], "test/acc": round(final["test/acc"], 4), "best_weights": final.get("best_weights"),
        "epochs": final["epoch"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "threads": args.threads,
        "idle_wall_estimate_s": round(cpu / args.threads, 1),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(command[1:]),
    }))


if __name__ == "__main__":
    main()
