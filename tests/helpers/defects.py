"""Glyphs with known defects, written as a source the audit reads, and what an audit found of them.

Two kinds of glyphs: the synthetic renderer's digits (fonts, distorted), written as the NIST archive
(:func:`write_defective_digits`), and real images, a random subset of Debian's Fashion-MNIST written
as an MNIST-format folder (:func:`write_defective_fashion`). In both, a known set of labels is changed to
another class and a known, disjoint set of glyphs is turned by 90, 180 or 270 degrees (numpy's
``rot90``, independent of the package's transforms) (NIST's are then stored transposed).
Only digits that look different when turned are turned: a turned 0, 1 or 8 is no defect one could see;
every Fashion-MNIST class may be turned (turned by 90 or 270 degrees, as a scanner or a careless
augmentation would, so a bag or a trouser is no longer what it was).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emnist_dist.data.synthetic import render_glyphs
from tests.helpers.emnist_raw import RawSplit, write_gzip_zip
from tests.helpers.mnist_format import FASHION_CLASSES, write_mnist_format

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
"""Debian's dataset-fashion-mnist: the real images."""

DIGITS = list("0123456789")
TURN_INVARIANT = {0, 1, 8}
FIX = {1: "rot270", 2: "rot180", 3: "rot90"}
"""numpy ``rot90(k)`` turns counter-clockwise by 90k degrees; turning back is the audit's rot(360 - 90k)."""


@dataclass
class Defects:
    """Rows of the training part (as stored) that were damaged: flipped labels, and turned glyphs with the fix."""

    flipped: dict[int, int]
    """row -> the true class (the stored label is another one)."""
    turned: dict[int, str]
    """row -> the transform that turns it back (``rot90`` ...)."""


def write_defective_digits(path: Path, per_class: int, test_per_class: int, flip_fraction: float,
                           turn_fraction: float, seed: int = 0) -> Defects:
    """Write ``path`` (a gzip.zip of the digits split) with injected defects; returns which rows are damaged."""
    rng = np.random.default_rng(seed)
    images, labels = render_glyphs(DIGITS, per_class, seed=2 * seed)
    test_images, test_labels = render_glyphs(DIGITS, test_per_class, seed=2 * seed + 1)
    labels, defects = damage(images, labels, flip_fraction, turn_fraction, rng, TURN_INVARIANT, turns=(1, 2, 3))
    raw = RawSplit("digits", images.transpose(0, 2, 1).copy(), labels.astype(np.uint8),
                   test_images.transpose(0, 2, 1).copy(), test_labels.astype(np.uint8))
    write_gzip_zip(path, raw)
    return defects


def write_defective_fashion(folder: Path, train_size: int, test_size: int, flip_fraction: float,
                            turn_fraction: float, seed: int = 0) -> Defects:
    """Write ``folder`` (MNIST format, with classes.txt): ``train_size`` random Fashion-MNIST training images with
    injected defects (90/270-degree turns) and ``test_size`` random test images, untouched."""
    rng = np.random.default_rng(seed)
    train_images, train_labels = read_mnist_part(FASHION_MNIST, "train")
    test_images, test_labels = read_mnist_part(FASHION_MNIST, "t10k")
    chosen = np.sort(rng.choice(len(train_labels), train_size, replace=False))
    tested = np.sort(rng.choice(len(test_labels), test_size, replace=False))
    images, labels = train_images[chosen].copy(), train_labels[chosen].astype(np.int64)
    labels, defects = damage(images, labels, flip_fraction, turn_fraction, rng, set(), turns=(1, 3))
    write_mnist_format(folder, (images, labels.astype(np.uint8)), (test_images[tested], test_labels[tested]),
                       classes=FASHION_CLASSES)
    return defects


