"""A tiny but complete training state for checkpoint tests, stepped like the trainer steps its own.

It has everything a checkpoint must carry: weights with dropout and BatchNorm buffers, Lion
momentum, warmup + cosine schedule, a weight EMA, the device loader's position and the
per-process augmentation and MixUp streams, all built with the package's own components.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from accelerate import Accelerator
from timm.utils import ModelEmaV3

from emnist_dist.train.augment import RandomAffine
from emnist_dist.train.batches import TrainLoader
from emnist_dist.train.checkpoint import CheckpointParts
from emnist_dist.train.mixup import MixUpCutMix
from emnist_dist.train.optim import build_optimizer, build_scheduler

CLASSES = 10


class Progress:
    """The run's position, as JSON (the trainer keeps more fields; the format is the same)."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]


class TinyRun:
    """``width`` sets the size of the weights (16 -> ~3k parameters; 256 -> ~70k)."""

    def __init__(self, accelerator: Accelerator, seed: int, width: int = 16):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Dropout(0.3),
            torch.nn.Linear(16 * width, CLASSES),
        )
        optimizer = build_optimizer(model, "lion", lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99), momentum=0.9)
        self.scheduler = build_scheduler(optimizer, steps_per_epoch=8, warmup_epochs=0.5, T_0=1)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.ema = ModelEmaV3(model, decay=0.9)
        images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        self.loader = TrainLoader(images, torch.arange(64) % CLASSES, 8, seed=0)
        self.affine = RandomAffine(10, 0.1, seed=seed)
        self.mixer = MixUpCutMix(CLASSES, seed=seed)
        self.progress = Progress()
        self.parts = CheckpointParts(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                                     progress=self.progress, loader=self.loader, ema=self.ema,
                                     per_rank={"affine": self.affine, "mixup": self.mixer})
        self._batches = None

    def step(self) -> None:
        """One optimizer step on the next batch (the loader continues from a loaded position)."""
        if self._batches is None:
            self.loader.set_epoch(self.loader.state_dict()["epoch"])
            self._batches = iter(self.loader)
        images, labels = next(self._batches)
        x, targets = self.mixer(self.affine.resize(images, 28), labels)
        loss = -(targets * self.model(x).log_softmax(1)).sum(1).mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.scheduler.step()
        self.ema.update(self.model, step=self.progress.step)
        self.progress.step += 1

    def snapshot(self) -> dict:
        """Everything that must continue identically: weights, EMA, lr, and the global random streams."""
        return {
            **{f"model.{k}": v.clone() for k, v in self.model.state_dict().items()},
            **{f"ema.{k}": v.clone() for k, v in self.ema.state_dict().items()},
            "lr": torch.tensor(self.scheduler.get_last_lr()),
            "torch": torch.rand(4),
            "python": torch.tensor([random.random()]),
            "numpy": torch.from_numpy(np.random.rand(2)),
        }
