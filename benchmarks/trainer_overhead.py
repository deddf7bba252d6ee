"""Trainer overhead: ``Trainer.train_step`` vs a bare PyTorch loop doing the same work, timed alike.

Both sides are built in this process from one config and share its data tensors: same model and
initial weights, global batch, transforms (resize [+ affine], normalise, channels_last, MixUp/CutMix),
loss (class-weighted KL), optimizer (Lion), gradient clipping, schedule and precision. The bare
loop is the step written out without Accelerate, the run state or the trainer's bookkeeping.

Method: the same clock over the same number of step calls on both sides. Each measurement is
``--steps`` consecutive step calls inside one ``time.perf_counter`` span (the device synchronised
at both ends), after ``--warmup`` untimed steps of that side; the two sides take turns, round
after round (``--repeats``), the side that goes first alternating. A rate is the best of its rounds
(slower rounds measure the neighbours on a shared machine), shown with the range. Everything stays
within the first epoch. Only the step is timed: the run's log / checkpoint / validation points
every ``log_every`` steps are not part of either side.

    python -m benchmarks.trainer_overhead [--model test_resnet] [--image-size 32] [--batch-size 64]
                                          [--steps 30] [--repeats 5] [--device cpu|cuda]

Prints both rates and, last, ``trainer/bare ratio: X`` (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch

from emnist_dist.config import parse_config
from emnist_dist.train import Trainer
from emnist_dist.train.batches import TrainLoader
from emnist_dist.train.components import build_components, build_network

from .timing import calls_per_s

BALANCED_CLASSES = 47
VAL_FRACTION = 0.1


def bare_loop(trainer: Trainer):
    """The trainer's step written as a plain loop over the trainer's own data and config; returns ``step()``.

    Its parts come from the trainer's builder (building is not timed), so both sides run the same
    transforms in the same order; the step itself is written out without Accelerate.
    """
    cfg, data, device = trainer.cfg, trainer.data, trainer.device
    t = cfg.train
    torch.manual_seed(cfg.seed)  # the trainer's initial weights come from the same seed
    model = build_network(cfg, len(data.class_names)).to(device)
    model.train()
    parts = build_components(cfg, model, data.train_class_counts, mean=data.mean, std=data.std,
                             steps_per_epoch=trainer.steps_per_epoch, seed=cfg.seed, device=device)
    optimizer, scheduler, loss_fn, augmentation = parts.optimizer, parts.scheduler, parts.loss_fn, parts.augmentation
    loader = TrainLoader(data.train_images, data.train_labels, t.batch_size, seed=cfg.seed, device=device)
    batches = iter(loader)
    bf16 = trainer.accelerator.mixed_precision == "bf16"

    def step() -> torch.Tensor:
        images, labels = next(batches)
        x, targets = augmentation(images, labels, epoch=0)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = loss_fn(logits, targets)
        loss.backward()
        if t.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        return loss.detach()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed step calls per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed step calls before each measurement")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; each side is measured once a round")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    args = parser.parse_args()
    # Enough synthetic glyphs that every measured step of both sides falls in the first epoch.
    calls = args.repeats * (args.steps + args.warmup)
    per_class = math.ceil(calls * args.batch_size / (BALANCED_CLASSES * (1 - VAL_FRACTION))) + 1
    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config([
            "--data.split", "balanced", "--data.source", "synthetic", "--data.cache_dir", str(Path(tmp) / "cache"),
            "--data.val_fraction", str(VAL_FRACTION), "--data.synthetic_train_per_class", str(per_class),
            "--data.synthetic_test_per_class", "10", "--data.image_size", str(args.image_size),
            "--model.name", args.model, "--train.batch_size", str(args.batch_size), "--train.epochs", "1",
            "--log.trackers", "[]", "--log.progress", "false", "--cpu", str(args.device == "cpu").lower(),
            "--output_dir", str(Path(tmp) / "run"),
        ])
        trainer = Trainer(cfg)
        sides = {"trainer": trainer.train_step, "bare": bare_loop(trainer)}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for round_index in range(args.repeats):
            order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
            for name in order:
                rates[name].append(calls_per_s(sides[name], args.steps, args.warmup, trainer.device))
    best = {name: max(values) for name, values in rates.items()}
    where = torch.cuda.get_device_name() if trainer.device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"model {args.model} @ {args.image_size}px, batch {args.batch_size}, {where}, precision "
          f"{trainer.accelerator.mixed_precision}")
    print(f"method: in-process, {args.repeats} alternating rounds of {args.steps} timed step calls per side "
          f"(after {args.warmup} warm-up calls), one perf_counter span each; best (range)")
    for name, label in (("trainer", "Trainer.train_step"), ("bare", "bare PyTorch loop")):
        values = rates[name]
        print(f"{label}: {best[name]:.2f} steps/s ({min(values):.2f}-{max(values):.2f}), "
              f"{best[name] * args.batch_size:.0f} images/s")
    rounds = [a / b for a, b in zip(rates["trainer"], rates["bare"])]
    print(f"per-round trainer/bare: {min(rounds):.3f}-{max(rounds):.3f}")
    print(f"trainer/bare ratio: {best['trainer'] / best['bare']:.3f}")


if __name__ == "__main__":
    main()