def read_mnist_part(folder: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28), labels (N,))`` of an MNIST-format folder's gzipped ``part`` (``train`` / ``t10k``),
    read with numpy alone (16- and 8-byte IDX headers)."""
    images = np.frombuffer(gzip.decompress((folder / f"{part}-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress((folder / f"{part}-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    return images.reshape(len(labels), 28, 28), labels


def damage(images: np.ndarray, labels: np.ndarray, flip_fraction: float, turn_fraction: float,
           rng: np.random.Generator, invariant: set[int], turns: tuple[int, ...]) -> tuple[np.ndarray, Defects]:
    """Change ``flip_fraction`` of the labels to another class and turn (in place, numpy ``rot90(k)``, k from
    ``turns``) ``turn_fraction`` of the other glyphs whose class is not ``invariant``; returns the new labels."""
    n, classes = len(labels), int(labels.max()) + 1
    rows = rng.permutation(n)
    flipped_rows = rows[: round(n * flip_fraction)]
    turnable = rows[round(n * flip_fraction):]
    turnable = turnable[~np.isin(labels[turnable], list(invariant))]
    turned_rows = turnable[: round(n * turn_fraction)]
    flipped = {int(r): int(labels[r]) for r in flipped_rows}
    labels = labels.copy()
    labels[flipped_rows] = (labels[flipped_rows] + rng.integers(1, classes, len(flipped_rows))) % classes
    turned = {}
    for r in turned_rows:
        k = int(rng.choice(turns))
        images[r] = np.rot90(images[r], k).copy()
        turned[int(r)] = FIX[k]
    return labels, Defects(flipped, turned)


def read_issues(out: Path, name: str = "label_issues.csv") -> list[dict]:
    """label_issues.csv (or scores.csv) as written (strings), in file order."""
    with open(out / name, newline="") as f:
        return list(csv.DictReader(f))


def found(defects: Defects, issues: list[dict]) -> dict:
    """Recall and precision of the audit's flags, per defect kind.

    A flipped label is found when its row is flagged as a label issue; a turned glyph when its row
    is flagged with any rotation/flip (``turned_exact``: with the very transform that turns it back).
    Precision: the share of the rows flagged with that kind that really carry that defect. ``any_*``:
    flagged rows against damaged rows whatever the kind (what exclude.txt would drop).
    """
    label_rows = {int(r["index"]) for r in issues if r["issue"] == "label"}
    turn_rows = {int(r["index"]): r["issue"] for r in issues if r["issue"] != "label"}
    exact = sum(turn_rows.get(r) == fix for r, fix in defects.turned.items())
    damaged = defects.flipped.keys() | defects.turned.keys()
    flagged = label_rows | turn_rows.keys()
    return {
        "any_recall": len(flagged & damaged) / max(1, len(damaged)),
        "any_precision": len(flagged & damaged) / max(1, len(flagged)),
        "flipped_recall": len(label_rows & defects.flipped.keys()) / max(1, len(defects.flipped)),
        "flipped_precision": len(label_rows & defects.flipped.keys()) / max(1, len(label_rows)),
        "turned_recall": len(turn_rows.keys() & defects.turned.keys()) / max(1, len(defects.turned)),
        "turned_precision": len(turn_rows.keys() & defects.turned.keys()) / max(1, len(turn_rows)),
        "turned_exact": exact / max(1, len(defects.turned)),
        "flipped": len(defects.flipped), "turned": len(defects.turned),
        "label_flags": len(label_rows), "turn_flags": len(turn_rows),
    }


def ranking_found(defects: Defects, ranking: list[dict]) -> dict:
    """The complete ranking (scores.csv, n flipped, m turned): recall of the flips within its first 2n rows and of
    the turned glyphs within 2(n+m), how often the issue of those names their defect (``kind_right``), the share of
    damaged glyphs among the first n+m rows (``precision_at_nm``, = their recall there), and per kind, the share of
    the first 2(n+m) rows named with that kind that carry it."""
    n, m = len(defects.flipped), len(defects.turned)
    rank = {int(row["index"]): i for i, row in enumerate(ranking)}
    issue = {int(row["index"]): row["issue"] for row in ranking}
    flips = [r for r in defects.flipped if rank[r] < 2 * n]
    turns = [r for r in defects.turned if rank[r] < 2 * (n + m)]
    right = sum(issue[r] == "label" for r in flips) + sum(issue[r] == defects.turned[r] for r in turns)
    damaged = defects.flipped.keys() | defects.turned.keys()
    head = [int(row["index"]) for row in ranking[: 2 * (n + m)]]
    named_label = [r for r in head if issue[r] == "label"]
    named_turn = [r for r in head if issue[r] != "label"]
    return {"flipped_in_2n": len(flips) / max(1, n), "turned_in_2nm": len(turns) / max(1, m),
            "kind_right": right / max(1, len(flips) + len(turns)),
            "precision_at_nm": sum(r in damaged for r in head[: n + m]) / max(1, n + m),
            "label_precision_2nm": sum(r in defects.flipped for r in named_label) / max(1, len(named_label)),
            "turn_precision_2nm": sum(r in defects.turned for r in named_turn) / max(1, len(named_turn))}
