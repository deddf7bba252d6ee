"""How much of a known damage the data-quality audit finds: recall and precision per defect kind.

    python -m benchmarks.audit_defects [--per-class 1000] [--seeds 0 1 2] [--model test_resnet] [--epochs 12]
                                       [--rounds 2] [--work DIR]

Method: synthetic digits (tests/helpers/defects.py) with ``--flip`` of the labels changed to another
class and ``--turn`` of the glyphs (of digits other than 0, 1, 8) turned by 90/180/270 degrees, written
as a NIST gzip.zip; then the audit as shipped (configs/audit_byclass.yaml, K=4) with the split, model,
image size, epochs and batch given here, in a subprocess on the CPU. A flipped label counts as found when
its row is flagged as a label issue; a turned glyph when it is flagged with a rotation/flip (``exact``:
the one that turns it back). Precision: the share of the rows flagged with that kind that carry it.
``top_k_precision``: the share of real defects among the first k rows of label_issues.csv, k = the
number injected. With ``--rounds 2`` the audit runs again with ``--data.exclude`` of the first round's
exclude.txt (models that never saw the flagged glyphs look at the rest) and the rounds' flags count
together. One line of JSON per seed, then the mean.
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

from tests.helpers.defects import found, read_issues, write_defective_digits

REPO = Path(__file__).resolve().parents[1]


def measure(per_class: int, flip: float, turn: float, seed: int, model: str, image_size: int, epochs: int,
            batch_size: int, rounds: int, work: Path) -> dict:
    source = work / f"digits-{per_class}-{seed}.zip"
    defects = write_defective_digits(source, per_class, 20, flip_fraction=flip, turn_fraction=turn, seed=seed)
    command = [sys.executable, "-m", "emnist_dist.audit", "--config", str(REPO / "configs" / "audit_byclass.yaml"),
               "--data.split", "digits", "--data.source", str(source), "--data.cache_dir", str(work / "cache"),
               "--data.image_size", str(image_size), "--model.name", model, "--train.epochs", str(epochs),
               "--train.batch_size", str(batch_size), "--log.trackers", "[]", "--log.progress", "false", "--cpu", "true"]
    start = time.perf_counter()
    issues, exclude = [], []
    for round_ in range(1, rounds + 1):
        out = work / f"audit-{per_class}-{seed}-round{round_}"
        subprocess.run([*command, "--output_dir", str(out), *exclude], cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
        issues += read_issues(out)
        (work / "exclude.txt").write_text("".join(f"{row['index']}\n" for row in issues))
        exclude = ["--data.exclude", str(work / "exclude.txt")]
    damaged = defects.flipped.keys() | defects.turned.keys()
    k = len(damaged)
    result = {"seed": seed, "glyphs": 10 * per_class, **found(defects, issues),
              "top_k_precision": sum(int(r["index"]) in damaged for r in issues[:k]) / k,
              "wall_s": round(time.perf_counter() - start, 1)}
    return {key: round(v, 3) if isinstance(v, float) else v for key, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--flip", type=float, default=0.05, help="share of labels changed")
    parser.add_argument("--turn", type=float, default=0.05, help="share of glyphs turned")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="audits in a row, each excluding what the others flagged")
    parser.add_argument("--work", help="keep the data and the audits' folders here (default: a temporary folder)")
    args = parser.parse_args()
    print(__doc__.split("\n\n")[2].replace("\n", " "))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            rows.append(measure(args.per_class, args.flip, args.turn, seed, args.model, args.image_size, args.epochs,
                                args.batch_size, args.rounds, work))
            print(json.dumps(rows[-1]), flush=True)
    keys = [k for k, v in rows[0].items() if isinstance(v, float) and k != "wall_s"]
    print("mean", json.dumps({k: round(sum(r[k] for r in rows) / len(rows), 3) for k in keys}))


if __name__ == "__main__":
    main()
