"""How much of a known damage the data-quality audit finds, and what excluding what it flags gives a retrain.

    python -m benchmarks.audit_defects [--data fashion|digits] [--size 8000] [--flip 0.03] [--turn 0.01]
                                       [--seeds 0 1 2] [--model test_resnet] [--epochs 10] [--retrain] [--work DIR]

Method: ``--size`` glyphs with ``--flip`` of the labels changed to another class and ``--turn`` of the glyphs
turned (tests/helpers/defects.py): ``fashion``, real images (a random subset of Debian's Fashion-MNIST, turned
by 90/270 degrees, written as an MNIST-format folder, split mnist, with 2,000 of its test images);
``digits``, the synthetic renderer's digits (other than 0, 1, 8 turned by 90/180/270 degrees, written as a NIST
gzip.zip, split digits). Then the audit as shipped (configs/audit_byclass.yaml, K=4) with the split, model,
image size, epochs and batch given here, in a subprocess on the CPU. Ranking (scores.csv, every glyph, n
flipped, m turned): ``flipped_in_2n``, the share of the flipped labels among the first 2n rows;
``turned_in_2nm``, of the turned glyphs among the first 2(n+m); ``kind_right``, the share of the damaged
glyphs found there whose issue names their defect (a turned glyph: the turn that undoes it);
``precision_at_nm``, the share of damaged glyphs among the first n+m rows; ``label_precision_2nm`` /
``turn_precision_2nm``, of the first 2(n+m) rows named ``label`` / a turn, the share that carry it. Flags
(label_issues.csv): a flipped label counts as found when flagged as a label issue, a turned glyph when
flagged with a turn; precision: the share of the rows flagged with that kind that carry it. With
``--retrain``: the audit's training recipe on the damaged training part, once whole and once with
``--data.exclude`` of exclude.txt; their test accuracy (untouched test images). One line of JSON per
seed, then the mean.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers.defects import Defects, found, ranking_found, read_issues, write_defective_digits, write_defective_fashion

REPO = Path(__file__).resolve().parents[1]


def write_data(args: argparse.Namespace, seed: int, work: Path) -> tuple[list[str], Defects]:
    """The damaged source and the data arguments that read it."""
    if args.data == "fashion":
        source = work / f"fashion-{args.size}-{seed}"
        defects = write_defective_fashion(source, args.size, 2000, args.flip, args.turn, seed=seed)
        split = "mnist"
    else:
        source = work / f"digits-{args.size}-{seed}.zip"
        defects = write_defective_digits(source, args.size // 10, 20, args.flip, args.turn, seed=seed)
        split = "digits"
    return ["--data.split", split, "--data.source", str(source), "--data.cache_dir", str(work / "cache")], defects


def run(module: str, args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"})
    if result.returncode:
        raise SystemExit(f"{module} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


def measure(args: argparse.Namespace, seed: int, work: Path) -> dict:
    data, defects = write_data(args, seed, work)
    recipe = ["--config", str(REPO / "configs" / "audit_byclass.yaml"), *data, "--data.image_size", str(args.image_size),
              "--model.name", args.model, "--train.epochs", str(args.epochs), "--train.batch_size",
              str(args.batch_size), "--log.trackers", "[]", "--log.progress", "false", "--cpu", "true"]
    out = work / f"audit-{args.data}-{seed}"
    start = time.perf_counter()
    run("emnist_dist.audit", [*recipe, "--output_dir", str(out)])
    result = {"seed": seed, "glyphs": args.size, "audit_wall_s": round(time.perf_counter() - start, 1)}
    result |= ranking_found(defects, read_issues(out, "scores.csv"))
    result |= found(defects, read_issues(out))
    if args.retrain:
        for name, extra in (("damaged", []), ("excluded", ["--data.exclude", str(out / "exclude.txt")])):
            run_dir = work / f"retrain-{args.data}-{seed}-{name}"
            run("emnist_dist.train", [*recipe, "--output_dir", str(run_dir), *extra])
            result[f"test_acc_{name}"] = json.loads((run_dir / "final.json").read_text())["test/acc"]
    return {key: round(v, 3) if isinstance(v, float) else v for key, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["fashion", "digits"], default="fashion")
    parser.add_argument("--size", type=int, default=8000, help="training glyphs")
    parser.add_argument("--flip", type=float, default=0.03, help="share of labels changed")
    parser.add_argument("--turn", type=float, default=0.01, help="share of glyphs turned")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--retrain", action="store_true", help="also retrain with and without exclude.txt")
    parser.add_argument("--work", help="keep the data and the runs' folders here (default: a temporary folder)")
    args = parser.parse_args()
    print(__doc__.split("\n\n")[2].replace("\n", " "))
    print(json.dumps(vars(args)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            rows.append(measure(args, seed, work))
            print(json.dumps(rows[-1]), flush=True)
    keys = [k for k, v in rows[0].items() if isinstance(v, float) and not k.endswith("wall_s")]
    print("mean", json.dumps({k: round(sum(r[k] for r in rows) / len(rows), 3) for k in keys}))


if __name__ == "__main__":
    main()
