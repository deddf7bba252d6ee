"""Trainer overhead: steps/s of ``emnist_dist.train`` vs a bare PyTorch loop doing the same work.

Same model, global batch, data (the synthetic cache), transforms (resize, normalise, MixUp/CutMix),
loss (class-weighted KL), optimizer (Lion) and schedule. Both are timed over the same steady-state
steps (the first logging window of the trainer, which holds start-up, is excluded), on this CPU.
The two alternate ``--repeats`` times and the best rate of each is compared, so that a burst of
load from elsewhere on the machine does not decide the ratio.

    python -m benchmarks.trainer_overhead [--model test_resnet] [--steps 60] [--batch-size 64] [--repeats 3]

Prints both rates and, last, ``trainer/bare ratio: X`` (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from emnist_dist.config import DataConfig
from emnist_dist.data import load_emnist
from emnist_dist.train.loss import WeightedKLDivLoss, class_weights
from emnist_dist.train.mixup import MixUpCutMix
from emnist_dist.train.network import create_model
from emnist_dist.train.optim import build_optimizer, build_scheduler
from emnist_dist.data.resize import resize_to_float


def trainer_steps_per_s(args, cache: str, out: str) -> float:
    """Run the real entry point; average its logged steady-state windows."""
    window = args.steps // 6
    cmd = [sys.executable, "-m", "emnist_dist.train", "--data.split", "balanced", "--data.source", "synthetic",
           "--data.cache_dir", cache, "--data.image_size", str(args.image_size), "--model.name", args.model,
           "--train.batch_size", str(args.batch_size), "--train.max_steps", str(args.steps), "--train.epochs", "100",
           "--log.trackers", "[]", "--log.progress", "false", "--log.log_every", str(window),
           "--checkpoint.keep_last", "1", "--train.eval_every", "1000", "--cpu", "true", "--output_dir", out]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rates = [float(m) for m in re.findall(r"images/s (\d+)", result.stdout)]
    steady = rates[1:-1] if len(rates) > 2 else rates  # drop start-up and the window holding the final eval
    return sum(steady) / len(steady) / args.batch_size


def bare_steps_per_s(args, cache: str) -> float:
    """The same work written as a plain loop: no Accelerate, no checkpoint, logging or stop checks."""
    data = load_emnist(DataConfig(split="balanced", source="synthetic", cache_dir=cache, image_size=args.image_size),
                       seed=0, progress=False)
    torch.manual_seed(0)
    model = create_model(args.model, len(data.class_names), drop_rate=0.3, drop_path_rate=0.2)
    loss_fn = WeightedKLDivLoss(class_weights(data.train_class_counts, "minmax"))
    optimizer = build_optimizer(model, "lion", lr=1e-4, weight_decay=0.1)
    scheduler = build_scheduler(optimizer, steps_per_epoch=100, warmup_epochs=5, T_0=10)
    mixer = MixUpCutMix(len(data.class_names), seed=0)
    images, labels = data.train_images, data.train_labels
    model.train()

    def step(i: int) -> None:
        idx = torch.randint(0, len(labels), (args.batch_size,), generator=torch.Generator().manual_seed(i))
        x = (resize_to_float(images[idx], args.image_size) - data.mean) / data.std
        x, targets = mixer(x, labels[idx])
        loss = loss_fn(model(x), targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()

    warmup = args.steps // 6
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(warmup, args.steps):
        step(i)
    return (args.steps - warmup) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    trainer_runs, bare_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "cache")
        load_emnist(DataConfig(split="balanced", source="synthetic", cache_dir=cache), seed=0, progress=False)
        for i in range(args.repeats):
            trainer_runs.append(trainer_steps_per_s(args, cache, str(Path(tmp) / f"run{i}")))
            bare_runs.append(bare_steps_per_s(args, cache))
    trainer, bare = max(trainer_runs), max(bare_runs)
    print(f"model {args.model} @ {args.image_size}px, batch {args.batch_size}, CPU, {torch.get_num_threads()} threads")
    print("runs (steps/s): trainer " + ", ".join(f"{r:.2f}" for r in trainer_runs)
          + "; bare " + ", ".join(f"{r:.2f}" for r in bare_runs))
    print(f"emnist_dist.train: best {trainer:.2f} steps/s ({trainer * args.batch_size:.0f} images/s)")
    print(f"bare PyTorch loop: best {bare:.2f} steps/s ({bare * args.batch_size:.0f} images/s)")
    print(f"trainer/bare ratio: {trainer / bare:.3f}")


if __name__ == "__main__":
    main()
